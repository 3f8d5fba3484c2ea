"""The in-process llama.cpp backend, for real, on a tiny random-weight GGUF."""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

import pytest

from mstui.config import default_threads
from mstui.core.backend import GenSettings, GenStats, Piece, PromptTooLong
from mstui.core.loop import RoundFinished, run_refinement
from mstui.core.policies import parse_policy
from mstui.core.prompts import Prompter, load_format
from mstui.engine.errors import ModelError
from mstui.engine.gguf_info import read_gguf_info
from mstui.engine.llama_backend import LlamaBackend

PROMPT = "Question: What is 2 + 2?\nAnswer:"


@pytest.fixture(scope="module")
def llama(tiny_gguf: Path) -> LlamaBackend:
    return LlamaBackend(tiny_gguf, logits_all=True, n_ctx=512)


def collect(backend: LlamaBackend, prompt: str, cancel: threading.Event | None = None,
            **kw: object) -> tuple[list[Piece], GenStats]:
    items = list(backend.stream(prompt, GenSettings(**kw), cancel or threading.Event()))  # type: ignore[arg-type]
    *pieces, stats = items
    assert isinstance(stats, GenStats)
    return pieces, stats  # type: ignore[return-value]


def test_backend_reports_model_and_offload(llama: LlamaBackend) -> None:
    info = llama.info
    assert info.backend == "llama.cpp" and info.model == "tiny.gguf"
    assert info.context_length == 512 and info.threads >= 1
    # No --threads: half the usable cores, at least 1 (not every core: see default_threads).
    assert info.threads == default_threads() == max(1, len(os.sched_getaffinity(0)) // 2)
    assert info.details["architecture"] == "llama" and info.details["quantization"] == "ALL_F32"
    if not info.gpu_offload_supported:
        assert info.gpu_layers == 0 and info.offload_text.startswith("CPU only")


def test_streams_tokens_with_counts(llama: LlamaBackend) -> None:
    pieces, stats = collect(llama, PROMPT, max_tokens=12, temperature=0.0, seed=1)
    assert stats.prompt_tokens == len(llama.tokenize(PROMPT))
    assert stats.finish_reason in ("length", "stop")
    if stats.finish_reason == "length":
        assert stats.completion_tokens >= 12
    assert 1 <= len(pieces) <= stats.completion_tokens
    assert stats.prompt_seconds >= 0 and stats.gen_seconds >= 0


def test_greedy_is_deterministic(llama: LlamaBackend) -> None:
    a, _ = collect(llama, PROMPT, max_tokens=10, temperature=0.0)
    b, _ = collect(llama, "Something else entirely", max_tokens=5, temperature=0.0)
    c, _ = collect(llama, PROMPT, max_tokens=10, temperature=0.0)
    assert "".join(p.text for p in a) == "".join(p.text for p in c)
    assert b  # a different prompt in between does not poison the cache


def test_logprobs_per_token(llama: LlamaBackend) -> None:
    pieces, _ = collect(llama, PROMPT, max_tokens=8, logprobs=True)
    values = [p.logprob for p in pieces]
    assert values and all(v is not None and v <= 0.0 for v in values)


def test_logprobs_need_logits_all(tiny_gguf: Path) -> None:
    backend = LlamaBackend(tiny_gguf, logits_all=False, n_ctx=256)
    with pytest.raises(ValueError, match="logits_all"):
        collect(backend, PROMPT, logprobs=True)
    backend.close()


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def test_prefix_reuse_counts_cached_tokens(llama: LlamaBackend) -> None:
    unrelated = "An unrelated prompt to reset the cache"
    collect(llama, unrelated, max_tokens=2)
    first = PROMPT
    second = PROMPT + " A previous attempt said 5. Answer again.\nAnswer:"
    _, s0 = collect(llama, first, max_tokens=4)
    _, s1 = collect(llama, second, max_tokens=4)
    t0, t1 = llama.tokenize(first), llama.tokenize(second)
    common = common_prefix(t0, t1)
    # Only the first token or two (BOS, a leading space piece) match the unrelated prompt.
    assert s0.cached_tokens == common_prefix(llama.tokenize(unrelated), t0) <= 2
    assert s1.cached_tokens == common and common >= len(t0) - 2
    assert s1.prompt_tokens == len(t1)


def test_wait_strategy_reuses_whole_previous_round(llama: LlamaBackend) -> None:
    fmt = load_format("fewshot")
    prompter = Prompter(fmt, "wait", llama.render_chat)
    events = list(run_refinement("What is 2 + 2?", backend=llama, prompter=prompter,
                                 policy=parse_policy("fixed:2", None), max_rounds=3,
                                 settings=GenSettings(max_tokens=6, temperature=0.0)))
    rounds = [e.record for e in events if isinstance(e, RoundFinished)]
    assert len(rounds) == 3
    for prev, cur in itertools.pairwise(rounds):
        # Everything of the previous round is in the KV cache except what was never evaluated.
        assert cur.cached_tokens >= prev.prompt_tokens
        assert cur.prompt_tokens - cur.cached_tokens <= prev.completion_tokens + 8


def test_cancel_from_another_thread_stops_at_next_token(llama: LlamaBackend) -> None:
    cancel = threading.Event()
    seen_three = threading.Event()

    def canceller() -> None:
        seen_three.wait(5)
        cancel.set()

    thread = threading.Thread(target=canceller)
    thread.start()
    pieces: list[Piece] = []
    stats = None
    for item in llama.stream(PROMPT, GenSettings(max_tokens=200, temperature=1.0), cancel):
        if isinstance(item, Piece):
            pieces.append(item)
            if len(pieces) == 3:
                seen_three.set()
                cancel.wait(5)  # the other thread has cancelled before we pull the next token
        else:
            stats = item
    thread.join()
    assert stats is not None and stats.finish_reason == "cancelled"
    assert 3 <= len(pieces) <= 5 and stats.completion_tokens <= 6


def test_used_from_another_thread_is_refused(llama: LlamaBackend) -> None:
    errors: list[BaseException] = []

    def use() -> None:
        try:
            collect(llama, PROMPT, max_tokens=1)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert errors and "thread" in str(errors[0])


def test_prompt_longer_than_context(llama: LlamaBackend) -> None:
    with pytest.raises(PromptTooLong, match="context window is 512"):
        collect(llama, "word " * 2000)


def test_chat_template_comes_from_the_gguf(llama: LlamaBackend) -> None:
    text = llama.render_chat([{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_bad_model_files(tmp_path: Path, tiny_gguf: Path) -> None:
    with pytest.raises(ModelError, match="no such model file"):
        LlamaBackend(tmp_path / "missing.gguf")
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello, not a model")
    with pytest.raises(ModelError, match="not a GGUF model"):
        LlamaBackend(not_gguf)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    with pytest.raises(ModelError, match=r"truncated|damaged"):
        LlamaBackend(cut)
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(tiny_gguf.read_bytes()[:64])
    with pytest.raises(ModelError, match=r"truncated|damaged"):
        read_gguf_info(header_only)


def test_model_larger_than_free_memory_is_refused(tiny_gguf: Path, tmp_path: Path) -> None:
    from mstui.engine.gguf_info import available_memory_bytes

    free = available_memory_bytes()
    if free is None:
        pytest.skip("free memory cannot be read on this system (/proc/meminfo)")
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(tiny_gguf.read_bytes())
    with huge.open("r+b") as fh:  # sparse: the file claims the size without using the disk
        fh.truncate(free + 8 * 1024**3)
    with pytest.raises(ModelError, match=r"needs .* GB but only .* GB of memory is free"):
        LlamaBackend(huge, n_gpu_layers=0)
