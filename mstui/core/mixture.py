"""A mixture of two-state chains with a latent difficulty class per question (DESIGN §1.7).

Each question has a class k (easy, hard, …) with its own (a_k, b_k, p0_k) and weight w_k. EM fits
it from per-question sufficient statistics (round-0 state and the four transition counts), which
are grouped, so 10⁶ rounds cost one pass over the rounds plus EM over a few hundred distinct
count vectors. The number of classes is chosen on held-out log-likelihood (questions split once,
seeded); K = 1 is the single chain. The live belief is a forward filter over (class, state): the
rounds seen, through the observation model's features, tell which class the question is in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mstui.core.belief import ObservationModel
from mstui.core.types import Observation

F = NDArray[np.float64]
PSEUDO = 0.5  # pseudo-count on every rate (a Beta(0.5, 0.5) MAP step) so no class freezes at 0/1
MAX_CLASSES = 4
# Nats per held-out question a larger K must gain to be chosen: EM always gains a little from
# extra classes (1e-4 on a true two-class pool), which is noise, not structure.
HELDOUT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class MixtureFit:
    """K classes: weights w, rates a, b, first-round accuracies p0; log-likelihoods that chose K."""

    w: tuple[float, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    p0: tuple[float, ...]
    loglik: float = 0.0
    heldout: tuple[float, ...] = ()  # held-out log-likelihood per question for K = 1, 2, …
    n_questions: int = 0

    @property
    def k(self) -> int:
        """Number of classes."""
        return len(self.w)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; inverse of from_dict."""
        return {"w": list(self.w), "a": list(self.a), "b": list(self.b), "p0": list(self.p0),
                "loglik": self.loglik, "heldout": list(self.heldout),
                "n_questions": self.n_questions}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MixtureFit:
        """Rebuild from to_dict output."""
        return cls(tuple(d["w"]), tuple(d["a"]), tuple(d["b"]), tuple(d["p0"]),
                   float(d.get("loglik", 0.0)), tuple(d.get("heldout", ())),
                   int(d.get("n_questions", 0)))

    def accuracy(self, t: int) -> float:
        """Expected accuracy at round t over the classes (a sum of geometric curves)."""
        out = 0.0
        for w, a, b, p0 in zip(self.w, self.a, self.b, self.p0, strict=True):
            s = a + b
            pi = b / s if s > 0 else p0
            out += w * (pi + (1.0 - s) ** t * (p0 - pi))
        return out


def question_stats(correct: NDArray[Any], valid: NDArray[Any] | None = None) -> F:
    """Per question [has round 0, round 0 correct, N_CC, N_CW, N_WC, N_WW] from a pool [Q, R]."""
    x = np.asarray(correct, np.bool_)
    v = np.ones_like(x) if valid is None else np.asarray(valid, np.bool_)
    pair = v[:, 1:] & v[:, :-1]
    prev, nxt = x[:, :-1], x[:, 1:]
    return np.stack([v[:, 0], x[:, 0] & v[:, 0],
                     (pair & prev & nxt).sum(1), (pair & prev & ~nxt).sum(1),
                     (pair & ~prev & nxt).sum(1), (pair & ~prev & ~nxt).sum(1)],
                    axis=1).astype(np.float64)


def _loglik_matrix(stats: F, w: F, a: F, b: F, p0: F) -> F:
    """log(w_k) + log P(question's rounds | class k), [rows, K]."""
    h0, x0, cc, cw, wc, ww = (stats[:, i:i + 1] for i in range(6))
    return (np.log(w) + h0 * (x0 * np.log(p0) + (1 - x0) * np.log1p(-p0))
            + cc * np.log1p(-a) + cw * np.log(a) + wc * np.log(b) + ww * np.log1p(-b))


def _logsumexp(m: F) -> F:
    top = m.max(axis=1, keepdims=True)
    return np.asarray(top[:, 0] + np.log(np.exp(m - top).sum(axis=1)), np.float64)


