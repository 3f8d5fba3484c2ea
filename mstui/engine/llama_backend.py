"""In-process llama.cpp backend (llama-cpp-python): streaming, cancel, logprobs, prefix reuse."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from mstui.config import default_threads
from mstui.core.backend import (
    BackendInfo,
    ChatMessage,
    GenSettings,
    GenStats,
    Piece,
    PromptTooLong,
)
from mstui.engine.errors import ModelError
from mstui.engine.gguf_info import GGUFInfo, available_memory_bytes, read_gguf_info
from mstui.engine.templates import TemplateError, render_chat_template

DEFAULT_CTX = 4096
_OFFLOAD_RE = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")

# llama.cpp logs through one process-wide callback. We keep its lines (instead of printing them
# over the terminal UI) so the offload report can be read back from what llama.cpp itself said.
_LOG_LINES: deque[str] = deque(maxlen=400)
_LOG_CALLBACK: Any = None


def _install_log_capture() -> None:
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _capture(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        _LOG_LINES.append(text.decode("utf-8", errors="replace"))

    _LOG_CALLBACK = _capture  # a reference, or ctypes frees the trampoline
    llama_cpp.llama_log_set(_capture, ctypes.c_void_p(0))


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can put layers on a GPU at all."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


class LlamaBackend:
    """One llama.cpp model, used from the thread that loaded it (llama.cpp is not thread-safe)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_ctx: int | None = None,
        n_gpu_layers: int = -1,
        n_threads: int | None = None,
        logits_all: bool = False,
        seed: int = 0,
    ) -> None:
        self.gguf: GGUFInfo = read_gguf_info(model_path)
        supported = gpu_offload_supported()
        self._check_memory(supported and n_gpu_layers != 0)
        ctx = n_ctx or min(self.gguf.context_length or DEFAULT_CTX, DEFAULT_CTX)
        threads = n_threads or default_threads()
        _install_log_capture()
        _LOG_LINES.clear()
        import llama_cpp

        try:
            # verbose=True keeps llama-cpp-python from redirecting fds 1/2 to /dev/null while it
            # loads (that blanks a running terminal UI); its C logs go to our capture instead and
            # its Python prints to a buffer.
            quiet = io.StringIO()
            with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
                self.llm = llama_cpp.Llama(
                    model_path=str(self.gguf.path),
                    n_ctx=ctx,
                    n_gpu_layers=n_gpu_layers,
                    n_threads=threads,
                    n_threads_batch=threads,
                    logits_all=logits_all,
                    seed=seed,
                    verbose=True,
                )
        except Exception as exc:
            if type(exc).__name__ == "TemplateSyntaxError":  # llama-cpp-python compiles it
                # llama-cpp-python compiles every template on load, so no --format avoids it
                # in-process (a server that loads the file takes --format fewshot).
                raise ModelError(f"the chat template in {self.gguf.path.name} does not parse "
                                 f"({' '.join(str(exc).split())}), and llama-cpp-python cannot "
                                 "load a file whose template does not parse, whatever --format; "
                                 "fix tokenizer.chat_template (gguf's gguf_new_metadata.py) or "
                                 "use another file") from None
            raise ModelError(f"llama.cpp could not load {self.gguf.path} ({exc}); check the file "
                             "or try a smaller model / fewer --gpu-layers") from None
        self.llm.verbose = False  # silence per-call prints ("prefix-match hit" etc.)
        # llama.cpp pads a small context up (to 256), but llama-cpp-python sizes its token buffer
        # by the context asked for: the smaller of the two is what a prompt may fill. Checking
        # against llama.cpp's alone let a 150-token prompt into a 64-token buffer (a numpy
        # broadcast error instead of "the prompt is too long").
        self.context_length = min(self.llm.n_ctx(), len(self.llm.input_ids))
        self.logits_all = logits_all
        self._owner = threading.get_ident()
        gpu_layers = self._offloaded_layers(supported)
        self.info = BackendInfo(
            backend="llama.cpp",
            model=self.gguf.path.name,
            context_length=self.context_length,
            gpu_offload_supported=supported,
            gpu_layers=gpu_layers,
            total_layers=self.gguf.block_count + 1 if supported else self.gguf.block_count,
            threads=threads,
            details={
                "architecture": self.gguf.architecture,
                "quantization": self.gguf.quantization,
                "logprobs": "on" if logits_all else "off",
            },
        )
        self.chat_template: str | None = self.gguf.chat_template
        self.renders_served_template = True  # the prompt text is exactly what llama.cpp reads

    def _check_memory(self, offloading: bool) -> None:
        available = available_memory_bytes()
        # Weights are memory-mapped, but they are all touched once per token: a model larger than
        # free memory thrashes rather than fails. Refuse it up front (unless a GPU takes it).
        if available is not None and not offloading and self.gguf.size_bytes > available:
            raise ModelError(f"{self.gguf.path.name} needs {self.gguf.size_text} but only "
                             f"{available / 1e9:.1f} GB of memory is free; pick a smaller "
                             "quantization or free memory")

    @staticmethod
    def _offloaded_layers(supported: bool) -> int:
        if not supported:
            return 0
        for line in _LOG_LINES:
            match = _OFFLOAD_RE.search(line)
            if match:
                return int(match.group(1))
        return 0

    def _token_text(self, token_id: int) -> str:
        if token_id < 0:
            return ""
        text: str = self.llm._model.token_get_text(token_id)
        return text

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """Apply the GGUF's own chat template (without a leading BOS text where tokenizing adds
        the BOS token, add_bos_token; whole where it does not). TemplateError (one line) when
        the template cannot be rendered, or when the file has none: a foreign template (ChatML,
        say) would give an R1 model none of its turns or its opening <think>, and the rounds
        would be scored as if it had."""
        if not self.chat_template:
            raise TemplateError(f"{self.gguf.path.name} has no chat template "
                                "(tokenizer.chat_template), so a chat format cannot use the "
                                "model's own; use --format fewshot")
        return render_chat_template(self.chat_template, messages,
                                    bos_token=self._token_text(self.llm.token_bos()),
                                    eos_token=self._token_text(self.llm.token_eos()),
                                    bos_added=bool(self.llm._model.add_bos_token()))

    def tokenize(self, text: str) -> list[int]:
        """Tokens of a prompt exactly as create_completion makes them (BOS, special tokens),
        with exactly one BOS: a prompt that already starts with the BOS text gives two."""
        if not text:
            return [self.llm.token_bos()]
        tokens: list[int] = self.llm.tokenize(text.encode("utf-8"), special=True)
        bos = self.llm.token_bos()
        if len(tokens) >= 2 and tokens[0] == tokens[1] == bos:
            tokens = tokens[1:]
        return tokens

    def check_prompt(self, prompt: str) -> list[int]:
        """The prompt's tokens; PromptTooLong (one line) when it leaves no room to generate."""
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.context_length:
            raise PromptTooLong(f"the prompt is {len(tokens)} tokens but the context window is "
                                f"{self.context_length}; shorten the question or raise --ctx")
        return tokens

    def cached_prefix(self, tokens: Sequence[int]) -> int:
        """Prompt tokens llama.cpp will reuse from its KV cache, by its own rule (0.3.x).

        It keeps the longest common prefix with what is cached; when the whole prompt matches it
        still replays the last token to refresh the logits, unless the cache ends exactly there.
        """
        cached = self.llm._input_ids  # tokens currently in the KV cache
        longest = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            longest += 1
        if longest == len(tokens) and longest > 0:
            exact = self.llm.n_tokens == len(tokens) and not self.llm._requires_eval
            return longest if exact else longest - 1
        return longest

    def stream(
        self,
        prompt: str,
        settings: GenSettings,
        cancel: threading.Event,
        messages: Sequence[ChatMessage] | None = None,
    ) -> Iterator[Piece | GenStats]:
        """Stream one completion of `prompt` (already rendered with the GGUF's template, so
        `messages` is not needed); see Backend.stream."""
        if threading.get_ident() != self._owner:
            raise RuntimeError("LlamaBackend used from a thread other than the one that loaded it")
        if settings.logprobs and not self.logits_all:
            raise ValueError("log-probabilities need the model loaded with logits_all=True")
        tokens = self.check_prompt(prompt)
        room = self.context_length - len(tokens)
        cached = self.cached_prefix(tokens)
        seen_lengths: set[int] = set()

        def stop_when_cancelled(ids: Any, _logits: Any) -> bool:
            # Called once per sampled token (end-of-text included) with the ids before it, and
            # once more after the loop with a length already seen: distinct lengths = samples.
            seen_lengths.add(len(ids))
            return cancel.is_set()

        import llama_cpp

        started = time.perf_counter()
        first: float | None = None
        finish = "stop"
        stream = self.llm.create_completion(
            tokens,  # our tokens, so the single-BOS rule above is what llama.cpp evaluates
            max_tokens=min(settings.max_tokens, room),
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            min_p=settings.min_p,
            seed=settings.seed,
            stop=list(settings.stop) or None,
            logprobs=1 if settings.logprobs else None,
            stream=True,
            stopping_criteria=llama_cpp.StoppingCriteriaList([stop_when_cancelled]),
        )
        for chunk in stream:
            choice: Any = chunk["choices"][0]  # type: ignore[index]
            text = choice.get("text") or ""
            if text:
                if first is None:
                    first = time.perf_counter()
                logprob = None
                lp = choice.get("logprobs")
                if lp and lp.get("token_logprobs"):
                    logprob = lp["token_logprobs"][0]
                yield Piece(text, logprob)
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
        ended = time.perf_counter()
        first = first if first is not None else ended
        if cancel.is_set():
            finish = "cancelled"  # llama-cpp-python reports a stopping-criteria halt as "stop"
        elif finish not in ("stop", "length"):
            finish = "stop"
        yield GenStats(
            prompt_tokens=len(tokens),
            completion_tokens=len(seen_lengths),
            cached_tokens=cached,
            cached_source="estimated",  # llama.cpp's prefix rule applied by us (cached_prefix)
            finish_reason=finish,  # type: ignore[arg-type]
            prompt_seconds=first - started,
            gen_seconds=ended - first,
        )

    def close(self) -> None:
        """Free the model's memory now rather than at garbage collection."""
        with contextlib.suppress(Exception):
            self.llm.close()

