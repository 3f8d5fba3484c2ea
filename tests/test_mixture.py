"""Mixture of chains (issue 11, item 5): EM recovers known classes, K is chosen on held-out
likelihood, the live filter learns the class, and markov picks the mixture when it won."""

from __future__ import annotations

import numpy as np
import pytest

from mstui.core.evaluation import mixture_inputs, simulate_pool
from mstui.core.fitting import fit_pool
from mstui.core.mixture import (
    MixtureFit,
    first_order_under,
    fit_mixture,
    mixture_filter,
    mixture_summary,
)
from mstui.core.policies import MarkovPolicy, MixturePolicy, parse_policy
from mstui.core.types import Observation
from tests.simulate import simulate_chains

chains = simulate_chains  # independent of the core's simulators


def two_classes(seed: int, nq: int = 4000, nr: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hard = rng.random(nq) < 0.7
    easy_x = chains(rng, nq, nr, 0.05, 0.6, 0.7)
    hard_x = chains(rng, nq, nr, 0.5, 0.03, 0.1)
    return np.where(hard[:, None], hard_x, easy_x)


def test_em_recovers_two_known_classes_and_chooses_k_2() -> None:
    mix = fit_mixture(two_classes(1))
    assert mix.k == 2, mix
    assert mix.heldout[1] > mix.heldout[0] + 0.05  # two classes beat one on held-out questions
    (w_e, w_h), (a_e, a_h), (b_e, b_h), (p_e, p_h) = mix.w, mix.a, mix.b, mix.p0
    assert w_e == pytest.approx(0.3, abs=0.03) and w_h == pytest.approx(0.7, abs=0.03)
    assert a_e == pytest.approx(0.05, abs=0.02) and a_h == pytest.approx(0.5, abs=0.06)
    assert b_e == pytest.approx(0.6, abs=0.08) and b_h == pytest.approx(0.03, abs=0.01)
    assert p_e == pytest.approx(0.7, abs=0.05) and p_h == pytest.approx(0.1, abs=0.03)


def test_a_single_chain_is_fitted_as_one_class() -> None:
    x = chains(np.random.default_rng(2), 3000, 6, 0.1, 0.3, 0.4)
    mix = fit_mixture(x)
    assert mix.k == 1
    fit = fit_pool(x)
    assert mix.a[0] == pytest.approx(fit.a, abs=0.005) and mix.b[0] == pytest.approx(fit.b,
                                                                                        abs=0.005)


def test_first_order_rejection_is_explained_by_the_mixture() -> None:
    x = two_classes(3, nq=600)
    mix = fit_mixture(x)
    single = fit_mixture(x, classes=1)
    assert first_order_under(single, x, draws=99) < 0.05
    assert first_order_under(mix, x, draws=99) > 0.05


def test_the_filter_learns_the_class_from_the_rounds() -> None:
    mix = MixtureFit((0.5, 0.5), (0.05, 0.5), (0.6, 0.03), (0.5, 0.5))
    pool = simulate_pool(2000, 6, 0.2, 0.2, 0.5, seed=4)
    om = pool.fit_obs_model(fit_pool(pool.correct))
    # Repeated answers that agree look like an easy (stable, right) question.
    same = [Observation(True, None, None, None)] + [Observation(True, False, 1.0, None)] * 4
    moved = [Observation(True, None, None, None)] + [Observation(True, True, 0.0, None)] * 4
    post_same = mixture_summary(mix, mixture_filter(mix, same, om))["classes"]
    post_moved = mixture_summary(mix, mixture_filter(mix, moved, om))["classes"]
    assert post_same[0] != pytest.approx(post_moved[0], abs=0.05)
    # No observation model: the class posterior still follows the chain's predictions only.
    q = mixture_summary(mix, mixture_filter(mix, same[:1], None))
    assert q["belief"] == pytest.approx(0.5) and q["classes"] == pytest.approx([0.5, 0.5])


def test_vector_replay_equals_the_live_decision() -> None:
    pool = simulate_pool(60, 5, 0.15, 0.3, 0.4, seed=5)
    fit = fit_pool(pool.correct)
    om = pool.fit_obs_model(fit)
    mix = fit_mixture(two_classes(6, nq=500))
    pol = MixturePolicy(mix, om)
    gain, _ = mixture_inputs(pool, pol)
    for i, hist in enumerate(pool.records()[:20]):
        for t in range(len(hist)):
            d = pol.decide(hist[: t + 1], 99)
            assert d.expected_gain == pytest.approx(gain[i, t], abs=1e-9)


def test_markov_picks_the_mixture_when_it_won_and_says_so() -> None:
    x = two_classes(7, nq=800)
    fit = fit_pool(x)
    plain = parse_policy("markov", fit)
    assert isinstance(plain, MarkovPolicy)
    with_mix = parse_policy("markov", fit.__class__(**{**fit.__dict__,
                                                       "mixture": fit_mixture(x).to_dict()}))
    assert isinstance(with_mix, MixturePolicy) and with_mix.spec == "markov"
    from tests.test_policies import rec

    assert "Mixture of 2 chains" in with_mix.decide([rec(0)], 4).reason
    with pytest.raises(ValueError, match="no mixture"):
        parse_policy("mixture", fit)


def test_a_stored_fit_carries_its_mixture_to_markov(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mstui.analysis.pools import fit_labelled, load_labelled
    from mstui.core.evaluation import Pool
    from mstui.core.fitting import ChainFit
    from mstui.store import Store
    from tests.test_cli_fit import write_pool

    x = two_classes(8, nq=300)
    base = simulate_pool(300, 6, 0.2, 0.2, 0.5, seed=8)
    pool = Pool(x, base.tokens, base.answers, base.found, base.changed, base.agreement,
                base.logprob)
    with Store(tmp_path / "t.db") as store:
        write_pool(store, pool)
        sf = fit_labelled(load_labelled(store, model="sim.gguf", problem_set="sim",
                                        strategy="reanswer"), {"model": "sim.gguf"})
    stored = ChainFit.from_dict(sf.stored())
    assert stored.mixture is not None and len(stored.mixture["w"]) == 2
    assert stored.mixture["first_order_p"] is not None
    assert isinstance(parse_policy("markov", stored), MixturePolicy)
