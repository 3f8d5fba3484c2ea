"""An independent two-state chain simulator for statistics tests (not the core's own code)."""

from __future__ import annotations

import numpy as np


def simulate_chains(rng: np.random.Generator, nq: int, nr: int, a: float, b: float,
                    p0: float) -> np.ndarray:
    """correct[question, round] of `nq` independent chains: round 0 right with probability p0,
    then right→wrong with probability a and wrong→right with probability b each round."""
    x = np.zeros((nq, nr), np.bool_)
    x[:, 0] = rng.random(nq) < p0
    for t in range(1, nr):
        u = rng.random(nq)
        x[:, t] = np.where(x[:, t - 1], u >= a, u < b)
    return x
