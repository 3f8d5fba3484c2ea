"""Sweeps against llama.cpp's llama-server: concurrency curve, mstui against a bare client.

Besides wall-clock rates, every configuration records the CPU seconds the server and this
process spent on it. On a machine shared with other work the wall-clock rates swing with the
other load; tokens per server-CPU-second (the batching gain) and client CPU per round (the
client's overhead) do not, so they are printed next to them.
"""

from __future__ import annotations

import argparse
import os
import queue
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstui.cli.sweep_cmd import run_sweep
from mstui.config import RunConfig
from mstui.core.backend import GenSettings
from mstui.core.problems import generate_problems
from mstui.engine.models import resolve_model
from mstui.store import Store
from tests.servers import LlamaServer, llama_server_binary

CTX_PER_SLOT = 2048
THREADS = os.cpu_count() or 2  # llama-server's own default: every core


@dataclass
class Sweep:
    """One mstui sweep: wall time, tokens, and the rounds it sent (for the bare replay)."""

    wall: float
    tokens: int
    questions: int
    rounds: list[list[tuple[str, int]]]  # per question, in order: (prompt, completion tokens)
    prompt_later: int  # prompt tokens of rounds after the first
    evaluated_later: int  # of which the server evaluated (not from its cache)


def mstui_sweep(url: str, concurrency: int, problems: int, rounds: int, max_tokens: int,
                seed: int, prompt_format: str = "reasoning") -> Sweep:
    """A sweep into a fresh database, through run_sweep as `mstui sweep` runs it."""
    config = RunConfig(backend="openai", base_url=url, max_rounds=rounds,
                       prompt_format=prompt_format,
                       gen=GenSettings(max_tokens=max_tokens, temperature=0.7, seed=seed))
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "b.db", durable=False) as store:
        start = time.perf_counter()
        result = run_sweep(config, generate_problems(problems, seed=3), store,
                           problem_set="gen", concurrency=concurrency)
        wall = time.perf_counter() - start
        if result.errors or result.completed != problems:
            raise SystemExit(f"sweep at concurrency {concurrency} failed: {result.errors[:3]}")
        sent = [store.get_run(i)["rounds"] for i in result.run_ids]
    later = [r for run in sent for r in run if r.index > 0]
    return Sweep(wall, result.completion_tokens, problems,
                 [[(r.prompt, r.completion_tokens) for r in run] for run in sent],
                 sum(r.prompt_tokens for r in later),
                 sum(r.prompt_tokens - r.cached_tokens for r in later))


def bare_replay(url: str, model: str, concurrency: int, work: list[list[tuple[str, int]]]
                ) -> tuple[float, int]:
    """A bare `openai` streaming loop doing the same work: `concurrency` threads, each taking
    the next question and sending its rounds' prompts in order, pinned to its own slot, for
    exactly as many tokens as mstui's round got (ignore_eos). Wall seconds and tokens."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
    todo: queue.Queue[list[tuple[str, int]]] = queue.Queue()
    for question in work:
        todo.put(question)
    counts: list[int] = []

    def worker(slot: int) -> None:
        got = 0
        while True:
            try:
                question = todo.get_nowait()
            except queue.Empty:
                break
            for prompt, n in question:
                stream = client.completions.create(
                    model=model, prompt=prompt, max_tokens=max(n, 1), temperature=0.7,
                    stream=True, stream_options={"include_usage": True},
                    extra_body={"ignore_eos": True, "id_slot": slot, "cache_prompt": True})
                for chunk in stream:
                    if chunk.usage is not None:
                        got += chunk.usage.completion_tokens
        counts.append(got)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, sum(counts)


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM) from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """Per concurrency level, one entry per repeat."""

    ours: dict[int, list[float]]  # mstui tok/s (wall)
    bare: dict[int, list[float]]  # bare client tok/s (wall)
    qpm: dict[int, list[float]]  # mstui questions/minute
    ours_cpu: dict[int, list[float]]  # mstui: tokens per server-CPU-second
    bare_cpu: dict[int, list[float]]  # bare: tokens per server-CPU-second
    ours_client: dict[int, list[float]]  # mstui: client CPU ms per round
    bare_client: dict[int, list[float]]  # bare: client CPU ms per round
    sweeps: list[Sweep]


def erase_slots(server: LlamaServer) -> None:
    """Empty every slot's KV cache, so each measured run starts cold. Without it the bare
    replay, sent right after mstui's sweep with the same prompts, found them cached (0.75 of
    bare at c=8 was that, not the client)."""
    import urllib.request

    for slot in range(server.slots):
        request = urllib.request.Request(f"{server.root}/slots/{slot}?action=erase",
                                         method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass


def start_server(binary: Path, model: Path, log: Path, slots: int, threads: int,
                 tmp: Path) -> LlamaServer:
    """llama-server with `slots` slots; slot erasing on (--slot-save-path) and its host-memory
    prompt cache off (--cache-ram 0), so only the slots' own KV caches are measured."""
    save = tmp / f"slots-{slots}"
    save.mkdir(exist_ok=True)
    return LlamaServer(binary, model, log, slots=slots, ctx=slots * CTX_PER_SLOT,
                       threads=threads,
                       extra=("--slot-save-path", str(save), "--cache-ram", "0"))


