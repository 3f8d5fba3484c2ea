"""The belief's reasoning features (truncated, thinking length), checked against simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mstui.core.belief import N_TH_BINS, ObservationModel, belief_matrix, belief_trajectory
from mstui.core.markov import TwoStateChain
from mstui.core.types import Observation


def simulate(nq: int = 4000, nr: int = 4, seed: int = 0):  # type: ignore[no-untyped-def]
    """A chain with a = 0.1, b = 0.3; wrong rounds think longer (log-normal lengths) and are cut
    inside their thinking 30% of the time (then no answer); right rounds never are."""
    rng = np.random.default_rng(seed)
    x = np.zeros((nq, nr), bool)
    x[:, 0] = rng.random(nq) < 0.4
    for t in range(1, nr):
        u = rng.random(nq)
        x[:, t] = np.where(x[:, t - 1], u >= 0.1, u < 0.3)
    thinking = np.where(x, rng.lognormal(7.0, 0.4, (nq, nr)), rng.lognormal(8.0, 0.4, (nq, nr)))
    truncated = ~x & (rng.random((nq, nr)) < 0.3)
    found = ~truncated
    changed = np.full((nq, nr), -1)
    agreement = np.full((nq, nr), np.nan)
    logprob = np.full((nq, nr), np.nan)
    return found, changed, agreement, logprob, x, truncated, thinking


def test_tables_recover_the_simulated_likelihoods() -> None:
    found, ch, ag, lp, x, tr, th = simulate()
    model = ObservationModel.fit_arrays(found, ch, ag, lp, x, truncated=tr, thinking=th)
    assert model.truncated is not None and model.thinking is not None
    # Every wrong round without an answer was truncated; no right round lacks an answer, so
    # that row is the pooled distribution (the same as W's), which moves nothing.
    assert model.truncated[0][1] > 0.99
    assert model.truncated[1] == pytest.approx(model.truncated[0], abs=1e-3)
    # Thinking-length bins are training quantiles of log(1 + tokens); compare each state's bin
    # probabilities with the simulated log-normal's.
    from scipy.stats import norm

    edges = [-np.inf, *model.thinking_edges, np.inf]
    for state, mu in ((0, 8.0), (1, 7.0)):
        want = np.diff(norm.cdf(np.asarray(edges), loc=mu, scale=0.4))
        assert np.allclose(model.thinking[state], want, atol=0.03)


def test_long_thinking_and_truncation_lower_the_belief() -> None:
    found, ch, ag, lp, x, tr, th = simulate()
    model = ObservationModel.fit_arrays(found, ch, ag, lp, x, truncated=tr, thinking=th)
    chain = TwoStateChain(0.1, 0.3)
    short = Observation(True, None, None, None, truncated=False, thinking_tokens=600)
    long = Observation(True, None, None, None, truncated=False, thinking_tokens=6000)
    cut = Observation(False, None, None, None, truncated=True, thinking_tokens=6000)
    q_short, q_long, q_cut = (belief_trajectory(chain, 0.4, [o], model)[0]
                              for o in (short, long, cut))
    assert q_short > 0.4 > q_long > q_cut
    # The filtered belief is calibrated against the simulation's truth (in sample).
    q = belief_matrix(chain, 0.4, found, np.full(x.shape, 4), model.lp_bins(lp), model,
                      truncated=tr, thinking=th)
    for lo in (0.0, 0.2, 0.4, 0.6, 0.8):
        sel = (q >= lo) & (q < lo + 0.2)
        if sel.sum() > 200:
            assert abs(x[sel].mean() - q[sel].mean()) < 0.05


def test_a_round_without_thinking_carries_no_reasoning_evidence() -> None:
    found, ch, ag, lp, x, tr, th = simulate(nq=500)
    model = ObservationModel.fit_arrays(found, ch, ag, lp, x, truncated=tr, thinking=th)
    plain = Observation(True, None, None, None)  # thinking_tokens None: a model that does not think
    assert model.reasoning_factors(True, False, None) == (1.0, 1.0)
    no_features = ObservationModel.fit_arrays(found, ch, ag, lp, x)
    chain = TwoStateChain(0.1, 0.3)
    assert belief_trajectory(chain, 0.4, [plain], model) == pytest.approx(
        belief_trajectory(chain, 0.4, [plain], no_features))


def test_stored_models_round_trip_and_old_ones_load() -> None:
    found, ch, ag, lp, x, tr, th = simulate(nq=300)
    model = ObservationModel.fit_arrays(found, ch, ag, lp, x, truncated=tr, thinking=th)
    again = ObservationModel.from_dict(model.to_dict())
    o = Observation(True, None, None, None, thinking_tokens=2500)
    assert again.factors(o)[:2] == pytest.approx(model.factors(o)[:2])
    old = model.to_dict()
    for key in ("truncated", "thinking", "thinking_edges"):
        old.pop(key)
    legacy = ObservationModel.from_dict(old)  # a fit stored before reasoning features
    assert legacy.reasoning_factors(False, True, 2500) == (1.0, 1.0)
    assert len(model.thinking or []) == 2 and len((model.thinking or [[]])[0]) == N_TH_BINS
    assert math.isfinite(legacy.factors(o)[0])
