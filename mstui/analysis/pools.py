"""Between the trace store and the core fitter/evaluator: stream labelled rounds into numpy arrays,
fit a scope (chain, checks, observation model), and build evaluation pools from stored runs.

Rounds are streamed from SQLite into `array.array` buffers (a few bytes per round), never into
lists of dicts, so fitting a large store keeps memory flat.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mstui.core.belief import (
    ObservationModel,
    belief_matrix,
    change_categories,
    empty_feature_arrays,
    expected_calibration_error,
)
from mstui.core.evaluation import Pool
from mstui.core.fitting import ChainFit, CheckResult, fit_chain, fit_checks, p0_spread
from mstui.store import Store
from mstui.store.query import run_filter

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
B = NDArray[np.bool_]
MIN_TRANSITIONS = 10  # below this a scope is reported as "too little data" and not saved


@dataclass
class LabelledArrays:
    """Labelled rounds of one scope as flat arrays, ordered by run then round."""

    run: I64
    problem: I64  # code into `problems`
    round: I64
    correct: B
    found: B
    changed: I64  # 1 changed, 0 same, −1 unknown
    agreement: F64  # NaN = unknown
    logprob: F64  # NaN = unknown
    level: I64  # −1 = unknown
    problems: list[str] = field(default_factory=list)
    truncated: B | None = None  # ended inside its thinking (reasoning rounds)
    thinking: F64 | None = None  # thinking tokens; NaN = the round had no thinking

    def __len__(self) -> int:
        return int(self.run.size)

    @property
    def n_runs(self) -> int:
        """Distinct runs (each run is one chain)."""
        return int(np.unique(self.run).size)

    @property
    def n_problems(self) -> int:
        """Distinct problems (a problem may have been run several times)."""
        return int(np.unique(self.problem).size)

    def levels(self) -> list[int]:
        """The difficulty levels present (unknown left out)."""
        return sorted(int(v) for v in np.unique(self.level) if v >= 0)

    def select(self, mask: B) -> LabelledArrays:
        """The rounds where `mask` is True."""
        names = ("run", "problem", "round", "correct", "found", "changed", "agreement", "logprob",
                 "level")
        parts = {n: getattr(self, n)[mask] for n in names}
        return LabelledArrays(**parts, problems=self.problems,
                              truncated=None if self.truncated is None else self.truncated[mask],
                              thinking=None if self.thinking is None else self.thinking[mask])

    def as_matrix(self) -> tuple[B, I64, F64, F64, B, B]:
        """(found, changed, agreement, logprob, correct, valid) shaped [run, round]."""
        row = np.unique(self.run, return_inverse=True)[1].ravel()
        nq = int(row.max()) + 1 if row.size else 0
        nr = int(self.round.max()) + 1 if row.size else 0
        fo, ch, ag, lp, x, v = empty_feature_arrays(nq, nr)
        idx = (row, self.round)
        fo[idx], ch[idx], ag[idx], lp[idx], x[idx], v[idx] = (
            self.found, self.changed, self.agreement, self.logprob, self.correct, True)
        return fo, ch, ag, lp, x, v

    def reasoning_matrix(self) -> tuple[B, F64] | None:
        """(truncated, thinking tokens) shaped [run, round] like as_matrix; None without them."""
        if self.truncated is None or self.thinking is None or not np.isfinite(self.thinking).any():
            return None
        row = np.unique(self.run, return_inverse=True)[1].ravel()
        nq, nr = int(row.max()) + 1, int(self.round.max()) + 1
        tr, th = np.zeros((nq, nr), np.bool_), np.full((nq, nr), np.nan)
        tr[row, self.round], th[row, self.round] = self.truncated, self.thinking
        return tr, th


def load_labelled(store: Store, *, model: str | None, problem_set: str | None,
                  strategy: str | None, level: int | None = None,
                  statuses: Iterable[str] | None = None) -> LabelledArrays:
    """Stream a scope's labelled rounds from the store into arrays."""
    run, prob, rnd, lvl, ch = (array("q") for _ in range(5))
    ok, fo = array("b"), array("b")
    ag, lp = array("d"), array("d")
    tr, th = array("b"), array("d")
    codes: dict[str, int] = {}
    nan = math.nan
    for r in store.labelled_rounds(model=model, problem_set=problem_set, strategy=strategy,
                                   level=level, statuses=statuses):
        run.append(r.run_id)
        code = codes.get(r.problem)
        if code is None:
            code = codes[r.problem] = len(codes)
        prob.append(code)
        rnd.append(r.round)
        ok.append(r.correct)
        fo.append(r.found)
        ch.append(-1 if r.changed is None else int(r.changed))
        ag.append(nan if r.agreement is None else r.agreement)
        lp.append(nan if r.logprob is None else r.logprob)
        lvl.append(-1 if r.level is None else r.level)
        tr.append(r.truncated)
        th.append(nan if r.thinking_tokens is None else r.thinking_tokens)
    return LabelledArrays(
        np.asarray(run, np.int64),
        np.asarray(prob, np.int64), np.asarray(rnd, np.int64),
        np.asarray(ok, np.bool_), np.asarray(fo, np.bool_), np.asarray(ch, np.int64),
        np.asarray(ag, np.float64), np.asarray(lp, np.float64), np.asarray(lvl, np.int64),
        problems=list(codes),
        truncated=np.asarray(tr, np.bool_), thinking=np.asarray(th, np.float64),
    )


