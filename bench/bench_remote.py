"""Sweep throughput against a local OpenAI-compatible server: --concurrency 1 vs 4, side by side."""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstui.cli.sweep_cmd import run_sweep
from mstui.config import RunConfig
from mstui.core.backend import GenSettings
from mstui.core.problems import generate_problems
from mstui.engine.models import resolve_model
from mstui.store import Store
from tests.servers import Server


def one_sweep(url: str, concurrency: int, problems: int, rounds: int) -> tuple[float, int]:
    """Wall seconds and generated tokens of one sweep into a fresh database."""
    config = RunConfig(backend="openai", base_url=url, max_rounds=rounds,
                       gen=GenSettings(max_tokens=48, temperature=0.7))
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "b.db", durable=False) as store:
        start = time.perf_counter()
        result = run_sweep(config, generate_problems(problems, seed=3), store,
                           problem_set="gen", concurrency=concurrency)
        wall = time.perf_counter() - start
        if result.errors or result.completed != problems:
            raise SystemExit(f"sweep at concurrency {concurrency} failed: {result.errors[:3]}")
        return wall, result.completion_tokens


def main() -> int:
    """Interleave concurrency 1 and 4, report medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = resolve_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(model, Path(tmp) / "server.log")
        try:
            rates: dict[int, list[float]] = {1: [], 4: []}
            walls: dict[int, list[float]] = {1: [], 4: []}
            for _ in range(args.repeats):
                for c in (1, 4):
                    wall, tokens = one_sweep(server.url, c, args.problems, args.rounds)
                    walls[c].append(wall)
                    rates[c].append(tokens / wall)
        finally:
            server.stop()
    r1, r4 = statistics.median(rates[1]), statistics.median(rates[4])
    print(f"model {model.name} behind python -m llama_cpp.server (one Llama, requests serialized)")
    print(f"(c) sweep of {args.problems} questions x {args.rounds} rounds: concurrency 1 "
          f"{statistics.median(walls[1]):.1f} s, {r1:.0f} tok/s · concurrency 4 "
          f"{statistics.median(walls[4]):.1f} s, {r4:.0f} tok/s · ratio {r4 / r1:.2f} "
          f"(median of {args.repeats}, interleaved)")
    print("    this server runs one request at a time, so ~1.0 is the honest ceiling here; "
          "llama-server -np 4 or vLLM batch the 4 streams (see docs/scaling.md)")
    print(f"peak RSS (this process) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
