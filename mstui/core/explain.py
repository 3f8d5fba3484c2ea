"""Why the belief after a round is what it is: prior, per-feature likelihood ratios, posterior,
the decision inequality and its counterfactual (the stopping debugger's why-view, issue 13).

Everything here is the filter of `core.belief` taken apart, not a second model: the posterior
odds after round t are the prior odds (the chain's prediction from q_{t−1}, or p̂₀ at round 0)
times the product of the features' tempered likelihood ratios, exactly, so the why-view and the
live belief cannot disagree (tests/test_explain.py checks the identity to 1e-12). The decision
is MarkovScale's live rule (DESIGN §1.3, arXiv 2602.01120): continue iff
b − (a + b) q_t > κ·T, with T the mean tokens of the rounds so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mstui.core.belief import ObservationModel, belief_trajectory, change_category
from mstui.core.fitting import ChainFit
from mstui.core.mixture import MixtureFit, mixture_filter, mixture_joints, mixture_summary
from mstui.core.types import Observation, RoundRecord

NO_EVIDENCE = "not recorded: no evidence (ratio 1)"
CHANGE_TEXT = (
    "same answer, every earlier round agrees",
    "same answer, some earlier round differed",
    "changed to a new answer",
    "changed back to an earlier answer",
    "round 0: nothing to compare",
)


@dataclass(frozen=True)
class Evidence:
    """One feature of one round: its value as observed and its likelihood ratio
    P(value | correct) / P(value | wrong) as the filter uses it (tempered; 1 = no evidence)."""

    name: str
    value: str
    ratio: float
    note: str = ""

    @property
    def log_ratio(self) -> float:
        """ln of the ratio, in nats: how far this feature moved the log-odds."""
        return math.log(self.ratio)


@dataclass(frozen=True)
class Explanation:
    """The why-view of round t (0-based). Probabilities are P(current answer correct); tokens
    are counted as in `RoundRecord.tokens`; `price` κ is accuracy per token."""

    round: int
    prior: float  # P(C) before round t's features: p̂₀ at t = 0, b + λ q_{t−1} after
    prior_source: str
    evidence: tuple[Evidence, ...]
    posterior: float  # q_t
    mode: str  # "filtered" or "predict-only"
    temper: float | None  # the exponent w on every log-likelihood (None: no observation model)
    pi: float | None
    lam: float
    gain: float  # b − (a + b) q_t: accuracy one more round is expected to add
    round_cost: float  # T, mean tokens per round so far
    price: float  # κ
    capped: bool  # the cap forbids another round whatever the rule says
    fit_note: str = ""  # why the fit must not drive a decision (sparse), "" when it may
    # A mixture of chains (DESIGN §1.7): P(class) before and after the round, per class;
    # empty for a single chain.
    classes: tuple[tuple[float, float], ...] = ()
    # Each class's (a_k, b_k, P(k, C) after the round): the gain's terms, to check it by hand.
    class_rates: tuple[tuple[float, float, float], ...] = ()

    @property
    def bar(self) -> float:
        """κ·T, the accuracy another round must add to be worth its tokens."""
        return self.price * self.round_cost

    @property
    def continues(self) -> bool:
        """The rule's verdict before the cap: gain > κ·T."""
        return self.gain > self.bar

    @property
    def flip_price(self) -> float | None:
        """κ* = gain / T: the rule continues for κ < κ* and stops for κ ≥ κ*. None when the
        gain is not positive (stop at every κ ≥ 0) or T is 0."""
        if self.gain <= 0 or self.round_cost <= 0:
            return None
        return self.gain / self.round_cost

    @property
    def strongest(self) -> Evidence | None:
        """The feature that alone moved the belief most (largest |ln ratio|), None if none did."""
        moved = [e for e in self.evidence if abs(e.log_ratio) > 1e-12]
        return max(moved, key=lambda e: abs(e.log_ratio)) if moved else None

    def inequality(self) -> str:
        """The decision inequality with both sides, e.g. 'gain +0.0123 > κ·T = 0.0040'."""
        op = ">" if self.continues else "≤"
        # A mixture's gain is summed over its classes; the single chain's a, b do not give it.
        formula = "Σ_k P(k,W)·b_k − P(k,C)·a_k" if self.classes else "b−(a+b)q"
        return (f"gain {formula} = {self.gain:+.4f} {op} κ·T = {self.price:g}×"
                f"{self.round_cost:.0f} tok = {self.bar:.4f}")

    def counterfactual(self) -> str:
        """One line: the κ at which the decision flips, and the feature that moved q most."""
        k = self.flip_price
        if k is None:
            flip = "stops at every κ ≥ 0 (another round is not expected to help)"
        else:
            flip = f"flips at κ* = {k:.3g} (continue below, stop at or above)"
        s = self.strongest
        moved = ("no feature moved the belief" if s is None
                 else f"strongest feature: {s.name} (×{s.ratio:.3g})")
        return f"{flip}; {moved}"


