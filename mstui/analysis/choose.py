"""Which stored fit a run uses: chosen by scope match and amount of data, with the reason shown.

One chooser for `mstui run`, `mstui sweep` and the TUI (DESIGN §1.5: "a run records which fit it
used"). The order, best first:

1. a fit the user pinned (`--fit ID`), whatever its scope;
2. a fit of exactly this (model, problem set, strategy) whose rates rest on data (not sparse,
   see ChainFit.sparse_reason), not stale, newest first (a refit of the same scope replaces it);
3. otherwise the fit of the same model and strategy with the most transitions, non-sparse and
   non-stale first: a fit of another problem set is a guess, and the guess that rests on the
   most rounds is the least bad one (a 30-question fit made a minute ago no longer wins over the
   1,800-round pool fit because it is newer). When every fit is sparse, this set's wins.

Per-level fits are never chosen (they describe one difficulty level, not a problem set). A stale
fit (its labels were regraded since) is used only when no fresh fit of the same rank exists, and
the reason says so; a sparse fit may be chosen (so the user hears about it) but markov and gate
refuse it unless the user insists (core.policies.parse_policy).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mstui.core.belief import ObservationModel
from mstui.core.fitting import MIN_ROW_TRANSITIONS, ChainFit
from mstui.store import Store
from mstui.store.errors import StoreError


@dataclasses.dataclass(frozen=True)
class FoundFit:
    """A stored fit ready for the policies, with where it came from and why it was chosen."""

    id: int
    fit: ChainFit
    obs_model: ObservationModel | None
    scope: dict[str, Any]
    exact: bool  # False when it was fitted on another problem set of the same model/strategy
    stale: str | None = None  # why its labels changed since (`mstui traces regrade`), if they did
    why: str = ""  # one line: why this fit, shown on every surface

    def describe(self) -> str:
        """One line for the user: which fit, its numbers and why it was chosen."""
        f = self.fit
        line = (f"fit #{self.id} ({self.scope.get('problem_set')}, {f.n_questions} questions, "
                f"{f.n_transitions} transitions): a={f.a:.3f} b={f.b:.3f} p0={f.p0:.3f} "
                f"— {self.why}")
        reason = f.sparse_reason()
        return line + (f"; {reason}" if reason else "")


def _rows(row: dict[str, Any]) -> tuple[int, int]:
    return (int(row.get("n_cc") or 0) + int(row.get("n_cw") or 0),
            int(row.get("n_wc") or 0) + int(row.get("n_ww") or 0))


def _sparse(row: dict[str, Any]) -> bool:
    return min(_rows(row)) < MIN_ROW_TRANSITIONS


def _load(store: Store, row: dict[str, Any], model: str, strategy: str, exact: bool,
          why: str) -> FoundFit:
    data = store.get_fit(int(row["id"]))
    obs = data.get("obs_model")
    stale = row.get("stale")
    if stale:
        why += f"; stale: {stale}"
    return FoundFit(
        id=int(row["id"]),
        fit=ChainFit.from_dict(data),
        obs_model=ObservationModel.from_dict(obs) if obs else None,
        scope={"model": row.get("model", model), "problem_set": row.get("problem_set"),
               "strategy": row.get("strategy", strategy)},
        exact=exact,
        stale=stale,
        why=why,
    )


def choose_fit(store: Store, model: str, strategy: str, problem_set: str | None,
               pin: int | None = None) -> FoundFit | None:
    """The fit a run of (model, strategy, problem set) uses, per the module docstring; None when
    the model/strategy has no fit. A pinned id that does not exist is a StoreError."""
    if pin is not None:
        rows = [f for f in store.fits() if int(f["id"]) == pin]
        if not rows:
            raise StoreError(f"no fit {pin} in {store.path}; `mstui fit` prints fit ids")
        row = rows[0]
        exact = (row.get("problem_set") == problem_set and row.get("model") == model
                 and row.get("strategy") == strategy)
        why = "pinned with --fit" + ("" if exact else
                                     f" (fitted on {row.get('model')} · {row.get('problem_set')}"
                                     f" · {row.get('strategy')})")
        return _load(store, row, model, strategy, exact, why)
    candidates = [f for f in store.fits()
                  if f.get("model") == model and f.get("strategy") == strategy
                  and f.get("level") is None]
    if not candidates:
        return None
    # fits() is newest first; sorted() is stable, so ties keep the newest first.
    exact = sorted((f for f in candidates if problem_set is not None
                    and f.get("problem_set") == problem_set),
                   key=lambda f: (_sparse(f), bool(f.get("stale"))))
    if exact and not _sparse(exact[0]):
        return _load(store, exact[0], model, strategy, True,
                     f"the newest fit of this problem set ({problem_set})")
    # Data first; among fits that are all sparse (all the prior), this set's scope still wins.
    ranked = sorted(candidates, key=lambda f: (_sparse(f), f.get("problem_set") != problem_set,
                                               bool(f.get("stale")), -sum(_rows(f))))
    best = ranked[0]
    is_exact = problem_set is not None and best.get("problem_set") == problem_set
    if problem_set is None:
        why = "no problem set to match: the fit of this model and strategy with the most data"
    elif is_exact:
        why = f"this problem set's fit ({problem_set}); every fit of this model and strategy " \
              "is sparse"
    elif exact:
        why = (f"this problem set's fit is sparse; the fit of this model and strategy with the "
               f"most data ({best.get('problem_set')})")
    else:
        why = (f"no fit of {problem_set}: the fit of this model and strategy with the most data "
               f"(fitted on {best.get('problem_set')})")
    return _load(store, best, model, strategy, is_exact, why)
