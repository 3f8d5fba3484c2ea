"""The why-view (core.explain) is the filter taken apart: prior odds × ∏ ratios = posterior odds,
the posterior equals the policy's belief, and κ* flips the markov decision exactly."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mstui.core.belief import ObservationModel, belief_trajectory
from mstui.core.evaluation import simulate_pool
from mstui.core.explain import explain_round, markov_view, odds_check
from mstui.core.fitting import fit_pool
from mstui.core.policies import MarkovPolicy
from mstui.core.types import Observation, RoundRecord
from tests.test_belief_reasoning import simulate


def _pool_fit(seed: int = 5):  # type: ignore[no-untyped-def]
    pool = simulate_pool(2000, 6, 0.12, 0.3, 0.4, seed=seed)
    fit = fit_pool(pool.correct)
    return pool, fit, pool.fit_obs_model(fit)


def test_prior_times_ratios_is_the_posterior_and_the_policys_belief() -> None:
    _, fit, om = _pool_fit()
    histories = simulate_pool(40, 6, 0.12, 0.3, 0.4, seed=9).records()
    checked = 0
    for h in histories:
        for t in range(len(h)):
            e = explain_round(fit, om, h, t, price=1e-4, max_rounds=6)
            assert odds_check(e) < 1e-9
            q = belief_trajectory(fit.chain, fit.p0, [r.observation for r in h[: t + 1]], om)[-1]
            assert e.posterior == pytest.approx(q, abs=1e-15)
            d = MarkovPolicy(fit, om, price=1e-4).decide(h[: t + 1], 6)
            assert d.belief == pytest.approx(e.posterior, abs=1e-15)
            assert d.expected_gain == pytest.approx(e.gain, abs=1e-15)
            assert d.round_cost == pytest.approx(e.round_cost)
            if not e.capped:
                assert (d.action == "continue") == e.continues
            checked += 1
    assert checked == 240


def test_reasoning_features_split_into_length_and_truncated() -> None:
    found, ch, ag, lp, x, tr, th = simulate(3000, 4, seed=1)
    om = ObservationModel.fit_arrays(found, ch, ag, lp, x, truncated=tr, thinking=th)
    fit = fit_pool(x)
    obs = Observation(False, None, None, None, truncated=True, thinking_tokens=5000)
    r = RoundRecord(0, "", "", None, None, "none", None, 10, 4096, 0, "length", 0.1, 1.0, obs,
                    truncated=True, thinking_tokens=5000)
    e = explain_round(fit, om, [r])
    names = [ev.name for ev in e.evidence]
    assert names == ["answer found", "log-probability", "changed / agreement",
                     "thinking length", "truncated"]
    by = {ev.name: ev for ev in e.evidence}
    rw, rc = om.reasoning_factors(False, True, 5000)
    assert by["thinking length"].ratio * by["truncated"].ratio == pytest.approx(rc / rw, rel=1e-12)
    assert by["log-probability"].ratio == 1.0 and by["log-probability"].note  # not recorded
    assert by["changed / agreement"].ratio == 1.0  # round 0 has nothing to compare
    assert odds_check(e) < 1e-9
    # Long thinking cut off inside it is evidence of a wrong answer, and the strongest here.
    assert e.posterior < e.prior
    assert e.strongest is not None and e.strongest.ratio < 1.0


def test_flip_price_is_where_markov_changes_its_mind() -> None:
    _, fit, om = _pool_fit(seed=6)
    h = simulate_pool(200, 4, 0.12, 0.3, 0.4, seed=11).records()
    flips = 0
    for hist in h:
        e = explain_round(fit, om, hist[:2])
        k = e.flip_price
        if k is None:
            assert e.gain <= 0
            assert MarkovPolicy(fit, om, price=0.0).decide(hist[:2], 10).action == "stop"
            continue
        flips += 1
        below = MarkovPolicy(fit, om, price=k * (1 - 1e-6)).decide(hist[:2], 10)
        at = MarkovPolicy(fit, om, price=k * (1 + 1e-6)).decide(hist[:2], 10)
        assert (below.action, at.action) == ("continue", "stop")
        assert f"{k:.3g}" in e.counterfactual()
    assert 0 < flips < 200  # both kinds of rounds occur


def test_predict_only_prior_is_the_chain_and_nothing_moves() -> None:
    _, fit, _ = _pool_fit()
    h = simulate_pool(1, 3, 0.12, 0.3, 0.4, seed=2).records()[0]
    e0 = explain_round(fit, None, h, 0)
    e2 = explain_round(fit, None, h, 2)
    assert e0.prior == e0.posterior == fit.p0
    q1 = fit.chain.accuracy(fit.p0, 1)
    assert e2.prior == pytest.approx(fit.chain.b + fit.chain.lam * q1)
    assert e2.posterior == pytest.approx(fit.chain.accuracy(fit.p0, 2))
    assert e2.evidence == () and e2.strongest is None and e2.mode == "predict-only"
    assert "no feature moved" in e2.counterfactual()


def test_sparse_fit_is_named_and_bad_rounds_refused() -> None:
    _, fit, om = _pool_fit()
    sparse = dataclasses.replace(fit, n_cc=1, n_cw=0)
    h = simulate_pool(1, 2, 0.12, 0.3, 0.4, seed=3).records()[0]
    assert "sparse" in explain_round(sparse, om, h).fit_note
    assert explain_round(fit, om, h).fit_note == ""
    with pytest.raises(ValueError, match="no finished round"):
        explain_round(fit, om, [])
    with pytest.raises(ValueError, match="round 5 is not among"):
        explain_round(fit, om, h, 5)


def test_odds_identity_survives_extreme_evidence() -> None:
    # Beliefs near 0 or 1 must still satisfy the identity (no inf − inf).
    _, fit, om = _pool_fit()
    obs = [Observation(True, None, None, -0.01)] + [Observation(True, False, 1.0, -0.01)] * 7
    recs = [RoundRecord(i, "", "", "0", "0", "boxed", None, 1, 1, 0, "stop", 0.0, 0.0, o)
            for i, o in enumerate(obs)]
    for t in range(8):
        e = explain_round(fit, om, recs, t)
        assert 0.0 < e.posterior < 1.0 and math.isfinite(e.gain)
        assert odds_check(e) < 1e-7
    assert np.isfinite([ev.log_ratio for ev in e.evidence]).all()


def test_mixture_explanation_is_exact_and_matches_the_mixture_policy() -> None:
    from mstui.core.mixture import MixtureFit
    from mstui.core.policies import MixturePolicy, parse_policy

    _, fit, om = _pool_fit(seed=7)
    mix = MixtureFit((0.3, 0.7), (0.05, 0.3), (0.6, 0.1), (0.85, 0.2))
    mfit = dataclasses.replace(fit, mixture=mix.to_dict())
    policy = parse_policy("markov:0.0002", mfit, om)
    assert isinstance(policy, MixturePolicy)  # markov decides from the mixture
    for hist in simulate_pool(30, 5, 0.12, 0.3, 0.4, seed=13).records():
        for t in range(5):
            e = explain_round(mfit, om, hist, t, price=0.0002)
            d = policy.decide(hist[: t + 1], 10)
            assert odds_check(e) < 1e-9
            assert e.posterior == pytest.approx(d.belief, abs=1e-12)
            assert e.gain == pytest.approx(d.expected_gain, abs=1e-12)
            assert (d.action == "continue") == e.continues
            assert sum(after for _, after in e.classes) == pytest.approx(1.0)
            # The gain from the terms the why-view shows: Σ_k P(k,W)·b_k − P(k,C)·a_k.
            terms = sum((post - c) * b - c * a
                        for (a, b, c), (_, post) in zip(e.class_rates, e.classes, strict=True))
            assert terms == pytest.approx(e.gain, abs=1e-12)
            assert [after for _, after in e.classes] == pytest.approx(
                [d.extra["class0"], d.extra["class1"]], abs=1e-12)
            v = markov_view(mfit, om, [r.observation for r in hist[: t + 1]], horizon=3)
            assert v.beliefs[-1] == pytest.approx(d.belief, abs=1e-12)
            assert v.curve[0] == pytest.approx(d.belief, abs=1e-12)
            assert (v.pi, v.lam) == pytest.approx((d.pi, d.lam), abs=1e-12)
            # One round ahead is the belief plus the expected gain (the policy's own number).
            assert v.curve[1] == pytest.approx(d.belief + d.expected_gain, abs=1e-12)
            assert v.regime == ("beneficial" if d.expected_gain > 0 else "detrimental")


def test_mixture_curve_matches_simulation() -> None:
    """The predicted accuracy k rounds ahead under a mixture, against simulated chains."""
    from mstui.core.mixture import MixtureFit

    _, fit, _ = _pool_fit()
    mix = MixtureFit((0.4, 0.6), (0.05, 0.4), (0.5, 0.05), (0.9, 0.15))
    mfit = dataclasses.replace(fit, mixture=mix.to_dict())
    v = markov_view(mfit, None, [], horizon=5)  # before round 0: the prior
    rng = np.random.default_rng(0)
    n = 200_000
    k = rng.random(n) < 0.4
    a, b, p0 = (np.where(k, x[0], x[1]) for x in (mix.a, mix.b, mix.p0))
    x = rng.random(n) < p0
    sim = [x.mean()]
    for _ in range(4):
        u = rng.random(n)
        x = np.where(x, u >= a, u < b)
        sim.append(x.mean())
    assert np.allclose(v.curve, sim, atol=0.005)
    assert v.beliefs == () and v.classes == 2
