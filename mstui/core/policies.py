"""Stopping policies (DESIGN §1.4) behind the `Policy` protocol, and `parse_policy` for specs.

`max_rounds` is the cap on TOTAL rounds (indices 0..max_rounds−1): after round t a policy may
continue only if t + 1 < max_rounds; when a policy would continue but the cap forbids it, the
decision's rule is "cap". Policies are stateless and cheap (microseconds): the markov belief is
refiltered from the history every time with plain floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mstui.core import stopping
from mstui.core.belief import ObservationModel, belief_trajectory, filter_mode
from mstui.core.fitting import ALLOW_SPARSE_HINT, ChainFit
from mstui.core.markov import TwoStateChain
from mstui.core.mixture import MixtureFit, mixture_filter, mixture_summary
from mstui.core.types import Action, Decision, RoundRecord

VALID_SPECS = (
    "markov, markov:κ (e.g. markov:0.001), mixture, mixture:κ, gate, gate:gamma=G, gate:tau=T, "
    "gate:eps=E, fixed:N, none, repeat, oracle"
)
# The policy names a spec starts with (before any ":"), e.g. to check a stored-run filter.
POLICY_NAMES = ("markov", "mixture", "gate", "fixed", "none", "repeat", "oracle")
NO_FIT = "no chain fit is available for this scope; run `mstui sweep` then `mstui fit` first"


def reads_belief(spec: str) -> bool:
    """Whether a policy decides from the filtered belief q_t (markov, mixture). gate plans from
    p̂₀ before round 0; fixed, none, repeat and oracle read no fit at all."""
    return spec.split(":", 1)[0].strip().lower() in ("markov", "mixture")


def _check(history: Sequence[RoundRecord], max_rounds: int) -> int:
    if not history:
        raise ValueError("a decision needs at least one finished round")
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    return len(history) - 1


def _capped(t: int, max_rounds: int) -> bool:
    return t + 1 >= max_rounds


def _cap_decision(t: int, spec: str, max_rounds: int, **nums: Any) -> Decision:
    return Decision(
        t,
        "stop",
        "cap",
        f"The cap of {max_rounds} round(s) is reached.",
        spec,
        cap=max_rounds,
        **nums,
    )


@dataclass(frozen=True)
class MarkovPolicy:
    """Live rule of §1.3: continue iff b − (a + b) q_t > κ·T and the cap allows.

    T is the mean tokens of the rounds so far (the expected cost of the next round); κ = 0 is the
    pure gate q_t < π. Without an observation model q_t is the chain's prediction from p̂0.
    """

    fit: ChainFit
    obs_model: ObservationModel | None = None
    price: float = 0.0
    spec: str = "markov"
    chain: TwoStateChain = field(init=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.price) and self.price >= 0):
            raise ValueError(f"price κ must be a finite number >= 0, got {self.price!r}")
        object.__setattr__(self, "chain", self.fit.chain)

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Decision after the last round of `history`."""
        t = _check(history, max_rounds)
        c = self.chain
        q = belief_trajectory(c, self.fit.p0, [r.observation for r in history], self.obs_model)[-1]
        gain = c.b - (c.a + c.b) * q
        cost = sum(r.tokens for r in history) / len(history)
        bar = self.price * cost
        pi = c.fixed_point(q)  # π; a frozen chain (a = b = 0) has no π and stays at q
        nums: dict[str, Any] = {
            "belief": q,
            "pi": pi,
            "lam": c.lam,
            "expected_gain": gain,
            "price": self.price,
            "round_cost": cost,
        }
        extra = {"filtered": 0.0 if self.obs_model is None else 1.0, "predicted_next": q + gain}
        go = gain > bar
        if go and _capped(t, max_rounds):
            return Decision(
                t,
                "stop",
                "cap",
                f"One more round would help, but the cap of {max_rounds} round(s) is reached.",
                self.spec,
                cap=max_rounds,
                extra=extra,
                **nums,
            )
        if self.price == 0.0:
            rule = "belief<pi" if go else "belief>=pi"
            why = (
                f"Belief {q:.3f} is below π = {pi:.3f}, so another round is expected to help."
                if go
                else f"Belief {q:.3f} is not below π = {pi:.3f}: another round is not "
                "expected to help."
            )
        else:
            rule = "gain>price" if go else "gain<=price"
            cmp = ">" if go else "≤"
            why = (
                f"Expected gain {gain:+.4f} {cmp} κ·T = {self.price:g}×{cost:.0f} tokens "
                f"= {bar:.4f}."
            )
        action: Action = "continue" if go else "stop"
        return Decision(t, action, rule, why, self.spec, cap=max_rounds, extra=extra, **nums)

    @property
    def mode(self) -> str:
        """Whether the belief is filtered or predict-only (for the UI)."""
        return filter_mode(self.obs_model)


