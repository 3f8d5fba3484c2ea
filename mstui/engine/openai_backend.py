"""Remote backend: any OpenAI-compatible server (llama-server, vLLM, SGLang, llama_cpp.server)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from mstui.core.backend import (
    BackendError,
    BackendInfo,
    ChatMessage,
    GenSettings,
    GenStats,
    Piece,
)
from mstui.core.types import CacheSource
from mstui.engine.errors import ModelError

CHARS_PER_TOKEN = 4  # only for servers that report no usage; such counts are flagged as local


class ServerGone(BackendError):
    """The server stopped answering (connection refused, reset or dropped mid-stream)."""


def _chatml(messages: Sequence[ChatMessage]) -> str:
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


class OpenAIBackend:
    """Streams completions from a server; the client retries connection errors with backoff.

    Chat-format rounds go to /v1/chat/completions (the server applies the model's template);
    the rest, `wait` continuations included, to /v1/completions with the prompt text. A stream
    that breaks mid-round raises, and the loop records the round as failed with its partial text.

    Against llama-server (recognised by `total_slots` in its /props) a thread can pin its
    rounds to one slot (`use_slot`), so a question's later rounds find their prefix in that
    slot's KV cache; `slots` says how many the server decodes at once (None: not llama-server).
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
        self.streams_reasoning = False  # set once the server streams a reasoning field
        props = self._props()
        if "total_slots" in props and not self.base_url.endswith("/v1"):
            # llama-server answers its own API at the root too (/completions streams
            # {"content": …}, not choices): every round would fail with a puzzling error.
            raise ModelError(f"{self.base_url} is llama-server's own API; its OpenAI-compatible "
                             f"API is under /v1: use --base-url {self.base_url}/v1")
        template = props.get("chat_template")
        self.chat_template: str | None = template if isinstance(template, str) and template \
            else None
        self._bos = str(props.get("bos_token") or "")
        self._bos_added: bool | None = None  # asked of the server on first need
        self._eos = str(props.get("eos_token") or "")
        # Text continuations (`wait`, a thinking budget) must be in the served model's template.
        self.renders_served_template = self.chat_template is not None
        ctx = props.get("default_generation_settings", {})
        n_ctx = ctx.get("n_ctx", 0) if isinstance(ctx, dict) else 0
        n_ctx = n_ctx if isinstance(n_ctx, int) and 0 < n_ctx < 1 << 31 else 0
        total = props.get("total_slots")
        # Only llama-server says how many sequences it decodes at once; it then also takes the
        # id_slot / cache_prompt fields, which other servers may reject or ignore.
        self.slots: int | None = total if isinstance(total, int) and total > 0 else None
        self._local = threading.local()  # the slot the calling thread's rounds are pinned to
        self.info = BackendInfo(
            backend="openai", model=model, context_length=n_ctx,
            details={"base_url": self.base_url, "offload": "remote server",
                     "template": "served (/props)" if self.chat_template else
                     "not exposed: chat rounds use the server's, stored prompts are ChatML",
                     "slots": str(self.slots) if self.slots else "not reported"})

    @contextlib.contextmanager
    def use_slot(self, slot: int | None) -> Iterator[None]:
        """Pin the calling thread's rounds to llama-server slot `slot` (None: the server picks).

        A pinned request waits for its slot when the slot is busy, so give each thread in
        flight its own slot; on a server without slots this does nothing.
        """
        previous = getattr(self._local, "slot", None)
        self._local.slot = slot if self.slots else None
        try:
            yield
        finally:
            self._local.slot = previous

    def alive(self) -> bool:
        """Whether the server answers /models now (one quick try, no retries)."""
        try:
            self.client.with_options(timeout=5.0, max_retries=0).models.list()
        except self._openai.APIError:
            return False
        return True

    def _server_json(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (or, with `body`, POST) one of llama-server's own endpoints beside /v1 (/props,
        /tokenize); {} from a server without it (404), or one that answers no JSON object."""
        import json
        import urllib.request

        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        headers = {"Authorization": f"Bearer {self.client.api_key}"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(f"{root}{path}", headers=headers, data=data)
        try:
            with urllib.request.urlopen(request, timeout=10.0) as reply:
                answer = json.loads(reply.read())
        except (OSError, ValueError):
            return {}
        return answer if isinstance(answer, dict) else {}

    def _props(self) -> dict[str, Any]:
        """llama-server's /props (chat template, BOS/EOS text, context); {} from other servers."""
        return self._server_json("/props")

    def _served_models(self) -> list[str]:
        # A short timeout and one retry: a server that accepts and never answers must not hold
        # the start (and Ctrl-C) for the 120 s generation timeout times the retries.
        probe = self.client.with_options(timeout=10.0, max_retries=1)
        try:
            ids = [m.id for m in probe.models.list()]
        except self._openai.APIConnectionError as exc:
            raise ModelError(f"cannot reach {self.base_url} ({exc.__cause__ or exc}); start the "
                             "server or fix --base-url") from None
        except self._openai.AuthenticationError:
            raise ModelError(f"{self.base_url} refused the API key (HTTP 401); check --api-key "
                             "(default: $OPENAI_API_KEY)") from None
        except self._openai.APIStatusError as exc:
            raise ModelError(f"{self.base_url} answered HTTP {exc.status_code} to /models; "
                             "check --base-url (it usually ends in /v1)") from None
        except Exception as exc:  # HTML, garbage JSON, a list of odd objects: not an API
            raise ModelError(f"{self.base_url} did not answer /models as an OpenAI-compatible "
                             f"server ({type(exc).__name__}); check --base-url (it usually ends "
                             "in /v1)") from None
        if not all(isinstance(i, str) for i in ids):
            raise ModelError(f"{self.base_url} listed model ids that are not names; check "
                             "--base-url")
        return ids

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The served model's own template (from /props) applied to `messages`; ChatML where the
        server exposes none (then only stored: chat rounds go to the chat endpoint)."""
        if self.chat_template is None:
            return _chatml(messages)
        from mstui.engine.templates import render_chat_template

        return render_chat_template(self.chat_template, messages, bos_token=self._bos,
                                    eos_token=self._eos, bos_added=self._adds_bos())

    def _adds_bos(self) -> bool:
        """Whether the server puts the BOS token in front of a prompt text itself (llama.cpp's
        add_bos_token, which /props does not give): llama-server's /tokenize of an empty text
        with special tokens is [BOS] where it does, [] where it does not. Asked once; True
        where it cannot be asked."""
        if self._bos_added is None:
            tokens = self._server_json("/tokenize", {"content": "", "add_special": True}).get(
                "tokens")
            # Not llama-server (no /tokenize): assume the usual, a BOS is added.
            self._bos_added = len(tokens) > 0 if isinstance(tokens, list) else True
        return self._bos_added

    def _request(self, prompt: str, settings: GenSettings,
                 messages: Sequence[ChatMessage] | None, slot: int | None = None) -> Any:
        """Send one streaming request; `slot` is the llama-server slot to pin it to (read by
        the caller on its own thread: the pin is thread-local, the request runs on a helper)."""
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # Not in OpenAI's API, but llama-server, vLLM and SGLang read them from the body.
        extra: dict[str, Any] = {"top_k": settings.top_k, "min_p": settings.min_p}
        if self.slots:
            # llama-server: keep the prompt in the slot's KV cache (its default, said anyway),
            # and send a pinned thread's rounds to the slot that holds their prefix.
            extra["cache_prompt"] = True
            if slot is not None:
                extra["id_slot"] = slot
        common["extra_body"] = extra
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
        """Stream one round from the server; see Backend.stream.

        Only a well-formed, finished completion ends normally: a refused request, a page that is
        not an event stream, an error event, or a stream that closes before a finish reason
        raises BackendError (the loop stores the round as failed with what did arrive). Cancel
        closes the connection within ~50 ms, even while the server sends nothing.
        """
        started = time.perf_counter()
        response = self._open(prompt, settings, messages, cancel)
        if response is None:  # cancelled before the server answered
            now = time.perf_counter()
            yield GenStats(len(prompt) // CHARS_PER_TOKEN, 0, 0, "cancelled", now - started, 0.0,
                           counted_locally=True)
            return
        kind = response.response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            response.close()
            raise BackendError(f"the server answered {kind or 'without a content type'} instead "
                               "of an event stream; check --base-url (it usually ends in /v1)")
        done = threading.Event()
        threading.Thread(target=_close_on_cancel, args=(response, cancel, done),
                         name="mstui-cancel", daemon=True).start()
        first: float | None = None
        pieces = 0
        finish: str | None = None
        usage = None
        timings = None
        try:
            for chunk in response:
                if cancel.is_set():
                    break
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                # llama-server adds its own counts to the last chunk (not in OpenAI's schema).
                timings = getattr(chunk, "timings", None) or timings
                choices = getattr(chunk, "choices", None)
                if not choices:
                    fault = _error_payload(chunk)
                    if fault:
                        raise BackendError(f"the server sent an error mid-stream: {fault}")
                    continue
                choice = choices[0]
                if messages is not None:
                    thought = _reasoning_text(choice.delta)
                    if thought:
                        # Thinking ends prompt time too: it is the model's first output.
                        if first is None:
                            first = time.perf_counter()
                        pieces += 1
                        self.streams_reasoning = True
                        yield Piece(thought, None, reasoning=True)
                text, logprob = _text_and_logprob(choice, chat=messages is not None)
                if text:
                    if first is None:
                        first = time.perf_counter()
                    pieces += 1
                    yield Piece(text, logprob)
                if choice.finish_reason:
                    if choice.finish_reason not in ("stop", "length", "eos", "tool_calls"):
                        # abort, error, content_filter, …: the server gave up on this completion.
                        raise BackendError(f"the server ended the completion with finish reason "
                                           f"{str(choice.finish_reason)[:40]!r}, not a normal "
                                           "stop")
                    finish = "length" if choice.finish_reason == "length" else "stop"
        except BackendError:
            if not cancel.is_set():
                raise
        except Exception as exc:  # the connection broke, or was closed by a cancel
            if not cancel.is_set():
                if _dropped(exc):
                    raise ServerGone(f"the server at {self.base_url} dropped the stream after "
                                     f"{pieces} piece(s) ({_cause(exc)})") from None
                raise BackendError(f"the stream broke after {pieces} piece(s): "
                                   f"{_one_line(exc)}") from None
        finally:
            done.set()
            response.close()  # closing the HTTP stream is what cancels the server's work
        if cancel.is_set():
            finish = "cancelled"
        elif finish is None:
            raise BackendError(f"the server closed the stream after {pieces} piece(s) without "
                               "finishing the completion (no finish reason)")
        ended = time.perf_counter()
        first = first if first is not None else ended
        self.usage_reported = usage is not None
        cached, source = _cache_hits(usage, timings)
        if usage is not None:
            counts = (_count(usage.prompt_tokens, "prompt_tokens"),
                      _count(usage.completion_tokens, "completion_tokens"), False)
        else:
            counts = (len(prompt) // CHARS_PER_TOKEN, pieces, True)
        yield GenStats(prompt_tokens=counts[0], completion_tokens=counts[1],
                       cached_tokens=cached, finish_reason=finish,  # type: ignore[arg-type]
                       prompt_seconds=first - started, gen_seconds=ended - first,
                       counted_locally=counts[2], cached_source=source)


    def _open(self, prompt: str, settings: GenSettings, messages: Sequence[ChatMessage] | None,
              cancel: threading.Event) -> Any:
        """Send the request on a helper thread so a cancel is heard while the server has not
        answered yet; None when cancelled first (the late response is closed when it comes)."""
        box: dict[str, Any] = {}
        slot = getattr(self._local, "slot", None)  # this thread's pin, before the hand-off

        def call() -> None:
            try:
                box["response"] = self._request(prompt, settings, messages, slot)
            except BaseException as exc:
                box["error"] = exc
            if box.get("abandoned") and "response" in box:
                box["response"].close()

        thread = threading.Thread(target=call, name="mstui-request", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.05)
            if cancel.is_set() and thread.is_alive():
                box["abandoned"] = True
                return None
        error = box.get("error")
        if isinstance(error, self._openai.APIStatusError):
            raise BackendError(f"the server refused the request: HTTP {error.status_code} "
                               f"{_message(error)}")
        if isinstance(error, self._openai.APIConnectionError):  # after the client's retries
            raise ServerGone(f"the server at {self.base_url} does not answer ({_cause(error)}); "
                             "is it running?")
        if error is not None:
            raise error
        return box["response"]


def _cache_hits(usage: Any, timings: Any) -> tuple[int, CacheSource | None]:
    """Cached prompt tokens as the server counted them, and whether it did.

    OpenAI-style `usage.prompt_tokens_details.cached_tokens` comes first (llama-server, vLLM
    with --enable-prompt-tokens-details, SGLang with --enable-cache-report); llama-server's
    `timings.cache_n` is the same count where usage was not sent. Neither: (0, None).
    """
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    value = getattr(details, "cached_tokens", None) if details is not None else None
    if isinstance(value, int):
        return value, "reported"
    if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        return int(timings["cache_n"]), "reported"
    return 0, None


def _dropped(exc: BaseException) -> bool:
    """Whether an error while streaming is the connection failing (reset, closed early), as
    the HTTP library under the openai client says it: its TransportError (httpx, or httpx2 in
    newer clients), or a plain socket error."""
    if isinstance(exc, OSError):
        return True
    return any(cls.__name__ == "TransportError" and cls.__module__.startswith("httpx")
               for cls in type(exc).__mro__)


def _cause(exc: BaseException) -> str:
    """The innermost reason of a connection failure, on one line ("Connection refused")."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split("] ", 1)[-1]  # "[Errno 111] Connection refused" -> "Connection refused"

