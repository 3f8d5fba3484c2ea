"""Live belief q_t = P(current answer correct | rounds seen) by an HMM forward filter (DESIGN §1.3).

States X_t ∈ {W, C} follow the fitted chain. Each round's observation is scored by an
`ObservationModel`, a small naive-Bayes model over three groups of features:

- found (an answer was extracted): P(found | X_t);
- answer log-probability, binned at training quantiles (+ a "missing" bin): P(bin | X_t);
- a "change" category joining `changed` and `agreement`, which depend on two rounds, so it is
  conditioned on the pair: P(category | X_{t−1}, X_t). Categories: 0 same answer and all earlier
  rounds agree, 1 same answer but some earlier round differed, 2 changed to a new answer,
  3 changed back to an earlier answer, 4 unknown (round 0 / missing);
- for reasoning rounds (DESIGN §2.1): whether a round without an answer ended inside its
  thinking, P(trunc | X_t, no answer) (a truncated round never has an answer, so conditioning on
  `found` keeps the two from counting the same evidence twice), and the thinking length,
  binned at training quantiles of log(1 + tokens), P(bin | X_t). A round of a model that does
  not think has no such features, and they leave its belief unchanged (factor 1), as does a
  model fitted before these features existed.

The forward pass over pairs is exact for this model: α(x_{t−1}, x_t) ∝ m_{t−1}(x_{t−1})
P(x_t | x_{t−1}) L(o_t | x_{t−1}, x_t), and q_t = Σ_{x_{t−1}} α(x_{t−1}, C) / Σ α. Naive Bayes
tends to be over-confident, so the log-likelihoods are tempered by one exponent w fitted by
minimum log-loss of the filtered beliefs on the training traces, within (0, 1]: tempering only
ever weakens the naive-Bayes evidence, never amplifies it.

A feature that was not recorded carries no evidence (DESIGN §1.7): a missing log-probability
(not requested, a backend that gives none, a round with no answer span) and an unknown change
category (round 0) have factor 1 in both states, whatever a stored table says, so whether a
feature exists never moves the belief. Tables are smoothed toward the pooled distribution of the
feature over both states (a Dirichlet prior of one pseudo-count per category centred on the
pooled frequencies), not toward uniform: a state with (almost) no training rounds then gets the
pooled distribution, the same as the other state, and its likelihood ratio is about 1 instead of
"uniform versus observed", which add-one smoothing turned into strong evidence. No likelihood is 0
and no belief is NaN.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

from mstui.core.markov import TwoStateChain, check_probability
from mstui.core.types import Observation

F = NDArray[np.float64]
N = TypeVar("N", float, F)
Trace = Sequence[tuple[Observation, bool]]
N_CHANGE = 5
N_LP_BINS = 5
N_TH_BINS = 4  # thinking-length bins
PREDICT_ONLY = "predict-only: no observation model fitted, belief follows the chain alone"
FILTERED = "filtered: belief updated from found / changed / agreement / log-probability"
TEMPER_BOUNDS = (0.05, 1.0)  # tempering weakens over-confident naive Bayes; it never amplifies
UNKNOWN_CHANGE = 4


def change_category(changed: bool | None, agreement: float | None) -> int:
    """The pair feature's category (see module docstring)."""
    if changed is None:
        return 4
    if not changed:
        return 0 if agreement is None or agreement >= 1.0 - 1e-9 else 1
    return 3 if agreement is not None and agreement > 0.0 else 2


def change_categories(changed: NDArray[Any], agreement: F) -> NDArray[np.int64]:
    """Vector form of change_category; changed uses −1 for None, agreement NaN for None."""
    ch = np.asarray(changed, dtype=np.int64)
    ag = np.asarray(agreement, dtype=np.float64)
    known = ~np.isnan(ag)
    same = np.where(known & (ag < 1.0 - 1e-9), 1, 0)
    moved = np.where(known & (ag > 0.0), 3, 2)
    return np.where(ch < 0, 4, np.where(ch == 0, same, moved)).astype(np.int64)