def _odds(p: float) -> float:
    return math.inf if p >= 1.0 else p / (1.0 - p)


def mixture_of(fit: ChainFit) -> MixtureFit | None:
    """The mixture markov decides from (parse_policy's rule: a stored mixture of more than one
    class), or None when markov uses the single chain."""
    if not fit.mixture:
        return None
    mix = MixtureFit.from_dict(fit.mixture)
    return mix if mix.k > 1 else None


@dataclass(frozen=True)
class MarkovView:
    """What the markov policy sees after the rounds so far (or before round 0): the belief path
    q_0..q_t, π and λ, the predicted accuracy `curve[k]` k rounds ahead (curve[0] = the current
    belief), and the regime, from the mixture when markov uses one (π, λ weighted by the class
    posterior; regime from the sign of its expected gain), else from the single chain."""

    beliefs: tuple[float, ...]
    pi: float
    lam: float
    curve: tuple[float, ...]
    regime: str
    classes: int  # 1 for the single chain


def markov_view(fit: ChainFit, obs_model: ObservationModel | None,
                observations: Sequence[Observation], horizon: int = 1,
                belief: float | None = None) -> MarkovView:
    """The shadow view of policies that read no fit, and the probability panel's numbers.

    `horizon` ≥ 1 is the curve's length; `belief` (a decision's stored q_t) replaces the
    filtered one for the single chain's curve, so a replay shows what its run saw."""
    mix = mixture_of(fit)
    horizon = max(horizon, 1)
    if mix is None:
        chain = fit.chain
        qs = belief_trajectory(chain, fit.p0, observations, obs_model) if observations else []
        q = belief if belief is not None else (qs[-1] if qs else fit.p0)
        q = min(max(q, 0.0), 1.0)
        curve = tuple(float(chain.accuracy(q, k)) for k in range(horizon))
        return MarkovView(tuple(qs), fit.pi, fit.lam, curve, chain.regime(q), 1)
    joints = mixture_joints(mix, observations, obs_model)  # one pass over the rounds
    qs = [sum(c for _, c in j) for j in joints]  # q_t = Σ_k P(k, C)
    joint = mixture_filter(mix, observations, obs_model) if not joints else joints[-1]
    s = mixture_summary(mix, joint)
    ahead: list[float] = []
    mass = [(w + c, c) for w, c in joint]  # (P(class k), P(class k, C))
    for _ in range(horizon):
        ahead.append(sum(c for _, c in mass))
        # One more round in each class: C ← b·(P(k) − C) + (1 − a)·C.
        mass = [(pk, b * (pk - c) + (1 - a) * c)
                for (pk, c), a, b in zip(mass, mix.a, mix.b, strict=True)]
    gain = float(s["gain"])
    regime = "neutral" if abs(gain) <= 1e-9 else ("beneficial" if gain > 0 else "detrimental")
    return MarkovView(tuple(qs), float(s["pi"]), float(s["lam"]), tuple(ahead), regime, mix.k)


