"""View models: every number the panels show, computed by the core (widgets only format them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mstui.core.types import Decision, RoundRecord

# The core's numerics pull in numpy and scipy (~0.7 s); they are imported where used, so the
# first frame does not wait for them.
if TYPE_CHECKING:
    from mstui.core.belief import ObservationModel
    from mstui.core.fitting import ChainFit


@dataclass(frozen=True)
class ProbView:
    """The probability panel's content after round t (or before any decision: t = -1)."""

    round: int
    belief: float | None  # q_t
    pi: float | None
    lam: float | None
    regime: str | None
    curve: tuple[tuple[int, float], ...] = ()  # (round n, predicted p_n from q_t), n >= t
    beliefs: tuple[float, ...] = ()  # q_0..q_t as the filter saw them
    marks: tuple[bool | None, ...] = ()  # correctness of rounds 0..t where gold is known
    fit_label: str = "no fit"
    fit_lines: tuple[str, ...] = ()
    mode: str = ""
    # The fit behind the numbers, for the why-view (core.explain); not part of equality.
    fit: ChainFit | None = field(default=None, compare=False, repr=False)
    obs_model: ObservationModel | None = field(default=None, compare=False, repr=False)
    fit_note: str = ""  # why the fit must not drive a decision (sparse), or that it is a shadow
    classes: int = 1  # chains behind q_t: more than one when markov uses a mixture
    # What markov would decide here, for a policy that reads no belief (fixed, none, …).
    shadow: Decision | None = field(default=None, compare=False)


EMPTY_VIEW = ProbView(-1, None, None, None, None)


NO_FIT_LINE = "no fit for this model/strategy: run `mstui sweep`, then `mstui fit`"


def fit_lines(fit: ChainFit | None) -> tuple[str, ...]:
    """The fit a view came from: its size, counts, 95% intervals and flags, as short lines."""
    if fit is None:
        return (NO_FIT_LINE,)
    flags = ", ".join(fit.flags) or "none"
    return (
        f"{fit.n_questions} questions · {fit.n_transitions} transitions · flags: {flags}",
        f"a={fit.a:.3f} [{fit.a_lo:.3f}, {fit.a_hi:.3f}]  b={fit.b:.3f} [{fit.b_lo:.3f}, "
        f"{fit.b_hi:.3f}]",
        f"p̂0={fit.p0:.3f} [{fit.p0_lo:.3f}, {fit.p0_hi:.3f}]  "
        f"CC {fit.n_cc} CW {fit.n_cw} WC {fit.n_wc} WW {fit.n_ww}",
    )


def prob_view(
    fit: ChainFit | None,
    obs_model: ObservationModel | None,
    history: Sequence[RoundRecord],
    decision: Decision | None,
    max_rounds: int,
    fit_label: str = "no fit",
    fit_note: str = "",
    price: float | None = None,
) -> ProbView:
    """q_t, π, λ, regime and the predicted curve p_n = chain.accuracy(q_t, n - t).

    With no history (t = -1) it is the prediction before round 0: p̂₀ and the curve from it.
    Whatever the policy, the belief is the fit's filter (a shadow belief for policies that do
    not read it, such as fixed). A decision's stored belief wins over recomputation, so a replay
    shows what the run saw. With `price` (κ), a decision without a belief gets `shadow`,
    what markov would have decided from this fit (a sparse fit included: it is only shown).
    """
    from mstui.core.belief import filter_mode
    from mstui.core.explain import markov_view
    from mstui.core.policies import reads_belief

    t = len(history) - 1
    marks = tuple(r.correct for r in history)
    # A decision's numbers are the belief's only when its policy filters one (markov, mixture);
    # gate's q is the p̂₀ it planned from, and the others have none.
    own = decision is not None and reads_belief(decision.policy)
    d_belief = decision.belief if own and decision is not None else None
    if fit is None:
        return ProbView(
            t,
            d_belief,
            decision.pi if decision else None,
            decision.lam if decision else None,
            None,
            marks=marks,
            fit_label=fit_label,
            fit_lines=fit_lines(None),
            fit_note=fit_note,
        )
    # What markov sees (the mixture's filter when markov uses one), whatever the policy.
    start = max(t, 0)
    mv = markov_view(fit, obs_model, [r.observation for r in history],
                     horizon=max(max_rounds - start, 1), belief=d_belief)
    q = d_belief if d_belief is not None else mv.curve[0]
    q = min(max(q, 0.0), 1.0)
    shadow = None
    if price is not None and decision is not None and not own and history:
        from mstui.core.policies import parse_policy

        markov = parse_policy("markov", fit, obs_model, price=price, allow_sparse=True)
        shadow = markov.decide(history, max(max_rounds, len(history)))
    lines = fit_lines(fit)
    if mv.classes > 1:
        lines = (f"markov uses a mixture of {mv.classes} chains: q_t, π, λ, regime and p̂ "
                 "come from it (π, λ weighted by P(class)); a, b below are the single chain's",
                 *lines)
    sparse = fit.sparse_reason() is not None
    return ProbView(
        round=t,
        belief=q,
        pi=decision.pi if own and decision is not None and decision.pi is not None else mv.pi,
        lam=(decision.lam if own and decision is not None and decision.lam is not None
             else mv.lam),
        # A regime from a sparse fit is the prior's verdict, not the data's: it says so.
        regime=mv.regime + (" (from the prior: sparse fit)" if sparse else ""),
        curve=tuple((start + k, p) for k, p in enumerate(mv.curve)),
        beliefs=mv.beliefs,
        marks=marks,
        fit_label=fit_label,
        fit_lines=lines,
        mode=filter_mode(obs_model),
        fit=fit,
        obs_model=obs_model,
        fit_note=fit_note,
        shadow=shadow,
        classes=mv.classes,
    )