def _step(q: N, a: float, b: float, sw: N, sc: N, pww: N, pwc: N, pcw: N, pcc: N) -> N:
    """One predict + update step; the same arithmetic serves floats and arrays (so they agree)."""
    jww = (1.0 - q) * (1.0 - b) * sw * pww
    jwc = (1.0 - q) * b * sc * pwc
    jcw = q * a * sw * pcw
    jcc = q * (1.0 - a) * sc * pcc
    num = jwc + jcc
    return num / (num + jww + jcw)


def _update0(p0: N, sw: N, sc: N) -> N:
    num = p0 * sc
    return num / (num + (1.0 - p0) * sw)


class ObservationModel:
    """Likelihood tables for round features, fitted from labelled traces; see module docstring."""

    def __init__(
        self,
        found: list[list[float]],
        logprob: list[list[float]],
        edges: list[float],
        change: list[list[list[float]]],
        temper: float = 1.0,
        n_train: int = 0,
        truncated: list[list[float]] | None = None,
        thinking: list[list[float]] | None = None,
        thinking_edges: list[float] | None = None,
    ) -> None:
        self.found = found  # [x_t][found 0/1]
        self.logprob = logprob  # [x_t][bin 0..N_LP_BINS] (last = missing)
        self.edges = edges  # inner bin edges of the log-probability
        self.change = change  # [x_{t−1}][x_t][category]
        self.temper = temper
        self.n_train = n_train
        w = temper
        self._found = np.asarray(found, dtype=np.float64) ** w
        self._lp = np.asarray(logprob, dtype=np.float64) ** w
        self._ch = np.asarray(change, dtype=np.float64) ** w
        # Missing features carry no evidence: neutral columns, also for tables stored before
        # this rule (which learned "missing" as if it said something about the state).
        self._lp[:, N_LP_BINS] = 1.0
        self._ch[:, :, UNKNOWN_CHANGE] = 1.0
        # Plain nested lists for the per-decision path, where numpy scalars would only add cost.
        self._found_l: list[list[float]] = self._found.tolist()
        self._lp_l: list[list[float]] = self._lp.tolist()
        self._ch_l: list[list[list[float]]] = self._ch.tolist()
        # Reasoning features: None when the training rounds had no thinking (factor 1).
        self.truncated = truncated  # [x_t][truncated 0/1], among rounds with no answer
        self.thinking = thinking  # [x_t][bin 0..N_TH_BINS-1]
        self.thinking_edges = thinking_edges or []  # inner edges on log(1 + tokens)
        self._tr = None if truncated is None else np.asarray(truncated, np.float64) ** w
        self._th = None if thinking is None else np.asarray(thinking, np.float64) ** w

    def thinking_bin(self, tokens: float | None) -> int:
        """Bin of a thinking length in tokens; −1 when unknown (the model does not think)."""
        if tokens is None or not math.isfinite(tokens):
            return -1
        return bisect.bisect_right(self.thinking_edges, math.log1p(max(tokens, 0.0)))

    def reasoning_factors(self, found: bool, truncated: bool,
                          thinking_tokens: float | None) -> tuple[float, float]:
        """(factor for W, for C) of a round's reasoning features; (1, 1) when there are none."""
        tb = self.thinking_bin(thinking_tokens)
        if tb < 0 or self._tr is None or self._th is None:
            return 1.0, 1.0
        fw, fc = float(self._th[0][tb]), float(self._th[1][tb])
        if not found:
            t = int(truncated)
            fw, fc = fw * float(self._tr[0][t]), fc * float(self._tr[1][t])
        return fw, fc

    def reasoning_arrays(self, found: NDArray[Any], truncated: NDArray[Any] | None,
                         thinking: F | None) -> tuple[F, F] | None:
        """Vector form of reasoning_factors, or None when no round has reasoning features."""
        if thinking is None or truncated is None or self._tr is None or self._th is None:
            return None
        th = np.asarray(thinking, np.float64)
        known = np.isfinite(th)
        if not known.any():
            return None
        bins = np.searchsorted(np.asarray(self.thinking_edges),
                               np.log1p(np.maximum(np.nan_to_num(th), 0.0)), side="right")
        t = np.asarray(truncated, np.int64)
        missing = ~np.asarray(found, np.bool_)
        fw = np.where(known, self._th[0][bins] * np.where(missing, self._tr[0][t], 1.0), 1.0)
        fc = np.where(known, self._th[1][bins] * np.where(missing, self._tr[1][t], 1.0), 1.0)
        return fw, fc

    def likelihood_ratios(self, obs: Observation, q_prev: float | None = None,
                          chain: TwoStateChain | None = None) -> dict[str, float]:
        """Each feature's likelihood ratio P(feature | C) / P(feature | W) for one round, as the
        filter uses it (tempered); 1.0 means "no evidence". The change feature depends on the
        previous state: with `q_prev` (the belief after the previous round) and `chain` it is
        averaged over that state as the filter does, else taken along the diagonal (C→C vs W→W).
        For the why-view (issue 13): the belief's odds move by the product of these ratios."""
        f, lb = int(obs.found), self.lp_bin(obs.logprob)
        out = {"found": self._found_l[1][f] / self._found_l[0][f],
               "log-probability": self._lp_l[1][lb] / self._lp_l[0][lb]}
        rw, rc = self.reasoning_factors(obs.found, obs.truncated, obs.thinking_tokens)
        out["reasoning"] = rc / rw
        cat = change_category(obs.changed, obs.agreement)
        ch = self._ch_l
        if q_prev is None or chain is None:
            out["change"] = ch[1][1][cat] / ch[0][0][cat]
        else:
            a, b = chain.a, chain.b
            to_c = (1 - q_prev) * b * ch[0][1][cat] + q_prev * (1 - a) * ch[1][1][cat]
            to_c /= (1 - q_prev) * b + q_prev * (1 - a)
            to_w = (1 - q_prev) * (1 - b) * ch[0][0][cat] + q_prev * a * ch[1][0][cat]
            to_w /= (1 - q_prev) * (1 - b) + q_prev * a
            out["change"] = to_c / to_w
        return out

    # -- encoding ---------------------------------------------------------------------------
    def lp_bin(self, logprob: float | None) -> int:
        """Bin index of a log-probability (N_LP_BINS for missing)."""
        if logprob is None or not math.isfinite(logprob):
            return N_LP_BINS
        return bisect.bisect_right(self.edges, logprob)

    def lp_bins(self, logprob: F) -> NDArray[np.int64]:
        """Vector form of lp_bin (NaN = missing)."""
        lp = np.asarray(logprob, dtype=np.float64)
        bins = np.searchsorted(np.asarray(self.edges), np.nan_to_num(lp), side="right")
        return np.where(np.isfinite(lp), bins, N_LP_BINS).astype(np.int64)

    def factors(self, obs: Observation) -> tuple[float, float, list[list[float]]]:
        """(single-state factor for W, for C, pair factor [x_{t−1}][x_t]) of one observation."""
        f, lb = int(obs.found), self.lp_bin(obs.logprob)
        sw = self._found_l[0][f] * self._lp_l[0][lb]
        sc = self._found_l[1][f] * self._lp_l[1][lb]
        if obs.thinking_tokens is not None:
            rw, rc = self.reasoning_factors(obs.found, obs.truncated, obs.thinking_tokens)
            sw, sc = sw * rw, sc * rc
        cat = change_category(obs.changed, obs.agreement)
        ch = self._ch_l
        return sw, sc, [[ch[0][0][cat], ch[0][1][cat]], [ch[1][0][cat], ch[1][1][cat]]]

    def factor_arrays(
        self, found: NDArray[Any], cat: NDArray[np.int64], lpbin: NDArray[np.int64],
        truncated: NDArray[Any] | None = None, thinking: F | None = None,
    ) -> tuple[F, F, F, F, F, F]:
        """Vector factors (sw, sc, pww, pwc, pcw, pcc), each shaped like the inputs."""
        f = np.asarray(found, dtype=np.int64)
        sw = self._found[0][f] * self._lp[0][lpbin]
        sc = self._found[1][f] * self._lp[1][lpbin]
        extra = self.reasoning_arrays(found, truncated, thinking)
        if extra is not None:
            sw, sc = sw * extra[0], sc * extra[1]
        ch = self._ch
        return sw, sc, ch[0, 0][cat], ch[0, 1][cat], ch[1, 0][cat], ch[1, 1][cat]

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit_arrays(
        cls,
        found: NDArray[Any],
        changed: NDArray[Any],
        agreement: F,
        logprob: F,
        correct: NDArray[Any],
        valid: NDArray[Any] | None = None,
        chain: TwoStateChain | None = None,
        p0: float | None = None,
        *,
        truncated: NDArray[Any] | None = None,
        thinking: F | None = None,
    ) -> ObservationModel:
        """Fit from pool-shaped arrays [Q, R] (changed: −1 None; agreement/logprob: NaN None;
        thinking: tokens, NaN where the round had no thinking).

        With `chain` and `p0` the tempering exponent is fitted too; else it stays 1.
        """
        x = np.asarray(correct, dtype=np.bool_)
        if x.ndim != 2 or x.size == 0:
            raise ValueError("observation model needs labelled rounds as [question, round] arrays")
        v = np.ones_like(x) if valid is None else np.asarray(valid, dtype=np.bool_)
        xi = x.astype(np.int64)
        fo = np.asarray(found, dtype=np.bool_)
        lp = np.asarray(logprob, dtype=np.float64)
        cat = change_categories(changed, agreement)
        finite = lp[v & np.isfinite(lp)]
        qs = np.linspace(0, 1, N_LP_BINS + 1)[1:-1]
        edges = np.quantile(finite, qs).tolist() if finite.size >= N_LP_BINS else []
        edges = sorted(set(edges))
        model0 = cls(
            [[1, 1], [1, 1]], [[1] * (N_LP_BINS + 1)] * 2, edges, [[[1] * N_CHANGE] * 2] * 2
        )
        lb = model0.lp_bins(lp)
        found_t = smoothed_table(np.bincount(2 * xi[v] + fo[v], minlength=4).reshape(2, 2))
        # The log-probability table is learned from rounds that have one; its "missing" column
        # is neutral (factor 1), see the module docstring.
        known = v & (lb < N_LP_BINS)
        lp_t = np.ones((2, N_LP_BINS + 1))
        lp_t[:, :N_LP_BINS] = smoothed_table(np.bincount(
            N_LP_BINS * xi[known] + lb[known], minlength=2 * N_LP_BINS).reshape(2, -1))
        pv = v[:, 1:] & v[:, :-1] & (cat[:, 1:] != UNKNOWN_CHANGE)
        code = (2 * xi[:, :-1] + xi[:, 1:]) * (N_CHANGE - 1) + cat[:, 1:]
        ch_t = np.ones((4, N_CHANGE))
        ch_t[:, :UNKNOWN_CHANGE] = smoothed_table(
            np.bincount(code[pv], minlength=4 * (N_CHANGE - 1)).reshape(4, -1))
        args = (found_t.tolist(), lp_t.tolist(), edges, ch_t.reshape(2, 2, N_CHANGE).tolist())
        reasoning = _fit_reasoning(xi, v, fo, truncated, thinking)
        model = cls(*args, temper=1.0, n_train=int(v.sum()), **reasoning)
        if chain is None or p0 is None:
            return model

        def loss(w: float) -> float:
            m = cls(*args, temper=w, **reasoning)
            q = belief_matrix(chain, p0, fo, cat, m.lp_bins(lp), m, truncated=truncated,
                              thinking=thinking)
            qc = np.clip(q[v], 1e-9, 1 - 1e-9)
            return float(-np.mean(np.where(x[v], np.log(qc), np.log(1 - qc))))

        res = optimize.minimize_scalar(
            loss, bounds=TEMPER_BOUNDS, method="bounded", options={"xatol": 1e-3}
        )
        return cls(*args, temper=float(res.x), n_train=int(v.sum()), **reasoning)

    @classmethod
    def fit(
        cls, traces: Sequence[Trace], chain: TwoStateChain | None = None, p0: float | None = None
    ) -> ObservationModel:
        """Fit from labelled traces: each a sequence of (Observation, correct) in round order."""
        arrays = traces_to_arrays(traces)
        return cls.fit_arrays(*arrays, chain=chain, p0=p0)

    # -- reporting --------------------------------------------------------------------------
    def calibration_error(
        self, traces: Sequence[Trace], chain: TwoStateChain, p0: float, bins: int = 10
    ) -> float:
        """Expected calibration error of the filtered beliefs on `traces` (equal-width bins)."""
        fo, ch, ag, lp, x, v = traces_to_arrays(traces)
        q = belief_matrix(chain, p0, fo, change_categories(ch, ag), self.lp_bins(lp), self)
        return expected_calibration_error(q[v], x[v], bins)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; inverse of from_dict."""
        return {
            "found": self.found,
            "logprob": self.logprob,
            "edges": self.edges,
            "change": self.change,
            "temper": self.temper,
            "n_train": self.n_train,
            "truncated": self.truncated,
            "thinking": self.thinking,
            "thinking_edges": self.thinking_edges,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObservationModel:
        """Rebuild from to_dict output."""
        return cls(
            d["found"],
            d["logprob"],
            list(d["edges"]),
            d["change"],
            float(d.get("temper", 1.0)),
            int(d.get("n_train", 0)),
            truncated=d.get("truncated"),
            thinking=d.get("thinking"),
            thinking_edges=d.get("thinking_edges"),
        )


def smoothed_table(counts: NDArray[Any]) -> F:
    """Rows of P(category | state) from counts [state, category], each smoothed by one
    pseudo-count per category spread as the pooled distribution (add-one on the pool): a state
    with no rounds gets the pooled distribution, so it carries no evidence against the others."""
    n = np.asarray(counts, dtype=np.float64)
    k = n.shape[1]
    pooled = (n.sum(axis=0) + 1.0) / (n.sum() + k)
    t = n + k * pooled
    return np.asarray(t / t.sum(axis=1, keepdims=True), dtype=np.float64)


def _fit_reasoning(xi: NDArray[np.int64], v: NDArray[np.bool_], found: NDArray[np.bool_],
                   truncated: NDArray[Any] | None, thinking: F | None) -> dict[str, Any]:
    """Smoothed tables (see smoothed_table) of the reasoning features over rounds that had
    thinking (the truncation table over those without an answer, see the module docstring)."""
    if thinking is None or truncated is None:
        return {}
    th = np.asarray(thinking, np.float64)
    known = v & np.isfinite(th)
    if not known.any():
        return {}
    logs = np.log1p(np.maximum(th[known], 0.0))
    qs = np.linspace(0, 1, N_TH_BINS + 1)[1:-1]
    edges = sorted(set(np.quantile(logs, qs).tolist())) if logs.size >= N_TH_BINS else []
    bins = np.searchsorted(np.asarray(edges), logs, side="right")
    x = xi[known]
    lost = known & ~found
    tr = np.asarray(truncated, np.int64)[lost]
    tr_t = smoothed_table(np.bincount(2 * xi[lost] + tr, minlength=4).reshape(2, 2))
    th_t = smoothed_table(np.bincount(N_TH_BINS * x + bins,
                                      minlength=2 * N_TH_BINS).reshape(2, -1))
    return {"truncated": tr_t.tolist(), "thinking": th_t.tolist(), "thinking_edges": edges}


def empty_feature_arrays(
    nq: int, nr: int
) -> tuple[NDArray[np.bool_], NDArray[np.int64], F, F, NDArray[np.bool_], NDArray[np.bool_]]:
    """(found, changed, agreement, logprob, correct, valid) [nq, nr] meaning "nothing seen":
    changed −1 and agreement/logprob NaN mark a missing feature, valid False a missing round."""
    return (np.zeros((nq, nr), np.bool_), np.full((nq, nr), -1, np.int64),
            np.full((nq, nr), np.nan), np.full((nq, nr), np.nan),
            np.zeros((nq, nr), np.bool_), np.zeros((nq, nr), np.bool_))


def traces_to_arrays(
    traces: Sequence[Trace],
) -> tuple[NDArray[np.bool_], NDArray[np.int64], F, F, NDArray[np.bool_], NDArray[np.bool_]]:
    """Pad traces into (found, changed, agreement, logprob, correct, valid) arrays [Q, R]."""
    if not traces:
        raise ValueError("no traces given")
    fo, ch, ag, lp, x, v = empty_feature_arrays(len(traces), max(len(t) for t in traces))
    for i, tr in enumerate(traces):
        for j, (o, c) in enumerate(tr):
            fo[i, j], x[i, j], v[i, j] = o.found, c, True
            if o.changed is not None:
                ch[i, j] = int(o.changed)
            if o.agreement is not None:
                ag[i, j] = o.agreement
            if o.logprob is not None:
                lp[i, j] = o.logprob
    return fo, ch, ag, lp, x, v


def expected_calibration_error(pred: F, label: NDArray[Any], bins: int = 10) -> float:
    """Σ_bins (n_bin / n) |mean(pred) − mean(label)| with equal-width bins on [0, 1]."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(label, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("calibration error needs at least one prediction")
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    sp = np.bincount(idx, weights=p, minlength=bins)
    sy = np.bincount(idx, weights=y, minlength=bins)
    return float(np.abs(sp - sy).sum() / p.size)


