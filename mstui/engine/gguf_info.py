"""Read a GGUF header (architecture, quantization, context, layers); reject broken files early."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mstui.engine.errors import ModelError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GGUFInfo:
    """What `mstui models` lists about one file."""

    path: Path
    size_bytes: int
    architecture: str
    quantization: str
    context_length: int
    block_count: int
    name: str
    chat_template: str | None

    @property
    def size_text(self) -> str:
        """Human size, e.g. '92.9 MB'."""
        size = float(self.size_bytes)
        for unit in ("B", "KB", "MB", "GB"):
            if size < 1000 or unit == "GB":
                return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
            size /= 1000
        return f"{size:.1f} GB"


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    try:
        return field.contents()
    except (AttributeError, IndexError, ValueError):  # older gguf packages lack contents()
        return None


def _quantization(reader: Any) -> str:
    import gguf

    file_type = _field(reader, "general.file_type")
    if file_type is not None:
        try:
            return gguf.LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    # No file_type key: name it after the most common tensor type.
    counts: dict[str, int] = {}
    for tensor in reader.tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else "unknown"


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse the header of a GGUF file; ModelError (one line) for missing, foreign or cut files."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"no such model file: {p}; run `mstui models` to see the models found")
    if not p.is_file():
        raise ModelError(f"{p} is not a file; give the path of a .gguf model file")
    size = p.stat().st_size
    with p.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{p} is not a GGUF model (no GGUF header); convert it with llama.cpp "
                         "or pick another file")
    import gguf

    try:
        reader = gguf.GGUFReader(str(p), "r")
    except Exception as exc:  # the reader raises assorted errors on damaged headers
        raise ModelError(f"{p} is a damaged or truncated GGUF ({type(exc).__name__}); "
                         "download or copy it again") from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise ModelError(f"{p} is truncated ({size} of {end} bytes); download or copy it again")
    arch = str(_field(reader, "general.architecture") or "unknown")
    ctx = _field(reader, f"{arch}.context_length")
    blocks = _field(reader, f"{arch}.block_count")
    name = _field(reader, "general.name") or p.stem
    template = _field(reader, "tokenizer.chat_template")
    return GGUFInfo(
        path=p,
        size_bytes=size,
        architecture=arch,
        quantization=_quantization(reader),
        context_length=int(ctx) if ctx is not None else 0,
        block_count=int(blocks) if blocks is not None else 0,
        name=str(name),
        chat_template=str(template) if template else None,
    )


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
