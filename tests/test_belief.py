"""Live belief: predict-only equals the chain; filtered beliefs are calibrated and beat it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mstui.core.belief import (
    PREDICT_ONLY,
    ObservationModel,
    belief_matrix,
    belief_trajectory,
    change_categories,
    change_category,
    expected_calibration_error,
    filter_mode,
)
from mstui.core.evaluation import Pool, simulate_pool
from mstui.core.fitting import fit_pool
from mstui.core.markov import TwoStateChain
from mstui.core.types import Observation

A, B, P0 = 0.12, 0.3, 0.4


def _fit(seed: int) -> tuple[Pool, ObservationModel, TwoStateChain, float]:
    train = simulate_pool(3000, 8, A, B, P0, seed=seed)
    fit = fit_pool(train.correct)
    om = train.fit_obs_model(fit)
    return train, om, fit.chain, fit.p0


def test_predict_only_follows_the_chain() -> None:
    c = TwoStateChain(0.1, 0.3)
    obs = [Observation(True, None, None, None)] + [Observation(True, False, 1.0, None)] * 5
    q = belief_trajectory(c, 0.2, obs, None)
    assert q == pytest.approx([c.accuracy(0.2, t) for t in range(6)], abs=1e-12)
    assert filter_mode(None) == PREDICT_ONLY


def test_filtered_beliefs_are_calibrated_and_beat_predict_only() -> None:
    _, om, chain, p0 = _fit(seed=1)
    test = simulate_pool(3000, 8, A, B, P0, seed=2)
    cat = change_categories(test.changed, test.agreement)
    q = belief_matrix(chain, p0, test.found, cat, om.lp_bins(test.logprob), om)
    y = test.correct
    assert expected_calibration_error(q, y) < 0.03
    prior = belief_matrix(chain, p0, test.found, cat, om.lp_bins(test.logprob), None)
    brier, brier0 = np.mean((q - y) ** 2), np.mean((prior - y) ** 2)
    assert brier < 0.6 * brier0  # informative features: a large improvement


def test_scalar_filter_equals_vector_filter_exactly() -> None:
    train, om, chain, p0 = _fit(seed=3)
    recs = train.subset(np.arange(50)).records()
    small = train.subset(np.arange(50))
    cat = change_categories(small.changed, small.agreement)
    q = belief_matrix(chain, p0, small.found, cat, om.lp_bins(small.logprob), om)
    for i, h in enumerate(recs):
        assert belief_trajectory(chain, p0, [r.observation for r in h], om) == q[i].tolist()


def test_calibration_error_on_traces_and_roundtrip() -> None:
    train, om, chain, p0 = _fit(seed=4)
    traces = [
        [(r.observation, bool(r.correct)) for r in h]
        for h in train.subset(np.arange(300)).records()
    ]
    ece = om.calibration_error(traces, chain, p0)
    assert 0.0 <= ece < 0.06
    back = ObservationModel.from_dict(json.loads(json.dumps(om.to_dict())))
    assert back.calibration_error(traces, chain, p0) == pytest.approx(ece)
    refit = ObservationModel.fit(traces)
    assert refit.temper == 1.0 and refit.n_train == 300 * 8


def test_degenerate_inputs_stay_defined() -> None:
    _, om, _, _ = _fit(seed=5)
    obs = [Observation(False, None, None, None), Observation(True, True, 0.0, -0.1)]
    for chain in (TwoStateChain(0, 0), TwoStateChain(1, 1), TwoStateChain(0.3, 0.7)):
        for p0 in (0.0, 1.0, 0.5):
            for m in (om, None):
                q = belief_trajectory(chain, p0, obs, m)
                assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in q)
    with pytest.raises(ValueError):
        belief_trajectory(TwoStateChain(0.1, 0.1), math.nan, obs, om)
    with pytest.raises(ValueError):
        expected_calibration_error(np.array([]), np.array([]))


def test_change_categories() -> None:
    assert change_category(None, None) == 4
    assert change_category(False, 1.0) == 0 and change_category(False, 0.5) == 1
    assert change_category(True, 0.0) == 2 and change_category(True, 0.25) == 3
    v = change_categories(np.array([-1, 0, 0, 1, 1]), np.array([np.nan, 1.0, 0.5, 0.0, 0.25]))
    assert v.tolist() == [4, 0, 1, 2, 3]
