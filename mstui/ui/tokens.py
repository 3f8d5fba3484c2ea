"""The token buffer between the model thread and the screen: batched by time, none lost."""

from __future__ import annotations

import threading


class TokenBuffer:
    """Tokens from the worker, drained by the UI on a timer: no message per token, none lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pieces: list[tuple[int, str]] = []
        self.produced = 0  # pieces appended since creation (the benchmark compares with drained)

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
