"""Closed-form stopping rules equal a brute-force search over n."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from mstui.core import stopping
from mstui.core.markov import TwoStateChain

CHAINS = [
    (0.1, 0.3),
    (0.05, 0.1),
    (0.3, 0.7),
    (0.6, 0.7),
    (1.0, 1.0),
    (0.0, 0.0),
    (0.2, 0.2),
    (0.0, 0.5),
    (0.5, 0.0),
    (0.01, 0.02),
]
P0S = [0.0, 0.1, 0.3, 0.5, 0.66, 0.9, 1.0]
N_MAX = 40


def _beneficial(c: TwoStateChain, p0: float) -> bool:
    return c.pi is not None and p0 < c.pi


def _brute(
    c: TwoStateChain, p0: float, cond: Callable[[int], bool], gated: bool = True
) -> tuple[int, bool]:
    if gated and not _beneficial(c, p0):
        return 0, False
    for n in range(N_MAX + 1):
        if cond(n):
            return n, False
    return N_MAX, True


@pytest.mark.parametrize(("ab", "p0"), list(itertools.product(CHAINS, P0S)))
def test_rules_equal_brute_force(ab: tuple[float, float], p0: float) -> None:
    c = TwoStateChain(*ab)
    lam, pi = c.lam, c.fixed_point(p0)
    for gamma in (0.0, 0.5, 0.75, 0.9, 0.99, 1.0):
        r = stopping.gain_fraction(c, p0, gamma, N_MAX)

        def frac(n: int, g: float = gamma) -> bool:
            return bool(1 - lam**n >= g)

        assert (r.n, r.capped) == _brute(c, p0, frac), gamma
    for tau in (0.2, 0.5, 0.7, 0.95):
        r = stopping.target(c, p0, tau, N_MAX)

        def reach(n: int, t: float = tau) -> bool:
            return c.accuracy(p0, n) >= t

        exp = (0, False) if p0 >= tau else _brute(c, p0, reach)
        assert (r.n, r.capped) == exp, tau
    for eps in (1e-4, 0.01, 0.1):
        r = stopping.epsilon(c, p0, eps, N_MAX)

        def conv(n: int, e: float = eps) -> bool:
            return bool(abs(lam) ** n * abs(p0 - pi) <= e)

        assert (r.n, r.capped) == _brute(c, p0, conv, gated=False), eps
    for kappa, cost in ((0.0, 100.0), (1e-5, 100.0), (1e-3, 50.0), (1e-2, 300.0)):
        r = stopping.price(c, p0, kappa, cost, N_MAX)

        def cheap(n: int, k: float = kappa, t: float = cost) -> bool:
            return bool(lam**n * (1 - lam) * (pi - p0) <= k * t)

        assert (r.n, r.capped) == _brute(c, p0, cheap), kappa
    g = stopping.gate(c, p0, N_MAX)
    acc = [c.accuracy(p0, n) for n in range(N_MAX + 1)]
    assert g.n == (acc.index(max(acc)) if _beneficial(c, p0) else 0)


def test_closed_form_numbers() -> None:
    c = TwoStateChain(0.1, 0.3)  # λ = 0.6, π = 0.75
    assert stopping.gain_fraction(c, 0.2, 0.75, 50).n == 3  # 1 − 0.6³ = 0.784 ≥ 0.75
    assert stopping.target(c, 0.2, 0.7, 50).n == 5
    assert stopping.epsilon(c, 0.2, 0.01, 50).n == 8  # 0.6^8·0.55 = 0.0092 ≤ 0.01 < 0.6^7·0.55
    assert stopping.gate(c, 0.8, 50).n == 0


def test_edge_results_are_defined() -> None:
    c = TwoStateChain(0.1, 0.3)
    r = stopping.target(c, 0.2, 0.9, 10)  # τ ≥ π: out of reach
    assert r.capped and r.n == 10 and "out of reach" in r.reason
    assert stopping.price(c, 0.9, 0.0, 100, 10).n == 0  # detrimental: gate closed
    assert stopping.gain_fraction(TwoStateChain(0, 0), 0.2, 0.5, 10).n == 0  # frozen
    assert stopping.epsilon(TwoStateChain(1, 1), 0.2, 0.01, 10).capped  # never converges
    assert stopping.gate(TwoStateChain(0.6, 0.7), 0.2, 10).n == 1  # λ < 0: overshoot


def test_bad_arguments_raise() -> None:
    c = TwoStateChain(0.1, 0.3)
    with pytest.raises(ValueError):
        stopping.gain_fraction(c, 0.2, 1.5, 10)
    with pytest.raises(ValueError):
        stopping.epsilon(c, 0.2, 0.0, 10)
    with pytest.raises(ValueError):
        stopping.price(c, 0.2, -1.0, 10, 10)
    with pytest.raises(ValueError):
        stopping.gate(c, float("nan"), 10)
    with pytest.raises(ValueError):
        stopping.gate(c, 0.2, -1)
