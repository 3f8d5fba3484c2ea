"""The tok/s collapse rule (mstui/core/throughput.py) and the threads default it goes with."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mstui.config import default_threads
from mstui.core.throughput import (
    MIN_TOKENS,
    RateSample,
    RateWatch,
    reference_rate,
    sample_of,
    slow_rate,
)
from tests.helpers import make_record
from tests.test_ui_live import SIZE, scripted_app, wait_for


def test_default_threads_is_half_the_usable_cores_at_least_one() -> None:
    assert [default_threads(n) for n in (1, 2, 3, 4, 8, 16)] == [1, 1, 1, 2, 4, 8]
    assert default_threads() >= 1


def test_rounds_too_short_to_time_are_not_judged() -> None:
    # 60 tokens in 0.02 s (a scripted or tiny model): one hiccup would triple the time.
    blink = RateSample(60, 3000.0)
    assert not blink.timed and RateSample(60, 30.0).timed
    assert reference_rate([blink]) is None
    assert slow_rate([RateSample(60, 300.0), RateSample(60, 3000.0 / 4)]) is None


def test_a_round_under_a_third_of_the_best_earlier_rate_is_slow() -> None:
    fast, ok, slow = RateSample(60, 30.0), RateSample(60, 10.5), RateSample(60, 9.5)
    assert slow_rate([fast, ok]) is None  # 10.5 tok/s is above 30 / 3
    got = slow_rate([fast, ok, slow], threads=4)
    assert got is not None and (got.rate, got.reference) == (9.5, 30.0)
    assert "--threads 2 (now 4)" in got.hint and "9.5 tok/s" in got.hint and "30.0" in got.hint
    assert "\n" not in got.hint
    # One thread already: the hint still names --threads and says what is left to do.
    one = slow_rate([fast, slow], threads=1)
    assert one is not None and "--threads is already 1" in one.hint
    unknown = slow_rate([fast, slow])
    assert unknown is not None and "lower --threads" in unknown.hint


def test_reference_can_come_from_earlier_runs_and_short_rounds_do_not_count() -> None:
    assert slow_rate([RateSample(60, 9.0)]) is None  # nothing to compare with yet
    assert slow_rate([RateSample(60, 9.0)], 30.0) is not None  # the model's earlier rate
    # A round of a few tokens is timed too coarsely, on either side of the comparison.
    tiny = RateSample(MIN_TOKENS - 1, 300.0)
    assert reference_rate([tiny]) is None
    assert slow_rate([tiny, RateSample(60, 9.0)]) is None
    assert slow_rate([RateSample(60, 30.0), RateSample(MIN_TOKENS - 1, 1.0)]) is None
    halved = [RateSample(60, 30.0), RateSample(60, 12.0)]  # 12 tok/s: under 1/2, over 1/3
    assert slow_rate(halved) is None
    got = slow_rate(halved, factor=2.0)
    assert got is not None and "under 1/2 of" in got.hint


def test_rate_watch_says_it_once_per_model() -> None:
    def rec(tokens: int, seconds: float, finish: str = "stop"):  # type: ignore[no-untyped-def]
        r = make_record(0, "p", "r", "5")
        return dataclasses.replace(r, completion_tokens=tokens, gen_seconds=seconds,
                                   finish_reason=finish)

    watch = RateWatch(threads=2)
    assert sample_of(rec(41, 1.0)) == RateSample(40, 40.0)
    assert sample_of(rec(41, 1.0, "cancelled")) is None
    assert watch.add(rec(41, 1.0)) is None and watch.best == 40.0
    assert watch.add(rec(41, 8.0, "error")) is None  # a failed round says nothing
    slow = watch.add(rec(41, 8.0))  # 5 tok/s against 40
    assert slow is not None and "--threads 1 (now 2)" in slow.hint
    assert watch.add(rec(41, 8.0)) is None  # said once: the fix takes a restart
    assert watch.best == 40.0


async def test_tui_notifies_once_when_a_round_collapses(tmp_path: Path) -> None:
    # A scripted backend at 100 tok/s; in step mode, after round 0, it drops to 20 tok/s (what
    # other work on the cores does to llama.cpp): the worker says so, naming --threads, once.
    app = scripted_app(tmp_path / "traces.db", tps=100, rounds=3, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        # An in-process backend is watched (set just after the backend, on the worker thread).
        await wait_for(pilot, lambda: app.worker.rates is not None)
        await pilot.press("s", "n", "r")
        await wait_for(pilot, lambda: app.worker.paused)
        assert app.live.records[0].completion_tokens > MIN_TOKENS
        assert not [n for n in app._notifications if "tok/s" in n.message]
        app.worker.backend.delay = 1.0 / 20  # type: ignore[union-attr]
        await pilot.press("space")
        await wait_for(pilot, lambda: app.worker.paused and len(app.live.records) == 2, 30)
        said = [n for n in app._notifications if "generation fell to" in n.message]
        assert len(said) == 1 and "--threads" in said[0].message
        assert said[0].severity == "warning"
        await pilot.press("space")  # the third round is as slow: nothing said again
        await wait_for(pilot, lambda: app.worker.paused and len(app.live.records) == 3, 30)
        assert len([n for n in app._notifications if "generation fell to" in n.message]) == 1
