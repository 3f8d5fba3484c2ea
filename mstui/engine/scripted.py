"""A scripted backend: plays given responses token by token, for tests, snapshots and benchmarks."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence

from mstui.core.backend import BackendInfo, ChatMessage, GenSettings, GenStats, Piece

_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """Word-ish pieces whose concatenation is exactly `text`."""
    return _TOKEN_RE.findall(text)


class ScriptedBackend:
    """Answers round k with responses[k] (the last one repeats), at `tokens_per_second` if set.

    Token counts are word pieces, so prompt and cache numbers are comparable between rounds: the
    cached count is the shared prefix with the previous prompt, as a KV cache would give.
    """

    def __init__(self, responses: Sequence[str], *, tokens_per_second: float | None = None,
                 logprob: float | None = None, name: str = "scripted",
                 chat_template: str | None = None) -> None:
        if not responses:
            raise ValueError("a scripted backend needs at least one response")
        self.responses = list(responses)
        self.delay = 1.0 / tokens_per_second if tokens_per_second else 0.0
        self.logprob = logprob
        self.calls = 0
        self.prompts: list[str] = []  # every prompt streamed, in order (tests read them)
        # A template lets a scripted transcript carry a real model's profile (think tags).
        self.chat_template = chat_template
        self.renders_served_template = True
        self._previous: list[str] = []
        self.info = BackendInfo(backend="scripted", model=name, context_length=1 << 20,
                                details={"offload": "scripted (no model)"})

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The given chat template, else ChatML; scripted answers do not depend on it."""
        if self.chat_template:
            from mstui.engine.templates import render_chat_template

            return render_chat_template(self.chat_template, messages)
        parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
        return "".join(parts) + "<|im_start|>assistant\n"

    def stream(
        self,
        prompt: str,
        settings: GenSettings,
        cancel: threading.Event,
        messages: Sequence[ChatMessage] | None = None,
    ) -> Iterator[Piece | GenStats]:
        """Play the next scripted response; honours cancel and max_tokens like a real model."""
        response = self.responses[min(self.calls, len(self.responses) - 1)]
        self.calls += 1
        self.prompts.append(prompt)
        prompt_tokens = split_tokens(prompt)
        cached = 0
        for a, b in zip(self._previous, prompt_tokens[:-1], strict=False):
            if a != b:
                break
            cached += 1
        self._previous = prompt_tokens
        started = time.perf_counter()
        first: float | None = None
        sent = 0
        finish = "stop"
        next_at = started
        for piece in split_tokens(response):
            if cancel.is_set():
                finish = "cancelled"
                break
            if sent >= settings.max_tokens:
                finish = "length"
                break
            if self.delay:
                next_at += self.delay
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            if first is None:
                first = time.perf_counter()
            sent += 1
            yield Piece(piece, self.logprob if settings.logprobs else None)
        ended = time.perf_counter()
        first = first if first is not None else ended
        yield GenStats(len(prompt_tokens), sent, cached, finish,  # type: ignore[arg-type]
                       first - started, ended - first, cached_source="estimated")
