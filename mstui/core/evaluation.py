"""Offline evaluation of policies on a pool by truncation (DESIGN §1.6), vectorized with numpy.

A pool holds every question run to R rounds. A policy that stops after round k returns round k's
answer and pays the tokens of rounds 0..k. Stop rounds are computed for all questions at once
with the same rules (and, for markov, the same float arithmetic) as `Policy.decide`, which
`replay_decide` checks round by round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from mstui.core.belief import ObservationModel, belief_matrix, change_categories
from mstui.core.fitting import ChainFit, fit_pool, wilson_interval
from mstui.core.policies import (
    AnyPolicy,
    FixedPolicy,
    GatePolicy,
    MarkovPolicy,
    MixturePolicy,
    NonePolicy,
    OraclePolicy,
    RepeatPolicy,
    parse_policy,
)
from mstui.core.types import Observation, RoundRecord

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Pool:
    """Arrays [Q, R]: correctness, tokens paid, answer codes (−1 none) and observation features."""

    correct: NDArray[np.bool_]
    tokens: I64
    answers: I64
    found: NDArray[np.bool_]
    changed: I64  # 1 changed, 0 same, −1 unknown (round 0)
    agreement: F64  # NaN = unknown
    logprob: F64  # NaN = unknown

    def __post_init__(self) -> None:
        shape = np.shape(self.correct)
        if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
            raise ValueError("a pool needs at least one question and one round: correct[Q, R]")
        for name in ("tokens", "answers", "found", "changed", "agreement", "logprob"):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"pool array {name!r} must have shape {shape}")
        if np.any(np.asarray(self.tokens) < 0):
            raise ValueError("token counts must be >= 0")

    @property
    def n_questions(self) -> int:
        """Q."""
        return int(self.correct.shape[0])

    @property
    def n_rounds(self) -> int:
        """R, the rounds each question was run to."""
        return int(self.correct.shape[1])

    def subset(self, idx: I64) -> Pool:
        """The pool restricted to questions `idx`."""
        return Pool(*(np.asarray(getattr(self, f))[idx] for f in self.__dataclass_fields__))

    def fit_obs_model(self, fit: ChainFit) -> ObservationModel:
        """The observation model fitted on this pool's features and labels, under `fit`."""
        return ObservationModel.fit_arrays(self.found, self.changed, self.agreement,
                                           self.logprob, self.correct, chain=fit.chain,
                                           p0=fit.p0)

    @classmethod
    def from_records(cls, histories: Sequence[Sequence[RoundRecord]]) -> Pool:
        """Build from full runs (every history has the same number of rounds and gold labels)."""
        if not histories or not histories[0]:
            raise ValueError("an empty pool cannot be evaluated")
        nr = len(histories[0])
        if any(len(h) != nr for h in histories):
            raise ValueError("every question in a pool must be run to the same number of rounds")
        codes: dict[str, int] = {}
        rows: list[list[Any]] = []
        for h in histories:
            for r in h:
                if r.correct is None:
                    raise ValueError(f"round {r.index} has no gold label; a pool needs them all")
                o = r.observation
                ans = -1 if r.answer is None else codes.setdefault(r.answer, len(codes))
                rows.append(
                    [
                        r.correct,
                        r.tokens,
                        ans,
                        o.found,
                        -1 if o.changed is None else int(o.changed),
                        math.nan if o.agreement is None else o.agreement,
                        math.nan if o.logprob is None else o.logprob,
                    ]
                )
        cols = list(zip(*rows, strict=True))
        shape = (len(histories), nr)
        dt = (np.bool_, np.int64, np.int64, np.bool_, np.int64, np.float64, np.float64)
        return cls(*(np.asarray(c, dtype=d).reshape(shape) for c, d in zip(cols, dt, strict=True)))

    def records(self) -> list[list[RoundRecord]]:
        """RoundRecords for every question (answers as code strings); used for replay checks."""
        out = []
        for i in range(self.n_questions):
            h = []
            for t in range(self.n_rounds):
                ch, ag, lp = self.changed[i, t], self.agreement[i, t], self.logprob[i, t]
                obs = Observation(
                    bool(self.found[i, t]),
                    None if ch < 0 else bool(ch),
                    None if np.isnan(ag) else float(ag),
                    None if np.isnan(lp) else float(lp),
                )
                ans = None if self.answers[i, t] < 0 else str(int(self.answers[i, t]))
                h.append(
                    RoundRecord(
                        t,
                        "",
                        "",
                        ans,
                        ans,
                        "boxed",
                        bool(self.correct[i, t]),
                        int(self.tokens[i, t]),
                        0,
                        0,
                        "stop",
                        0.0,
                        0.0,
                        obs,
                    )
                )
            out.append(h)
        return out