def belief_trajectory(
    chain: TwoStateChain,
    p0: float,
    observations: Sequence[Observation],
    obs_model: ObservationModel | None,
) -> list[float]:
    """q_t for every round of `observations` (plain floats: this runs in the per-decision path).

    Without an observation model the filter is predict-only: q_0 = p0, q_{t+1} = b + λ q_t.
    """
    p0 = check_probability("prior p0", p0)
    a, b = chain.a, chain.b
    out: list[float] = []
    q = p0
    for t, obs in enumerate(observations):
        if obs_model is None:
            q = q if t == 0 else _step(q, a, b, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
        else:
            sw, sc, pair = obs_model.factors(obs)
            if t == 0:
                new = _update0(q, sw, sc)
            else:
                new = _step(q, a, b, sw, sc, pair[0][0], pair[0][1], pair[1][0], pair[1][1])
            # Impossible evidence (0/0) cannot happen with smoothed tables, but stay defined.
            q = new if math.isfinite(new) else (q if t == 0 else b + chain.lam * q)
        out.append(q)
    return out


def belief_matrix(
    chain: TwoStateChain,
    p0: float | F,
    found: NDArray[Any],
    cat: NDArray[np.int64],
    lpbin: NDArray[np.int64],
    obs_model: ObservationModel | None,
    *,
    truncated: NDArray[Any] | None = None,
    thinking: F | None = None,
) -> F:
    """Vector filter over a pool: q[Q, R] with the same arithmetic as belief_trajectory
    (`thinking` in tokens, NaN where a round had none)."""
    fo = np.asarray(found)
    nq, nr = fo.shape
    a, b = chain.a, chain.b
    q = np.empty((nq, nr))
    prior = np.broadcast_to(np.asarray(p0, dtype=np.float64), (nq,)).astype(np.float64)
    ones = np.ones(nq)
    if obs_model is None:
        q[:, 0] = prior
        for t in range(1, nr):
            q[:, t] = _step(q[:, t - 1], a, b, ones, ones, ones, ones, ones, ones)
        return q
    sw, sc, pww, pwc, pcw, pcc = obs_model.factor_arrays(fo, cat, lpbin, truncated, thinking)
    with np.errstate(invalid="ignore", divide="ignore"):
        new = _update0(prior, sw[:, 0], sc[:, 0])
        q[:, 0] = np.where(np.isfinite(new), new, prior)
        for t in range(1, nr):
            prev = q[:, t - 1]
            new = _step(prev, a, b, sw[:, t], sc[:, t], pww[:, t], pwc[:, t], pcw[:, t], pcc[:, t])
            q[:, t] = np.where(np.isfinite(new), new, b + chain.lam * prev)
    return q


def filter_mode(obs_model: ObservationModel | None) -> str:
    """A line the UI can show saying whether the belief is filtered or predict-only."""
    return PREDICT_ONLY if obs_model is None else FILTERED