@dataclass(frozen=True)
class WhatIf:
    """Where a policy would have stopped on a stored run, and what that would have given."""

    policy: str
    stop_round: int  # last round run (0-based)
    answer: str | None
    correct: bool | None
    tokens: int
    decision: Decision
    beyond: bool  # the policy wanted more rounds than were stored
    note: str = ""


def what_if(
    rounds: Sequence[RoundRecord],
    spec: str,
    price: float,
    max_rounds: int,
    fit: ChainFit | None,
    obs_model: ObservationModel | None,
) -> WhatIf:
    """Replay `decide` of a new policy over stored rounds (the core's replay, no model run)."""
    from mstui.core.evaluation import replay_decide
    from mstui.core.policies import parse_policy

    if not rounds:
        raise ValueError("this run has no finished round to replay")
    if max_rounds < 1:
        raise ValueError(f"N_max must be at least 1 (got {max_rounds})")
    usable = [r for r in rounds if r.finish_reason not in ("cancelled", "error")]
    if not usable:
        raise ValueError("this run has no finished round to replay")
    policy = parse_policy(spec, fit, obs_model, price=price)
    k = int(replay_decide([usable], policy, max_rounds)[0])
    decision = policy.decide(usable[: k + 1], max_rounds)
    beyond = decision.action == "continue" and k + 1 < max_rounds
    chosen = usable[k]
    note = (
        f"would continue past round {k}, but only {len(usable)} round(s) are stored"
        if beyond
        else ""
    )
    return WhatIf(
        policy.spec,
        k,
        chosen.answer,
        chosen.correct,
        sum(r.tokens for r in usable[: k + 1]),
        decision,
        beyond,
        note,
    )


@dataclass
class SetWhatIf:
    """A new policy over many stored runs compared with where they actually stopped."""

    policy: str
    runs: int = 0
    earlier: int = 0
    later: int = 0
    same: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    answers_changed: int = 0
    correct_before: int = 0
    correct_after: int = 0
    labelled: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A short report for the replay screen."""
        saved = self.tokens_before - self.tokens_after
        out = [
            f"{self.policy} over {self.runs} stored run(s) ({self.skipped} skipped):",
            f"stops earlier {self.earlier} · later {self.later} · same {self.same}",
            f"tokens {self.tokens_before} → {self.tokens_after} (saved {saved})",
            f"answers changed {self.answers_changed}",
        ]
        if self.labelled:
            out.append(
                f"accuracy {self.correct_before}/{self.labelled} → "
                f"{self.correct_after}/{self.labelled}"
            )
        return out


def set_what_if(
    runs: Sequence[dict[str, Any]],
    spec: str,
    price: float,
    max_rounds: int,
    fit: ChainFit | None,
    obs_model: ObservationModel | None,
) -> SetWhatIf:
    """what_if over every run (each a get_run() dict) against the round it really stopped at."""
    out = SetWhatIf(policy=spec)
    for run in runs:
        rounds = [r for r in run["rounds"] if r.finish_reason not in ("cancelled", "error")]
        if not rounds:
            out.skipped += 1
            continue
        new = what_if(rounds, spec, price, max_rounds, fit, obs_model)
        out.policy = new.policy
        old = rounds[-1]
        out.runs += 1
        k_old = len(rounds) - 1
        out.earlier += new.stop_round < k_old
        out.later += new.beyond
        out.same += new.stop_round == k_old and not new.beyond
        out.tokens_before += sum(r.tokens for r in rounds)
        out.tokens_after += new.tokens
        out.answers_changed += new.answer != old.answer
        if old.correct is not None and new.correct is not None:
            out.labelled += 1
            out.correct_before += old.correct
            out.correct_after += new.correct
    return out


def fit_of_stored(data: dict[str, Any] | None) -> tuple[ChainFit | None, ObservationModel | None]:
    """A stored fit dict (Store.get_fit) as the policies' inputs."""
    from mstui.core.belief import ObservationModel
    from mstui.core.fitting import ChainFit

    if not data:
        return None, None
    obs = data.get("obs_model")
    return ChainFit.from_dict(data), ObservationModel.from_dict(obs) if obs else None
