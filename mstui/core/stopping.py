"""Closed-form stopping rules of DESIGN §1.2: how many refinement rounds n to run after round 0.

Every rule returns the *number of refinement rounds* n (so n + 1 rounds in total) and respects a
hard cap `n_max` on n. Each is defined as "the smallest n in [0, n_max] meeting the rule's
condition, else n_max (capped)"; the closed form gives a first guess and a short exact check
around it removes floating-point off-by-ones, so results equal a brute-force search.

Where a rule only makes sense when scaling helps (gain fraction γ, target τ, price κ), it first
applies the gate: if p0 is not below π (neutral, detrimental or a frozen chain) the answer is
n = 0. The ε-convergence rule is regime-agnostic: it says when p_n is within ε of π.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mstui.core.markov import TwoStateChain, check_probability


@dataclass(frozen=True)
class StopResult:
    """A stopping rule's answer: n refinement rounds, why, and whether the cap cut it short."""

    n: int
    rule: str  # "gate", "gain-fraction", "target", "epsilon", "price"
    reason: str
    capped: bool = False


def _check_cap(n_max: int) -> int:
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 0:
        raise ValueError(f"n_max must be a whole number >= 0, got {n_max!r}")
    return n_max


def _smallest(cond: Callable[[int], bool], guess: float, n_max: int) -> int | None:
    """Smallest n in [0, n_max] with cond(n), for a condition that stays true once true.

    `guess` is the closed form; the loops fix rounding in it (each moves at most a step or two).
    """
    if not cond(n_max):
        return None
    n = 0 if not math.isfinite(guess) else min(max(math.ceil(guess), 0), n_max)
    while n < n_max and not cond(n):
        n += 1
    while n > 0 and cond(n - 1):
        n -= 1
    return n


def _scan(cond: Callable[[int], bool], n_max: int, limit: int = 64) -> int | None:
    """Smallest n with cond(n) by direct search; used where λ ≤ 0 makes the logs undefined.

    With λ ≤ 0 every rule here settles within a couple of rounds, so a short scan suffices; the
    limit keeps it bounded for huge caps (λ = −1 oscillates forever and is checked at n_max).
    """
    for n in range(min(n_max, limit) + 1):
        if cond(n):
            return n
    return None


def _not_beneficial(chain: TwoStateChain, p0: float, rule: str) -> StopResult | None:
    pi = chain.pi
    if pi is None:
        return StopResult(0, rule, "The chain is frozen (a = b = 0): refining changes nothing.")
    if p0 >= pi:
        return StopResult(
            0, rule, f"p0 = {p0:.3f} is not below π = {pi:.3f}: refining would not raise accuracy."
        )
    return None


def gate(chain: TwoStateChain, p0: float, n_max: int) -> StopResult:
    """Paper's gate: p0 ≥ π → 0; else run to the best round (n_max if λ > 0, 1 if λ ≤ 0)."""
    p0 = check_probability("p0", p0)
    n_max = _check_cap(n_max)
    closed = _not_beneficial(chain, p0, "gate")
    if closed is not None:
        return closed
    n = chain.best_round(p0, n_max)
    if chain.lam > 0.0:
        return StopResult(
            n, "gate", f"p0 = {p0:.3f} < π = {chain.pi:.3f}: refine to the cap.", True
        )
    return StopResult(n, "gate", f"p0 < π and λ = {chain.lam:.3f} ≤ 0: round 1 is the best.")


def gain_fraction(chain: TwoStateChain, p0: float, gamma: float, n_max: int) -> StopResult:
    """Smallest n with 1 − λ^n ≥ γ (a fraction γ of the attainable gain π − p0); gated."""
    p0 = check_probability("p0", p0)
    gamma = check_probability("gain fraction γ", gamma)
    n_max = _check_cap(n_max)
    closed = _not_beneficial(chain, p0, "gain-fraction")
    if closed is not None:
        return closed
    lam = chain.lam

    def cond(n: int) -> bool:
        return 1.0 - lam**n >= gamma

    if lam > 0.0:
        guess = math.log(1.0 - gamma) / math.log(lam) if gamma < 1.0 else math.inf
        n = _smallest(cond, guess, n_max)
    else:
        n = _scan(cond, n_max)
    if n is None:
        return StopResult(n_max, "gain-fraction", f"γ = {gamma:g} is not reached by the cap.", True)
    return StopResult(n, "gain-fraction", f"{n} round(s) give at least {gamma:.0%} of the gain.")