def explain_round(
    fit: ChainFit,
    obs_model: ObservationModel | None,
    history: Sequence[RoundRecord],
    t: int | None = None,
    *,
    price: float = 0.0,
    max_rounds: int | None = None,
    fit_label: str = "the fit",
) -> Explanation:
    """The why-view of round `t` of `history` (default: the last).

    `history` are the finished rounds in order (cancelled and failed ones excluded, as the
    policies see them). Raises ValueError for an empty history or t out of range.
    """
    if not history:
        raise ValueError("no finished round to explain")
    t = len(history) - 1 if t is None else t
    if not 0 <= t < len(history):
        raise ValueError(f"round {t} is not among the {len(history)} finished round(s)")
    mix = mixture_of(fit)
    if mix is not None:
        return _explain_mixture(fit, mix, obs_model, history, t, price, max_rounds, fit_label)
    chain = fit.chain
    rounds = list(history[: t + 1])
    qs = belief_trajectory(chain, fit.p0, [r.observation for r in rounds], obs_model)
    q = qs[-1]
    if t == 0:
        prior, source = fit.p0, f"p̂₀ of {fit_label} (first-round accuracy)"
    else:
        prior = chain.b + chain.lam * qs[-2]
        source = f"chain prediction b + λ·q_{t - 1} = {chain.b:.3f} + {chain.lam:.3f}×{qs[-2]:.3f}"
    evidence = () if obs_model is None else _evidence(obs_model, rounds[-1], qs, chain, t)
    cost = sum(r.tokens for r in rounds) / len(rounds)
    pi = chain.fixed_point(q)
    return Explanation(
        round=t,
        prior=prior,
        prior_source=source,
        evidence=evidence,
        posterior=q,
        mode="predict-only" if obs_model is None else "filtered",
        temper=None if obs_model is None else obs_model.temper,
        pi=None if not math.isfinite(pi) else pi,
        lam=chain.lam,
        gain=chain.b - (chain.a + chain.b) * q,
        round_cost=cost,
        price=price,
        capped=max_rounds is not None and t + 1 >= max_rounds,
        fit_note=fit.sparse_reason() or "",
    )


def _explain_mixture(fit: ChainFit, mix: MixtureFit, obs_model: ObservationModel | None,
                     history: Sequence[RoundRecord], t: int, price: float,
                     max_rounds: int | None, fit_label: str) -> Explanation:
    """explain_round for a mixture: the prior is the joint (class, state) prediction, and the
    change ratio is averaged over class and previous state; the rest is shared by the classes."""
    obs = [r.observation for r in history[: t + 1]]
    joints = mixture_joints(mix, obs, obs_model)  # after each round, one pass
    if t == 0:
        pred = [(w * (1 - p0), w * p0) for w, p0 in zip(mix.w, mix.p0, strict=True)]
        prev = None
    else:
        prev = joints[-2]
        pred = [(mw * (1 - b) + mc * a, mw * b + mc * (1 - a))
                for (mw, mc), a, b in zip(prev, mix.a, mix.b, strict=True)]
    prior = sum(c for _, c in pred)
    s = mixture_summary(mix, joints[-1])
    source = (f"p̂₀ of the {mix.k} classes, weighted" if t == 0 else
              f"each class's chain prediction from round {t - 1}, weighted by P(class)")
    evidence: tuple[Evidence, ...] = ()
    if obs_model is not None:
        change = 1.0
        if prev is not None:
            pair = obs_model.factors(obs[-1])[2]  # [x_{t−1}][x_t], tempered
            to_c = sum(mw * b * pair[0][1] + mc * (1 - a) * pair[1][1]
                       for (mw, mc), a, b in zip(prev, mix.a, mix.b, strict=True)) / prior
            to_w = sum(mw * (1 - b) * pair[0][0] + mc * a * pair[1][0]
                       for (mw, mc), a, b in zip(prev, mix.a, mix.b, strict=True)) / (1 - prior)
            change = to_c / to_w
        evidence = _evidence(obs_model, history[t], None, None, t, change=change)
    cost = sum(r.tokens for r in history[: t + 1]) / (t + 1)
    return Explanation(
        round=t, prior=prior, prior_source=source, evidence=evidence,
        posterior=float(s["belief"]), mode="predict-only" if obs_model is None else "filtered",
        temper=None if obs_model is None else obs_model.temper, pi=float(s["pi"]),
        lam=float(s["lam"]), gain=float(s["gain"]), round_cost=cost, price=price,
        capped=max_rounds is not None and t + 1 >= max_rounds,
        fit_note=fit.sparse_reason() or "",
        classes=tuple((pw + pc, float(post)) for (pw, pc), post
                      in zip(pred, s["classes"], strict=True)),
        class_rates=tuple((a, b, c) for a, b, (_, c)
                          in zip(mix.a, mix.b, joints[-1], strict=True)),
    )


