"""Fit rows: the scope key, summary columns picked out of a fit, and the fit kept whole as JSON."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from mstui.store.records import loads_json, now

SCOPE_FIELDS = ("model", "problem_set", "strategy", "level")


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def scope_dict(scope: Any) -> dict[str, Any]:
    """The scope's fields (model, problem_set, strategy, level), None where absent."""
    if isinstance(scope, str):  # an opaque key: matched exactly, no columns to filter on
        return dict.fromkeys(SCOPE_FIELDS)
    return {k: _field(scope, k) for k in SCOPE_FIELDS}


def scope_key(scope: Any) -> str:
    """Canonical text of a scope, for exact matching: a fit's scope equals a lookup's."""
    if isinstance(scope, str):
        return scope
    return json.dumps(scope_dict(scope), sort_keys=True)


def _plain(obj: Any) -> Any:
    """JSON default: dataclasses, numpy scalars/arrays, tuples, sets, NaN-free floats."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if hasattr(obj, "__float__"):
        return float(obj)
    return str(obj)


def to_dict(fit: Any) -> dict[str, Any]:
    """The fit as plain JSON-able data (a mapping, a dataclass, or anything with to_dict())."""
    if hasattr(fit, "to_dict"):
        fit = fit.to_dict()
    elif dataclasses.is_dataclass(fit) and not isinstance(fit, type):
        fit = dataclasses.asdict(fit)
    return dict(json.loads(json.dumps(dict(fit), default=_plain)))


def _num(v: Any) -> float | None:
    if isinstance(v, Mapping):  # {"mean": …, "lo": …, "hi": …} style
        v = v.get("mean", v.get("value"))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _interval(fit: Mapping[str, Any], name: str) -> tuple[float | None, float | None]:
    """An interval under any of the usual spellings: a_lo/a_hi, a_interval, a_ci, a={lo,hi}."""
    if name + "_lo" in fit or name + "_hi" in fit:
        return _num(fit.get(name + "_lo")), _num(fit.get(name + "_hi"))
    for key in (name + "_interval", name + "_ci"):
        v = fit.get(key)
        if isinstance(v, list | tuple) and len(v) == 2:
            return _num(v[0]), _num(v[1])
    v = fit.get(name)
    if isinstance(v, Mapping):
        return _num(v.get("lo")), _num(v.get("hi"))
    intervals = fit.get("intervals")
    if isinstance(intervals, Mapping) and isinstance(intervals.get(name), list | tuple):
        lo, hi = intervals[name]
        return _num(lo), _num(hi)
    return None, None


def _count(fit: Mapping[str, Any], pair: str) -> int | None:
    counts = fit.get("counts")
    for source in (counts if isinstance(counts, Mapping) else {}, fit):
        for key in (f"n_{pair}", f"N_{pair.upper()}", pair, pair.upper()):
            if key in source and source[key] is not None:
                return int(source[key])
    return None


def fit_row(scope: Any, fit: Any) -> dict[str, Any]:
    """The fits-table row: scope columns, summary numbers picked out best-effort, the whole fit."""
    d = to_dict(fit)
    a_lo, a_hi = _interval(d, "a")
    b_lo, b_hi = _interval(d, "b")
    checks = d.get("checks")
    a, b = _num(d.get("a")), _num(d.get("b"))
    # π and λ are often properties, absent from the dict: derive them from the means.
    pi = _num(d.get("pi")) if d.get("pi") is not None else (b / (a + b) if a and b else None)
    lam = (
        _num(d.get("lam"))
        if d.get("lam") is not None
        else (1.0 - a - b if a is not None and b is not None else None)
    )
    return {
        "scope": scope_key(scope),
        **scope_dict(scope),
        "created_at": now(),
        "n_questions": d.get("n_questions"),
        "n_rounds": d.get("n_rounds"),
        **{f"n_{p}": _count(d, p) for p in ("cc", "cw", "wc", "ww")},
        "a": a,
        "a_lo": a_lo,
        "a_hi": a_hi,
        "b": b,
        "b_lo": b_lo,
        "b_hi": b_hi,
        "p0": _num(d.get("p0")),
        "pi": pi,
        "lam": lam,
        "checks": None if checks is None else json.dumps(checks),
        "fit_json": json.dumps(d),
    }


def fit_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """A fits row for listing: checks parsed, the bulky fit_json left out."""
    out = {k: v for k, v in row.items() if k != "fit_json"}
    out["checks"] = loads_json(out.get("checks"))
    with contextlib.suppress(ValueError):
        out["scope"] = loads_json(out["scope"])
    return out
