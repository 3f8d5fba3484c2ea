"""Model profiles: recognize a reasoning model from its chat template and pick its defaults.

Sources for the recommended settings: the model cards of DeepSeek-R1 (and its distills):
temperature 0.6, top-p 0.95, no system prompt, "put your final answer within \\boxed{}";
QwQ-32B: temperature 0.6, top-p 0.95, top-k 20-40, min-p 0; Qwen3 in thinking mode:
temperature 0.6, top-p 0.95, top-k 20, min-p 0 (never greedy: it loops).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from mstui.core.reasoning import ThinkTags, find_tags

__all__ = ["PLAIN", "PROFILES", "ModelProfile", "detect_profile", "profile_by_name"]


@dataclass(frozen=True)
class ModelProfile:
    """The defaults a model family asks for; every field is overridable by an explicit option.

    `max_tokens` is the per-round token budget, `n_ctx` the context to load (in tokens; capped
    by the model's own), `why` one line saying what the detection rested on.
    """

    name: str  # "plain", "deepseek-r1", "qwq", "qwen3", "reasoning"
    reasoning: bool
    tags: ThinkTags | None
    prompt_format: str
    use_system: bool
    max_tokens: int
    n_ctx: int | None  # None: the model's own context, at most the engine's default
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    why: str = ""

    def describe(self, used: RunSettings | None = None, *, context: int | None = None) -> str:
        """One line: the profile, the settings runs use, and why it was picked.

        `used` (a RunConfig with this profile applied) gives the settings as they run, after
        the user's options and the cap by the model's context; without it the profile's own
        defaults are shown. `context` is the context actually loaded, where known.
        """
        why = f" ({self.why})" if self.why else ""
        if not self.reasoning and used is None:
            return f"{self.name}{why}"
        fmt = used.prompt_format if used is not None else self.prompt_format
        gen = used.gen if used is not None else self
        ctx = context or (used.ctx if used is not None else self.n_ctx)
        tags = (f"thinks in {self.tags.open}…{self.tags.close}; " if self.tags
                else "reasoning stream; " if self.reasoning else "")
        from mstui.core.prompts import load_format

        try:
            shape = load_format(fmt)
        except ValueError:
            shape = None
        if shape is None or shape.kind != "chat":
            system = ""  # a completion prompt has no turns
        elif shape.system and self.use_system:
            system = ", system prompt"
        else:
            system = ", no system prompt"
        mine = ""
        if used is not None:
            named = {"prompt_format": "format", "ctx": "ctx", "max_tokens": "tok/round",
                     "temperature": "T", "top_p": "top-p", "top_k": "top-k", "min_p": "min-p"}
            chosen = [label for key, label in named.items() if used.is_set(key)]
            mine = f"; yours: {', '.join(chosen)}" if chosen else ""
        return (f"{self.name}: {tags}format {fmt}{system}, {gen.max_tokens} tok/round, "
                f"ctx {ctx if ctx else 'the model’s'}, T {gen.temperature:g} top-p "
                f"{gen.top_p:g} top-k {gen.top_k} min-p {gen.min_p:g}{mine}{why}")


class _Sampling(Protocol):
    @property
    def max_tokens(self) -> int: ...
    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float: ...
    @property
    def top_k(self) -> int: ...
    @property
    def min_p(self) -> float: ...


class RunSettings(Protocol):
    """What `describe` reads of a RunConfig (mstui.config imports this module)."""

    @property
    def prompt_format(self) -> str: ...
    @property
    def ctx(self) -> int | None: ...
    @property
    def gen(self) -> _Sampling: ...

    def is_set(self, name: str) -> bool: ...


PLAIN = ModelProfile(
    name="plain", reasoning=False, tags=None, prompt_format="fewshot", use_system=True,
    max_tokens=256, n_ctx=None, temperature=0.7, top_p=0.95, top_k=40, min_p=0.05,
)
_THINK = ThinkTags("<think>", "</think>")
# A round of a 7B/8B reasoning model on a math word problem is typically 1-4k tokens; 4096 per
# round with a 16k context holds the prompt and several rounds of a `wait` continuation.
_REASONING = dict(reasoning=True, prompt_format="reasoning", max_tokens=4096, n_ctx=16384,
                  temperature=0.6, top_p=0.95)
PROFILES: dict[str, ModelProfile] = {
    "plain": PLAIN,
    "deepseek-r1": ModelProfile(name="deepseek-r1", tags=_THINK, use_system=False, top_k=40,
                                min_p=0.0, **_REASONING),  # type: ignore[arg-type]
    "qwq": ModelProfile(name="qwq", tags=_THINK, use_system=True, top_k=40, min_p=0.0,
                        **_REASONING),  # type: ignore[arg-type]
    "qwen3": ModelProfile(name="qwen3", tags=_THINK, use_system=True, top_k=20, min_p=0.0,
                          **_REASONING),  # type: ignore[arg-type]
    "reasoning": ModelProfile(name="reasoning", tags=_THINK, use_system=True, top_k=40,
                              min_p=0.0, **_REASONING),  # type: ignore[arg-type]
}


def profile_by_name(name: str) -> ModelProfile:
    """A profile by name; a one-line ValueError for an unknown one."""
    try:
        return replace(PROFILES[name], why="chosen with --profile")
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose auto or one of: "
                         f"{', '.join(PROFILES)}") from None


def detect_profile(chat_template: str | None, model_name: str = "", *,
                   streams_reasoning: bool = False) -> ModelProfile:
    """The profile of a model, from its chat template (think tags, family markers), else its name.

    A server that streams `reasoning_content` marks a reasoning model even without a template.
    """
    template = chat_template or ""
    tags = find_tags(template)
    if tags is not None:
        if "<｜Assistant｜>" in template:
            family, why = "deepseek-r1", "chat template has DeepSeek's <｜Assistant｜> turns"
        elif "<|im_start|>" in template and "assistant\\n<think>" in template:
            family, why = "qwq", "ChatML template whose generation prompt opens <think>"
        elif "enable_thinking" in template:
            family, why = "qwen3", "chat template has Qwen3's enable_thinking switch"
        else:
            family, why = "reasoning", "chat template closes thinking"
        return replace(PROFILES[family], tags=tags, why=f"{why}; think tag {tags.close}")
    name = model_name.lower()
    for key, family in (("deepseek-r1", "deepseek-r1"), ("r1-distill", "deepseek-r1"),
                        ("qwq", "qwq"), ("qwen3", "qwen3")):
        if key in name:
            return replace(PROFILES[family], why=f"model name contains {key!r}")
    if streams_reasoning:
        return replace(PROFILES["reasoning"], why="the server streams reasoning content")
    why = "no chat template" if chat_template is None else "chat template has no think tags"
    return replace(PLAIN, why=why)