@dataclass(frozen=True)
class MixturePolicy:
    """The live rule of §1.3 under a mixture of chains (§1.7): the belief is a filter over
    (class, state), so the rounds seen also tell whether this question is an easy or a hard one.
    Continue iff the expected gain Σ_k [P(k, W) b_k − P(k, C) a_k] exceeds κ·T and the cap
    allows. `markov` becomes this policy when the fit carries a mixture of more than one class
    that won on held-out likelihood (and says so in its reason)."""

    mixture: MixtureFit
    obs_model: ObservationModel | None = None
    price: float = 0.0
    spec: str = "mixture"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.price) and self.price >= 0):
            raise ValueError(f"price κ must be a finite number >= 0, got {self.price!r}")

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Decision after the last round of `history`."""
        t = _check(history, max_rounds)
        m = self.mixture
        joint = mixture_filter(m, [r.observation for r in history], self.obs_model)
        s = mixture_summary(m, joint)
        q, gain = s["belief"], s["gain"]
        cost = sum(r.tokens for r in history) / len(history)
        bar = self.price * cost
        nums: dict[str, Any] = {"belief": q, "pi": s["pi"], "lam": s["lam"],
                                "expected_gain": gain, "price": self.price, "round_cost": cost}
        extra = {"filtered": 0.0 if self.obs_model is None else 1.0,
                 "predicted_next": q + gain, "classes": float(m.k)}
        extra |= {f"class{k}": p for k, p in enumerate(s["classes"])}
        post = ", ".join(f"{p:.2f}" for p in s["classes"])
        go = gain > bar
        head = f"Mixture of {m.k} chains (class posterior {post}): "
        if go and _capped(t, max_rounds):
            return Decision(t, "stop", "cap", head + f"one more round would help, but the cap "
                            f"of {max_rounds} round(s) is reached.", self.spec, cap=max_rounds,
                            extra=extra, **nums)
        cmp = ">" if go else "≤"
        why = head + f"expected gain {gain:+.4f} {cmp} κ·T = {bar:.4f}."
        rule = ("gain>price" if go else "gain<=price") if self.price else (
            "belief<pi" if go else "belief>=pi")
        action: Action = "continue" if go else "stop"
        return Decision(t, action, rule, why, self.spec, cap=max_rounds, extra=extra, **nums)

    @property
    def mode(self) -> str:
        """Whether the belief is filtered or predict-only (for the UI)."""
        return filter_mode(self.obs_model)


@dataclass(frozen=True)
class GatePolicy:
    """Paper's gating: decide once from p̂0 vs π and a closed-form n*, then run n* more rounds.

    rule: "gate" (run to the best round), "gamma", "tau" or "eps" with `value` (§1.2).
    """

    fit: ChainFit
    rule: str = "gate"
    value: float = 0.0
    spec: str = "gate"

    def plan(self, max_rounds: int) -> stopping.StopResult:
        """n* refinement rounds for this fit under the cap (max_rounds − 1 refinements)."""
        c, p0, n_max = self.fit.chain, self.fit.p0, max(max_rounds - 1, 0)
        if self.rule == "gamma":
            return stopping.gain_fraction(c, p0, self.value, n_max)
        if self.rule == "tau":
            return stopping.target(c, p0, self.value, n_max)
        if self.rule == "eps":
            shut = stopping.gate(c, p0, n_max)
            return shut if shut.n == 0 else stopping.epsilon(c, p0, self.value, n_max)
        return stopping.gate(c, p0, n_max)

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Continue while fewer than n* refinement rounds have run."""
        t = _check(history, max_rounds)
        c = self.fit.chain
        res = self.plan(max_rounds)
        nums: dict[str, Any] = {
            "belief": self.fit.p0 if t == 0 else None,
            "pi": self.fit.pi,
            "lam": c.lam,
        }
        extra = {"n_star": float(res.n)}
        if t < res.n:
            why = f"Planned n* = {res.n} refinement round(s): {res.reason}"
            return Decision(
                t, "continue", res.rule, why, self.spec, cap=max_rounds, extra=extra, **nums
            )
        rule = "cap" if res.capped else res.rule
        why = f"Planned n* = {res.n} refinement round(s) are done: {res.reason}"
        return Decision(t, "stop", rule, why, self.spec, cap=max_rounds, extra=extra, **nums)


@dataclass(frozen=True)
class FixedPolicy:
    """N refinement rounds after round 0 (N + 1 in total), clipped by the cap."""

    n: int
    spec: str = "fixed"

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Continue while t < N."""
        t = _check(history, max_rounds)
        if t >= self.n:
            return Decision(
                t,
                "stop",
                "fixed",
                f"All {self.n} refinement round(s) are done.",
                self.spec,
                cap=max_rounds,
            )
        if _capped(t, max_rounds):
            return _cap_decision(t, self.spec, max_rounds)
        return Decision(
            t,
            "continue",
            "fixed",
            f"Refinement round {t + 1} of {self.n}.",
            self.spec,
            cap=max_rounds,
        )


@dataclass(frozen=True)
class NonePolicy:
    """Never refine: the no-scaling baseline."""

    spec: str = "none"

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Always stop."""
        t = _check(history, max_rounds)
        return Decision(t, "stop", "none", "This policy never refines.", self.spec, cap=max_rounds)