@dataclass(frozen=True)
class PolicyResult:
    """Accuracy and cost of one policy on a pool, with 95% intervals."""

    policy: str
    accuracy: float
    acc_lo: float
    acc_hi: float
    mean_tokens: float
    tok_lo: float
    tok_hi: float
    mean_rounds: float  # total rounds run per question (k + 1)
    n_questions: int
    params: dict[str, float] = field(default_factory=dict)


def _first_stop(stop: NDArray[np.bool_], cap: int) -> I64:
    """Index of the first True per row within the first `cap` columns (the last is forced)."""
    s = stop[:, :cap].copy()
    s[:, cap - 1] = True
    return np.argmax(s, axis=1).astype(np.int64)


def _cap(pool: Pool, max_rounds: int | None) -> int:
    cap = pool.n_rounds if max_rounds is None else max_rounds
    if cap < 1 or cap > pool.n_rounds:
        raise ValueError(f"max_rounds must be in [1, {pool.n_rounds}] for this pool, got {cap}")
    return cap


def markov_inputs(pool: Pool, policy: MarkovPolicy) -> tuple[F64, F64]:
    """(expected gain g[Q, R], round cost T[Q, R]) exactly as MarkovPolicy.decide computes them."""
    c, m = policy.chain, policy.obs_model
    cat = change_categories(pool.changed, pool.agreement)
    lpb = m.lp_bins(pool.logprob) if m is not None else np.zeros_like(cat)
    q = belief_matrix(c, policy.fit.p0, pool.found, cat, lpb, m)
    gain = c.b - (c.a + c.b) * q
    cost = np.cumsum(pool.tokens, axis=1) / np.arange(1, pool.n_rounds + 1)
    return gain, cost


def mixture_inputs(pool: Pool, policy: MixturePolicy) -> tuple[F64, F64]:
    """(expected gain g[Q, R], round cost T[Q, R]) as MixturePolicy.decide computes them: the
    (class, state) filter of core.mixture.mixture_filter, vectorized over questions."""
    mix, m = policy.mixture, policy.obs_model
    nq, nr = pool.correct.shape
    if m is None:
        ones = np.ones((nq, nr))
        sw = sc = pww = pwc = pcw = pcc = ones
    else:
        cat = change_categories(pool.changed, pool.agreement)
        sw, sc, pww, pwc, pcw, pcc = m.factor_arrays(pool.found, cat, m.lp_bins(pool.logprob))
    w, a, b, p0 = (np.asarray(v, np.float64) for v in (mix.w, mix.a, mix.b, mix.p0))
    jw = np.broadcast_to(w * (1 - p0), (nq, mix.k)) * sw[:, :1]
    jc = np.broadcast_to(w * p0, (nq, mix.k)) * sc[:, :1]
    gain = np.empty((nq, nr))
    for t in range(nr):
        if t:
            nw = (jw * (1 - b) * pww[:, t:t + 1] + jc * a * pcw[:, t:t + 1]) * sw[:, t:t + 1]
            nc = (jw * b * pwc[:, t:t + 1] + jc * (1 - a) * pcc[:, t:t + 1]) * sc[:, t:t + 1]
            jw, jc = nw, nc
        total = (jw + jc).sum(axis=1, keepdims=True)
        jw, jc = jw / total, jc / total
        gain[:, t] = (jw * b - jc * a).sum(axis=1)
    cost = np.cumsum(pool.tokens, axis=1) / np.arange(1, pool.n_rounds + 1)
    return gain, cost


def stop_rounds(pool: Pool, policy: AnyPolicy, max_rounds: int | None = None) -> I64:
    """Round k after which `policy` stops, per question (vectorized replay)."""
    cap = _cap(pool, max_rounds)
    nq = pool.n_questions
    if isinstance(policy, NonePolicy):
        return np.zeros(nq, np.int64)
    if isinstance(policy, FixedPolicy):
        return np.full(nq, min(policy.n, cap - 1), np.int64)
    if isinstance(policy, GatePolicy):
        return np.full(nq, min(policy.plan(cap).n, cap - 1), np.int64)
    if isinstance(policy, OraclePolicy):
        return _first_stop(pool.correct, cap)
    if isinstance(policy, RepeatPolicy):
        a = pool.answers
        rep = np.zeros_like(pool.correct)
        rep[:, 1:] = (a[:, 1:] >= 0) & (a[:, 1:] == a[:, :-1])
        return _first_stop(rep, cap)
    if isinstance(policy, MixturePolicy):
        gain, cost = mixture_inputs(pool, policy)
    else:
        gain, cost = markov_inputs(pool, policy)
    return _first_stop(~(gain > policy.price * cost), cap)


