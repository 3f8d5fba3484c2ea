"""Policies: spec parsing, the decision numbers, the cap, and per-decision cost."""

from __future__ import annotations

import numpy as np
import pytest

from mstui.core.fitting import ChainFit, fit_pool
from mstui.core.policies import GatePolicy, MarkovPolicy, parse_policy
from mstui.core.types import Observation, RoundRecord


def rec(
    i: int,
    answer: str | None = "1",
    correct: bool | None = None,
    tokens: int = 100,
    changed: bool | None = None,
) -> RoundRecord:
    obs = Observation(answer is not None, None if i == 0 else changed, None, None)
    return RoundRecord(
        i, "p", "r", answer, answer, "boxed", correct, tokens, 0, 0, "stop", 0.1, 0.1, obs
    )


def make_fit(a: float = 0.1, b: float = 0.3, p0: float = 0.4) -> ChainFit:
    base = fit_pool(np.zeros((2, 2), bool))
    # Counts large enough that neither rate is the prior (a sparse fit is refused, see below).
    d = base.to_dict() | {"a": a, "b": b, "p0": p0, "n_cc": 50, "n_cw": 50, "n_wc": 50,
                          "n_ww": 50, "flags": []}
    return ChainFit.from_dict(d)


def test_markov_and_gate_refuse_a_sparse_fit_unless_insisted() -> None:
    zero = fit_pool(np.zeros((2, 2), bool))  # CC 0 CW 0: a is the prior
    assert "few-from-correct" in zero.flags and zero.sparse_rows == ("a", "b")
    for spec in ("markov", "markov:0.01", "gate", "gate:gamma=0.5"):
        with pytest.raises(ValueError, match=r"a rests on 0 transition.*--allow-sparse-fit"):
            parse_policy(spec, zero)
        assert parse_policy(spec, zero, allow_sparse=True).spec.startswith(spec.split(":")[0])
    # The rule reads the counts, so a fit stored before the flags existed is judged the same.
    old = ChainFit.from_dict(zero.to_dict() | {"flags": []})
    with pytest.raises(ValueError, match="sparse"):
        parse_policy("markov", old)
    # Policies that do not use the chain never mind.
    assert parse_policy("repeat", zero).spec == "repeat"


def test_parse_specs_and_errors() -> None:
    fit = make_fit()
    assert parse_policy("markov", fit).spec == "markov"
    p = parse_policy("markov:0.001", fit)
    assert isinstance(p, MarkovPolicy) and p.price == 0.001 and p.spec == "markov:0.001"
    assert parse_policy("markov", fit, price=0.002).spec == "markov:0.002"
    assert parse_policy("fixed:3", None).spec == "fixed:3"
    assert isinstance(parse_policy("gate:gamma=0.9", fit), GatePolicy)
    for s in ("none", "repeat", "oracle"):
        assert parse_policy(s, None).spec == s
    with pytest.raises(ValueError, match="valid: markov"):
        parse_policy("bogus", fit)
    with pytest.raises(ValueError, match="mstui fit"):
        parse_policy("markov", None)
    with pytest.raises(ValueError, match="mstui fit"):
        parse_policy("gate", None)
    for bad in ("fixed:x", "fixed:-1", "markov:-1", "markov:nan", "none:2", "gate:foo=1"):
        with pytest.raises(ValueError):
            parse_policy(bad, fit)


def test_fixed_counts_refinement_rounds_and_cap() -> None:
    p = parse_policy("fixed:2", None)
    h = [rec(i) for i in range(4)]
    assert [p.decide(h[: t + 1], 10).action for t in range(3)] == ["continue", "continue", "stop"]
    d = p.decide(h[:2], 2)
    assert (d.action, d.rule, d.cap) == ("stop", "cap", 2)
    assert parse_policy("fixed:0", None).decide(h[:1], 10).action == "stop"


