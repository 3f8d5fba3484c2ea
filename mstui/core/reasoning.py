"""Thinking/final split of a reasoning model's round (DESIGN §2.1): `</think>` and its kin.

R1-distilled models, QwQ and Qwen3 write a thinking part closed by an end-of-thinking tag, then
the final part. R1-distill and QwQ templates open `<think>` in the *prompt*, so the response
carries only the closing tag; Qwen3 writes both. The answer of a round comes from the final part
only, and a round that ends inside the thinking has no answer at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "THINK_TAGS",
    "Segment",
    "Split",
    "ThinkTags",
    "ThinkingStream",
    "find_tags",
    "prompt_opens_thinking",
    "split_reasoning",
]


@dataclass(frozen=True)
class ThinkTags:
    """One family's thinking delimiters, e.g. `<think>` / `</think>`."""

    open: str
    close: str


# The delimiters of the chat templates llama.cpp ships (common/chat.cpp's reasoning formats):
# DeepSeek R1 / QwQ / Qwen3 / Phi-4-reasoning / GLM, Claude-style, Mistral's Magistral,
# Cohere Command-R7B, ByteDance Seed-OSS and Kimi.
THINK_TAGS: tuple[ThinkTags, ...] = (
    ThinkTags("<think>", "</think>"),
    ThinkTags("<thinking>", "</thinking>"),
    ThinkTags("[THINK]", "[/THINK]"),
    ThinkTags("<|START_THINKING|>", "<|END_THINKING|>"),
    ThinkTags("<seed:think>", "</seed:think>"),
    ThinkTags("◁think▷", "◁/think▷"),
)


def find_tags(text: str | None) -> ThinkTags | None:
    """The first known tag pair whose closing tag occurs in `text` (a chat template, say)."""
    if not text:
        return None
    for tags in THINK_TAGS:
        if tags.close in text:
            return tags
    return None


def prompt_opens_thinking(prompt: str, tags: ThinkTags | None) -> bool:
    """True when the prompt leaves a thinking block open (R1's `<｜Assistant｜><think>\\n`, or a
    budget-forcing continuation that ends in "Wait,"): the response then starts as thinking."""
    if tags is None:
        return False
    opened = prompt.rfind(tags.open)
    return opened != -1 and prompt.rfind(tags.close) < opened


@dataclass(frozen=True)
class Split:
    """A response cut into its thinking and final parts.

    `thinking` excludes the tags; `final` is everything after the closing tag (the whole response
    when there is no thinking). `closed` is False when the response ends inside the thinking:
    then `final` is "" and the round has no answer. `thinking_end` is where the closing tag
    starts (len(response) when unclosed; 0 when there is no thinking), so
    `response[:thinking_end]` is the raw thinking a budget-forcing continuation extends, and
    `final_start` is where the final part starts in `response`.
    """

    thinking: str
    final: str
    closed: bool
    thinking_end: int
    final_start: int

    @property
    def has_thinking(self) -> bool:
        """Whether the round had a thinking part at all (possibly empty, as Qwen3's no-think)."""
        return self.thinking_end > 0 or not self.closed or bool(self.thinking)


def split_reasoning(response: str, tags: ThinkTags | None = None, *,
                    starts_in_thinking: bool = False) -> Split:
    """Split `response` at its end-of-thinking tag.

    Text up to the closing tag is thinking whether or not an opening tag appears. Without a
    closing tag the response is all thinking (unclosed) when it opens a tag itself or when
    `starts_in_thinking` (the prompt opened it); otherwise it is all final. `tags=None` accepts
    any pair in THINK_TAGS (the first closing tag found wins).
    """
    candidates = (tags,) if tags is not None else THINK_TAGS
    for pair in candidates:
        close = response.find(pair.close)
        if close != -1:
            return Split(
                thinking=_strip_open(response[:close], pair).strip(),
                final=response[close + len(pair.close):].strip(),
                closed=True,
                thinking_end=close,
                final_start=close + len(pair.close),
            )
    head = response.lstrip()
    opened = next((p for p in candidates if head.startswith(p.open)), None)
    if starts_in_thinking or opened is not None:
        pair = opened or candidates[0]
        return Split(thinking=_strip_open(response, pair).strip(), final="", closed=False,
                     thinking_end=len(response), final_start=len(response))
    return Split(thinking="", final=response, closed=True, thinking_end=0, final_start=0)


def _strip_open(text: str, tags: ThinkTags) -> str:
    head = text.lstrip()
    return head[len(tags.open):] if head.startswith(tags.open) else text


Kind = Literal["thinking", "final"]


@dataclass(frozen=True)
class Segment:
    """A run of streamed text that belongs to one part of the round; tags are dropped."""

    kind: Kind
    text: str


class ThinkingStream:
    """Classify streamed text as thinking or final as it arrives, tags split across tokens too.

    Agrees with `split_reasoning` on the whole text (up to surrounding whitespace): feed every
    piece, then `flush()`. Cost per piece is O(len(piece) + len(tag)), whatever the round's length.
    """

    def __init__(self, tags: ThinkTags | None = None, *, starts_in_thinking: bool = False) -> None:
        self.tags = tags or THINK_TAGS[0]
        self.kind: Kind = "thinking" if starts_in_thinking else "final"
        self._pending = ""  # a possible tag prefix held back until the next piece decides it
        self._seen_text = starts_in_thinking  # an opening tag only counts at the very start
        self.thinking_chars = 0
        self.final_chars = 0
        self.closed = not starts_in_thinking

    def feed(self, text: str) -> list[Segment]:
        """Segments of `text` (plus anything held back) that are decided now."""
        data = self._pending + text
        self._pending = ""
        out: list[Segment] = []
        while data:
            if not self._seen_text:
                stripped = data.lstrip()
                if not stripped:
                    self._pending = data
                    return out
                if stripped.startswith(self.tags.open):
                    self.kind, self.closed = "thinking", False
                    self._seen_text = True
                    data = stripped[len(self.tags.open):]
                    continue
                if self.tags.open.startswith(stripped):
                    self._pending = data
                    return out
                self._seen_text = True
            if self.kind == "final":
                out.append(Segment("final", data))
                self.final_chars += len(data)
                return out
            close = data.find(self.tags.close)
            if close != -1:
                if close:
                    out.append(Segment("thinking", data[:close]))
                    self.thinking_chars += close
                self.kind, self.closed = "final", True
                data = data[close + len(self.tags.close):]
                continue
            keep = _partial_suffix(data, self.tags.close)
            body = data[: len(data) - keep]
            if body:
                out.append(Segment("thinking", body))
                self.thinking_chars += len(body)
            self._pending = data[len(data) - keep:]
            return out
        return out

    def flush(self) -> list[Segment]:
        """Whatever is still held back, as the current kind (the stream has ended)."""
        data, self._pending = self._pending, ""
        if not data:
            return []
        if self.kind == "thinking":
            self.thinking_chars += len(data)
        else:
            self.final_chars += len(data)
        return [Segment(self.kind, data)]

    def feed_all(self, pieces: Iterable[str]) -> list[Segment]:
        """Feed every piece and flush: the whole round's segments."""
        out: list[Segment] = []
        for piece in pieces:
            out.extend(self.feed(piece))
        out.extend(self.flush())
        return out


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
