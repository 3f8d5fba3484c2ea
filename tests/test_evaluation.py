"""Offline evaluation: vectorized replay equals decide(), oracle bounds, hand counts, CV."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from mstui.core.belief import ObservationModel
from mstui.core.evaluation import (
    Pool,
    bounds,
    cross_validate,
    evaluate,
    pareto_front,
    replay_decide,
    simulate_pool,
    split_questions,
    stop_rounds,
    sweep,
)
from mstui.core.fitting import fit_pool
from mstui.core.policies import parse_policy

SPECS = [
    "markov",
    "markov:0.0005",
    "gate",
    "gate:gamma=0.8",
    "gate:tau=0.6",
    "fixed:2",
    "none",
    "repeat",
    "oracle",
]


@pytest.fixture(scope="module")
def setup() -> tuple[Pool, object, ObservationModel]:
    pool = simulate_pool(2000, 8, 0.1, 0.3, np.random.default_rng(0).beta(2, 3, 2000), seed=1)
    fit = fit_pool(pool.correct)
    om = pool.fit_obs_model(fit)
    return pool, fit, om


@pytest.mark.parametrize("with_obs", [True, False])
def test_vectorized_replay_equals_decide(setup: Any, with_obs: bool) -> None:
    pool, fit, om = setup
    small = pool.subset(np.arange(120))
    recs = small.records()
    for spec in SPECS:
        pol = parse_policy(spec, fit, om if with_obs else None)
        for cap in (1, 3, 8):
            assert (stop_rounds(small, pol, cap) == replay_decide(recs, pol, cap)).all(), (
                spec,
                cap,
            )


def test_oracle_is_never_beaten(setup: Any) -> None:
    pool, fit, om = setup
    res = evaluate(pool, [parse_policy(s, fit, om) for s in SPECS])
    res += sweep(pool, fit, om, kappas=np.geomspace(1e-6, 1e-2, 20), gammas=[0.5, 0.9], taus=[0.5])
    oracle = next(r for r in res if r.policy == "oracle")
    assert all(r.accuracy <= oracle.accuracy for r in res)
    assert oracle.accuracy == pytest.approx(bounds(pool, fit)["oracle_observed"])
    front = pareto_front(res)
    assert all(
        x.accuracy < y.accuracy and x.mean_tokens <= y.mean_tokens
        for x, y in itertools.pairwise(front)
    )


def test_fixed_matches_hand_count() -> None:
    correct = np.array([[0, 1, 0], [1, 1, 1], [0, 0, 1]], bool)
    tokens = np.array([[10, 20, 30], [5, 5, 5], [1, 2, 3]])
    answers = np.array([[1, 0, 2], [0, 0, 0], [3, 3, 0]])
    nan = np.full((3, 3), np.nan)
    ch = np.array([[-1, 1, 1], [-1, 0, 0], [-1, 0, 1]])
    pool = Pool(correct, tokens, answers, np.ones((3, 3), bool), ch, nan, nan)
    (f1,) = evaluate(pool, [parse_policy("fixed:1", None)])
    assert f1.accuracy == pytest.approx(2 / 3)  # round 1: ✓ ✓ ✗
    assert f1.mean_tokens == pytest.approx((30 + 10 + 3) / 3)
    assert f1.mean_rounds == 2
    (f9,) = evaluate(pool, [parse_policy("fixed:9", None)])  # clipped to the 3 rounds
    assert f9.accuracy == pytest.approx(2 / 3) and f9.mean_tokens == pytest.approx(
        (60 + 15 + 6) / 3
    )
    (rep,) = evaluate(pool, [parse_policy("repeat", None)])  # stops after rounds 2, 1, 1
    assert rep.accuracy == pytest.approx(1 / 3) and rep.mean_tokens == pytest.approx(
        (60 + 10 + 3) / 3
    )
    (orc,) = evaluate(pool, [parse_policy("oracle", None)])  # stops after rounds 1, 0, 2
    assert orc.accuracy == 1.0 and orc.mean_tokens == pytest.approx((30 + 5 + 6) / 3)


def test_split_and_cross_validation(setup: Any) -> None:
    pool, _, _ = setup
    train, test = split_questions(100, 0.3, seed=2)
    assert len(set(train) & set(test)) == 0 and len(train) + len(test) == 100
    res = cross_validate(pool.subset(np.arange(600)), ["markov", "none", "oracle"], folds=3)
    assert [r.policy for r in res] == ["markov", "none", "oracle"]
    assert res[0].accuracy > res[1].accuracy and res[2].accuracy >= res[0].accuracy


def test_bad_pools_raise() -> None:
    with pytest.raises(ValueError):
        Pool.from_records([])
    e = np.zeros((0, 3))
    with pytest.raises(ValueError):
        Pool(e.astype(bool), e.astype(int), e.astype(int), e.astype(bool), e.astype(int), e, e)
    pool = simulate_pool(5, 3, 0.1, 0.2, 0.5)
    with pytest.raises(ValueError):
        stop_rounds(pool, parse_policy("none", None), max_rounds=4)


