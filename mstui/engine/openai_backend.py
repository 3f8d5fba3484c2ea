"""Remote backend: any OpenAI-compatible server (llama-server, vLLM, SGLang, llama_cpp.server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from mstui.core.backend import BackendInfo, ChatMessage, GenSettings, GenStats, Piece
from mstui.engine.errors import ModelError

CHARS_PER_TOKEN = 4  # only for servers that report no usage; such counts are flagged as local


def _chatml(messages: Sequence[ChatMessage]) -> str:
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


class OpenAIBackend:
    """Streams completions from a server; the client retries connection errors with backoff.

    Chat-format rounds go to /v1/chat/completions (the server applies the model's template);
    the rest, `wait` continuations included, to /v1/completions with the prompt text. A stream
    that breaks mid-round raises, and the loop records the round as failed with its partial text.
    """

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, retries: int = 3) -> None:
        import openai

        self._openai = openai
        self.base_url = base_url.rstrip("/")
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "no-key",
                                    timeout=timeout, max_retries=retries)
        served = self._served_models()
        if model is None:
            if not served:
                raise ModelError(f"the server at {self.base_url} lists no models; pass --model")
            model = served[0]
        elif served and model not in served:
            raise ModelError(f"the server at {self.base_url} has no model {model!r}; it serves: "
                             f"{', '.join(served)}")
        self.model = model
        self.usage_reported: bool | None = None  # learned from the first stream
        self.info = BackendInfo(backend="openai", model=model, context_length=0,
                                details={"base_url": self.base_url, "offload": "remote server"})

    def _served_models(self) -> list[str]:
        try:
            return [m.id for m in self.client.models.list()]
        except self._openai.APIConnectionError as exc:
            raise ModelError(f"cannot reach {self.base_url} ({exc.__cause__ or exc}); start the "
                             "server or fix --base-url") from None
        except self._openai.AuthenticationError:
            raise ModelError(f"{self.base_url} refused the API key; pass --api-key") from None
        except self._openai.APIStatusError as exc:
            raise ModelError(f"{self.base_url} answered HTTP {exc.status_code} to /models; "
                             "check --base-url (it usually ends in /v1)") from None

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """A ChatML rendering, stored as the round's prompt text; the server applies its own."""
        return _chatml(messages)

    def _request(self, prompt: str, settings: GenSettings,
                 messages: Sequence[ChatMessage] | None) -> Any:
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if settings.stop:
            common["stop"] = list(settings.stop)
        if messages is not None:
            if settings.logprobs:
                common["logprobs"] = True
            turns: list[Any] = list(messages)  # plain role/content dicts are valid message params
            return self.client.chat.completions.create(messages=turns, **common)
        if settings.logprobs:
            common["logprobs"] = 1
        return self.client.completions.create(prompt=prompt, **common)

    def stream(
        self,
        prompt: str,
        settings: GenSettings,
        cancel: threading.Event,
        messages: Sequence[ChatMessage] | None = None,
    ) -> Iterator[Piece | GenStats]:
        """Stream one round from the server; see Backend.stream."""
        started = time.perf_counter()
        try:
            response = self._request(prompt, settings, messages)
        except self._openai.APIStatusError as exc:
            raise RuntimeError(f"the server refused the request: HTTP {exc.status_code} "
                               f"{_message(exc)}") from None
        first: float | None = None
        pieces = 0
        finish = "stop"
        usage = None
        try:
            for chunk in response:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                text, logprob = _text_and_logprob(choice, chat=messages is not None)
                if text:
                    if first is None:
                        first = time.perf_counter()
                    pieces += 1
                    yield Piece(text, logprob)
                if choice.finish_reason:
                    finish = "length" if choice.finish_reason == "length" else "stop"
        finally:
            response.close()  # closing the HTTP stream is what cancels the server's work
        ended = time.perf_counter()
        first = first if first is not None else ended
        self.usage_reported = usage is not None
        if usage is not None:
            details = getattr(usage, "prompt_tokens_details", None)
            cached = int(getattr(details, "cached_tokens", 0) or 0) if details else 0
            counts = (int(usage.prompt_tokens), int(usage.completion_tokens), cached, False)
        else:
            counts = (len(prompt) // CHARS_PER_TOKEN, pieces, 0, True)
        yield GenStats(prompt_tokens=counts[0], completion_tokens=counts[1],
                       cached_tokens=counts[2], finish_reason=finish,  # type: ignore[arg-type]
                       prompt_seconds=first - started, gen_seconds=ended - first,
                       counted_locally=counts[3])


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"]).splitlines()[0]
        if isinstance(inner, str):
            return inner.splitlines()[0]
    return str(exc).splitlines()[0]


def _text_and_logprob(choice: Any, *, chat: bool) -> tuple[str, float | None]:
    """The new text of a streamed choice and its first token's log-probability, if any."""
    logprobs = getattr(choice, "logprobs", None)
    if chat:
        text = getattr(choice.delta, "content", None) or ""
        content = getattr(logprobs, "content", None) if logprobs else None
        return text, (float(content[0].logprob) if content else None)
    text = getattr(choice, "text", None) or ""
    values = getattr(logprobs, "token_logprobs", None) if logprobs else None
    return text, (float(values[0]) if values and values[0] is not None else None)
