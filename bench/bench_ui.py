"""UI benchmark: a scripted backend at 2,000 tok/s — tokens seen vs produced, text fidelity,
key-press-to-screen latency while streaming, and time to the first frame; the cost of one
refresh at 1k and 32k tokens (plain, thinking folded, thinking unfolded); the time from `y` to
the why-view painted on a stored run of 16 rounds; and the TUI's generation rate on the default
model against `mstui run`, interleaved, same --threads.

Run: .venv/bin/python bench/bench_ui.py [--only stream|refresh|why|rate] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST_FRAME = """
import time; t0 = time.perf_counter()
import asyncio
{prelude}
from mstui.config import RunConfig
from mstui.engine.scripted import ScriptedBackend
from mstui.ui.app import make_app
async def main():
    app = make_app(RunConfig(), db_path={db!r}, backend_factory=lambda c: ScriptedBackend(["x"]))
    async with app.run_test(size=(130, 42)) as pilot:
        done = asyncio.get_running_loop().create_future()
        app.call_after_refresh(lambda: done.set_result(time.perf_counter()))
        print(await done - t0)
asyncio.run(main())
"""


def first_frame_seconds(db: str, prelude: str = "") -> float:
    """Seconds from a fresh interpreter's start (imports included) to the first painted frame;
    `prelude` adds what the `mstui` command imports before the app (its argument parser)."""
    out = subprocess.run(
        [sys.executable, "-c", FIRST_FRAME.format(db=db, prelude=prelude)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(out.stdout.strip().splitlines()[-1])


async def stream_bench(tps: float, n_tokens: int, db: str) -> dict[str, float]:
    from textual import events

    from mstui.config import RunConfig
    from mstui.core.backend import GenSettings
    from mstui.engine.scripted import ScriptedBackend
    from mstui.ui.app import make_app
    from mstui.ui.widgets import StreamView

    response = " tok" * n_tokens + " The answer is 7."
    config = RunConfig(max_rounds=1, policy="none", gen=GenSettings(max_tokens=n_tokens + 50))
    app = make_app(
        config,
        db_path=db,
        auto_policy=False,
        backend_factory=lambda c: ScriptedBackend([response], tokens_per_second=tps),
    )
    latencies: list[float] = []
    async with app.run_test(size=(130, 42)) as pilot:
        while app.worker.backend is None:
            await pilot.pause(0.01)
        live = app.live
        view = live.query_one(StreamView)
        await pilot.press("slash", *"bench")
        driver = app._driver
        assert driver is not None

        def key(name: str) -> None:
            # What a terminal's input thread does; pilot.press would also wait for idle.
            event = events.Key(name, None)
            event.set_sender(app)
            driver.send_message(event)

        key("enter")
        while live.pieces_seen == 0:
            await asyncio.sleep(0.001)
        first_seen = time.perf_counter()
        status = live.query_one("#status")
        # Key presses while tokens pour in: ] raises N_max, which the status line shows.
        while app.worker.busy and len(latencies) < 40:
            want = app.config.max_rounds + 1
            pressed = time.perf_counter()
            key("right_square_bracket")
            while f"N_max {want}" not in str(status.render()):
                await asyncio.sleep(0.0005)
            painted = asyncio.get_running_loop().create_future()
            app.call_after_refresh(lambda f=painted: f.done() or f.set_result(None))
            await painted
            latencies.append(time.perf_counter() - pressed)
            await asyncio.sleep(0.03)
        while app.worker.busy or not live.records:
            await asyncio.sleep(0.005)
        await pilot.pause(0.05)
        last_seen = time.perf_counter()
        record = live.records[-1]
        text_ok = view.final == view.text == record.response == response
        produced = app.worker.tokens.produced
        seen = live.pieces_seen
    produced_rate = record.completion_tokens / max(record.gen_seconds, 1e-9)
    seen_rate = seen / max(last_seen - first_seen, 1e-9)
    return {
        "tokens_produced": produced,
        "tokens_seen": seen,
        "produced_tok_s": produced_rate,
        "seen_tok_s": seen_rate,
        "ratio": seen_rate / produced_rate,
        "text_identical": float(text_ok),
        "latency_median_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "latency_p90_ms": 1000 * sorted(latencies)[int(0.9 * (len(latencies) - 1))]
        if latencies
        else float("nan"),
        "key_presses": len(latencies),
    }


# ---- refresh cost at 1k and 32k tokens ---------------------------------------------------------

SENTENCES = (
    "Okay, so I need to find how many eggs are left after the sale.",
    "There are 4 boxes with 10 eggs in each box, so 4 * 10 = 40 eggs.",
    "Wait, let me double-check: 10 + 10 + 10 + 10 = 40. Yes.",
    "He sells 13 eggs, so 40 - 13 = 27 eggs are left, unless some were broken.",
)


def reasoning_pieces(n: int) -> list[str]:
    """`n` word-ish tokens of reasoning-shaped text, with a paragraph break every few sentences."""
    from mstui.engine.scripted import split_tokens

    out: list[str] = []
    i = 0
    while len(out) < n:
        out.extend(split_tokens(SENTENCES[i % len(SENTENCES)] + ("\n\n" if i % 5 == 4 else " ")))
        i += 1
    return out[:n]


async def refresh_bench(mode: str, sizes: tuple[int, ...], samples: int,
                        batch: int) -> dict[str, float]:
    """Main-thread CPU and wall time of one refresh (drain `batch` tokens, repaint) once the
    round holds each of `sizes` tokens; mode: plain, folded (thinking) or unfolded (thinking).
    """
    from mstui.config import RunConfig
    from mstui.core.reasoning import THINK_TAGS
    from mstui.engine.scripted import ScriptedBackend
    from mstui.ui import messages as m
    from mstui.ui.app import make_app
    from mstui.ui.tokens import RoundInfo
    from mstui.ui.widgets import StreamView

    thinking = mode != "plain"
    pieces = reasoning_pieces(max(sizes) + batch * samples)
    app = make_app(RunConfig(), db_path=None, auto_policy=False,
                   backend_factory=lambda c: ScriptedBackend(["x"]))
    out: dict[str, float] = {}
    async with app.run_test(size=(130, 42)) as pilot:
        while app.worker.backend is None:
            await pilot.pause(0.01)
        live, tokens = app.live, app.worker.tokens
        view = live.query_one(StreamView)
        # The round as the worker starts it: R1's prompt leaves <think> open.
        tokens.begin(0, RoundInfo(THINK_TAGS[0], starts_in_thinking=thinking))
        live.apply(m.RoundBegan(0))
        fed = 0
        loop = asyncio.get_running_loop()

        async def refresh(n: int) -> tuple[float, float]:
            nonlocal fed
            for text in pieces[fed : fed + n]:
                tokens.append(0, text)
            fed += n
            painted: asyncio.Future[None] = loop.create_future()

            def done() -> None:
                if not painted.done():
                    painted.set_result(None)

            cpu, wall = time.thread_time(), time.perf_counter()
            live.drain()
            app.call_after_refresh(done)
            await painted
            return time.thread_time() - cpu, time.perf_counter() - wall

        for size in sizes:
            while fed < size:
                await refresh(min(4000, size - fed))  # fill in big batches
                if mode == "unfolded" and not view.expanded:
                    view.toggle_thinking(live=True)  # unfolded while it streams: follows
            runs = [await refresh(batch) for _ in range(samples)]
            out[f"cpu_{size}"] = statistics.median(c for c, _ in runs)
            out[f"wall_{size}"] = statistics.median(w for _, w in runs)
        streamed = "".join(pieces[:fed])
        shown = view.thinking if thinking else view.final
        # The whole text, rebuilt from the drawn lines (leading blanks of a thinking are not drawn).
        out["intact"] = float(shown == (streamed.lstrip() if thinking else streamed)
                              and view.text == streamed)
        out["tokens"] = fed
    return out


def refresh_report(samples: int, batch: int) -> bool:
    """Print per-refresh cost at 1k and 32k tokens for each mode; True when every ratio <= 1.5
    and the text is intact."""
    ok = True
    for mode in ("plain", "folded", "unfolded"):
        r = asyncio.run(refresh_bench(mode, (1000, 32000), samples, batch))
        ratio = r["cpu_32000"] / r["cpu_1000"]
        ok = ok and ratio <= 1.5 and bool(r["intact"])
        print(f"refresh ({mode:8}, +{batch} tok): at 1k {r['cpu_1000'] * 1000:5.2f} ms CPU "
              f"({r['wall_1000'] * 1000:5.1f} ms wall), at 32k {r['cpu_32000'] * 1000:5.2f} ms CPU "
              f"({r['wall_32000'] * 1000:5.1f} ms wall); 32k/1k CPU {ratio:.2f} (target <= 1.5); "
              f"whole text intact after {r['tokens']:.0f} tok: {bool(r['intact'])}", flush=True)
    return ok


# ---- the TUI's generation rate against `mstui run` ----------------------------------------------

QUESTION = ("A farmer has 4 boxes of eggs with 10 eggs in each box. He sells 13 eggs. "
            "Explain step by step how many are left.")


class Terminal:
    """A child process on a pseudo-terminal of 130x42, its output drained as a terminal would."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 42, 130, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                                     env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.received = 0
        self.tail = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.received += len(data)
            self.tail = (self.tail + data)[-4000:]

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float) -> int:
        """Wait for exit (a kill after `timeout`); the child's peak RSS in MiB."""
        end = time.monotonic() + (timeout if sys.exc_info()[0] is None else 0)
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > end:
                self.proc.kill()
                pid, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.05)
        self.proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        self._reader.join(1)
        os.close(self.master)
        return usage.ru_maxrss // 1024


