"""Fit the chain from labelled rounds (DESIGN §1.5): transition counts, Beta posteriors, checks.

Inputs are plain arrays: question id, round index and correctness per round (any order). A
transition is counted only between rounds t and t + 1 of the same question, so gaps (a missing
round) break the chain instead of inventing a transition. Everything is vectorized with numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from mstui.core.markov import TwoStateChain

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
F = NDArray[np.float64]
# A transition row (from C: N_CC + N_CW; from W: N_WC + N_WW) with fewer transitions than this
# is "sparse": its rate is essentially the prior, so it is flagged and does not drive decisions.
MIN_ROW_TRANSITIONS = 5
ALLOW_SPARSE_HINT = "pass --allow-sparse-fit to use it anyway"


@dataclass(frozen=True)
class ChainFit:
    """A fitted chain for one scope, with posteriors, p0 spread, counts and flags.

    a, b, p0 are posterior means; *_lo/*_hi their central 95% credible intervals. The spread of
    p0(q) across questions is Beta(p0_alpha, p0_beta) when repeated round-0 samples of the same
    question identify it, else None (one round-0 answer per question cannot separate "every
    question is 60% hard" from "60% of questions are always solved"). Flags name anything the UI
    should warn about: "no-transitions" (a and b are the prior only), "few-from-correct" /
    "few-from-wrong" (that row has fewer than MIN_ROW_TRANSITIONS transitions, so a / b is
    essentially the prior), "no-round-0", "p0-spread-unidentified". `sparse_rows` recomputes the
    row flags from the counts, so fits stored before those flags existed are judged the same way.
    """

    scope: str
    a: float
    b: float
    a_lo: float
    a_hi: float
    b_lo: float
    b_hi: float
    p0: float
    p0_lo: float
    p0_hi: float
    p0_alpha: float | None
    p0_beta: float | None
    n_cc: int
    n_cw: int
    n_wc: int
    n_ww: int
    n_questions: int
    n_rounds: int
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    flags: tuple[str, ...] = ()
    created: str = ""
    # A mixture of chains (core.mixture.MixtureFit.to_dict) fitted on the same rounds, or None.
    mixture: dict[str, Any] | None = None

    @property
    def chain(self) -> TwoStateChain:
        """The chain at the posterior means (never frozen: the prior keeps a, b > 0)."""
        return TwoStateChain(self.a, self.b)

    @property
    def pi(self) -> float:
        """Stationary accuracy of the posterior-mean chain."""
        return self.b / (self.a + self.b)

    @property
    def lam(self) -> float:
        """λ = 1 − a − b of the posterior-mean chain."""
        return 1.0 - self.a - self.b

    @property
    def n_transitions(self) -> int:
        """All counted transitions."""
        return self.n_cc + self.n_cw + self.n_wc + self.n_ww

    @property
    def sparse_rows(self) -> tuple[str, ...]:
        """Which rates rest on fewer than MIN_ROW_TRANSITIONS transitions: "a" (from C), "b"."""
        rows = (("a", self.n_cc + self.n_cw), ("b", self.n_wc + self.n_ww))
        return tuple(name for name, n in rows if n < MIN_ROW_TRANSITIONS)

    def sparse_reason(self) -> str | None:
        """One line saying which rates are (essentially) the prior, or None when both rest on
        data. The one rule for CLI, TUI and sweeps: such a fit does not drive markov or gate."""
        if not self.sparse_rows:
            return None
        prior = f"Beta({self.prior_alpha:g}, {self.prior_beta:g})"
        parts: list[str] = []
        none: list[str] = []
        few: list[str] = []
        for name in self.sparse_rows:
            n = self.n_cc + self.n_cw if name == "a" else self.n_wc + self.n_ww
            state = "C" if name == "a" else "W"
            parts.append(f"{name} rests on {n} transition(s) from {state}")
            (none if n == 0 else few).append(name)
        # With no transition the rate is the prior itself; with a handful it is data pulled
        # hard towards the prior (its interval says how little is known): say which.
        verdicts = []
        if none:
            verdicts.append(f"{' and '.join(none)} {'is' if len(none) == 1 else 'are'} the "
                            f"{prior} prior, not data")
        if few:
            verdicts.append(f"{' and '.join(few)} {'rests' if len(few) == 1 else 'rest'} "
                            f"mostly on the {prior} prior")
        return (f"the fit is sparse: {' and '.join(parts)} (fewer than {MIN_ROW_TRANSITIONS}), "
                f"so {'; '.join(verdicts)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (flags as a list); inverse of from_dict."""
        d = asdict(self)
        d["flags"] = list(self.flags)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChainFit:
        """Rebuild from to_dict output; unknown keys are ignored so old rows keep loading."""
        names = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in names}
        kw["flags"] = tuple(kw.get("flags", ()))
        return cls(**kw)


def _beta_post(
    successes: int, failures: int, alpha: float, beta: float
) -> tuple[float, float, float]:
    """Mean and 95% interval of Beta(successes + α, failures + β).

    Central interval, except with no successes (failures) it is one-sided, [0, q95] ([q05, 1]):
    the central interval's lower end excludes the small rates that most often give zero events
    (true b = 0.005 with a few dozen transitions from W was covered 62% of the time), as with the
    Clopper-Pearson convention at k = 0."""
    pa, pb = successes + alpha, failures + beta
    if successes == 0 and failures > 0:
        lo, hi = 0.0, float(stats.beta.ppf(0.95, pa, pb))
    elif failures == 0 and successes > 0:
        lo, hi = float(stats.beta.ppf(0.05, pa, pb)), 1.0
    else:
        lo, hi = (float(v) for v in stats.beta.ppf([0.025, 0.975], pa, pb))
    return pa / (pa + pb), float(lo), float(hi)


def _order(
    qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike
) -> tuple[IntArray, IntArray, BoolArray]:
    """Validate and sort rows by (question, round); question ids become integer codes."""
    q = np.asarray(qids)
    r = np.asarray(rounds)
    c = np.asarray(correct)
    if not (q.shape == r.shape == c.shape) or q.ndim != 1:
        raise ValueError("question ids, rounds and correct must be 1-D arrays of the same length")
    if c.dtype != np.bool_:
        if c.size and not np.all(np.isin(c, (0, 1))):
            raise ValueError(
                "correct must hold booleans (or 0/1); a round without gold is not labelled"
            )
        c = c.astype(np.bool_)
    if r.size and (r.dtype.kind not in "iu" or r.min() < 0):
        raise ValueError("round indices must be integers >= 0")
    qc = q.astype(np.int64) if q.dtype.kind in "iub" else np.unique(q, return_inverse=True)[1]
    qc = np.asarray(qc, dtype=np.int64).ravel()
    r64 = r.astype(np.int64)
    # Traces usually arrive grouped and in round order; skip the sort (the hot cost) when so.
    dq, dr = np.diff(qc), np.diff(r64)
    if np.all((dq > 0) | ((dq == 0) & (dr > 0))):
        return qc, r64, c
    idx = np.lexsort((r64, qc))
    return qc[idx], r64[idx], c[idx]


def _links(q: IntArray, r: IntArray, lag: int) -> BoolArray:
    """Mask over rows i where rows i..i+lag are consecutive rounds of one question."""
    n = q.size - lag
    if n <= 0:
        return np.zeros(0, dtype=np.bool_)
    return (q[lag:] == q[:n]) & (r[lag:] == r[:n] + lag)


def count_transitions(qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike) -> dict[str, int]:
    """N_CC, N_CW, N_WC, N_WW over consecutive rounds of the same question."""
    q, r, c = _order(qids, rounds, correct)
    return _counts(q, r, c)


def _counts(q: IntArray, r: IntArray, c: BoolArray) -> dict[str, int]:
    m = _links(q, r, 1)
    code = 2 * c[:-1][m].astype(np.int64) + c[1:][m].astype(np.int64)  # 0=WW 1=WC 2=CW 3=CC
    n = np.bincount(code, minlength=4)
    return {"n_ww": int(n[0]), "n_wc": int(n[1]), "n_cw": int(n[2]), "n_cc": int(n[3])}


def p0_spread(k: ArrayLike, m: ArrayLike) -> tuple[float, float] | None:
    """Method-of-moments Beta(α, β) for p0(q) from k_q correct of m_q round-0 answers per question.

    Uses E[Σ m_q (k_q/m_q − p̂)²] = p(1 − p)[Q − 1 + ρ(M − Q − Σm²/M + 1)] with ρ = 1/(α + β + 1).
    Returns None when every question has a single round-0 answer (ρ is not identified) or p̂ is
    0 or 1; ρ is clipped to [1e-6, 1 − 1e-6] so α, β stay finite and positive.
    """
    kk = np.asarray(k, dtype=np.float64)
    mm = np.asarray(m, dtype=np.float64)
    keep = mm > 0
    kk, mm = kk[keep], mm[keep]
    if kk.size < 2:
        return None
    big_m, nq = float(mm.sum()), float(kk.size)
    p = float(kk.sum()) / big_m
    denom = big_m - nq - float((mm**2).sum()) / big_m + 1.0
    if denom <= 1e-9 or p <= 0.0 or p >= 1.0:
        return None
    s = float((mm * (kk / mm - p) ** 2).sum())
    rho = (s / (p * (1.0 - p)) - (nq - 1.0)) / denom
    rho = min(max(rho, 1e-6), 1.0 - 1e-6)
    total = 1.0 / rho - 1.0
    return p * total, (1.0 - p) * total


def fit_chain(
    qids: ArrayLike,
    rounds: ArrayLike,
    correct: ArrayLike,
    scope: str = "",
    alpha: float = 1.0,
    beta: float = 1.0,
) -> ChainFit:
    """Fit one scope: a ~ Beta(N_CW + α, N_CC + β), b ~ Beta(N_WC + α, N_WW + β), p̂0 from round 0.

    p̂0 is the posterior mean of Beta(k + α, n − k + β) over all round-0 answers. A question id
    may repeat across runs only if its rows are told apart by the caller (use "qid/run" keys),
    since rounds are linked by (question, round index).
    """
    if not (alpha > 0 and beta > 0 and math.isfinite(alpha) and math.isfinite(beta)):
        raise ValueError(f"prior α, β must be positive numbers, got {alpha!r}, {beta!r}")
    q, r, c = _order(qids, rounds, correct)
    counts = _counts(q, r, c)
    a, a_lo, a_hi = _beta_post(counts["n_cw"], counts["n_cc"], alpha, beta)
    b, b_lo, b_hi = _beta_post(counts["n_wc"], counts["n_ww"], alpha, beta)
    zero = r == 0
    n0, k0 = int(zero.sum()), int(c[zero].sum())
    p0, p0_lo, p0_hi = _beta_post(k0, n0 - k0, alpha, beta)
    flags: list[str] = []
    if counts["n_cc"] + counts["n_cw"] + counts["n_wc"] + counts["n_ww"] == 0:
        flags.append("no-transitions")
    if counts["n_cc"] + counts["n_cw"] < MIN_ROW_TRANSITIONS:
        flags.append("few-from-correct")
    if counts["n_wc"] + counts["n_ww"] < MIN_ROW_TRANSITIONS:
        flags.append("few-from-wrong")
    if n0 == 0:
        flags.append("no-round-0")
    # Several round-0 answers of one question (repeated runs keyed "qid/run" collapse here only
    # if the caller passes the bare qid in `qids`); with one each, the spread is unidentified.
    spread = None
    if n0:
        q0 = q[zero]
        # q is sorted, so equal ids are adjacent: run ids number the questions without a sort.
        inv = np.concatenate(([0], np.cumsum(q0[1:] != q0[:-1])))
        spread = p0_spread(np.bincount(inv, weights=c[zero]), np.bincount(inv))
    if spread is None:
        flags.append("p0-spread-unidentified")
    return ChainFit(
        scope=scope,
        a=a,
        b=b,
        a_lo=a_lo,
        a_hi=a_hi,
        b_lo=b_lo,
        b_hi=b_hi,
        p0=p0,
        p0_lo=p0_lo,
        p0_hi=p0_hi,
        p0_alpha=None if spread is None else spread[0],
        p0_beta=None if spread is None else spread[1],
        n_questions=int(np.count_nonzero(q[1:] != q[:-1]) + 1) if q.size else 0,
        n_rounds=int(q.size),
        prior_alpha=float(alpha),
        prior_beta=float(beta),
        flags=tuple(flags),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        n_cc=counts["n_cc"], n_cw=counts["n_cw"], n_wc=counts["n_wc"], n_ww=counts["n_ww"],
    )


def fit_scopes(
    qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike, scopes: ArrayLike, **kw: float
) -> dict[str, ChainFit]:
    """One fit per distinct scope key (model × problem set × strategy [× level])."""
    s = np.asarray(scopes).astype(str)
    q, r, c = np.asarray(qids), np.asarray(rounds), np.asarray(correct)
    return {
        str(k): fit_chain(q[s == k], r[s == k], c[s == k], scope=str(k), **kw) for k in np.unique(s)
    }


def fit_pool(
    correct: ArrayLike, scope: str = "", valid: ArrayLike | None = None, **kw: float
) -> ChainFit:
    """Fit from a pool matrix correct[Q, R] (rows = questions, columns = rounds 0..R−1)."""
    c = np.asarray(correct, dtype=np.bool_)
    if c.ndim != 2:
        raise ValueError("a pool is a 2-D array correct[question, round]")
    nq, nr = c.shape
    qid = np.repeat(np.arange(nq, dtype=np.int64), nr)
    rnd = np.tile(np.arange(nr, dtype=np.int64), nq)
    keep = np.ones(c.size, np.bool_) if valid is None else np.asarray(valid, np.bool_).ravel()
    return fit_chain(qid[keep], rnd[keep], c.ravel()[keep], scope=scope, **kw)


# ---------------------------------------------------------------------------------------------
# Fit checks


@dataclass(frozen=True)
class CheckResult:
    """One goodness-of-fit test: statistic, degrees of freedom, p-value and details."""

    name: str
    statistic: float
    df: int
    p_value: float
    details: dict[str, Any] = field(default_factory=dict)

    def passed(self, level: float = 0.05) -> bool:
        """True when the test does not reject at `level` (also when it cannot: see testable)."""
        return self.p_value >= level

    @property
    def testable(self) -> bool:
        """Whether the check could have rejected at all: with df 0 it compares nothing."""
        return self.df > 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with how it is to be read (check_reading): a check that cannot reject
        has `passed` None, not True."""
        d = {"statistic": self.statistic, "df": self.df, "p_value": self.p_value,
             "passed": self.passed() if self.testable else None, "details": self.details}
        return d | check_reading(d)


def check_reading(check: Mapping[str, Any], level: float = 0.05) -> dict[str, Any]:
    """How a check (CheckResult.as_dict, or one stored by an older mstui) is to be read: whether
    it could reject, how its p-value was computed, the p-value in words and the verdict.

    One reading for `mstui fit`, its JSON and the TUI: a check with df 0 "cannot test", never
    "ok"; a bootstrap p-value says so, and at its floor 1/(draws + 1) it is an upper bound
    ("p ≤ 0.005"), not a value to compare with a χ² table.
    """
    df = int(check.get("df") or 0)
    p = float(check.get("p_value", 1.0))
    details = check.get("details") or {}
    method = str(details.get("method") or "")
    draws = None
    if "bootstrap" in method:
        digits = [w for w in method.replace(",", " ").split() if w.isdigit()]
        draws = int(digits[0]) if digits else None
    floor = 1.0 / (draws + 1) if draws else None
    if df <= 0:
        return {"testable": False, "method": method or "likelihood-ratio G, χ² reference",
                "p_floor": floor, "p_text": "—",
                "verdict": "cannot test: df 0 — too few rounds or transitions to compare, so it "
                           "could not reject"}
    if draws:
        at_floor = floor is not None and p <= floor + 1e-12
        p_text = (f"p ≤ {floor:.3g} (bootstrap floor, {draws} draws)" if at_floor
                  else f"p = {p:.3g} (bootstrap, {draws} draws)")
    else:
        method = method or "likelihood-ratio G, χ² reference"
        p_text = f"p = {p:.3g} (χ², df {df})"
    verdict = "ok" if p >= level else f"REJECTED at {level:.0%}"
    return {"testable": True, "method": method, "p_floor": floor, "p_text": p_text,
            "verdict": verdict}


def wilson_interval(
    k: ArrayLike, n: ArrayLike, z: float = 1.959964
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (n = 0 gives [0, 1])."""
    kk = np.asarray(k, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    safe = np.maximum(nn, 1.0)
    p = kk / safe
    denom = 1.0 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denom
    lo = np.where(nn > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(nn > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


def _g_stat(obs: NDArray[np.float64]) -> tuple[float, int]:
    """Likelihood-ratio G statistic of independence for a 2-D table, skipping empty rows/cols."""
    t = obs[obs.sum(axis=1) > 0]
    t = t[:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return 0.0, 0
    exp = t.sum(axis=1, keepdims=True) * t.sum(axis=0, keepdims=True) / t.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t > 0, t * np.log(t / exp), 0.0)
    return float(2.0 * terms.sum()), (t.shape[0] - 1) * (t.shape[1] - 1)


def _result(name: str, g: float, df: int, details: dict[str, Any]) -> CheckResult:
    if df == 0:
        details["note"] = "not testable with these data"
        return CheckResult(name, 0.0, 0, 1.0, details)
    return CheckResult(name, g, df, float(stats.chi2.sf(g, df)), details)


BOOTSTRAP_DRAWS = 199  # p-values of the bootstrap checks have resolution 1/200
_CELLS_PER_CHUNK = 4_000_000  # bootstrap replicates are simulated in chunks of this many cells


def _grid(q: IntArray, r: IntArray, c: BoolArray) -> tuple[BoolArray, BoolArray]:
    """Sorted long-form rows as [question, round] arrays (correct, observed)."""
    codes = np.concatenate(([0], np.cumsum(q[1:] != q[:-1]))) if q.size else q
    nq, nr = (int(codes[-1]) + 1, int(r.max()) + 1) if q.size else (0, 0)
    x = np.zeros((nq, nr), np.bool_)
    v = np.zeros((nq, nr), np.bool_)
    x[codes, r] = c
    v[codes, r] = True
    return x, v


def _grid_fit(x: NDArray[np.bool_], v: NDArray[np.bool_], alpha: float,
              beta: float) -> tuple[F, F, F]:
    """Posterior-mean (a, b, p0) of fit_chain, for a stack of grids [..., Q, R] at once."""
    pair = v[..., :-1] & v[..., 1:]
    prev, nxt = x[..., :-1], x[..., 1:]
    n_c = (pair & prev).sum(axis=(-2, -1))
    n_cw = (pair & prev & ~nxt).sum(axis=(-2, -1))
    n_w = (pair & ~prev).sum(axis=(-2, -1))
    n_wc = (pair & ~prev & nxt).sum(axis=(-2, -1))
    n0 = v[..., 0].sum(axis=-1)
    k0 = (x[..., 0] & v[..., 0]).sum(axis=-1)
    a = (n_cw + alpha) / (n_c + alpha + beta)
    b = (n_wc + alpha) / (n_w + alpha + beta)
    p0 = (k0 + alpha) / (n0 + alpha + beta)
    return a, b, p0


def _accuracy_stat(x: NDArray[np.bool_], v: NDArray[np.bool_], a: F, b: F, p0: F) -> F:
    """Pearson χ² of observed vs predicted accuracy per round, for a stack of grids."""
    n = v.sum(axis=-2).astype(np.float64)
    k = (x & v).sum(axis=-2).astype(np.float64)
    t = np.arange(x.shape[-1])
    a_, b_, p0_ = (np.asarray(z, np.float64)[..., None] for z in (a, b, p0))
    s = a_ + b_
    pi = np.where(s > 0, b_ / np.where(s > 0, s, 1.0), p0_)
    pred = pi + (1.0 - s) ** t * (p0_ - pi)
    var = np.maximum(n * pred * (1 - pred), 1e-12)
    return np.asarray(np.where(n > 0, (k - n * pred) ** 2 / var, 0.0).sum(axis=-1), np.float64)


def _simulate_grids(rng: np.random.Generator, draws: int, start: NDArray[np.bool_],
                    first: IntArray, a: float, b: float, nr: int) -> NDArray[np.bool_]:
    """[draws, Q, R] chains with rates (a, b): rounds ≤ first[q] hold start[..., q], later rounds
    follow the chain (start may be [draws, Q] or [Q])."""
    nq = first.size
    x = np.empty((draws, nq, nr), np.bool_)
    x[:, :, 0] = start
    for t in range(1, nr):
        u = rng.random((draws, nq))
        step = np.where(x[:, :, t - 1], u >= a, u < b)
        x[:, :, t] = np.where(t > first, step, x[:, :, t - 1])
    return x


def _chunks(draws: int, cells: int) -> list[int]:
    per = max(1, _CELLS_PER_CHUNK // max(cells, 1))
    return [min(per, draws - i) for i in range(0, draws, per)]


def accuracy_check(
    qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike, fit: ChainFit,
    draws: int = BOOTSTRAP_DRAWS, seed: int = 0,
) -> CheckResult:
    """Observed vs predicted accuracy per round (p_t = π + λ^t(p̂0 − π)) with Wilson intervals.

    Statistic: Pearson χ² over rounds with data. Its p-value is a parametric bootstrap under the
    fitted chain (simulate the same questions and rounds, refit, recompute), so its size is
    known: the χ²(rounds − 1) reference it replaced rejected 0–0.6% of true chains at 5%,
    because p̂0, a and b are fitted on the same rows. It detects an accuracy curve that is not
    geometric in t (rates that change with the round, a jump then a plateau); it has little
    power against an easy/hard mixture, whose curve is close to geometric (see
    heterogeneity_check and the first-order test for that).
    """
    q, r, c = _order(qids, rounds, correct)
    if r.size == 0:
        return _result("accuracy-by-round", 0.0, 0, {"rounds": []})
    n = np.bincount(r)
    k = np.bincount(r, weights=c.astype(np.float64))
    t = np.nonzero(n)[0]
    pred = np.asarray(fit.chain.accuracy(fit.p0, t), dtype=np.float64)
    lo, hi = wilson_interval(k[t], n[t])
    x, v = _grid(q, r, c)
    alpha, beta = fit.prior_alpha, fit.prior_beta
    chi = float(_accuracy_stat(x, v, *_grid_fit(x, v, alpha, beta)))
    rows = [
        {
            "round": int(ti),
            "n": int(n[ti]),
            "observed": float(k[ti] / n[ti]),
            "lo": float(l_),
            "hi": float(h_),
            "predicted": float(p_),
        }
        for ti, l_, h_, p_ in zip(t, lo, hi, pred, strict=True)
    ]
    details: dict[str, Any] = {"rounds": rows, "method": f"parametric bootstrap, {draws} draws",
                               "detects": "an accuracy curve that is not geometric in the round"}
    if t.size < 2:
        return _result("accuracy-by-round", chi, 0, details)
    rng = np.random.default_rng(seed)
    first = np.zeros(x.shape[0], np.int64)  # every simulated question starts at round 0
    exceed = 0
    for m in _chunks(draws, x.size):
        sim = _simulate_grids(rng, m, rng.random((m, x.shape[0])) < fit.p0, first,
                              fit.a, fit.b, x.shape[1])
        stat = _accuracy_stat(sim, v, *_grid_fit(sim, v, alpha, beta))
        exceed += int((stat >= chi - 1e-9).sum())
    return CheckResult("accuracy-by-round", chi, int(t.size - 1),
                       float((1 + exceed) / (draws + 1)), details)


def _xlogy(n: F, p: F) -> F:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, n * np.log(np.where(p > 0, p, 1.0)), 0.0)


def _between_questions_g(x: NDArray[np.bool_], v: NDArray[np.bool_]) -> F:
    """G statistic of "every question has the same transition rates" (Anderson & Goodman's test
    of one transition matrix across chains), for a stack of grids: 2 Σ_q Σ_{s,s'} n_q(s→s')
    log(p̂_q(s'|s) / p̂(s'|s)), over consecutive observed rounds."""
    pair = v[..., 1:] & v[..., :-1]
    prev, nxt = x[..., :-1], x[..., 1:]
    g = np.zeros(x.shape[:-2])
    for s in (False, True):
        from_s = pair & (prev == s)
        n_q = from_s.sum(axis=-1).astype(np.float64)
        up_q = (from_s & nxt).sum(axis=-1).astype(np.float64)
        down_q = n_q - up_q
        n = n_q.sum(axis=-1, keepdims=True)
        p_up = up_q.sum(axis=-1, keepdims=True) / np.maximum(n, 1.0)
        pq = up_q / np.maximum(n_q, 1.0)
        term = (_xlogy(up_q, pq) - _xlogy(up_q, np.broadcast_to(p_up, pq.shape))
                + _xlogy(down_q, 1 - pq) - _xlogy(down_q, np.broadcast_to(1 - p_up, pq.shape)))
        g = g + 2.0 * term.sum(axis=-1)
    return g


def heterogeneity_check(
    qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike, fit: ChainFit,
    draws: int = BOOTSTRAP_DRAWS, seed: int = 0,
) -> CheckResult:
    """Do questions share one (a, b)? Parametric bootstrap of the between-question spread.

    Statistic: the G statistic of one transition matrix shared by every question (Anderson and
    Goodman 1957), whose χ² reference is useless with a handful of transitions per question, so
    the p-value is a parametric bootstrap: replicates keep each question's first observed state
    (any spread of p0(q), which the chain allows, is not counted) and run the fitted chain.
    It detects questions whose rates differ (easy questions that stay right, hard ones that
    stay wrong: the mixture of DESIGN §1.7). Its size is at most nominal (2.5% at 5% in
    simulation: conservative), see docs/evaluation.md.
    """
    q, r, c = _order(qids, rounds, correct)
    x, v = _grid(q, r, c)
    details: dict[str, Any] = {"method": f"parametric bootstrap, {draws} draws",
                               "detects": "questions with different rates (a mixture)"}
    if x.size == 0 or x.shape[1] < 2:
        return _result("question-heterogeneity", 0.0, 0, details)
    first = np.argmax(v, axis=1).astype(np.int64)
    idx = np.arange(x.shape[0])
    start = x[idx, first]
    later = v & (np.arange(x.shape[1])[None, :] > first[:, None])
    if int((later.sum(axis=1) > 0).sum()) < 2:
        return _result("question-heterogeneity", 0.0, 0, details)
    stat = float(_between_questions_g(x, v))
    rng = np.random.default_rng(seed)
    exceed = 0
    for m in _chunks(draws, x.size):
        sim = _simulate_grids(rng, m, start, first, fit.a, fit.b, x.shape[1])
        exceed += int((_between_questions_g(sim, v) >= stat - 1e-9).sum())
    n_chains = int((v[:, 1:] & v[:, :-1]).any(axis=1).sum())  # Anderson-Goodman's nominal df
    return CheckResult("question-heterogeneity", stat, 2 * max(n_chains - 1, 0),
                       float((1 + exceed) / (draws + 1)), details)


def homogeneity_check(qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike) -> CheckResult:
    """Are a and b the same at every round? G-test of (round × next state), from C and from W."""
    q, r, c = _order(qids, rounds, correct)
    m = _links(q, r, 1)
    t = r[:-1][m]
    prev, nxt = c[:-1][m], c[1:][m]
    g_total, df_total, details = 0.0, 0, {}
    for name, state in (("from_correct", True), ("from_wrong", False)):
        sel = prev == state
        if t.size == 0:
            continue
        nt = int(t.max()) + 1
        table = np.stack(
            [np.bincount(t[sel & nxt], minlength=nt), np.bincount(t[sel & ~nxt], minlength=nt)],
            axis=1,
        ).astype(np.float64)
        g, df = _g_stat(table)
        g_total += g
        df_total += df
        details[name] = {
            "statistic": g,
            "df": df,
            "to_correct": table[:, 0].tolist(),
            "to_wrong": table[:, 1].tolist(),
        }
    return _result("time-homogeneity", g_total, df_total, details)


def markov_check(qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike) -> CheckResult:
    """Does round t−2 matter? LR test of second- vs first-order transitions (df 2 with 2 states)."""
    q, r, c = _order(qids, rounds, correct)
    m = _links(q, r, 2)
    x = c.astype(np.int64)
    n = m.size
    code = (4 * x[:n] + 2 * x[1 : n + 1] + x[2 : n + 2])[m]
    tri = np.bincount(code, minlength=8).reshape(2, 2, 2).astype(np.float64)  # [t−2, t−1, t]
    g_total, df_total, details = 0.0, 0, {}
    for mid, name in ((1, "via_correct"), (0, "via_wrong")):
        g, df = _g_stat(tri[:, mid, :])  # rows: state at t−2, cols: state at t
        g_total += g
        df_total += df
        details[name] = {"statistic": g, "df": df, "counts": tri[:, mid, :].tolist()}
    return _result("first-order-markov", g_total, df_total, details)


def fit_checks(
    qids: ArrayLike, rounds: ArrayLike, correct: ArrayLike, fit: ChainFit
) -> list[CheckResult]:
    """The checks of §1.5 and the heterogeneity check (§1.7), in display order."""
    return [
        accuracy_check(qids, rounds, correct, fit),
        homogeneity_check(qids, rounds, correct),
        markov_check(qids, rounds, correct),
        heterogeneity_check(qids, rounds, correct, fit),
    ]