def test_markov_pure_gate_numbers() -> None:
    fit = make_fit(0.1, 0.3, 0.4)  # π = 0.75, λ = 0.6
    p = parse_policy("markov", fit)
    d = p.decide([rec(0)], 8)
    assert d.action == "continue" and d.rule == "belief<pi"
    assert (
        d.belief == pytest.approx(0.4)
        and d.pi == pytest.approx(0.75)
        and d.lam == pytest.approx(0.6)
    )
    assert d.expected_gain == pytest.approx(0.3 - 0.4 * 0.4) and d.round_cost == 100
    # Predict-only: belief after t rounds is p_t; it never reaches π, so continue to the cap.
    h = [rec(i) for i in range(8)]
    d = p.decide(h, 8)
    assert d.belief == pytest.approx(0.75 + 0.6**7 * (0.4 - 0.75)) and d.rule == "cap"
    assert parse_policy("markov", make_fit(0.3, 0.1, 0.4)).decide([rec(0)], 8).rule == "belief>=pi"


def test_markov_price_rule() -> None:
    fit = make_fit(0.1, 0.3, 0.4)
    # g0 = 0.14; κT = 0.001 × 100 = 0.1 → continue; round 1: g = 0.084 < 0.1 → stop.
    p = parse_policy("markov:0.001", fit)
    assert p.decide([rec(0)], 8).rule == "gain>price"
    d = p.decide([rec(0), rec(1)], 8)
    assert (d.action, d.rule, d.price) == ("stop", "gain<=price", 0.001)


def test_gate_policy_runs_planned_rounds() -> None:
    p = parse_policy("gate:gamma=0.75", make_fit(0.1, 0.3, 0.2))  # n* = 3
    h = [rec(i) for i in range(5)]
    acts = [p.decide(h[: t + 1], 10).action for t in range(4)]
    assert acts == ["continue"] * 3 + ["stop"]
    closed = parse_policy("gate", make_fit(0.1, 0.3, 0.9)).decide(h[:1], 10)
    assert (closed.action, closed.rule) == ("stop", "gate")
    open_ = parse_policy("gate", make_fit(0.1, 0.3, 0.2))
    assert open_.decide(h[:3], 3).rule == "cap"


def test_repeat_and_oracle() -> None:
    r = parse_policy("repeat", None)
    assert r.decide([rec(0, "1"), rec(1, "2")], 5).action == "continue"
    assert r.decide([rec(0, "1"), rec(1, "1")], 5).rule == "repeat"
    assert r.decide([rec(0, None), rec(1, None)], 5).action == "continue"
    o = parse_policy("oracle", None)
    assert o.decide([rec(0, correct=True)], 5).action == "stop"
    assert o.decide([rec(0, correct=False)], 5).action == "continue"
    with pytest.raises(ValueError, match="gold"):
        o.decide([rec(0)], 5)
    with pytest.raises(ValueError):
        o.decide([], 5)
    with pytest.raises(ValueError):
        o.decide([rec(0, correct=True)], 0)


def test_markov_on_a_frozen_chain_stops_without_dividing_by_zero() -> None:
    import dataclasses

    from mstui.core.fitting import fit_chain
    from mstui.core.policies import MarkovPolicy
    from tests.helpers import make_record

    frozen = dataclasses.replace(fit_chain(["q"], [0], [True]), a=0.0, b=0.0)
    decision = MarkovPolicy(frozen).decide([make_record(0, "p", "r", "7")], 4)
    assert decision.action == "stop" and decision.expected_gain == 0.0
    assert decision.pi == decision.belief


def test_oracle_goes_on_past_a_round_whose_grading_timed_out() -> None:
    import dataclasses

    from tests.helpers import make_record

    ungraded = dataclasses.replace(make_record(0, "p", "r", "9^{9^{9^{9}}}"), judge="timeout")
    d = parse_policy("oracle", None).decide([ungraded], 4)
    assert d.action == "continue" and d.reason == "This round could not be graded."
    with pytest.raises(ValueError, match="needs gold"):  # no gold at all is still an error
        parse_policy("oracle", None).decide([make_record(0, "p", "r", "3")], 4)