@dataclass
class ScopeFit:
    """Everything `mstui fit` reports and stores for one scope."""

    scope: dict[str, Any]
    fit: ChainFit
    checks: list[CheckResult]
    obs_model: ObservationModel | None
    calibration: dict[str, Any]
    pi_interval: tuple[float, float]
    lam_interval: tuple[float, float]
    n_runs: int
    n_problems: int

    def checks_dict(self) -> dict[str, Any]:
        """Checks keyed by name, JSON-ready."""
        return {c.name: c.as_dict() for c in self.checks}

    def stored(self) -> dict[str, Any]:
        """The dict saved in the fits table (session.find_fit reads `obs_model` from it)."""
        out: dict[str, Any] = {
            **self.fit.to_dict(),
            "pi_interval": list(self.pi_interval),
            "lam_interval": list(self.lam_interval),
            "n_runs": self.n_runs,
            "n_problems": self.n_problems,
            "checks": self.checks_dict(),
            "calibration": self.calibration,
        }
        if self.obs_model is not None:
            out["obs_model"] = self.obs_model.to_dict()
        return out


def transitions(data: LabelledArrays) -> int:
    """Consecutive labelled rounds of the same run: what a fit is made of."""
    if len(data) < 2:
        return 0
    same = (data.run[1:] == data.run[:-1]) & (data.round[1:] == data.round[:-1] + 1)
    return int(same.sum())


def too_little_data(data: LabelledArrays, needed: int = MIN_TRANSITIONS) -> str | None:
    """Why a scope is not fitted, or None: the one minimum-data rule for `mstui fit`, the
    regrade's refit and the TUI's refit (a fit below it would be saved and then used)."""
    n = transitions(data)
    if n >= needed:
        return None
    return (f"{n} transitions in {len(data)} labelled rounds (need {needed}); not fitted: "
            "run more problems with gold answers to 2 rounds or more")


def derived_intervals(fit: ChainFit, draws: int = 20000,
                      seed: int = 0) -> tuple[tuple[float, float], tuple[float, float]]:
    """95% intervals of π and λ from posterior draws of a and b (seeded: the same every time)."""
    rng = np.random.default_rng(seed)
    al, be = fit.prior_alpha, fit.prior_beta
    a = rng.beta(fit.n_cw + al, fit.n_cc + be, draws)
    b = rng.beta(fit.n_wc + al, fit.n_ww + be, draws)
    pi = b / (a + b)
    lam = 1.0 - a - b
    p = [2.5, 97.5]
    pl, ph = np.percentile(pi, p)
    ll, lh = np.percentile(lam, p)
    return (float(pl), float(ph)), (float(ll), float(lh))


def with_p0_spread(fit: ChainFit, data: LabelledArrays) -> ChainFit:
    """Identify the spread of p0(q) when some problems were run more than once."""
    zero = data.round == 0
    if not zero.any():
        return fit
    codes = np.unique(data.problem[zero], return_inverse=True)[1].ravel()
    spread = p0_spread(np.bincount(codes, weights=data.correct[zero].astype(np.float64)),
                       np.bincount(codes))
    if spread is None:
        return fit
    flags = tuple(f for f in fit.flags if f != "p0-spread-unidentified")
    return replace(fit, p0_alpha=spread[0], p0_beta=spread[1], flags=flags)