def measure(server: LlamaServer, levels: list[int], args: argparse.Namespace) -> Figures:
    """Interleave mstui and the bare client at every level, `repeats` times, each from empty
    slots."""
    from mstui.engine.openai_backend import OpenAIBackend

    assert server.proc is not None
    pid = server.proc.pid
    model = OpenAIBackend(server.url).model
    f = Figures(defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list),
                defaultdict(list), defaultdict(list), defaultdict(list), [])
    # Untimed warm-up: the first sweep of a process pays one-time costs (imports, the grading
    # worker's start, the store's first open) that are not per-round client overhead, and a
    # slot's first use touches its KV cache's pages; so every slot is used once first.
    warm = mstui_sweep(server.url, max(levels), max(levels), 1, args.max_tokens, seed=99,
                       prompt_format=args.format)
    bare_replay(server.url, model, max(levels), warm.rounds)
    for rep in range(args.repeats):
        for c in levels:
            erase_slots(server)
            srv0, me0 = cpu_seconds(pid), time.process_time()
            s = mstui_sweep(server.url, c, args.problems, args.rounds, args.max_tokens, seed=rep,
                            prompt_format=args.format)
            srv1, me1 = cpu_seconds(pid), time.process_time()
            erase_slots(server)
            srv_b, me_b = cpu_seconds(pid), time.process_time()
            wall, tokens = bare_replay(server.url, model, c, s.rounds)
            srv2, me2 = cpu_seconds(pid), time.process_time()
            rounds = sum(len(q) for q in s.rounds)
            f.ours[c].append(s.tokens / s.wall)
            f.qpm[c].append(60 * s.questions / s.wall)
            f.bare[c].append(tokens / wall)
            f.ours_cpu[c].append(s.tokens / max(srv1 - srv0, 1e-9))
            f.bare_cpu[c].append(tokens / max(srv2 - srv_b, 1e-9))
            f.ours_client[c].append(1000 * (me1 - me0) / rounds)
            f.bare_client[c].append(1000 * (me2 - me_b) / rounds)
            f.sweeps.append(s)
            print(f"  rep {rep} c={c}: mstui {s.tokens / s.wall:6.1f} tok/s ({s.wall:5.1f} s, "
                  f"{f.ours_cpu[c][-1]:5.1f} tok/server-CPU-s) · bare {tokens / wall:6.1f} tok/s "
                  f"({wall:5.1f} s, {f.bare_cpu[c][-1]:5.1f} tok/server-CPU-s) · load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    return f


def headline(binary: Path, model: Path, tmp: Path, args: argparse.Namespace,
             server_peaks: list[float]) -> None:
    """The headline ratios (a)-(d) against llama-server -np 4, concurrency 1 and 4."""
    med = statistics.median
    server = start_server(binary, model, tmp / "np4.log", 4, args.threads, tmp)
    try:
        print("llama-server -np 4:")
        f = measure(server, [1, 4], args)
        assert server.proc is not None
        server_peaks.append(peak_rss_mib(server.proc.pid))
    finally:
        server.stop()
    lengths = [n for s in f.sweeps for question in s.rounds for _, n in question]
    print(f"rounds: median {med(lengths):.0f} tokens (range {min(lengths)}-{max(lengths)}, "
          f"{len(lengths)} rounds)")
    later_prompt = sum(s.prompt_later for s in f.sweeps)
    later_eval = sum(s.evaluated_later for s in f.sweeps)
    print(f"(a) sweep c=4 / c=1 against -np 4, wall clock: "
          f"{med(f.ours[4]) / med(f.ours[1]):.2f} tok/s, "
          f"{med(f.qpm[4]) / med(f.qpm[1]):.2f} questions/min (mstui {med(f.ours[1]):.0f} -> "
          f"{med(f.ours[4]):.0f} tok/s, {med(f.qpm[1]):.1f} -> {med(f.qpm[4]):.1f} q/min; "
          f"bare client {med(f.bare[1]):.0f} -> {med(f.bare[4]):.0f} tok/s, "
          f"{med(f.bare[4]) / med(f.bare[1]):.2f}); target >= 1.3")
    # Questions/min also moves with how long the sampled rounds came out in each repeat; the
    # ratio within a repeat (same seed at c=1 and c=4) is steadier than a ratio of medians.
    paired = [four / one for four, one in zip(f.qpm[4], f.qpm[1], strict=True)]
    print("    questions/min c=4 / c=1 within each repeat: "
          + ", ".join(f"{r:.2f}" for r in paired) + f" (median {med(paired):.2f})")
    print(f"    per server-CPU-second: mstui {med(f.ours_cpu[1]):.0f} -> "
          f"{med(f.ours_cpu[4]):.0f} tok, {med(f.ours_cpu[4]) / med(f.ours_cpu[1]):.2f}; "
          f"bare {med(f.bare_cpu[1]):.0f} -> {med(f.bare_cpu[4]):.0f} tok, "
          f"{med(f.bare_cpu[4]) / med(f.bare_cpu[1]):.2f}")
    for c in (1, 4):
        print(f"(b) mstui / bare client at c={c}: wall {med(f.ours[c]) / med(f.bare[c]):.2f}"
              f", per server-CPU-second {med(f.ours_cpu[c]) / med(f.bare_cpu[c]):.2f} "
              "(same prompts and token counts, each question pinned to a slot); "
              "target >= 0.9")
    print(f"(c) later rounds: {later_eval} of {later_prompt} prompt tokens evaluated "
          f"({later_eval / max(later_prompt, 1):.1%}; the rest came from the slot's cache, "
          "as the server reported it)")
    print(f"(d) client overhead, c=1: wall {med(f.ours[1]) / med(f.bare[1]):.3f} (bare loop "
          f"time / mstui time; target >= 0.97); client CPU per round mstui "
          f"{med(f.ours_client[1]):.1f} ms vs bare {med(f.bare_client[1]):.1f} ms (c=4: "
          f"{med(f.ours_client[4]):.1f} vs {med(f.bare_client[4]):.1f} ms)")


def main() -> int:
    """Two servers in turn (-np 4: the headline ratios; -np 8: the curve 1/2/4/8)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    # The shape of the users' rounds: a worked answer before the final one. With `reasoning`
    # the default model writes a median 180 tokens a round (fewshot: 21, where each request's
    # fixed costs, not decoding, set the rate and no batching can help).
    parser.add_argument("--format", default="reasoning", choices=("reasoning", "chat", "fewshot"))
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--curve", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--curve-only", action="store_true",
                        help="skip the -np 4 headline ratios, run only the curve")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="llama-server -t (default: every core, as llama-server does)")
    args = parser.parse_args()
    binary = llama_server_binary()
    if binary is None:
        print("llama-server is not built: run `make server` first")
        return 1
    model = resolve_model(args.model)
    med = statistics.median
    print(f"model {model.name} behind llama-server ({binary.resolve().parent.name}, "
          f"-t {args.threads}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start); "
          f"{args.problems} questions x {args.rounds} rounds, --format {args.format}, <= "
          f"{args.max_tokens} tokens a round; medians of {args.repeats}, configurations "
          "interleaved")
    server_peaks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.curve_only:
            headline(binary, model, Path(tmp), args, server_peaks)
        if args.curve:
            np_curve = max(args.curve)
            server = start_server(binary, model, Path(tmp) / "curve.log", np_curve,
                                  args.threads, Path(tmp))
            try:
                print(f"llama-server -np {np_curve}:")
                f = measure(server, args.curve, args)
                assert server.proc is not None
                server_peaks.append(peak_rss_mib(server.proc.pid))
            finally:
                server.stop()
            base, base_cpu = med(f.ours[args.curve[0]]), med(f.ours_cpu[args.curve[0]])
            print(f"(e) curve against -np {np_curve} (mstui tok/s and questions/min, x c="
                  f"{args.curve[0]}; tokens per server-CPU-second, x c={args.curve[0]}; "
                  "mstui/bare wall):")
            for c in args.curve:
                print(f"    c={c}: {med(f.ours[c]):6.1f} tok/s · {med(f.qpm[c]):5.1f} q/min · "
                      f"x{med(f.ours[c]) / base:.2f} · {med(f.ours_cpu[c]):5.1f} tok/CPU-s "
                      f"x{med(f.ours_cpu[c]) / base_cpu:.2f} · "
                      f"{med(f.ours[c]) / med(f.bare[c]):.2f} of bare")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: this process (mstui + bare client) {rss:.0f} MiB; llama-server "
          + ", ".join(f"{p:.0f}" for p in server_peaks) + " MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
