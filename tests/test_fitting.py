"""Fitting: counts, posterior coverage, p0 spread, fit checks, degenerate scopes, speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mstui.core.fitting import (
    ChainFit,
    count_transitions,
    fit_chain,
    fit_checks,
    fit_pool,
    fit_scopes,
    homogeneity_check,
    markov_check,
    p0_spread,
)


def simulate(
    rng: np.random.Generator, nq: int, nr: int, a: float, b: float, p0: float
) -> np.ndarray:
    x = np.zeros((nq, nr), bool)
    x[:, 0] = rng.random(nq) < p0
    for t in range(1, nr):
        u = rng.random(nq)
        x[:, t] = np.where(x[:, t - 1], u >= a, u < b)
    return x


def long_form(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nq, nr = x.shape
    return np.repeat(np.arange(nq), nr), np.tile(np.arange(nr), nq), x.ravel()


def test_counts_skip_gaps_and_other_questions() -> None:
    # q1: C C W (gap) C ; q2: W C. Rows shuffled on purpose.
    qid = ["q1", "q2", "q1", "q1", "q2", "q1"]
    rnd = [3, 0, 0, 1, 1, 2]
    cor = [True, False, True, True, True, False]
    n = count_transitions(qid, rnd, cor)
    assert n == {"n_cc": 1, "n_cw": 1, "n_wc": 2, "n_ww": 0}
    fit = fit_chain(qid, rnd, cor)
    assert fit.a == pytest.approx((1 + 1) / (2 + 2))  # Beta(N_CW + 1, N_CC + 1)
    assert fit.b == pytest.approx((2 + 1) / (2 + 2))
    assert fit.p0 == pytest.approx((1 + 1) / (2 + 2)) and fit.n_questions == 2


def test_posterior_interval_coverage() -> None:
    rng = np.random.default_rng(7)
    a, b, reps = 0.15, 0.35, 200
    hits_a = hits_b = 0
    for _ in range(reps):
        fit = fit_pool(simulate(rng, 60, 5, a, b, 0.4))
        hits_a += fit.a_lo <= a <= fit.a_hi
        hits_b += fit.b_lo <= b <= fit.b_hi
    assert 0.90 <= hits_a / reps <= 0.99
    assert 0.90 <= hits_b / reps <= 0.99


def test_recovers_chain_from_large_sample() -> None:
    fit = fit_pool(simulate(np.random.default_rng(1), 5000, 8, 0.1, 0.3, 0.4))
    assert fit.a == pytest.approx(0.1, abs=0.01) and fit.b == pytest.approx(0.3, abs=0.015)
    assert fit.p0 == pytest.approx(0.4, abs=0.03)
    assert fit.pi == pytest.approx(0.75, abs=0.03)


def test_scope_without_transitions_is_prior_only_and_flagged() -> None:
    fit = fit_chain([1, 2, 3], [0, 0, 0], [True, False, True], scope="s")
    assert "no-transitions" in fit.flags
    assert (fit.a, fit.b) == (0.5, 0.5) and fit.a_lo == pytest.approx(0.025)
    assert fit.p0 == pytest.approx(3 / 5)
    empty = fit_chain([], [], [])
    assert {"no-transitions", "no-round-0"} <= set(empty.flags) and empty.p0 == 0.5
    assert all(np.isfinite(v) for v in (empty.a, empty.b, empty.p0_lo, empty.p0_hi))


def test_to_dict_roundtrip_through_json() -> None:
    fit = fit_pool(simulate(np.random.default_rng(2), 50, 4, 0.2, 0.3, 0.5), scope="m/p/reanswer")
    back = ChainFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert back == fit and back.chain.a == fit.a


def test_p0_spread_recovers_beta_from_repeated_samples() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(2.0, 3.0, 4000)
    m = np.full(4000, 8)
    k = rng.binomial(m, p)
    al, be = p0_spread(k, m)  # type: ignore[misc]
    assert al / (al + be) == pytest.approx(0.4, abs=0.02)
    assert al + be == pytest.approx(5.0, rel=0.15)
    assert p0_spread(k, np.ones(4000)) is None  # one answer per question: unidentified


def test_markov_check_rejects_second_order_and_accepts_first_order() -> None:
    rng = np.random.default_rng(11)
    nq, nr = 3000, 8
    x = np.zeros((nq, nr), bool)
    x[:, :2] = rng.random((nq, 2)) < 0.5
    for t in range(2, nr):
        # Staying correct depends on round t−2: 0.95 if it was correct too, 0.6 if not.
        stay = np.where(x[:, t - 2], 0.95, 0.6)
        fix = np.where(x[:, t - 2], 0.5, 0.1)
        x[:, t] = rng.random(nq) < np.where(x[:, t - 1], stay, fix)
    assert markov_check(*long_form(x)).p_value < 1e-6
    first = simulate(rng, nq, nr, 0.2, 0.3, 0.5)
    res = markov_check(*long_form(first))
    assert res.p_value > 0.01 and res.df == 2


def test_homogeneity_check_detects_rates_changing_by_round() -> None:
    rng = np.random.default_rng(5)
    nq, nr = 3000, 6
    x = np.zeros((nq, nr), bool)
    x[:, 0] = rng.random(nq) < 0.4
    for t in range(1, nr):
        b = 0.5 / t  # repair gets rarer every round
        x[:, t] = np.where(x[:, t - 1], rng.random(nq) >= 0.1, rng.random(nq) < b)
    assert homogeneity_check(*long_form(x)).p_value < 1e-6
    ok = simulate(rng, nq, nr, 0.1, 0.3, 0.4)
    assert homogeneity_check(*long_form(ok)).p_value > 0.01


def test_fit_checks_accuracy_rows_and_pass_on_chain_data() -> None:
    x = simulate(np.random.default_rng(9), 4000, 6, 0.1, 0.3, 0.4)
    fit = fit_pool(x)
    acc, hom, mk, het = fit_checks(*long_form(x), fit)
    rows = acc.details["rounds"]
    assert len(rows) == 6 and all(r["lo"] <= r["observed"] <= r["hi"] for r in rows)
    assert acc.p_value > 0.001 and hom.p_value > 0.001 and mk.p_value > 0.001
    assert het.p_value > 0.001


def test_fit_scopes_and_bad_input() -> None:
    q, r, c = long_form(simulate(np.random.default_rng(4), 20, 3, 0.2, 0.2, 0.5))
    scopes = np.where(q < 10, "A", "B")
    fits = fit_scopes(q, r, c, scopes)
    assert set(fits) == {"A", "B"} and fits["A"].n_questions == 10
    with pytest.raises(ValueError):
        fit_chain([1, 2], [0, 1], [1, 0, 1])
    with pytest.raises(ValueError):
        fit_chain([1, 1], [0, -1], [True, False])
    with pytest.raises(ValueError):
        fit_chain([1, 1], [0, 1], [0.5, 1.0])


def test_fits_a_million_rounds() -> None:
    # bench/bench_core.py times this; here the counts must add up at that size.
    x = simulate(np.random.default_rng(0), 62500, 16, 0.1, 0.3, 0.4)
    fit = fit_pool(x)
    assert fit.n_rounds == 1_000_000
    assert fit.n_cc + fit.n_cw + fit.n_wc + fit.n_ww == 62500 * 15
