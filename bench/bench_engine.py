"""Engine benchmark: streaming overhead vs raw llama-cpp-python, and prefix reuse per strategy."""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp

from mstui.core.backend import GenSettings
from mstui.core.loop import RoundFinished, TokenStreamed, run_refinement
from mstui.core.policies import parse_policy
from mstui.core.prompts import STRATEGIES, Prompter, load_format
from mstui.engine.llama_backend import LlamaBackend
from mstui.engine.models import resolve_model

QUESTION = (
    "A farmer has 4 boxes of eggs with 10 eggs in each box. He sells 13 eggs. How many are left?"
)


def mstui_round(backend: LlamaBackend, prompter: Prompter, max_tokens: int) -> tuple[int, float]:
    """Tokens and generation seconds of one round through mstui's refinement loop."""
    backend.llm.reset()
    first = None
    n = 0
    end = time.perf_counter()
    for event in run_refinement(QUESTION, backend=backend, prompter=prompter,
                                policy=parse_policy("none", None), max_rounds=1,
                                settings=GenSettings(max_tokens=max_tokens, temperature=0.0),
                                cancel=threading.Event()):
        if isinstance(event, TokenStreamed):
            if first is None:
                first = time.perf_counter()
            n += 1
        elif isinstance(event, RoundFinished):
            end = time.perf_counter()
    return n, end - (first or end)


def streaming_overhead(backend: LlamaBackend, repeats: int, max_tokens: int) -> None:
    """(a) tokens/s of mstui's loop vs raw llama-cpp-python, interleaved, medians."""
    prompter = Prompter(load_format("fewshot"), "reanswer", backend.render_chat)
    prompt = prompter.prompt(QUESTION, [])
    stop = list(prompter.stop)
    raw_rates: list[float] = []
    ours: list[float] = []
    for i in range(repeats + 1):
        # Same stop sequences on both sides, so both stream the same tokens.
        n_raw, t_raw = raw_round(backend.llm, prompt, max_tokens, stop)
        n_our, t_our = mstui_round(backend, prompter, max_tokens)
        if i == 0:
            continue  # warm-up
        raw_rates.append(n_raw / t_raw if t_raw > 0 else 0.0)
        ours.append(n_our / t_our if t_our > 0 else 0.0)
    raw_med, our_med = statistics.median(raw_rates), statistics.median(ours)
    print(f"(a) streaming: raw llama-cpp-python {raw_med:7.1f} tok/s   mstui loop {our_med:7.1f} "
          f"tok/s   ratio {our_med / raw_med:.3f} (target >= 0.97; median of {repeats}, "
          f"interleaved)")


def raw_round(llm: llama_cpp.Llama, prompt: str, max_tokens: int,
              stop: list[str]) -> tuple[int, float]:
    """Tokens and generation seconds (first token to last) of plain create_completion(stream)."""
    llm.reset()  # both sides evaluate the whole prompt
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0,
                                       stream=True, seed=0, stop=stop):
        if chunk["choices"][0]["text"]:
            if first is None:
                first = time.perf_counter()
            n += 1
    end = time.perf_counter()
    return n, end - (first or start)


def prefix_reuse(backend: LlamaBackend, rounds: int, max_tokens: int) -> None:
    """(b) prompt tokens evaluated in rounds 1..N vs round 0, per strategy."""
    for strategy in STRATEGIES:
        prompter = Prompter(load_format("fewshot"), strategy, backend.render_chat)
        backend.llm.reset()
        records = [e.record for e in run_refinement(
            QUESTION, backend=backend, prompter=prompter, policy=parse_policy("fixed:9", None),
            max_rounds=rounds, settings=GenSettings(max_tokens=max_tokens, temperature=0.7))
            if isinstance(e, RoundFinished)]
        evaluated = [r.prompt_tokens - r.cached_tokens for r in records]
        later = evaluated[1:]
        print(f"(b) {strategy:9} prompt tokens evaluated per round {evaluated} "
              f"(prompt sizes {[r.prompt_tokens for r in records]}); later rounds evaluate "
              f"{statistics.mean(later) / evaluated[0]:.1%} of round 0 on average")


def main() -> int:
    """Run (a) and (b) on the default model (or --model) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    path = resolve_model(args.model)
    backend = LlamaBackend(path)
    print(f"model {path.name} · {backend.info.offload_text} · {backend.info.threads} threads")
    streaming_overhead(backend, args.repeats, args.max_tokens)
    prefix_reuse(backend, rounds=4, max_tokens=48)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
