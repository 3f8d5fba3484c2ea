"""Benchmark of the math core: fitting, offline evaluation, per-decision cost, peak memory."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstui.core.answers import extract_answer
from mstui.core.evaluation import evaluate, simulate_pool, sweep
from mstui.core.fitting import fit_chain
from mstui.core.policies import parse_policy

SPECS = ["markov", "gate", "fixed:4", "none", "repeat", "oracle"]


def median_seconds(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of `repeats` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Print the four figures."""
    big = simulate_pool(62500, 16, 0.1, 0.3, 0.4, seed=0)
    nq, nr = big.correct.shape
    qid = np.repeat(np.arange(nq), nr)
    rnd = np.tile(np.arange(nr), nq)
    flat = big.correct.ravel()
    t_fit = median_seconds(lambda: fit_chain(qid, rnd, flat))
    print(f"fit 1,000,000 rounds (62,500 questions x 16):        {t_fit * 1e3:8.1f} ms")

    pool = simulate_pool(10000, 16, 0.1, 0.3, np.random.default_rng(1).beta(2, 3, 10000), seed=2)
    fit = fit_chain(np.repeat(np.arange(10000), 16), np.tile(np.arange(16), 10000),
                    pool.correct.ravel())  # fmt: skip
    om = pool.fit_obs_model(fit)
    kappas = np.geomspace(1e-6, 1e-2, 50)
    gammas = np.linspace(0.05, 0.99, 50)

    def run_eval() -> None:
        # The 6 policies, then markov swept over 50 κ and gate over 50 γ (the Pareto curves).
        evaluate(pool, [parse_policy(s, fit, om) for s in SPECS])
        sweep(pool, fit, om, kappas=kappas, gammas=gammas)

    t_eval = median_seconds(run_eval)
    print(f"evaluate 6 policies + 50 kappa + 50 gamma, 10,000 x 16: {t_eval * 1e3:6.1f} ms")

    pol = parse_policy("markov:0.0001", fit, om)
    hist = pool.subset(np.arange(1)).records()[0]
    per = []
    for _ in range(2000):
        t0 = time.perf_counter()
        pol.decide(hist, 16)
        per.append(time.perf_counter() - t0)
    us = statistics.median(per) * 1e6
    print(f"markov decision after 16 rounds (median of 2000):    {us:8.1f} us")

    # Answer extraction on 200 KB adversarial responses (nested/unterminated boxes, long digit
    # runs): the regexes must stay linear. The slowest input's median is reported.
    nasty = ["Let me think step by step. 12 + 30 = 42, so 1,234 apples. " * 3500,
             ("\\boxed{\\frac{1}{2}} and {x} " * 8000) + "The answer is 9",
             "\\boxed{" * 28000, "the answer is " * 14000, "#### \n" * 33000,
             "1" * 200_000, "- " * 100_000]  # fmt: skip
    worst = max(median_seconds(lambda text=text: extract_answer(text), repeats=3)
                for text in nasty)
    print(f"answer extraction, slowest of 7 x 200 KB inputs:     {worst * 1e3:8.1f} ms")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak RSS:                                            {rss / 1024:8.1f} MiB")


if __name__ == "__main__":
    main()
