"""The token buffer between the model thread and the screen: batched by time, none lost."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from mstui.core.reasoning import THINK_TAGS, Segment, ThinkingStream, ThinkTags


@dataclass(frozen=True)
class RoundInfo:
    """How a round's stream starts: the model's think tags, and whether the prompt opened one."""

    tags: ThinkTags | None = None
    starts_in_thinking: bool = False


class TokenBuffer:
    """Tokens from the worker, drained by the UI on a timer: no message per token, none lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pieces: list[tuple[int, str]] = []
        self._rounds: dict[int, RoundInfo] = {}
        self.produced = 0  # pieces appended since creation (the benchmark compares with drained)

    def begin(self, index: int, info: RoundInfo) -> None:
        """Say how round `index` starts; called before its first piece, so a drain that meets
        the piece before the RoundBegan message still knows how to split it."""
        with self._lock:
            self._rounds[index] = info

    def info(self, index: int) -> RoundInfo:
        """How round `index` starts (a plain round when nothing was said)."""
        with self._lock:
            return self._rounds.get(index, RoundInfo())

    def append(self, index: int, text: str) -> None:
        """Add one streamed piece of round `index`."""
        with self._lock:
            self._pieces.append((index, text))
            self.produced += 1

    def drain(self) -> list[tuple[int, str]]:
        """Everything appended since the last drain, in order."""
        with self._lock:
            out, self._pieces = self._pieces, []
        return out


class RoundTracker:
    """The round in flight as the screen sees it: the core's ThinkingStream splits its pieces
    into thinking and final parts; this counts the pieces (tokens) and times them."""

    def __init__(self, index: int, info: RoundInfo) -> None:
        self.index = index
        self.stream = ThinkingStream(
            info.tags or THINK_TAGS[0], starts_in_thinking=info.starts_in_thinking
        )
        self.tokens = 0
        self.thinking_tokens = 0  # pieces that start inside the thinking (as the core counts)
        self.first: float | None = None  # when the first piece was drained

    def feed(self, pieces: Sequence[str], now: float) -> list[Segment]:
        """The parts of `pieces`, merged per kind (one append per part and drain)."""
        runs: list[tuple[str, list[str]]] = []
        stream = self.stream
        for piece in pieces:
            before = stream.kind
            for seg in stream.feed(piece):
                if runs and runs[-1][0] == seg.kind:
                    runs[-1][1].append(seg.text)
                else:
                    runs.append((seg.kind, [seg.text]))
            if before == "thinking" or stream.kind == "thinking":
                self.thinking_tokens += 1
        self.tokens += len(pieces)
        if self.first is None and pieces:
            self.first = now
        return [Segment(kind, "".join(texts)) for kind, texts in runs]  # type: ignore[arg-type]

    def flush(self) -> list[Segment]:
        """What the stream still holds back (a partial tag at the very end)."""
        return self.stream.flush()

    def rate(self, now: float) -> float | None:
        """Tokens per second since the first drained piece; None before there is a span."""
        if self.first is None or now <= self.first:
            return None
        return self.tokens / (now - self.first)