def _em(stats: F, counts: F, k: int, iters: int = 500, tol: float = 1e-9) -> MixtureFit:
    """EM on grouped statistics (rows with multiplicities `counts`)."""
    # Start from K groups of questions ordered by accuracy (deterministic, no random restarts).
    acc = (stats[:, 1] + stats[:, 2] + stats[:, 4]) / np.maximum(
        stats[:, 0] + stats[:, 2:].sum(1), 1.0)
    order = np.argsort(acc, kind="stable")
    # Midpoints of each row's mass, so one heavy row (every all-wrong question) does not leave
    # the first class empty.
    cum = (np.cumsum(counts[order]) - counts[order] / 2) / counts.sum()
    resp = np.zeros((stats.shape[0], k))
    resp[order, np.minimum((cum * k).astype(np.int64), k - 1)] = 1.0
    prev = -math.inf
    ll = prev
    for _ in range(iters):
        rw = resp * counts[:, None]
        n_k = rw.sum(0)
        w = (n_k + 1e-9) / (n_k.sum() + k * 1e-9)
        s = rw.T @ stats  # [K, 6]
        p0 = (s[:, 1] + PSEUDO) / (s[:, 0] + 2 * PSEUDO)
        a = (s[:, 3] + PSEUDO) / (s[:, 2] + s[:, 3] + 2 * PSEUDO)
        b = (s[:, 4] + PSEUDO) / (s[:, 4] + s[:, 5] + 2 * PSEUDO)
        m = _loglik_matrix(stats, w, a, b, p0)
        lse = _logsumexp(m)
        ll = float((lse * counts).sum())
        resp = np.exp(m - lse[:, None])
        if ll - prev < tol * max(1.0, abs(ll)):
            break
        prev = ll
    # Classes ordered easy first (highest stationary accuracy), so "class 0" means the same
    # thing in every fit; a class EM emptied (weight < 1e-4) is dropped.
    pi = b / (a + b)
    idx = np.array([i for i in np.argsort(-pi, kind="stable") if w[i] >= 1e-4], np.int64)
    w = w / w[idx].sum()
    return MixtureFit(tuple(w[idx].tolist()), tuple(a[idx].tolist()), tuple(b[idx].tolist()),
                      tuple(p0[idx].tolist()), ll, (), int(counts.sum()))


def _grouped(stats: F) -> tuple[F, F]:
    uniq, inv = np.unique(stats, axis=0, return_inverse=True)
    return uniq, np.bincount(inv.ravel(), minlength=uniq.shape[0]).astype(np.float64)


def mixture_loglik(fit: MixtureFit, stats: F) -> float:
    """Log-likelihood of questions' statistics under a fitted mixture."""
    m = _loglik_matrix(stats, np.asarray(fit.w), np.asarray(fit.a), np.asarray(fit.b),
                       np.asarray(fit.p0))
    return float(_logsumexp(m).sum())


def fit_mixture(correct: NDArray[Any], valid: NDArray[Any] | None = None, *,
                classes: int | None = None, max_classes: int = MAX_CLASSES,
                heldout_fraction: float = 0.25, seed: int = 0) -> MixtureFit:
    """Fit a mixture of chains to a pool [Q, R]. With `classes` None, K ∈ 1..max_classes is the
    one with the best held-out log-likelihood per question (a smaller K wins when within
    HELDOUT_TOLERANCE of the best),
    then refitted on every question."""
    stats = question_stats(correct, valid)
    if stats.shape[0] == 0:
        raise ValueError("a mixture needs at least one question")
    heldout: list[float] = []
    if classes is None:
        rng = np.random.default_rng(seed)
        test = np.asarray(rng.random(stats.shape[0]) < heldout_fraction, np.bool_)
        if bool(test.all()) or not bool(test.any()) or stats.shape[0] < 8:
            classes = 1
        else:
            tr_stats, tr_counts = _grouped(stats[~test])
            for k in range(1, max_classes + 1):
                fk = _em(tr_stats, tr_counts, k)
                heldout.append(mixture_loglik(fk, stats[test]) / int(test.sum()))
            best = max(heldout)
            classes = 1 + next(i for i, v in enumerate(heldout) if v >= best - HELDOUT_TOLERANCE)
    if classes < 1:
        raise ValueError(f"a mixture needs at least one class, got {classes}")
    full = _em(*_grouped(stats), classes)
    return MixtureFit(full.w, full.a, full.b, full.p0, full.loglik, tuple(heldout),
                      full.n_questions)


