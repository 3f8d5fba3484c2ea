"""A feature that was not recorded carries no evidence (issue 11, item 1; DESIGN §1.7)."""

from __future__ import annotations

import numpy as np
import pytest

from mstui.core.belief import (
    N_LP_BINS,
    ObservationModel,
    belief_trajectory,
    smoothed_table,
)
from mstui.core.evaluation import Pool, stop_rounds
from mstui.core.fitting import fit_pool
from mstui.core.policies import MarkovPolicy
from mstui.core.types import Observation


def _all_wrong_pool(seed: int, nq: int = 20, nr: int = 6, p_found: float = 0.9) -> Pool:
    """The issue's repro: every round wrong, no log-probabilities, answers found 90% of the time."""
    rng = np.random.default_rng(seed)
    found = rng.random((nq, nr)) < p_found
    answers = np.where(found, rng.integers(0, 5, (nq, nr)), -1)
    changed = np.full((nq, nr), -1, np.int64)
    changed[:, 1:] = (answers[:, 1:] != answers[:, :-1]).astype(np.int64)
    agreement = np.full((nq, nr), np.nan)
    for t in range(1, nr):
        agreement[:, t] = (answers[:, :t] == answers[:, t:t + 1]).mean(axis=1)
    return Pool(np.zeros((nq, nr), np.bool_), np.full((nq, nr), 50, np.int64), answers, found,
                changed, agreement, np.full((nq, nr), np.nan))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_missing_logprobs_do_not_make_markov_refine_to_the_cap(seed: int) -> None:
    pool = _all_wrong_pool(seed)
    fit = fit_pool(pool.correct)
    om = pool.fit_obs_model(fit)
    chain_only = stop_rounds(pool, MarkovPolicy(fit), 6)
    filtered = stop_rounds(pool, MarkovPolicy(fit, om), 6)
    assert np.all(chain_only == 0)  # p̂0 > π: the chain alone stops at once
    assert np.all(filtered == 0), filtered


def test_a_missing_logprob_has_factor_one_even_in_an_old_stored_table() -> None:
    # A table stored before the rule learned "missing" as strong evidence of W; it is ignored.
    old = ObservationModel([[0.1, 0.9], [0.1, 0.9]], [[0.1] * 5 + [0.5], [0.19] * 5 + [0.05]],
                           [-2, -1, -0.5, -0.1], [[[0.2] * 5] * 2] * 2)
    sw, sc, _ = old.factors(Observation(True, None, None, None))
    assert sw == pytest.approx(0.9) and sc == pytest.approx(0.9)
    ratios = old.likelihood_ratios(Observation(True, None, None, None))
    assert ratios["log-probability"] == 1.0 and ratios["found"] == pytest.approx(1.0)


def test_smoothing_of_an_empty_state_is_the_pooled_distribution() -> None:
    t = smoothed_table(np.array([[0, 0], [12, 108]]))
    assert t[0] == pytest.approx(t[1], abs=0.02)  # no C rounds: C's row is (about) W's
    # A state with data keeps its own distribution.
    t2 = smoothed_table(np.array([[90, 10], [10, 90]]))
    assert t2[0, 0] > 0.85 and t2[1, 1] > 0.85


def test_whether_logprobs_exist_does_not_move_the_belief() -> None:
    # Same labelled rounds, once with log-probabilities and once without: the model fitted
    # without them must filter exactly like the chain plus the other features.
    rng = np.random.default_rng(7)
    nq, nr = 400, 5
    x = np.zeros((nq, nr), np.bool_)
    x[:, 0] = rng.random(nq) < 0.4
    for t in range(1, nr):
        u = rng.random(nq)
        x[:, t] = np.where(x[:, t - 1], u >= 0.1, u < 0.3)
    found = np.where(x, True, rng.random((nq, nr)) < 0.8)
    changed = np.full((nq, nr), -1, np.int64)
    changed[:, 1:] = rng.integers(0, 2, (nq, nr - 1))
    ag = np.where(changed >= 0, rng.random((nq, nr)), np.nan)
    lp = np.full((nq, nr), np.nan)
    fit = fit_pool(x)
    om = ObservationModel.fit_arrays(found, changed, ag, lp, x, chain=fit.chain, p0=fit.p0)
    assert om.logprob[0][N_LP_BINS] == 1.0 and om.logprob[1][N_LP_BINS] == 1.0
    obs = [Observation(True, None, None, None), Observation(True, False, 1.0, None)]
    with_lp = [Observation(True, None, None, -0.2), Observation(True, False, 1.0, -0.3)]
    q = belief_trajectory(fit.chain, fit.p0, obs, om)
    # The model never saw a log-probability: every bin of it is the pooled (neutral) one too.
    assert q == pytest.approx(belief_trajectory(fit.chain, fit.p0, with_lp, om), abs=1e-12)