def score(pool: Pool, k: I64, name: str, params: dict[str, float] | None = None) -> PolicyResult:
    """Accuracy and tokens of stopping each question after round k[q]."""
    rows = np.arange(pool.n_questions)
    ok = pool.correct[rows, k]
    paid = np.cumsum(pool.tokens, axis=1)[rows, k].astype(np.float64)
    n = ok.size
    lo, hi = wilson_interval(ok.sum(), n)
    mean = float(paid.mean())
    half = 0.0
    if n > 1:
        half = float(stats.t.ppf(0.975, n - 1) * paid.std(ddof=1) / math.sqrt(n))
    return PolicyResult(
        name,
        float(ok.mean()),
        float(lo),
        float(hi),
        mean,
        mean - half,
        mean + half,
        float(k.mean() + 1),
        n,
        params or {},
    )


def evaluate(
    pool: Pool, policies: Sequence[AnyPolicy], max_rounds: int | None = None
) -> list[PolicyResult]:
    """Score each policy on the pool by truncation."""
    return [score(pool, stop_rounds(pool, p, max_rounds), p.spec) for p in policies]


def sweep(
    pool: Pool,
    fit: ChainFit,
    obs_model: ObservationModel | None = None,
    kappas: Sequence[float] | F64 = (),
    gammas: Sequence[float] | F64 = (),
    taus: Sequence[float] | F64 = (),
    max_rounds: int | None = None,
) -> list[PolicyResult]:
    """Pareto sweep: markov over κ (belief computed once), gate over γ and τ."""
    cap = _cap(pool, max_rounds)
    out: list[PolicyResult] = []
    if len(kappas):
        gain, cost = markov_inputs(pool, MarkovPolicy(fit, obs_model))
        for kappa in kappas:
            k = _first_stop(~(gain > kappa * cost), cap)
            out.append(score(pool, k, f"markov:{kappa:g}", {"kappa": float(kappa)}))
    for key, values in (("gamma", gammas), ("tau", taus)):
        for v in values:
            n = min(GatePolicy(fit, key, v).plan(cap).n, cap - 1)
            out.append(
                score(
                    pool,
                    np.full(pool.n_questions, n, np.int64),
                    f"gate:{key}={v:g}",
                    {key: float(v)},
                )
            )
    return out


def pareto_front(results: Sequence[PolicyResult]) -> list[PolicyResult]:
    """Results not dominated (higher-or-equal accuracy at lower-or-equal tokens), by tokens."""
    ordered = sorted(results, key=lambda r: (r.mean_tokens, -r.accuracy))
    front: list[PolicyResult] = []
    for r in ordered:
        if not front or r.accuracy > front[-1].accuracy:
            front.append(r)
    return front


def bounds(pool: Pool, fit: ChainFit) -> dict[str, Any]:
    """§1.1 bounds beside the results: observed neutral and oracle, model upper/lower.

    Model bounds integrate max/min(p0, π) over the fitted Beta spread of p0(q); when the spread
    is unidentified they use p̂0 for every question (then `upper` understates the true bound,
    since max is convex) and say so in `note`.
    """
    pi = fit.pi
    oracle = float(np.any(pool.correct, axis=1).mean())
    out: dict[str, Any] = {
        "neutral_observed": float(pool.correct[:, 0].mean()),
        "oracle_observed": oracle,
        "pi": pi,
    }
    if fit.p0_alpha is not None and fit.p0_beta is not None:
        al, be = fit.p0_alpha, fit.p0_beta
        mu = al / (al + be)
        upper = pi * float(stats.beta.cdf(pi, al, be)) + mu * float(stats.beta.sf(pi, al + 1, be))
        out.update(neutral=mu, upper=upper, lower=mu + pi - upper, note="Beta spread of p0(q)")
    else:
        out.update(
            neutral=fit.p0,
            upper=max(fit.p0, pi),
            lower=min(fit.p0, pi),
            note="p0 spread unidentified: bounds use p̂0 for every question",
        )
    return out


