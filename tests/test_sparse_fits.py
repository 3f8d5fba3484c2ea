"""Rates that rest on (almost) no transitions: intervals that cover, flags (issue 11, item 2)."""

from __future__ import annotations

import numpy as np
import pytest

from mstui.core.fitting import MIN_ROW_TRANSITIONS, fit_pool
from tests.simulate import simulate_chains

simulate = simulate_chains  # independent of the core's simulators


def coverage(a: float, b: float, p0: float, nq: int, nr: int, reps: int,
             seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    hit_a = hit_b = dense_b = hit_dense_b = flagged_b = 0
    for _ in range(reps):
        f = fit_pool(simulate(rng, nq, nr, a, b, p0))
        hit_a += f.a_lo <= a <= f.a_hi
        ok_b = f.b_lo <= b <= f.b_hi
        hit_b += ok_b
        if "b" in f.sparse_rows:
            flagged_b += 1
            assert "few-from-wrong" in f.flags
        else:
            dense_b += 1
            hit_dense_b += ok_b
    return {"a": hit_a / reps, "b": hit_b / reps, "b_dense": hit_dense_b / max(dense_b, 1),
            "b_flagged": flagged_b / reps}


def test_interval_coverage_in_the_sparse_corner() -> None:
    # a = 0.01, b = 0.005, p0 = 0.9, 20 questions x 4 rounds: the central interval covered b 62%
    # of the time, because with zero repairs its lower end excludes small b. Now one-sided.
    cov = coverage(0.01, 0.005, 0.9, 20, 4, reps=1500, seed=11)
    assert cov["b"] > 0.85, cov
    assert cov["b_dense"] > 0.93, cov  # what misses is the flagged regime (no W transitions)
    assert 0.2 < cov["b_flagged"] < 0.55, cov  # about 37%: the regime is common, and flagged
    assert cov["a"] > 0.85, cov


@pytest.mark.parametrize(("a", "b", "p0"), [(0.1, 0.3, 0.4), (0.05, 0.2, 0.5)])
def test_interval_coverage_is_nominal_with_data(a: float, b: float, p0: float) -> None:
    cov = coverage(a, b, p0, 60, 5, reps=800, seed=3)
    assert 0.92 < cov["a"] < 0.98 and 0.92 < cov["b"] < 0.98, cov


def test_row_flags_follow_the_counts() -> None:
    x = np.ones((1, MIN_ROW_TRANSITIONS + 1), np.bool_)  # 5 transitions C→C, none from W
    f = fit_pool(x)
    assert f.sparse_rows == ("b",) and "few-from-wrong" in f.flags
    assert "few-from-correct" not in f.flags
    reason = f.sparse_reason()
    assert reason is not None and "b rests on 0 transition(s) from W" in reason
    assert "prior" in reason