def _last_run(db: Path) -> tuple[int, str] | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as con:
            row = con.execute("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.Error:  # the app is still creating the schema
        return None
    return (int(row[0]), str(row[1])) if row else None


def _rate(db: Path, run_id: int) -> tuple[float, int]:
    """Tokens per second of a stored run (first token of each round to its last, as
    RoundRecord.tokens_per_second counts), and its generated tokens."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT completion_tokens, gen_seconds FROM rounds WHERE run_id = ?",
                           [run_id]).fetchall()
    tokens = sum(max(0, c - 1) for c, _ in rows)
    seconds = sum(g for _, g in rows)
    return (tokens / seconds if seconds > 0 else 0.0), sum(c for c, _ in rows)


def _wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_once(kind: str, db: Path, options: list[str]) -> tuple[float, int, int]:
    """One run of the question by `mstui run` or by the TUI (keys typed on its terminal):
    (tokens/s, tokens, peak RSS MiB of the process)."""
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    before = _last_run(db)
    argv = [sys.executable, "-m", "mstui"]
    if kind == "run":
        term = Terminal([*argv, "run", "--question", QUESTION, "--db", str(db), *options], env)
    else:
        term = Terminal([*argv, "--question", QUESTION, "--db", str(db), "--policy", "fixed",
                         *options], env)
    try:
        if kind == "tui":
            # Keys sent before the app reads its terminal would be lost: wait for a frame.
            _wait_for(lambda: term.received > 2000, 60, "the first frame")
            started = lambda: (_last_run(db) or (0, ""))[0] > (before or (0, ""))[0]  # noqa: E731
            for _ in range(50):
                term.send(b"r")
                try:
                    _wait_for(started, 5, "the run to start")
                    break
                except TimeoutError:
                    continue
        _wait_for(lambda: (r := _last_run(db)) is not None and r != before and r[1] != "running",
                  600, f"the {kind} run to finish")
        if kind == "tui":
            term.send(b"q")
    finally:
        rss = term.wait(60)  # on an error too: no app is left running
    run = _last_run(db)
    assert run is not None and run[1] == "finished", (run, term.tail[-500:])
    rate, tokens = _rate(db, run[0])
    return rate, tokens, rss


def rate_report(threads: int, repeats: int, rounds: int, max_tokens: int) -> bool:
    """Interleave TUI and `mstui run` on the default model; print medians, the ratio and peak
    RSS; True when the TUI keeps >= 0.95 of run's rate."""
    options = ["--threads", str(threads), "--max-rounds", str(rounds), "--max-tokens",
               str(max_tokens), "--temperature", "0", "--seed", "0", "--format", "chat"]
    rates: dict[str, list[float]] = {"run": [], "tui": []}
    rss: dict[str, int] = {"run": 0, "tui": 0}
    tokens: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "rate.db"
        run_once("run", db, options)  # warm-up: page cache, the database file
        for i in range(repeats):
            # Alternate which goes first, so a slow stretch of the shared machine hits both.
            for kind in ("tui", "run") if i % 2 == 0 else ("run", "tui"):
                rate, n, peak = run_once(kind, db, options)
                rates[kind].append(rate)
                rss[kind] = max(rss[kind], peak)
                tokens[kind] = n
                print(f"  {kind:3} {rate:6.1f} tok/s ({n} tok)", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["tui"] / med["run"]
    # Each TUI run next to its `mstui run` partner: the load of a shared machine drifts less
    # within a pair than across the whole benchmark.
    paired = statistics.median(t / r for t, r in zip(rates["tui"], rates["run"], strict=True))
    print(f"generation rate, --threads {threads}, {rounds} rounds of <= {max_tokens} tok, "
          f"median of {repeats} interleaved: TUI {med['tui']:.1f} tok/s, mstui run "
          f"{med['run']:.1f} tok/s, ratio {ratio:.3f}, median of paired ratios {paired:.3f} "
          f"(target >= 0.95); tokens per run {tokens.get('tui')} vs {tokens.get('run')}; peak RSS "
          f"TUI {rss['tui']} MiB, run {rss['run']} MiB; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    return ratio >= 0.95


def stream_report(tps: float, n_tokens: int) -> bool:
    """The scripted-stream figures and the first frame; True when every target is met."""
    with tempfile.TemporaryDirectory() as tmp:
        frame = first_frame_seconds(str(Path(tmp) / "ff.db"))
        cli = "from mstui.cli.parser import build_parser; build_parser()"
        frame_cli = first_frame_seconds(str(Path(tmp) / "ff2.db"), cli)
        r = asyncio.run(stream_bench(tps, n_tokens, str(Path(tmp) / "bench.db")))
    print(
        f"first frame: {frame * 1000:.0f} ms from interpreter start (target < 1000 ms); "
        f"{frame_cli * 1000:.0f} ms with the `mstui` command's parser imports"
    )
    print(
        f"tokens produced {r['tokens_produced']:.0f}, seen on screen {r['tokens_seen']:.0f}; "
        f"final text identical: {bool(r['text_identical'])}"
    )
    print(
        f"produced {r['produced_tok_s']:.0f} tok/s, seen {r['seen_tok_s']:.0f} tok/s, "
        f"ratio {r['ratio']:.3f}"
    )
    print(
        f"key-press to screen while streaming: median {r['latency_median_ms']:.1f} ms, "
        f"p90 {r['latency_p90_ms']:.1f} ms over {r['key_presses']:.0f} presses "
        f"(targets: median < 50 ms, p90 < 100 ms)", flush=True
    )
    return bool(
        r["text_identical"]
        and r["tokens_seen"] == r["tokens_produced"]
        and r["latency_median_ms"] < 50
        and r["latency_p90_ms"] < 100
        and frame < 1.0
    )


# ---- the why-view on a stored run of 16 rounds -----------------------------------------------


def _sixteen_round_run(db: Path) -> int:
    """A 16-round markov run stored in a copy of the shipped traces.db, decided by its fit
    (observation model and mixture: the why-view's heaviest path)."""
    import random
    import shutil

    from mstui.core.policies import parse_policy
    from mstui.store import Store
    from mstui.store.sample import sample_round
    from mstui.ui.view import fit_of_stored

    shutil.copy(ROOT / "traces.db", db)
    with Store(db) as store:
        row = store.fits()[0]
        fit, obs = fit_of_stored(store.get_fit(int(row["id"])))
        assert fit is not None
        policy = parse_policy("markov", fit, obs, allow_sparse=True)
        scope = row["scope"]
        run_id = store.start_run(question="What is 12 + 5?", gold="17", max_rounds=16,
                                 model=scope["model"], backend="llama.cpp", problem_set="gen",
                                 problem_id="bench", level=None, strategy=scope["strategy"],
                                 policy=policy.spec, fit_id=int(row["id"]),
                                 settings={"price": 0.0})
        rng, history, prev = random.Random(0), [], None
        for t in range(16):
            ok = rng.random() < 0.4
            answer = "17" if ok else str(17 + rng.randint(1, 3))
            history.append(sample_round(t, answer=answer, correct=ok, rng=rng, previous=prev))
            prev = answer
            store.add_round(run_id, history[-1], policy.decide(history, 16))
        store.finish_run(run_id, "finished")
    return run_id


async def why_bench(db: Path, samples: int) -> list[float]:
    """Seconds from `y` to the why-view painted, on the last round of a 16-round replay."""
    from textual import events

    from mstui.config import RunConfig
    from mstui.engine.scripted import ScriptedBackend
    from mstui.ui.app import make_app
    from mstui.ui.replay import ReplayScreen
    from mstui.ui.widgets import StreamView

    run_id = _sixteen_round_run(db)
    app = make_app(RunConfig(), db_path=db, backend_factory=lambda c: ScriptedBackend(["x"]))
    out: list[float] = []
    async with app.run_test(size=(130, 42)) as pilot:
        while app.worker.backend is None:
            await pilot.pause(0.01)
        screen = ReplayScreen(run_id)
        await app.push_screen(screen)
        while screen.run is None:
            await pilot.pause(0.01)
        screen.show_round(15)
        await pilot.pause(0.1)
        driver = app._driver
        assert driver is not None
        for _ in range(samples):
            event = events.Key("y", "y")
            event.set_sender(app)
            pressed = time.perf_counter()
            driver.send_message(event)
            panel = screen.query_one(StreamView)
            while panel.overlay_body is None:
                await asyncio.sleep(0.0005)
            painted = asyncio.get_running_loop().create_future()
            app.call_after_refresh(lambda f=painted: f.done() or f.set_result(None))
            await painted
            out.append(time.perf_counter() - pressed)
            await pilot.press("y")  # closes it
            while panel.overlay_body is not None:
                await asyncio.sleep(0.001)
            await pilot.pause(0.02)
    return out


def why_report(samples: int) -> bool:
    """The why-view's time to screen; True when the median is under 50 ms."""
    with tempfile.TemporaryDirectory() as tmp:
        times = asyncio.run(why_bench(Path(tmp) / "why.db", samples))
    med = 1000 * statistics.median(times)
    p90 = 1000 * sorted(times)[int(0.9 * (len(times) - 1))]
    print(f"why-view on a 16-round stored run (mixture + observation model), y to painted: "
          f"median {med:.1f} ms, p90 {p90:.1f} ms over {len(times)} opens (target median < 50 ms)",
          flush=True)
    return med < 50


def main() -> int:
    """Print the figures; exit 1 when a target is missed."""
    import resource

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=("stream", "refresh", "why", "rate"), default=None,
                    help="one section (default: all)")
    ap.add_argument("--tps", type=float, default=2000.0, help="scripted tokens per second")
    ap.add_argument("--tokens", type=int, default=4000, help="tokens in the streamed round")
    ap.add_argument("--samples", type=int, default=25, help="refreshes timed at each length")
    ap.add_argument("--batch", type=int, default=4,
                    help="tokens per timed refresh (4: ~120 tok/s drained 30 times a second)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="llama.cpp threads for both the TUI and `mstui run`")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved runs of each")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per run")
    ap.add_argument("--max-tokens", type=int, default=256, help="tokens per round at most")
    args = ap.parse_args()
    ok = True
    if args.only in (None, "stream"):
        ok = stream_report(args.tps, args.tokens) and ok
    if args.only in (None, "refresh"):
        ok = refresh_report(args.samples, args.batch) and ok
    if args.only in (None, "why"):
        ok = why_report(args.samples) and ok
    if args.only in (None, "rate"):
        ok = rate_report(args.threads, args.repeats, args.rounds, args.max_tokens) and ok
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (the in-process app): {peak:.0f} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
