"""Closed forms of the chain against the recurrence and a seeded Monte Carlo simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mstui.core.markov import TwoStateChain

# λ > 0, λ < 0, λ = 0 (a + b = 1), frozen (a = b = 0), flip (a = b = 1), one-sided chains.
GRID = [
    (0.1, 0.3),
    (0.3, 0.1),
    (0.6, 0.7),
    (0.9, 0.8),
    (0.3, 0.7),
    (0.5, 0.5),
    (0.0, 0.0),
    (1.0, 1.0),
    (0.0, 0.4),
    (0.4, 0.0),
    (1.0, 0.0),
    (0.05, 0.05),
]
P0S = [0.0, 0.2, 0.5, 0.8, 1.0]


@pytest.mark.parametrize(("a", "b"), GRID)
def test_closed_form_equals_recurrence(a: float, b: float) -> None:
    c = TwoStateChain(a, b)
    for p0 in P0S:
        p = p0
        for n in range(13):
            assert c.accuracy(p0, n) == pytest.approx(p, abs=1e-12)
            assert c.gain(p0, n) == pytest.approx(p - p0, abs=1e-12)
            p_next = b + c.lam * p  # p_{t+1} = b + λ p_t
            assert c.marginal_gain(p0, n + 1) == pytest.approx(p_next - p, abs=1e-12)
            p = p_next


@pytest.mark.parametrize(("a", "b"), GRID)
def test_closed_form_matches_monte_carlo(a: float, b: float) -> None:
    rng = np.random.default_rng(12345)
    m, n_max = 20000, 6
    c = TwoStateChain(a, b)
    for p0 in (0.0, 0.3, 0.9):
        x = rng.random(m) < p0
        for n in range(n_max + 1):
            p = c.accuracy(p0, n)
            # 4 standard errors of a binomial mean; exact 0/1 probabilities must match exactly.
            tol = 4 * math.sqrt(p * (1 - p) / m) + 1e-12
            assert abs(x.mean() - p) <= tol, (a, b, p0, n)
            u = rng.random(m)
            x = np.where(x, u >= a, u < b)


def test_vectorized_accuracy_broadcasts() -> None:
    c = TwoStateChain(0.1, 0.3)
    p0 = np.array([0.2, 0.5, 0.9])
    out = c.accuracy(p0[:, None], np.arange(4)[None, :])
    assert isinstance(out, np.ndarray) and out.shape == (3, 4)
    assert out[1, 2] == pytest.approx(0.75 + 0.36 * (0.5 - 0.75))
    assert isinstance(c.accuracy(0.2, 3), float)


def test_properties_and_degenerate_cases() -> None:
    c = TwoStateChain(0.1, 0.3)
    assert c.pi == pytest.approx(0.75) and c.lam == pytest.approx(0.6)
    assert c.half_life == pytest.approx(math.log(2) / -math.log(0.6))
    frozen = TwoStateChain(0.0, 0.0)
    assert frozen.pi is None and frozen.frozen and frozen.half_life == math.inf
    assert frozen.accuracy(0.3, 10) == 0.3 and frozen.regime(0.3) == "neutral"
    assert frozen.expected_gain_next(0.3) == 0.0
    assert frozen.dataset_bounds([0.2, 0.6]).upper == pytest.approx(0.4)
    assert TwoStateChain(0.3, 0.7).half_life == 0.0
    flip = TwoStateChain(1.0, 1.0)
    assert flip.pi == 0.5 and flip.half_life == math.inf
    assert flip.accuracy(0.2, 1) == pytest.approx(0.8) and flip.accuracy(0.2, 2) == pytest.approx(
        0.2
    )


def test_regimes_are_p0_vs_pi_not_b_vs_a() -> None:
    c = TwoStateChain(0.1, 0.3)  # b > a, π = 0.75
    assert c.regime(0.5) == "beneficial"
    assert c.regime(0.9) == "detrimental"  # b > a, yet refining hurts
    assert c.regime(0.75) == "neutral"
    assert c.expected_gain_next(0.5) == pytest.approx(0.3 - 0.4 * 0.5)


@pytest.mark.parametrize(("a", "b"), GRID)
def test_best_round_equals_brute_force(a: float, b: float) -> None:
    c = TwoStateChain(a, b)
    for p0 in (0.0, 0.1, 0.45, 0.5, 0.7, 1.0):
        for n_max in (0, 1, 5, 12):
            acc = [c.accuracy(p0, n) for n in range(n_max + 1)]
            assert c.best_round(p0, n_max) == int(np.argmax(acc)), (a, b, p0, n_max)


def test_dataset_bounds_and_gated_accuracy() -> None:
    c = TwoStateChain(0.1, 0.3)
    p0s = np.array([0.1, 0.5, 0.9, 1.0])
    bd = c.dataset_bounds(p0s)
    assert bd.neutral == pytest.approx(p0s.mean())
    assert bd.upper == pytest.approx(np.maximum(p0s, 0.75).mean())
    assert bd.lower == pytest.approx(np.minimum(p0s, 0.75).mean())
    # Perfect gating run long converges to the upper bound; worst gating to the lower.
    assert c.gated_accuracy(p0s, p0s < 0.75, 200) == pytest.approx(bd.upper)
    assert c.gated_accuracy(p0s, p0s > 0.75, 200) == pytest.approx(bd.lower)
    assert c.gated_accuracy(p0s, np.zeros(4), 5) == pytest.approx(bd.neutral)
    lo, hi = c.question_bounds(0.9)
    assert (lo, hi) == (pytest.approx(0.75), 0.9)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, "x"])
def test_bad_probabilities_raise(bad: object) -> None:
    with pytest.raises(ValueError, match="rate a"):
        TwoStateChain(bad, 0.2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="p0"):
        TwoStateChain(0.1, 0.2).accuracy(bad, 1)  # type: ignore[call-overload]


def test_bad_rounds_and_empty_inputs_raise() -> None:
    c = TwoStateChain(0.1, 0.2)
    with pytest.raises(ValueError):
        c.accuracy(0.5, -1)
    with pytest.raises(ValueError):
        c.accuracy(0.5, 1.5)
    with pytest.raises(ValueError):
        c.marginal_gain(0.5, 0)
    with pytest.raises(ValueError):
        c.dataset_bounds([])
    with pytest.raises(ValueError):
        c.accuracy([0.2, math.nan], 1)
