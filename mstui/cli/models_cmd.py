"""`mstui models`: list GGUF files with size, architecture, quantization, context and profile."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mstui.config import RunConfig
from mstui.core.profiles import detect_profile
from mstui.engine.errors import ModelError
from mstui.engine.gguf_info import read_gguf_info
from mstui.engine.models import list_model_files


def cmd_models(args: argparse.Namespace) -> int:
    """Print one row per model; unreadable files are listed with the reason, not skipped."""
    from mstui.engine.llama_backend import DEFAULT_CTX, gpu_offload_supported

    paths = list_model_files(Path(args.models_dir)) + [Path(p) for p in args.paths]
    gpu = gpu_offload_supported()
    rows: list[dict[str, object]] = []
    for path in paths:
        try:
            info = read_gguf_info(path)
            profile = detect_profile(info.chat_template, path.name)
            # The settings a run of this file would use: the profile's, capped by its context.
            used = RunConfig(model=str(path), explicit=frozenset()).with_profile(
                profile, model_ctx=info.context_length or None)
            rows.append({"file": str(path), "size": info.size_text, "size_bytes": info.size_bytes,
                         "architecture": info.architecture, "quantization": info.quantization,
                         "context": info.context_length, "layers": info.block_count,
                         "profile": profile.name, "reasoning": profile.reasoning,
                         "profile_why": profile.why, "profile_text": profile.describe(
                             used, context=used.ctx or min(info.context_length or DEFAULT_CTX,
                                                           DEFAULT_CTX)),
                         "error": None})
        except ModelError as exc:
            rows.append({"file": str(path), "error": str(exc)})
    offload = ("yes: layers go to the GPU by default (--gpu-layers)" if gpu else
               "no: this llama-cpp-python build is CPU only (rebuild with CMAKE_ARGS, see README)")
    if args.json:
        print(json.dumps({"gpu_offload": gpu, "models": rows}, indent=2))
        return 0 if all(r["error"] is None for r in rows) else 2
    if not rows:
        print(f"no .gguf files in {args.models_dir}/ (run `make model` for the default model)")
    else:
        header = f"{'file':44} {'size':>9}  {'arch':10} {'quant':8} {'context':>7} {'layers':>6}"
        print(header)
        for r in rows:
            if r["error"]:
                print(f"{r['file']:44} unreadable: {r['error']}")
            else:
                print(f"{r['file']:44} {r['size']:>9}  {r['architecture']:10} "
                      f"{r['quantization']:8} {r['context']:>7} {r['layers']:>6}")
                print(f"  profile {r['profile_text']}")
    print(f"GPU offload: {offload}")
    return 0 if all(r["error"] is None for r in rows) else 2
