"""Benchmark of the mixture of chains beside the single chain: a 10^6-round fit, a decision.

Targets (issue 11): the mixture fit on 10^6 rounds under 2 s (K chosen among 1..4 on held-out
likelihood, then refitted), a live mixture decision under 100 us.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstui.core.evaluation import simulate_pool
from mstui.core.fitting import fit_chain, fit_pool
from mstui.core.mixture import MixtureFit, fit_mixture, simulate_mixture
from mstui.core.policies import MarkovPolicy, MixturePolicy


def median_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of `repeats` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_decision_us(decide: Callable[[], object], n: int = 2000) -> float:
    """Median microseconds of one call."""
    per = []
    for _ in range(n):
        t0 = time.perf_counter()
        decide()
        per.append(time.perf_counter() - t0)
    return statistics.median(per) * 1e6


def main() -> None:
    """Print the fit and decision figures of the single chain and the mixture."""
    truth = MixtureFit((0.3, 0.7), (0.05, 0.5), (0.6, 0.03), (0.7, 0.1))
    x, _ = simulate_mixture(truth, 62500, 16, np.random.default_rng(0))
    nq, nr = x.shape
    qid, rnd = np.repeat(np.arange(nq), nr), np.tile(np.arange(nr), nq)
    t_single = median_seconds(lambda: fit_chain(qid, rnd, x.ravel()))
    t_mix = median_seconds(lambda: fit_mixture(x))
    mix = fit_mixture(x)
    print(f"fit 1,000,000 rounds (62,500 x 16), single chain:      {t_single * 1e3:8.1f} ms")
    print(f"fit 1,000,000 rounds, mixture (K={mix.k} of 1..4, held-out): {t_mix * 1e3:8.1f} ms"
          f"   (target < 2000 ms)")
    pool = simulate_pool(2000, 16, 0.1, 0.3, 0.4, seed=2)
    fit = fit_pool(pool.correct)
    om = pool.fit_obs_model(fit)
    hist = pool.subset(np.arange(1)).records()[0]
    single = MarkovPolicy(fit, om, 0.0001)
    mixed = MixturePolicy(mix, om, 0.0001)
    us_single = per_decision_us(lambda: single.decide(hist, 16))
    us_mix = per_decision_us(lambda: mixed.decide(hist, 16))
    print(f"decision after 16 rounds, single chain (median):       {us_single:8.1f} us")
    print(f"decision after 16 rounds, mixture K={mix.k} (median):       {us_mix:8.1f} us"
          f"   (target < 100 us)")


if __name__ == "__main__":
    main()
