"""Each fit check's size under a true chain and its power against the alternative it names
(issue 11, item 4), by independent simulation with fixed seeds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mstui.core.fitting import accuracy_check, fit_pool, heterogeneity_check, markov_check
from tests.simulate import simulate_chains

Gen = Callable[[np.random.Generator], np.ndarray]


chain = simulate_chains  # independent of the core's simulators


def mixture(rng: np.random.Generator) -> np.ndarray:
    """A strong easy/hard mixture: easy questions stay right, hard ones stay wrong."""
    hard = rng.random(300) < 0.5
    easy_x, hard_x = chain(rng, 300, 6, 0.02, 0.5, 0.8), chain(rng, 300, 6, 0.5, 0.02, 0.1)
    return np.where(hard[:, None], hard_x, easy_x)


def jump(rng: np.random.Generator) -> np.ndarray:
    """Repairs in the first re-answer only, then a plateau: not a geometric accuracy curve."""
    x = np.zeros((100, 6), np.bool_)
    x[:, 0] = rng.random(100) < 0.3
    for t in range(1, 6):
        u = rng.random(100)
        x[:, t] = np.where(x[:, t - 1], u >= 0.05, u < (0.5 if t == 1 else 0.02))
    return x


def long_form(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nq, nr = x.shape
    return np.repeat(np.arange(nq), nr), np.tile(np.arange(nr), nq), x.ravel()


def rejection_rate(gen: Gen, check: str, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(reps):
        x = gen(rng)
        q, r, c = long_form(x)
        fit = fit_pool(x)
        if check == "accuracy":
            p = accuracy_check(q, r, c, fit, draws=99, seed=i).p_value
        elif check == "heterogeneity":
            p = heterogeneity_check(q, r, c, fit, draws=99, seed=i).p_value
        else:
            p = markov_check(q, r, c).p_value
        hits += p < 0.05
    return hits / reps


TRUE_CHAIN: Gen = lambda rng: chain(rng, 100, 6, 0.1, 0.3, 0.4)  # noqa: E731


@pytest.mark.parametrize("check", ["accuracy", "heterogeneity", "markov"])
def test_size_under_a_true_chain_is_at_most_nominal(check: str) -> None:
    # 200 true chains: a check of size 5% rejects 10 ± 3; the old χ² accuracy check rejected 0-1.
    rate = rejection_rate(TRUE_CHAIN, check, 200, seed=21)
    assert rate <= 0.10, rate
    if check == "accuracy":
        assert rate >= 0.02, rate  # the bootstrap is not conservative like the χ² it replaced


def test_accuracy_check_detects_a_non_geometric_curve() -> None:
    assert rejection_rate(jump, "accuracy", 20, seed=3) >= 0.9


def test_heterogeneity_check_detects_an_easy_hard_mixture() -> None:
    assert rejection_rate(mixture, "heterogeneity", 20, seed=4) >= 0.6