def split_questions(n: int, test_fraction: float = 0.5, seed: int = 0) -> tuple[I64, I64]:
    """Disjoint (train, test) question indices, shuffled with `seed`."""
    if n < 2 or not 0.0 < test_fraction < 1.0:
        raise ValueError("splitting needs >= 2 questions and a test fraction in (0, 1)")
    perm = np.random.default_rng(seed).permutation(n)
    cut = min(max(round(n * (1 - test_fraction)), 1), n - 1)
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def cross_validate(
    pool: Pool,
    specs: Sequence[str],
    folds: int = 5,
    seed: int = 0,
    with_obs_model: bool = True,
    price: float = 0.0,
    max_rounds: int | None = None,
) -> list[PolicyResult]:
    """k-fold by question: fit the chain (and observation model) on k−1 folds, stop on the last.

    Every question is scored once, by policies fitted without it.
    """
    if folds < 2 or folds > pool.n_questions:
        raise ValueError(f"folds must be in [2, {pool.n_questions}], got {folds}")
    fold = np.random.default_rng(seed).permutation(pool.n_questions) % folds
    ks = {s: np.zeros(pool.n_questions, np.int64) for s in specs}
    for f in range(folds):
        train, test = pool.subset(np.nonzero(fold != f)[0]), np.nonzero(fold == f)[0]
        fit = fit_pool(train.correct, scope=f"fold{f}")
        om = train.fit_obs_model(fit) if with_obs_model else None
        sub = pool.subset(test)
        for s in specs:
            # Offline scoring of small folds: a sparse fold fit is scored, not refused.
            pol = parse_policy(s, fit, om, price, allow_sparse=True)
            ks[s][test] = stop_rounds(sub, pol, max_rounds)
    return [score(pool, ks[s], s) for s in specs]


def replay_decide(
    histories: Sequence[Sequence[RoundRecord]], policy: AnyPolicy, max_rounds: int
) -> I64:
    """Stop rounds by calling `policy.decide` round by round (the slow reference)."""
    out = np.zeros(len(histories), np.int64)
    for i, h in enumerate(histories):
        for t in range(min(max_rounds, len(h))):
            if policy.decide(h[: t + 1], max_rounds).action == "stop":
                out[i] = t
                break
        else:
            out[i] = min(max_rounds, len(h)) - 1
    return out


def simulate_pool(
    n_questions: int,
    n_rounds: int,
    a: float,
    b: float,
    p0: float | F64,
    seed: int = 0,
    n_wrong: int = 4,
    stick: float = 0.7,
) -> Pool:
    """A synthetic pool from the chain with informative features (tests, benchmarks, demos).

    Correct answer code 0; a wrong answer keeps its value with probability `stick` when it stays
    wrong, else draws one of `n_wrong` wrong values. Wrong rounds miss the answer 10% of the
    time; log-probabilities are N(−0.3, 0.3) when correct and N(−1.0, 0.5) when wrong.
    """
    rng = np.random.default_rng(seed)
    nq, nr = n_questions, n_rounds
    x = np.zeros((nq, nr), np.bool_)
    x[:, 0] = rng.random(nq) < np.broadcast_to(np.asarray(p0, dtype=np.float64), (nq,))
    for t in range(1, nr):
        u = rng.random(nq)
        x[:, t] = np.where(x[:, t - 1], u >= a, u < b)
    ans = np.zeros((nq, nr), np.int64)
    draw = rng.integers(1, n_wrong + 1, size=(nq, nr))
    keep = rng.random((nq, nr)) < stick
    ans[:, 0] = np.where(x[:, 0], 0, draw[:, 0])
    for t in range(1, nr):
        stay = ~x[:, t] & ~x[:, t - 1] & keep[:, t]
        ans[:, t] = np.where(x[:, t], 0, np.where(stay, ans[:, t - 1], draw[:, t]))
    ans = np.where(~x & (rng.random((nq, nr)) < 0.1), -1, ans)
    changed = np.full((nq, nr), -1, np.int64)
    changed[:, 1:] = ans[:, 1:] != ans[:, :-1]
    agreement = np.full((nq, nr), np.nan)
    for t in range(1, nr):
        agreement[:, t] = (ans[:, :t] == ans[:, t : t + 1]).mean(axis=1)
    logprob = np.where(x, rng.normal(-0.3, 0.3, (nq, nr)), rng.normal(-1.0, 0.5, (nq, nr)))
    logprob = np.where(ans < 0, np.nan, logprob)
    tokens = rng.integers(50, 400, size=(nq, nr))
    return Pool(x, tokens, ans, ans >= 0, changed, agreement, logprob)
