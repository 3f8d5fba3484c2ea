"""Render a model's Jinja chat template (GGUF `tokenizer.chat_template`, llama-server's /props).

Rendered the way Hugging Face's `apply_chat_template` does (sandboxed Jinja2, trim_blocks,
lstrip_blocks, `raise_exception`, `strftime_now`), then without the leading BOS text: llama.cpp
adds the BOS token itself when it tokenizes a prompt, and a template that also writes
`{{ bos_token }}` (R1-distill, Llama 3) would otherwise give two (llama.cpp warns about it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn

from mstui.core.backend import ChatMessage

__all__ = ["TemplateError", "render_chat_template"]


class TemplateError(ValueError):
    """The chat template cannot be rendered for these messages (one line, says what to do)."""


class _Refused(TemplateError):
    """The template's own `raise_exception(...)`: it refuses these messages."""


def _raise(message: str) -> NoReturn:
    raise _Refused(message)


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2.exceptions import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    # As transformers does: no HTML escaping, non-ASCII kept.
    env.filters["tojson"] = lambda value, indent=None, **_: json.dumps(
        value, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"the chat template does not parse ({exc.message}, line "
                            f"{exc.lineno}); use --format fewshot") from None


def render_chat_template(template: str, messages: Sequence[ChatMessage], *, bos_token: str = "",
                         eos_token: str = "", add_generation_prompt: bool = True,
                         bos_added: bool = True) -> str:
    """The prompt text for `messages`, ending with the assistant cue.

    `bos_added`: the tokenizer puts the BOS token in front itself (llama.cpp's add_bos_token), so
    a leading BOS text is dropped rather than doubled. Where it does not (SmolLM2: its BOS text
    is `<|im_start|>`, the first turn's own opening), the text is kept whole: dropping it would
    cut the first turn's marker.

    A template that refuses a system turn (Gemma raises "System role not supported") gets the
    system text merged into the first user turn, as those models' cards advise. Raises
    TemplateError with one line when the template cannot be rendered at all.
    """
    compiled = _compile(template)
    turns = [dict(m) for m in messages]
    try:
        try:
            text = _render(compiled, turns, bos_token, eos_token, add_generation_prompt)
        except TemplateError:
            if not (turns and turns[0]["role"] == "system" and len(turns) > 1):
                raise
            system, first, *rest = turns
            merged = {"role": first["role"],
                      "content": f"{system['content']}\n\n{first['content']}"}
            text = _render(compiled, [merged, *rest], bos_token, eos_token, add_generation_prompt)
    except _Refused as exc:
        # The template's own words ("no system role") say neither where they come from nor
        # what to do.
        raise TemplateError(f"the chat template refuses these messages ({exc}); use --format "
                            "fewshot") from None
    if bos_added and bos_token and text.startswith(bos_token):
        text = text[len(bos_token):]
    return text


def _render(compiled: Any, turns: list[dict[str, str]], bos: str, eos: str, gen: bool) -> str:
    from jinja2.exceptions import TemplateError as JinjaError

    try:
        # enable_thinking: llama-server's default for Qwen3/QwQ-style switches (thinking on).
        text: str = compiled.render(messages=turns, add_generation_prompt=gen, bos_token=bos,
                                    eos_token=eos, enable_thinking=True)
    except TemplateError:
        raise
    except (JinjaError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TemplateError(f"the chat template cannot be rendered ({first}); use --format "
                            "fewshot") from None
    return text
