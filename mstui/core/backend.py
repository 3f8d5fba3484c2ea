"""The contract between the refinement loop and a text generator (llama.cpp, a server, a script)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mstui.core.types import CacheSource, FinishReason

ChatMessage = dict[str, str]


@dataclass(frozen=True)
class GenSettings:
    """Sampling settings of a run; the loop derives each round's seed from `seed` (round_seed)."""

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_k: int = 40  # llama.cpp's default; reasoning families recommend their own
    min_p: float = 0.05


@dataclass(frozen=True)
class Piece:
    """One streamed token's text and, when asked for, its log-probability.

    `reasoning` marks text a server streamed as reasoning content (`delta.reasoning_content`,
    or vLLM's `delta.reasoning`) rather than inside the content between think tags.
    `synthetic` marks text the loop inserted (think tags around such a field, the budget-forcing
    cue): part of the round's text, but not a generated token.
    """

    text: str
    logprob: float | None = None
    reasoning: bool = False
    synthetic: bool = False


@dataclass(frozen=True)
class GenStats:
    """What a finished (or cancelled, or failed) generation cost. Always the last item streamed."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    finish_reason: FinishReason
    prompt_seconds: float
    gen_seconds: float
    error: str | None = None
    counted_locally: bool = False  # token counts estimated by us, not reported by the backend
    # Where `cached_tokens` comes from: "reported" by the server (llama-server's timings,
    # usage.prompt_tokens_details), "estimated" by mstui (the in-process engine applies
    # llama.cpp's prefix rule itself), None when nobody knows (then `cached_tokens` is 0).
    cached_source: CacheSource | None = None


@dataclass(frozen=True)
class BackendInfo:
    """How a backend runs, in words a user can check (shown by the CLI and the UI)."""

    backend: str  # "llama.cpp", "openai", "scripted"
    model: str
    context_length: int
    gpu_offload_supported: bool = False
    gpu_layers: int = 0
    total_layers: int = 0
    threads: int = 0
    details: dict[str, str] = field(default_factory=dict)

    @property
    def offload_text(self) -> str:
        """'CPU only' or 'GPU: 30/30 layers', the way users need to read it."""
        if self.backend != "llama.cpp":
            return self.details.get("offload", "remote")
        if not self.gpu_offload_supported:
            return "CPU only (this llama.cpp build has no GPU support)"
        if self.gpu_layers == 0:
            return "CPU only (0 layers offloaded)"
        return f"GPU: {self.gpu_layers}/{self.total_layers} layers"


class PromptTooLong(ValueError):
    """The prompt does not fit in the model's context window."""


class BackendError(RuntimeError):
    """A generation that did not arrive as a well-formed, finished completion (a refused request,
    a stream cut off, an error event, a page that is not a stream). The message is one line for
    the user; the loop stores the round as failed with the text that did arrive."""


class Backend(Protocol):
    """Streams a completion for a text prompt. Used from one thread at a time."""

    info: BackendInfo

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The model's own chat template applied to `messages`, ending with the assistant cue."""
        ...

    def stream(
        self,
        prompt: str,
        settings: GenSettings,
        cancel: threading.Event,
        messages: Sequence[ChatMessage] | None = None,
    ) -> Iterator[Piece | GenStats]:
        """Yield pieces as they are generated, then exactly one GenStats.

        `prompt` is the full text (what in-process backends evaluate and what is stored);
        `messages` is the same prompt as chat turns, given for chat-format rounds so a remote
        server can apply its own template. Stops at the next token once `cancel` is set
        (finish_reason "cancelled"). Raises PromptTooLong before generating when the prompt does
        not fit the context.
        """
        ...