def scope_mixture(x: NDArray[np.bool_], v: NDArray[np.bool_]) -> dict[str, Any]:
    """The mixture of chains for a scope (K chosen on held-out likelihood), with the first-order
    check re-run under it (bootstrap; fewer draws on large pools to keep `mstui fit` quick)."""
    from mstui.core.mixture import first_order_under, fit_mixture

    mix = fit_mixture(x, v)
    draws = 199 if x.size <= 100_000 else 49
    out = mix.to_dict()
    out["first_order_p"] = first_order_under(mix, x, v, draws=draws) if mix.k > 1 else None
    out["first_order_draws"] = draws
    return out


def fit_labelled(data: LabelledArrays, scope: dict[str, Any]) -> ScopeFit:
    """Fit chain, checks and observation model for one scope's labelled rounds.

    Each run is its own chain (question id = run), since a problem repeats across runs.
    """
    name = " · ".join(f"{k}={v}" for k, v in scope.items() if v is not None)
    fit = with_p0_spread(fit_chain(data.run, data.round, data.correct, scope=name), data)
    checks = fit_checks(data.run, data.round, data.correct, fit)
    fo, ch, ag, lp, x, v = data.as_matrix()
    obs: ObservationModel | None = None
    calibration: dict[str, Any] = {"n_rounds": int(v.sum()), "in_sample": True}
    if v.any():
        reasoning = data.reasoning_matrix()
        tr, th = reasoning if reasoning is not None else (None, None)
        obs = ObservationModel.fit_arrays(fo, ch, ag, lp, x, valid=v, chain=fit.chain, p0=fit.p0,
                                          truncated=tr, thinking=th)
        cat = change_categories(ch, ag)
        q_f = belief_matrix(fit.chain, fit.p0, fo, cat, obs.lp_bins(lp), obs, truncated=tr,
                            thinking=th)
        q_c = belief_matrix(fit.chain, fit.p0, fo, cat, np.zeros_like(cat), None)
        calibration["filtered_ece"] = expected_calibration_error(q_f[v], x[v])
        calibration["chain_only_ece"] = expected_calibration_error(q_c[v], x[v])
        y = x[v].astype(np.float64)
        calibration["filtered_brier"] = float(np.mean((q_f[v] - y) ** 2))
        calibration["chain_only_brier"] = float(np.mean((q_c[v] - y) ** 2))
        calibration["temper"] = obs.temper
    if v.any():
        fit = replace(fit, mixture=scope_mixture(x, v))
    pi_i, lam_i = derived_intervals(fit)
    return ScopeFit(dict(scope), fit, checks, obs, calibration, pi_i, lam_i, data.n_runs,
                    data.n_problems)


# ---- pools for offline evaluation -----------------------------------------------------------


@dataclass
class StoredPool:
    """A pool built from stored runs that went to their cap, with each row's problem id."""

    pool: Pool
    problems: list[str]  # problem id per row (several rows may share one)
    max_rounds: int
    other_caps: dict[int, int]  # other max_rounds values present, with their run counts
    dropped: int  # runs at the cap left out (a round unlabelled, cancelled or missing)
    levels: I64 = field(default_factory=lambda: np.zeros(0, np.int64))  # per row, −1 unknown