def _close_on_cancel(response: Any, cancel: threading.Event, done: threading.Event) -> None:
    """End the HTTP stream as soon as `cancel` is set, even while a read waits on a silent
    server: closing a socket from another thread does not wake a blocked recv() on Linux, but
    shutting it down does (the reader sees the end of the stream and closes the response)."""
    while not done.wait(0.05):
        if cancel.is_set():
            raw = getattr(response, "response", None)
            stream = getattr(raw, "extensions", {}).get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is None:
                response.close()
                return
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_MAX_COUNT = 1 << 40  # no round has more tokens; past this a count is garbage, not usage


def _count(value: Any, name: str) -> int:
    """A token count the server reported, checked: a whole number in [0, 2^40]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise BackendError(f"the server reported usage {name} = {str(value)[:30]!r}, not a "
                           "token count")
    return value


def _error_payload(chunk: Any) -> str:
    """What an object streamed in place of a chunk says (`event: error` with
    `{"code": 400, "message": …}`, `{"error": {…}}`, `{"detail": …}`, …): its message, else its
    fields; "" for an ordinary chunk (one with choices or usage, or nothing else in it)."""
    if getattr(chunk, "usage", None) is not None:
        return ""
    extra = getattr(chunk, "model_extra", None) or {}
    inner = extra.get("error", extra)
    if isinstance(inner, str):
        return inner[:200]
    if isinstance(inner, dict) and ("message" in inner or "code" in inner):
        code = inner.get("code")
        return " ".join(str(x) for x in (code, inner.get("message")) if x is not None)[:200]
    if extra:  # any other object that is not a chunk: show what it says
        return ", ".join(f"{k}={str(v)[:60]}" for k, v in list(extra.items())[:4])
    return ""


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"]).splitlines()[0]
        if isinstance(inner, str):
            return inner.splitlines()[0]
    return str(exc).splitlines()[0]


def _reasoning_text(delta: Any) -> str:
    """Thinking streamed apart from the content: `reasoning_content` (llama-server, DeepSeek's
    API, older vLLM) or `reasoning` (newer vLLM). The SDK keeps unknown fields as attributes."""
    if delta is None:
        return ""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if value:
            return _text(value)
    return ""


def _text_and_logprob(choice: Any, *, chat: bool) -> tuple[str, float | None]:
    """The new text of a streamed choice and its first token's log-probability, if any."""
    logprobs = getattr(choice, "logprobs", None)
    if chat:
        text = _text(getattr(choice.delta, "content", None))
        content = getattr(logprobs, "content", None) if logprobs else None
        return text, (float(content[0].logprob) if content else None)
    text = _text(getattr(choice, "text", None))
    values = getattr(logprobs, "token_logprobs", None) if logprobs else None
    if values and values[0] is not None:
        return text, float(values[0])
    # llama-server streams completion log-probabilities in the chat shape: content[i].logprob.
    content = getattr(logprobs, "content", None) if logprobs else None
    if isinstance(content, list) and content and isinstance(content[0], dict):
        value = content[0].get("logprob")
        return text, (float(value) if isinstance(value, int | float) else None)
    return text, None


def _text(value: Any) -> str:
    """Streamed text, checked: a string (lone surrogates replaced, as SQLite stores UTF-8)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BackendError(f"the server streamed {type(value).__name__} {str(value)[:20]!r} "
                           "where text belongs")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value
