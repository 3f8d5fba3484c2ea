"""Real chat templates of reasoning and chat models, from llama.cpp's own source tree.

`make templates` copies them out of the llama-cpp-python sdist (the source setup builds from,
`vendor/llama.cpp/models/templates/`) into tests/.templates/, which git ignores: nothing is
downloaded beyond the package registry, and no template text is committed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parent / ".templates"

R1_SPECIALS = ("<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>")
QWEN_SPECIALS = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")


@dataclass(frozen=True)
class RealTemplate:
    """One model family's template file and the tokens its GGUF declares."""

    key: str
    file: str
    bos: str
    eos: str
    add_bos: bool  # tokenizer.ggml.add_bos_token of the real GGUFs
    specials: tuple[str, ...]
    reasoning: bool
    profile: str

    def text(self) -> str:
        """The template's Jinja text; fails (never skips) with what to run when it is absent."""
        path = TEMPLATE_DIR / self.file
        if not path.is_file():
            pytest.fail(f"{path} is missing: run `make templates` (make test does)")
        return path.read_text("utf-8")


TEMPLATES = {
    t.key: t
    for t in (
        RealTemplate("r1-distill-llama", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
                     "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", True, R1_SPECIALS, True,
                     "deepseek-r1"),
        RealTemplate("r1-distill-qwen", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
                     "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", True, R1_SPECIALS, True,
                     "deepseek-r1"),
        RealTemplate("qwq", "Qwen-QwQ-32B.jinja", "<|endoftext|>", "<|im_end|>", False,
                     QWEN_SPECIALS, True, "qwq"),
        RealTemplate("qwen3", "Qwen-Qwen3-0.6B.jinja", "<|endoftext|>", "<|im_end|>", False,
                     QWEN_SPECIALS, True, "qwen3"),
        RealTemplate("llama3", "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>",
                     "<|eot_id|>", True,
                     ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), False, "plain"),
        RealTemplate("chatml", "Qwen-Qwen2.5-7B-Instruct.jinja", "<|endoftext|>", "<|im_end|>",
                     False, ("<|im_start|>", "<|im_end|>"), False, "plain"),
        RealTemplate("gemma", "google-gemma-2-2b-it.jinja", "<bos>", "<eos>", True,
                     ("<start_of_turn>", "<end_of_turn>"), False, "plain"),
    )
}