def pool_caps(store: Store, *, model: str | None, problem_set: str | None,
              strategy: str | None) -> dict[int, int]:
    """max_rounds → number of finished fixed-policy runs that went to that cap."""
    where, params = run_filter(model=model, problem_set=problem_set, strategy=strategy)
    with store.reader() as db:
        rows = db.execute(
            "SELECT runs.max_rounds, count(*) FROM runs WHERE " + where +
            " AND runs.status = 'finished' AND runs.policy = 'fixed:' || (runs.max_rounds - 1)"
            " AND runs.n_rounds = runs.max_rounds GROUP BY 1", params).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def load_pool(store: Store, *, model: str | None, problem_set: str | None,
              strategy: str | None, max_rounds: int | None = None) -> StoredPool | None:
    """The pool of one scope: every finished `fixed` run that ran all `max_rounds` rounds with
    gold labels (default cap: the one with the most such runs). None when there is none."""
    caps = pool_caps(store, model=model, problem_set=problem_set, strategy=strategy)
    if max_rounds is None:
        if not caps:
            return None
        max_rounds = max(caps, key=lambda n: (caps[n], n))
    if caps.get(max_rounds, 0) == 0:
        return None
    where, params = run_filter(model=model, problem_set=problem_set, strategy=strategy)
    nr = max_rounds
    cols = ("correct", "tokens", "answer", "found", "changed", "agreement", "logprob")
    buf: dict[str, array[Any]] = {c: array("d") for c in cols}
    problems: list[str] = []
    levels: list[int] = []
    answer_codes: dict[str, int] = {}
    dropped = 0
    sql = (
        "SELECT runs.id, coalesce(runs.problem_id, runs.question), r.idx, r.correct, "
        "coalesce(r.prompt_tokens, 0) - coalesce(r.cached_tokens, 0) "
        "+ coalesce(r.completion_tokens, 0), r.answer, r.obs_found, r.obs_changed, "
        "r.obs_agreement, r.obs_logprob, r.finish_reason, runs.level, runs.settings "
        f"FROM runs JOIN rounds r ON r.run_id = runs.id WHERE {where} "
        "AND runs.status = 'finished' AND runs.policy = ? AND runs.max_rounds = ? "
        "AND runs.n_rounds = ? ORDER BY runs.id, r.idx"
    )
    nan = math.nan
    # One pool row per (question, settings): a copy of a run (two sweeps that raced on one file,
    # a double import) is not a second question; other settings (another seed) are real repeats.
    seen: set[tuple[Any, ...]] = set()

    def flush(rows: list[tuple[Any, ...]]) -> None:
        nonlocal dropped
        key = (rows[0][1], rows[0][12])
        if key in seen:
            return
        if len(rows) != nr or any(r[2] != i or r[3] is None or r[10] in ("cancelled", "error")
                                  for i, r in enumerate(rows)):
            dropped += 1
            return
        seen.add(key)
        problems.append(str(rows[0][1]))
        levels.append(-1 if rows[0][11] is None else int(rows[0][11]))
        for r in rows:
            ans = -1 if r[5] is None else answer_codes.setdefault(r[5], len(answer_codes))
            for c, val in zip(cols, (r[3], r[4], ans, r[6] or 0,
                                     -1 if r[7] is None else r[7],
                                     nan if r[8] is None else r[8],
                                     nan if r[9] is None else r[9]), strict=True):
                buf[c].append(float(val))

    with store.reader() as db:
        cur = db.execute(sql, [*params, f"fixed:{nr - 1}", nr, nr])
        current: list[tuple[Any, ...]] = []
        while batch := cur.fetchmany(2000):
            for row in batch:
                if current and row[0] != current[0][0]:
                    flush(current)
                    current = []
                current.append(tuple(row))
        if current:
            flush(current)
    if not problems:
        return None
    shape = (len(problems), nr)

    def arr(c: str, dt: Any) -> Any:
        return np.frombuffer(buf[c], np.float64).reshape(shape).astype(dt)

    pool = Pool(arr("correct", np.bool_), arr("tokens", np.int64), arr("answer", np.int64),
                arr("found", np.bool_), arr("changed", np.int64), arr("agreement", np.float64),
                arr("logprob", np.float64))
    others = {k: v for k, v in caps.items() if k != nr}
    return StoredPool(pool, problems, nr, others, dropped, np.asarray(levels, np.int64))


def split_by_problem(problems: list[str], test_fraction: float,
                     seed: int) -> tuple[I64, I64]:
    """Row indices (train, test) such that no problem has rows on both sides."""
    from mstui.core.evaluation import split_questions

    uniq, inv = np.unique(np.asarray(problems, dtype=object).astype(str), return_inverse=True)
    if uniq.size < 2:
        raise ValueError(f"the pool has {uniq.size} distinct question(s); fitting and scoring "
                         "on disjoint questions needs at least 2 (sweep more problems)")
    train_q, _ = split_questions(int(uniq.size), test_fraction, seed)
    in_train = np.isin(inv.ravel(), train_q)
    return np.nonzero(in_train)[0], np.nonzero(~in_train)[0]