@dataclass(frozen=True)
class RepeatPolicy:
    """Stop when the answer equals the previous round's (a missing answer never counts)."""

    spec: str = "repeat"

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Stop on a repeated answer, else continue until the cap."""
        t = _check(history, max_rounds)
        ans = history[-1].answer
        if t >= 1 and ans is not None and ans == history[-2].answer:
            return Decision(
                t, "stop", "repeat", f"The answer {ans!r} repeated.", self.spec, cap=max_rounds
            )
        if _capped(t, max_rounds):
            return _cap_decision(t, self.spec, max_rounds)
        return Decision(
            t, "continue", "repeat", "The answer has not repeated yet.", self.spec, cap=max_rounds
        )


@dataclass(frozen=True)
class OraclePolicy:
    """Offline upper bound: stop at the first correct round (needs gold: RoundRecord.correct)."""

    spec: str = "oracle"

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Stop when correct; raises ValueError when a round has no gold label."""
        t = _check(history, max_rounds)
        ok = history[-1].correct
        if ok is None and history[-1].judge not in ("timeout", "error"):
            raise ValueError("the oracle policy needs gold answers (RoundRecord.correct is None)")
        if ok:
            return Decision(
                t, "stop", "oracle", "This round's answer is correct.", self.spec, cap=max_rounds
            )
        if _capped(t, max_rounds):
            return _cap_decision(t, self.spec, max_rounds)
        # A round whose grading timed out is not known to be right: the oracle goes on.
        why = "This round's answer is wrong." if ok is False else "This round could not be graded."
        return Decision(t, "continue", "oracle", why, self.spec, cap=max_rounds)


AnyPolicy = (MarkovPolicy | MixturePolicy | GatePolicy | FixedPolicy | NonePolicy | RepeatPolicy
             | OraclePolicy)


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {text!r}")
    return v


FIT_POLICIES = ("markov", "gate", "mixture")  # the policies that decide from a fitted chain


def sparse_refusal(spec: str, fit: ChainFit | None) -> str | None:
    """Why policy `spec` refuses `fit` (a rate rests on too few transitions), or None.

    The one sparse rule: parse_policy (run, sweep, TUI) and `mstui eval` (the whole table and
    each per-level table) all ask it."""
    if fit is None or spec.strip().lower().partition(":")[0] not in FIT_POLICIES:
        return None
    return fit.sparse_reason()


def parse_policy(
    spec: str, fit: ChainFit | None, obs_model: ObservationModel | None = None,
    price: float = 0.0, *, allow_sparse: bool = False,
) -> AnyPolicy:
    """Build a policy from its spec; `price` is κ for plain "markov" ("markov:κ" overrides it).

    markov and gate refuse a sparse fit (ChainFit.sparse_reason: a rate that is the prior) with a
    one-line ValueError unless `allow_sparse`; this is the one rule every caller goes through.
    """
    s = spec.strip().lower()
    name, _, arg = s.partition(":")
    if name in ("markov", "gate", "mixture") and fit is None:
        raise ValueError(f"policy {name!r}: {NO_FIT}")
    if not allow_sparse:
        reason = sparse_refusal(name, fit)
        if reason:
            raise ValueError(f"policy {name!r} refuses this fit: {reason}; fit more rounds, "
                             f"or {ALLOW_SPARSE_HINT}")
    if name in ("markov", "mixture") and fit is not None:
        k = _number(arg, f"{name} price κ") if arg else _number(str(price), "price κ")
        tag = name if k == 0 else f"{name}:{k:g}"
        mix = MixtureFit.from_dict(fit.mixture) if fit.mixture else None
        if name == "mixture":
            if mix is None:
                raise ValueError("policy 'mixture': this fit has no mixture; refit it with "
                                 "`mstui fit`")
            return MixturePolicy(mix, obs_model, k, tag)
        if mix is not None and mix.k > 1:
            # markov picks the mixture when more classes won on held-out likelihood.
            return MixturePolicy(mix, obs_model, k, tag)
        return MarkovPolicy(fit, obs_model, k, tag)
    if name == "gate" and fit is not None:
        if not arg:
            return GatePolicy(fit)
        key, eq, val = arg.partition("=")
        if not eq or key not in ("gamma", "tau", "eps"):
            raise ValueError(f"gate option must be gamma=G, tau=T or eps=E, got {arg!r}")
        v = _number(val, f"gate {key}")
        if key in ("gamma", "tau") and v > 1:
            raise ValueError(f"gate {key} must be in [0, 1], got {val!r}")
        if key == "eps" and v == 0:
            raise ValueError("gate eps must be > 0")
        return GatePolicy(fit, key, v, f"gate:{key}={v:g}")
    if name == "fixed":
        if not arg.isdigit():
            raise ValueError(f"fixed:N needs a whole number of refinement rounds, got {spec!r}")
        return FixedPolicy(int(arg), f"fixed:{int(arg)}")
    if arg:
        raise ValueError(f"policy {name!r} takes no argument, got {spec!r}")
    simple: dict[str, AnyPolicy] = {
        "none": NonePolicy(),
        "repeat": RepeatPolicy(),
        "oracle": OraclePolicy(),
    }
    if name in simple:
        return simple[name]
    raise ValueError(f"unknown policy {spec!r}; valid: {VALID_SPECS}")