def _evidence(obs_model: ObservationModel, r: RoundRecord, qs: Sequence[float] | None,
              chain: object, t: int, change: float | None = None) -> tuple[Evidence, ...]:
    o = r.observation
    if qs is None:  # a mixture: the change ratio comes averaged over the classes
        lr = obs_model.likelihood_ratios(o) | {"change": change if change is not None else 1.0}
    else:
        lr = obs_model.likelihood_ratios(o, qs[-2] if t > 0 else None,
                                         chain if t > 0 else None)  # type: ignore[arg-type]
    out = [Evidence("answer found", "yes" if o.found else "no", lr["found"])]
    if o.logprob is None or not math.isfinite(o.logprob):
        out.append(Evidence("log-probability", "—", 1.0, NO_EVIDENCE))
    else:
        b = obs_model.lp_bin(o.logprob)
        out.append(Evidence("log-probability", f"{o.logprob:.3f} nats/token (bin {b + 1} of "
                            f"{len(obs_model.edges) + 1})", lr["log-probability"]))
    cat = change_category(o.changed, o.agreement)
    agree = "—" if o.agreement is None else f"{o.agreement:.2f}"
    # The change feature is conditioned on the previous state, so its ratio depends on the
    # belief after the previous round: the same value weighs differently at each round.
    out.append(Evidence("changed / agreement", f"{CHANGE_TEXT[cat]} (agreement {agree})",
                        lr["change"], NO_EVIDENCE if cat == 4 else
                        f"weighed by the belief after round {t - 1}"))
    if o.thinking_tokens is not None:
        th, tr = _reasoning_ratios(obs_model, o.found, o.truncated, o.thinking_tokens)
        note = "" if th != 1.0 or obs_model.thinking is not None else (
            "the fit has no thinking-length table: no evidence")
        out.append(Evidence("thinking length", f"{o.thinking_tokens} tokens", th, note))
        if not o.found:
            out.append(Evidence("truncated", "yes: ended inside its thinking" if o.truncated
                                else "no", tr))
    return tuple(out)


def _reasoning_ratios(m: ObservationModel, found: bool, truncated: bool,
                      tokens: int) -> tuple[float, float]:
    """(thinking-length ratio, truncated ratio); their product is reasoning_factors' ratio."""
    tb = m.thinking_bin(tokens)
    if tb < 0 or m.thinking is None or m.truncated is None:
        return 1.0, 1.0
    w = m.temper
    th = (m.thinking[1][tb] / m.thinking[0][tb]) ** w
    tr = 1.0 if found else (m.truncated[1][int(truncated)] / m.truncated[0][int(truncated)]) ** w
    return th, tr


def odds_check(e: Explanation) -> float:
    """|ln posterior odds − (ln prior odds + Σ ln ratios)|: 0 up to rounding for a filtered
    belief (the why-view's identity); for tests and the UI's self-check."""
    if e.mode != "filtered":
        return 0.0
    lhs = math.log(_odds(e.posterior))
    rhs = math.log(_odds(e.prior)) + sum(x.log_ratio for x in e.evidence)
    return abs(lhs - rhs)
