"""The two-state correctness chain of MarkovScale (DESIGN §1.1): closed forms, regimes, bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

Regime = Literal["beneficial", "neutral", "detrimental"]
FloatArray = NDArray[np.float64]


def check_probability(name: str, value: float) -> float:
    """Return `value` as a float; raise ValueError naming it unless it is a finite probability."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or v < 0.0 or v > 1.0:
        raise ValueError(f"{name} must be a finite probability in [0, 1], got {value!r}")
    return v


def check_probabilities(name: str, values: ArrayLike) -> FloatArray:
    """Return `values` as a float array, or raise ValueError when any is NaN or outside [0, 1]."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers in [0, 1], got {values!r}") from None
    # `not (x >= 0)` also catches NaN, which every ordinary comparison lets through.
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if np.any(bad):
        first = arr[bad].flat[0]
        raise ValueError(f"{name} must be finite probabilities in [0, 1], got {first!r}")
    return arr


def _check_rounds(name: str, n: ArrayLike) -> NDArray[np.int64]:
    arr = np.asarray(n)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
            raise ValueError(f"{name} must be whole numbers of rounds, got {arr!r}")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must be whole numbers of rounds, got {arr!r}")
    out = arr.astype(np.int64)
    if np.any(out < 0):
        raise ValueError(f"{name} must be >= 0, got {int(out.min())}")
    return out


@dataclass(frozen=True)
class DatasetBounds:
    """Dataset-level accuracies of §1.1: no scaling, perfect gating and worst gating."""

    neutral: float  # E[p0]
    upper: float  # E[max(p0, π)]
    lower: float  # E[min(p0, π)]


@dataclass(frozen=True)
class TwoStateChain:
    """Correct/Wrong chain with corruption rate `a` = P(W|C) and repair rate `b` = P(C|W).

    Degenerate chains are allowed and defined:
    - a = b = 0 (frozen): nothing ever changes, π is undefined, so `pi` is None and every formula
      uses p0 itself as the fixed point (p_n = p0, gain 0, regime "neutral");
    - a + b = 1 (λ = 0): π is reached in exactly one round;
    - a = b = 1 (λ = −1): the answer flips every round, accuracy alternates p0, 1 − p0, ...
    """

    a: float
    b: float

    def __post_init__(self) -> None:
        # Re-store as plain floats so numpy scalars or ints never leak into JSON or comparisons.
        object.__setattr__(self, "a", check_probability("corruption rate a", self.a))
        object.__setattr__(self, "b", check_probability("repair rate b", self.b))

    @property
    def frozen(self) -> bool:
        """True for a = b = 0: the chain never moves and π is undefined."""
        return self.a + self.b == 0.0

    @property
    def lam(self) -> float:
        """Second eigenvalue λ = 1 − a − b, in [−1, 1]."""
        return 1.0 - self.a - self.b

    @property
    def pi(self) -> float | None:
        """Stationary accuracy b / (a + b); None for the frozen chain, where it is undefined."""
        s = self.a + self.b
        return None if s == 0.0 else self.b / s

    def fixed_point(self, p0: float) -> float:
        """π, or p0 itself for the frozen chain (every p0 is then stationary)."""
        pi = self.pi
        return p0 if pi is None else pi

    @property
    def half_life(self) -> float:
        """Rounds for |p_n − π| to halve: ln 2 / (−ln|λ|); inf when |λ| = 1, 0 when λ = 0."""
        m = abs(self.lam)
        if m >= 1.0:
            return math.inf
        if m == 0.0:
            return 0.0
        return math.log(2.0) / -math.log(m)

    def regime(self, p0: float, tol: float = 1e-9) -> Regime:
        """'beneficial' if p0 < π − tol, 'detrimental' if p0 > π + tol, else 'neutral'.

        The frozen chain is always 'neutral' (scaling changes nothing).
        """
        p0 = check_probability("p0", p0)
        pi = self.pi
        if pi is None or abs(p0 - pi) <= tol:
            return "neutral"
        return "beneficial" if p0 < pi else "detrimental"

    def expected_gain_next(self, q: float) -> float:
        """Expected change in P(correct) from one more round at belief q: b − (a + b) q."""
        q = check_probability("belief q", q)
        return self.b - (self.a + self.b) * q

    def _arrays(self, p0: ArrayLike, n: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        p = check_probabilities("p0", p0)
        nn = _check_rounds("n", n)
        pi = self.pi
        target = p if pi is None else np.full_like(p, pi)
        # numpy's 0.0**0 is 1, which is what p_0 = p0 needs when λ = 0.
        lam_n = np.power(self.lam, nn.astype(np.float64))
        return p, target, lam_n

    @overload
    def accuracy(self, p0: float, n: int) -> float: ...
    @overload
    def accuracy(self, p0: ArrayLike, n: ArrayLike) -> FloatArray | float: ...
    def accuracy(self, p0: ArrayLike, n: ArrayLike) -> FloatArray | float:
        """p_n = π + λ^n (p0 − π), broadcast over arrays of p0 and n; a float for scalars."""
        p, target, lam_n = self._arrays(p0, n)
        out = target + lam_n * (p - target)
        # Rounding can push π + λ^n(p0 − π) a hair outside [0, 1]; it is a probability.
        out = np.clip(out, 0.0, 1.0)
        return float(out) if out.ndim == 0 else out

    @overload
    def gain(self, p0: float, n: int) -> float: ...
    @overload
    def gain(self, p0: ArrayLike, n: ArrayLike) -> FloatArray | float: ...
    def gain(self, p0: ArrayLike, n: ArrayLike) -> FloatArray | float:
        """p_n − p0 = (1 − λ^n)(π − p0)."""
        p, target, lam_n = self._arrays(p0, n)
        out = (1.0 - lam_n) * (target - p)
        return float(out) if out.ndim == 0 else out

    @overload
    def marginal_gain(self, p0: float, n: int) -> float: ...
    @overload
    def marginal_gain(self, p0: ArrayLike, n: ArrayLike) -> FloatArray | float: ...
    def marginal_gain(self, p0: ArrayLike, n: ArrayLike) -> FloatArray | float:
        """Δ_n = p_n − p_{n−1} = λ^{n−1}(1 − λ)(π − p0), for n ≥ 1."""
        nn = _check_rounds("n", n)
        if np.any(nn < 1):
            raise ValueError("marginal gain is defined for rounds n >= 1")
        p, target, lam_n1 = self._arrays(p0, nn - 1)
        out = lam_n1 * (1.0 - self.lam) * (target - p)
        return float(out) if out.ndim == 0 else out

    def best_round(self, p0: float, n_max: int) -> int:
        """The smallest n in [0, n_max] with the highest p_n.

        Beneficial with 0 < λ < 1: accuracy rises every round, so n_max. With λ ≤ 0 the chain
        reaches or overshoots π at round 1, which is the best. Otherwise (neutral, detrimental,
        frozen) 0.
        """
        if n_max < 0:
            raise ValueError(f"n_max must be >= 0, got {n_max}")
        if n_max == 0 or self.regime(p0, tol=0.0) != "beneficial":
            return 0
        return n_max if self.lam > 0.0 else 1

    def question_bounds(self, p0: float) -> tuple[float, float]:
        """(worst, best) accuracy over gating for one question: (min(p0, π), max(p0, π))."""
        p0 = check_probability("p0", p0)
        f = self.fixed_point(p0)
        return min(p0, f), max(p0, f)

    def dataset_bounds(self, p0s: ArrayLike) -> DatasetBounds:
        """Neutral E[p0], upper E[max(p0, π)] and lower E[min(p0, π)] over questions' p0(q)."""
        p = check_probabilities("p0s", p0s).ravel()
        if p.size == 0:
            raise ValueError("dataset bounds need at least one question's p0")
        pi = self.pi
        f = p if pi is None else np.full_like(p, pi)
        return DatasetBounds(
            neutral=float(p.mean()),
            upper=float(np.maximum(p, f).mean()),
            lower=float(np.minimum(p, f).mean()),
        )

    def gated_accuracy(self, p0s: ArrayLike, gate: ArrayLike, n: int) -> float:
        """E_q[g(q)(π + λ^n(p0(q) − π)) + (1 − g(q)) p0(q)], g in [0, 1] (bool or probability)."""
        p = check_probabilities("p0s", p0s).ravel()
        if p.size == 0:
            raise ValueError("gated accuracy needs at least one question's p0")
        g = np.broadcast_to(
            check_probabilities("gate", np.asarray(gate, dtype=np.float64)), p.shape
        )
        pn = np.asarray(self.accuracy(p, n), dtype=np.float64)
        return float(np.mean(g * pn + (1.0 - g) * p))