def simulate_mixture(fit: MixtureFit, nq: int, nr: int,
                     rng: np.random.Generator) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """(correct [Q, R], class per question) drawn from the mixture (for checks and tests)."""
    cls = rng.choice(fit.k, size=nq, p=np.asarray(fit.w) / sum(fit.w))
    a, b, p0 = (np.asarray(v)[cls] for v in (fit.a, fit.b, fit.p0))
    x = np.zeros((nq, nr), np.bool_)
    x[:, 0] = rng.random(nq) < p0
    for t in range(1, nr):
        u = rng.random(nq)
        x[:, t] = np.where(x[:, t - 1], u >= a, u < b)
    return x, cls.astype(np.int64)


def mixture_joints(fit: MixtureFit, observations: Sequence[Observation],
                   obs_model: ObservationModel | None) -> list[list[list[float]]]:
    """The joint belief P(class k, X_t = W / C | rounds seen) after each round, in one pass:
    [[[W, C], …] per class] per round (empty for no rounds). Plain floats: this runs in the
    per-decision path."""
    joint = [[w * (1.0 - p0), w * p0] for w, p0 in zip(fit.w, fit.p0, strict=True)]
    out: list[list[list[float]]] = []
    for t, obs in enumerate(observations):
        if obs_model is None:
            sw = sc = 1.0
            pair = [[1.0, 1.0], [1.0, 1.0]]
        else:
            sw, sc, pair = obs_model.factors(obs)
        total = 0.0
        new = []
        for (mw, mc), a, b in zip(joint, fit.a, fit.b, strict=True):
            if t == 0:
                nw, nc = mw * sw, mc * sc
            else:
                nw = (mw * (1.0 - b) * pair[0][0] + mc * a * pair[1][0]) * sw
                nc = (mw * b * pair[0][1] + mc * (1.0 - a) * pair[1][1]) * sc
            new.append([nw, nc])
            total += nw + nc
        if total > 0 and math.isfinite(total):
            new = [[nw / total, nc / total] for nw, nc in new]
        joint = new
        out.append(joint)
    return out


def mixture_filter(fit: MixtureFit, observations: Sequence[Observation],
                   obs_model: ObservationModel | None) -> list[list[float]]:
    """Joint belief P(class k, X_t = W / C | rounds seen) after the last round, as [[W, C], …]
    per class (the prior joint when there is no round)."""
    joints = mixture_joints(fit, observations, obs_model)
    if joints:
        return joints[-1]
    return [[w * (1.0 - p0), w * p0] for w, p0 in zip(fit.w, fit.p0, strict=True)]


def mixture_summary(fit: MixtureFit, joint: list[list[float]]) -> dict[str, Any]:
    """q_t, the expected gain of one more round, class posteriors, and the posterior-weighted
    π and λ, from a joint belief."""
    q = sum(c for _, c in joint)
    gain = sum(w_ * b - c * a for (w_, c), a, b in zip(joint, fit.a, fit.b, strict=True))
    post = [w_ + c for w_, c in joint]
    pi = sum(p * (b / (a + b) if a + b > 0 else 0.0)
             for p, a, b in zip(post, fit.a, fit.b, strict=True))
    lam = sum(p * (1.0 - a - b) for p, a, b in zip(post, fit.a, fit.b, strict=True))
    return {"belief": q, "gain": gain, "classes": post, "pi": pi, "lam": lam}


def first_order_under(fit: MixtureFit, correct: NDArray[Any], valid: NDArray[Any] | None = None,
                      draws: int = 199, seed: int = 0) -> float:
    """The first-order test re-run under the mixture: the p-value of the observed second- vs
    first-order G statistic among pools simulated from `fit` (same questions and observed
    rounds). A mixture of first-order chains is not first-order once the class is unknown, so
    under the single chain a mixture is rejected; this asks whether the mixture explains it."""
    from mstui.core.fitting import markov_check

    x = np.asarray(correct, np.bool_)
    v = np.ones_like(x) if valid is None else np.asarray(valid, np.bool_)
    qi, ri = np.nonzero(v)

    def g(grid: NDArray[np.bool_]) -> float:
        return markov_check(qi, ri, grid[qi, ri]).statistic

    observed = g(x)
    rng = np.random.default_rng(seed)
    exceed = sum(g(simulate_mixture(fit, x.shape[0], x.shape[1], rng)[0]) >= observed - 1e-9
                  for _ in range(draws))
    return (1 + exceed) / (draws + 1)
