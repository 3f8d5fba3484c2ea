"""UI benchmark: a scripted backend at 2,000 tok/s — tokens seen vs produced, text fidelity,
key-press-to-screen latency while streaming, and time to the first frame.

Run: .venv/bin/python bench/bench_ui.py [--tps 2000] [--tokens 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
        cwd=Path(__file__).resolve().parent.parent,
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
        text_ok = view.text == record.response == response
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


def main() -> int:
    """Print the figures; exit 1 when a target (every token, < 100 ms, < 1 s) is missed."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tps", type=float, default=2000.0, help="scripted tokens per second")
    ap.add_argument("--tokens", type=int, default=4000, help="tokens in the streamed round")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        frame = first_frame_seconds(str(Path(tmp) / "ff.db"))
        cli = "from mstui.cli.parser import build_parser; build_parser()"
        frame_cli = first_frame_seconds(str(Path(tmp) / "ff2.db"), cli)
        r = asyncio.run(stream_bench(args.tps, args.tokens, str(Path(tmp) / "bench.db")))
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
        f"(target median < 100 ms)"
    )
    ok = (
        r["text_identical"]
        and r["tokens_seen"] == r["tokens_produced"]
        and r["latency_median_ms"] < 100
        and frame < 1.0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
