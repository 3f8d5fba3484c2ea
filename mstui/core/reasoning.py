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
    "split_stored",
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
    """Split `response` at its LAST end-of-thinking tag.

    Everything before the last closing tag is thinking, whether or not an opening tag appears,
    and whatever tags it holds itself: a model that nests `<think>` or closes its thinking twice
    ("…</think> hmm, wait … </think>") is still thinking up to the last one, so a draft between
    the two never counts as the answer. Without a closing tag the response is all thinking
    (unclosed) when it opens a tag itself or when `starts_in_thinking` (the prompt opened it);
    otherwise it is all final. `tags=None` accepts any pair in THINK_TAGS (the first pair whose
    closing tag occurs wins).
    """
    candidates = (tags,) if tags is not None else THINK_TAGS
    for pair in candidates:
        close = response.rfind(pair.close)
        if close != -1:
            return _closed_at(response, pair, close)
    head = response.lstrip()
    opened = next((p for p in candidates if head.startswith(p.open)), None)
    if starts_in_thinking or opened is not None:
        pair = opened or candidates[0]
        return _unclosed(response, pair)
    return _no_thinking(response)


def split_stored(prompt: str, response: str) -> Split:
    """The split of a stored round whose tags are not known (rows written before thinking and
    final were stored): any known pair, the prompt deciding whether the response starts inside
    the thinking (R1's template opens `<think>` in the prompt)."""
    opened = any(prompt_opens_thinking(prompt, pair) for pair in THINK_TAGS)
    return split_reasoning(response, None, starts_in_thinking=opened)


def _closed_at(response: str, pair: ThinkTags, close: int) -> Split:
    return Split(
        thinking=_strip_open(response[:close], pair).strip(),
        final=response[close + len(pair.close):].strip(),
        closed=True,
        thinking_end=close,
        final_start=close + len(pair.close),
    )


def _unclosed(response: str, pair: ThinkTags) -> Split:
    return Split(thinking=_strip_open(response, pair).strip(), final="", closed=False,
                 thinking_end=len(response), final_start=len(response))


def _no_thinking(response: str) -> Split:
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

    Live, the stream cannot know that a later closing tag will come, so what `feed` returns
    switches to "final" at the FIRST closing tag: a model that closes its thinking twice shows
    the text between the two as final while it streams, the later tag as written. The stored
    split (`split_reasoning`) takes the LAST closing tag, and so does `settle()`, which the
    stream keeps track of as it goes (the last closing tag seen, in either part): after the
    last piece, `settle()` agrees with `split_reasoning` on the whole text, and where the live
    segments differ from it (a second closing tag came) the caller redraws the round from the
    settled split or the stored record (the TUI does, from the record, at the round's end).
    Without a second closing tag the live segments already agree with the split (up to
    surrounding whitespace). Cost per piece is O(len(piece) + len(tag)), whatever the round's
    length.
    """

    def __init__(self, tags: ThinkTags | None = None, *, starts_in_thinking: bool = False) -> None:
        self.tags = tags or THINK_TAGS[0]
        self.kind: Kind = "thinking" if starts_in_thinking else "final"
        self._pending = ""  # a possible tag prefix held back until the next piece decides it
        self._seen_text = starts_in_thinking  # an opening tag only counts at the very start
        self._opened = starts_in_thinking  # the text starts inside a thinking part
        self.closed = not starts_in_thinking  # as the settled split will say, so far
        self._raw: list[str] = []  # everything fed, for settle()
        self._fed = 0  # characters fed so far
        self._close_at = -1  # where the last closing tag seen starts in the fed text
        self._tail = ""  # the final text's last len(close) - 1 characters, to catch split tags

    def feed(self, text: str) -> list[Segment]:
        """Segments of `text` (plus anything held back) that are decided now (live view)."""
        self._raw.append(text)
        self._fed += len(text)
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
                    self.kind, self.closed, self._opened = "thinking", False, True
                    self._seen_text = True
                    data = stripped[len(self.tags.open):]
                    continue
                if self.tags.open.startswith(stripped):
                    self._pending = data
                    return out
                self._seen_text = True
            if self.kind == "final":
                self._watch_final(data)
                out.append(Segment("final", data))
                return out
            close = data.find(self.tags.close)
            if close != -1:
                if close:
                    out.append(Segment("thinking", data[:close]))
                self._close_at = self._fed - len(data) + close
                self.kind, self.closed = "final", True
                self._tail = ""
                data = data[close + len(self.tags.close):]
                continue
            keep = _partial_suffix(data, self.tags.close)
            body = data[: len(data) - keep]
            if body:
                out.append(Segment("thinking", body))
            self._pending = data[len(data) - keep:]
            return out
        return out

    def _watch_final(self, data: str) -> None:
        """Note a closing tag in text already shown as final (`data` ends the fed text): the
        settled split puts everything before it in the thinking."""
        close = self.tags.close
        window = self._tail + data
        at = window.rfind(close)
        if at != -1:
            self._close_at = self._fed - len(window) + at
            self.closed = True
            window = window[at + len(close):]
        self._tail = window[-(len(close) - 1):] if len(close) > 1 else ""

    def flush(self) -> list[Segment]:
        """Whatever is still held back, as the current kind (the stream has ended)."""
        data, self._pending = self._pending, ""
        if not data:
            return []
        return [Segment(self.kind, data)]

    def feed_all(self, pieces: Iterable[str]) -> list[Segment]:
        """Feed every piece and flush: the whole round's segments."""
        out: list[Segment] = []
        for piece in pieces:
            out.extend(self.feed(piece))
        out.extend(self.flush())
        return out

    def settle(self) -> Split:
        """The round's split so far as it is stored: thinking up to the last closing tag."""
        raw = "".join(self._raw)
        self._raw = [raw]
        if self._close_at >= 0:
            return _closed_at(raw, self.tags, self._close_at)
        if self._opened:
            return _unclosed(raw, self.tags)
        return _no_thinking(raw)


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