def target(chain: TwoStateChain, p0: float, tau: float, n_max: int) -> StopResult:
    """Smallest n with p_n ≥ τ; n = 0 when p0 ≥ τ already; gated; capped when τ is out of reach.

    With λ ≥ 0, τ ≥ π is never reached (π is the upper bound), so the answer is the cap with a
    reason saying so; with λ < 0 the overshoot at round 1 can pass π.
    """
    p0 = check_probability("p0", p0)
    tau = check_probability("target τ", tau)
    n_max = _check_cap(n_max)
    if p0 >= tau:
        return StopResult(0, "target", f"p0 = {p0:.3f} already meets τ = {tau:.3f}.")
    closed = _not_beneficial(chain, p0, "target")
    if closed is not None:
        return closed
    pi, lam = chain.fixed_point(p0), chain.lam

    def cond(n: int) -> bool:
        return float(chain.accuracy(p0, n)) >= tau

    if lam > 0.0:
        guess = math.log((pi - tau) / (pi - p0)) / math.log(lam) if tau < pi else math.inf
        n = _smallest(cond, guess, n_max)
    else:
        n = _scan(cond, n_max)
    if n is None:
        why = f"τ = {tau:.3f} ≥ π = {pi:.3f} is out of reach" if tau >= pi else "τ is not reached"
        return StopResult(n_max, "target", f"{why}; stopping at the cap.", True)
    return StopResult(n, "target", f"{n} round(s) reach accuracy τ = {tau:.3f}.")


def epsilon(chain: TwoStateChain, p0: float, eps: float, n_max: int) -> StopResult:
    """Smallest n with |p_n − π| = |λ|^n |p0 − π| ≤ ε (not gated; the frozen chain is converged)."""
    p0 = check_probability("p0", p0)
    if not (math.isfinite(eps) and eps > 0.0):
        raise ValueError(f"ε must be a positive number, got {eps!r}")
    n_max = _check_cap(n_max)
    pi = chain.fixed_point(p0)
    dist, m = abs(p0 - pi), abs(chain.lam)

    def cond(n: int) -> bool:
        return m**n * dist <= eps

    if dist <= eps:
        return StopResult(0, "epsilon", f"p0 is already within ε = {eps:g} of π.")
    if 0.0 < m < 1.0:
        n = _smallest(cond, math.log(eps / dist) / math.log(m), n_max)
    else:
        n = _scan(cond, n_max)  # m = 0: one round; m = 1: never
    if n is None:
        return StopResult(
            n_max, "epsilon", "|λ| = 1: accuracy never converges; stopping at cap.", True
        )
    return StopResult(n, "epsilon", f"After {n} round(s) accuracy is within ε = {eps:g} of π.")


def price(
    chain: TwoStateChain, p0: float, kappa: float, round_cost: float, n_max: int
) -> StopResult:
    """Smallest n with Δ_{n+1} ≤ κ·T: continue only while the next round's gain beats its price.

    A tie stops (a round that gains exactly its price is not worth running), so κ = 0 is the pure
    gate followed by "refine while accuracy still rises". With λ < 0, Δ_2 < 0, so n ≤ 1.
    """
    p0 = check_probability("p0", p0)
    if not (math.isfinite(kappa) and kappa >= 0.0):
        raise ValueError(f"price κ must be a finite number >= 0, got {kappa!r}")
    if not (math.isfinite(round_cost) and round_cost >= 0.0):
        raise ValueError(f"round cost T must be a finite number >= 0, got {round_cost!r}")
    n_max = _check_cap(n_max)
    closed = _not_beneficial(chain, p0, "price")
    if closed is not None:
        return closed
    pi, lam, bar = chain.fixed_point(p0), chain.lam, kappa * round_cost

    def cond(n: int) -> bool:
        return lam**n * (1.0 - lam) * (pi - p0) <= bar

    if 0.0 < lam < 1.0:
        first = (1.0 - lam) * (pi - p0)
        guess = math.log(bar / first) / math.log(lam) if bar > 0.0 else math.inf
        n = _smallest(cond, guess, n_max)
    else:
        n = _scan(cond, n_max)
    if n is None:
        return StopResult(
            n_max, "price", "Every round up to the cap gains more than its price.", True
        )
    return StopResult(n, "price", f"Round {n + 1} would gain no more than κ·T = {bar:.3g}.")
