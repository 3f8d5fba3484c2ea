"""Store reads and refits for the traces and fit screens, called from Textual thread workers."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mstui.ui.view import fit_of_stored

# numpy/scipy and the store load on first use (in a thread worker), not at app start.
if TYPE_CHECKING:

    from mstui.core.belief import ObservationModel
    from mstui.core.fitting import ChainFit, CheckResult
    from mstui.store import Store

FILTER_KEYS = {
    "model": "model_like",  # part of the name, any case: what a person types
    "set": "problem_set",
    "problem_set": "problem_set",
    "policy": "policy",
    "strategy": "strategy",
    "status": "status",
    "since": "since",
    "until": "until",
    "correct": "correct",
}


# Brackets the matched words of a search snippet; control characters, so never in a response.
SNIPPET_MARK = ("\x02", "\x03")


def parse_query(text: str) -> tuple[dict[str, Any], str]:
    """'model:x set:gen:L3 correct:yes carrots' → ({model_like, problem_set, correct},
    'carrots'). A value that cannot match anything (a date that is no date, an unknown status)
    is a ValueError with one line, never a silent "0 runs"."""
    from mstui.store.query import RUN_STATUSES, parse_date

    filters: dict[str, Any] = {}
    words: list[str] = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key.lower() in FILTER_KEYS and value:
            name = FILTER_KEYS[key.lower()]
            if name == "correct":
                if value.lower() not in ("yes", "no", "true", "false", "1", "0"):
                    raise ValueError(f"correct: takes yes or no, not {value!r}")
                filters[name] = value.lower() in ("yes", "true", "1")
            elif name in ("since", "until"):
                try:
                    filters[name] = parse_date(value, end=name == "until")
                except ValueError:
                    raise ValueError(f"{name}: takes a date such as 2025-01-31 or "
                                     f"2025-01-31T14:00 (UTC), not {value!r}") from None
            elif name == "status" and value.lower() not in RUN_STATUSES:
                raise ValueError(f"status: takes one of {', '.join(RUN_STATUSES)}, not {value!r}")
            else:
                filters[name] = value.lower() if name == "status" else value
        else:
            words.append(token)
    return filters, " ".join(words)


@dataclass(frozen=True)
class ScopeFit:
    """A scope's newest fit with its checks (computed now when the fit did not store them)."""

    scope: dict[str, Any]
    fit_id: int | None
    fit: ChainFit | None
    checks: list[dict[str, Any]]


def stored_checks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored fit's checks as a list; `mstui fit` stores them keyed by name."""
    checks = data.get("checks")
    if isinstance(checks, dict):
        return [{"name": name, **value} for name, value in checks.items()]
    return list(checks or [])


def check_dicts(checks: list[CheckResult]) -> list[dict[str, Any]]:
    """CheckResults as JSON-able dicts (how they are stored with a fit)."""
    return [{"name": c.name, **c.as_dict()} for c in checks]


def fit_overlap(fit: dict[str, Any], runs: list[dict[str, Any]]) -> int:
    """How many of `runs` a stored fit (a Store.fits() row) was made from: runs of its scope
    (a scope field left None matches any value) that started before the fit was saved and
    have a labelled round. Those runs are in-sample: a what-if on them scores the fit on the
    data it learned from, which flatters it."""
    created = str(fit.get("created_at") or "")
    n = 0
    for run in runs:
        if any(fit.get(k) is not None and fit.get(k) != run.get(k)
               for k in ("model", "problem_set", "strategy", "level")):
            continue
        if str(run.get("started_at") or "") >= created or run.get("fit_id") == fit.get("id"):
            continue  # run after the fit was made (a run that used it, for one)
        n += any(r.correct is not None for r in run.get("rounds", ()))
    return n


def sample_line(fit_id: int | None, used: int, of: int) -> str:
    """Whether a set-wide what-if is in-sample, in one line."""
    if fit_id is None:
        return "no fit: nothing was learned from these runs"
    if used == 0:
        return f"out-of-sample: fit #{fit_id} was made from none of these runs"
    part = "all" if used == of else f"{used}"
    return (f"IN-SAMPLE: fit #{fit_id} was made from {part} of these {of} runs, so this "
            "flatters the policy; pick a fit from other runs (v) for an honest number")


@dataclass(frozen=True)
class StoredFit:
    """A stored fit ready for the policies: its id, a label for a chooser, chain and obs model."""

    fit_id: int
    label: str
    fit: ChainFit | None
    obs_model: ObservationModel | None


class TraceService:
    """Opens the store lazily (never on the UI thread) and answers the screens' questions."""

    def __init__(self, db_path: str | Path | None) -> None:
        self.db_path = db_path
        self._store: Store | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The store, opened on first use; StoreError when there is none."""
        from mstui.store import Store, StoreError

        with self._lock:
            if self._store is None:
                if self.db_path is None:
                    raise StoreError("no trace database (runs are not being recorded)")
                self._store = Store(self.db_path)
            return self._store

    def page(self, query: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of runs matching a filter/search query, and how many match in all. With
        search words each row has `match`: (first matching round, matching rounds, snippet)."""
        from mstui.store.query import match_snippets

        filters, words = parse_query(query)
        if words:
            filters["search"] = words
        rows = self.store.list_runs(limit=limit, offset=offset, **filters)
        if words and rows:
            with self.store.reader() as db:
                found = match_snippets(db, (r["id"] for r in rows), words, mark=SNIPPET_MARK)
            for r in rows:
                r["match"] = found.get(int(r["id"]))
        return rows, self.store.count_runs(**filters)

    def run(self, run_id: int) -> dict[str, Any]:
        """A stored run with its rounds, decisions and the fit it used (`fit`, `obs_model`)."""
        from mstui.store import StoreError

        run = self.store.get_run(run_id)
        data = None
        if run.get("fit_id") is not None:
            try:
                data = self.store.get_fit(int(run["fit_id"]))
            except StoreError:
                data = None  # the fit was deleted: replay without a chain
        run["fit"], run["obs_model"] = fit_of_stored(data)
        return run

    def fit_by_id(self, fit_id: int) -> dict[str, Any]:
        """A stored fit as saved."""
        return self.store.get_fit(fit_id)

    def fit_summary(self, fit_id: int) -> dict[str, Any] | None:
        """A fit's row (scope columns, created_at), or None when it was deleted."""
        return next((row for row in self.store.fits() if row.get("id") == fit_id), None)

    def in_sample(self, fit_id: int | None, runs: list[dict[str, Any]]) -> int:
        """How many of `runs` the fit `fit_id` was made from (fit_overlap); 0 without a fit."""
        row = None if fit_id is None else self.fit_summary(fit_id)
        return 0 if row is None else fit_overlap(row, runs)

    def fits_for(self, run: dict[str, Any]) -> list[StoredFit]:
        """Stored fits of the run's model and strategy (any problem set), newest first."""
        out: list[StoredFit] = []
        for row in self.store.fits():
            scope = row.get("scope")
            if not isinstance(scope, dict):
                continue
            if (scope.get("model"), scope.get("strategy")) != (
                run.get("model"),
                run.get("strategy"),
            ):
                continue
            fit, obs = fit_of_stored(self.store.get_fit(int(row["id"])))
            label = f"fit #{row['id']} {scope.get('problem_set')}"  # short: it sits in a Select
            out.append(StoredFit(int(row["id"]), label, fit, obs))
        return out

    def sibling_runs(self, run: dict[str, Any], limit: int = 2000) -> list[dict[str, Any]]:
        """Finished runs of the same model, problem set and strategy (for a set-wide what-if)."""
        rows = self.store.list_runs(
            limit=limit,
            model=run.get("model"),
            problem_set=run.get("problem_set"),
            strategy=run.get("strategy"),
            status="finished",
        )
        return [self.store.get_run(int(r["id"])) for r in rows]

    def scopes(self) -> list[dict[str, Any]]:
        """Scopes with labelled rounds (Store.scopes)."""
        return self.store.scopes()

    def scope_fit(self, scope: dict[str, Any]) -> ScopeFit:
        """The newest fit of a scope, its checks (from the fit, or computed from the rounds)."""
        from mstui.analysis.pools import load_labelled
        from mstui.core.fitting import ChainFit, fit_checks

        key = {k: scope.get(k) for k in ("model", "problem_set", "strategy")}
        latest = self.store.latest_fit(key)
        if latest is None:
            return ScopeFit(key, None, None, [])
        fit_id, data = latest
        fit = ChainFit.from_dict(data)
        checks = stored_checks(data)
        if not checks:
            rows = load_labelled(self.store, **key)
            if len(rows):
                checks = check_dicts(fit_checks(rows.run, rows.round, rows.correct, fit))
        return ScopeFit(key, fit_id, fit, checks)

    def refit(self, scope: dict[str, Any]) -> ScopeFit:
        """Fit the scope exactly as `mstui fit` does (chain, checks, observation model) and
        save it, so the live policy gets the same fit from either place."""
        from mstui.analysis.pools import fit_labelled, load_labelled, too_little_data

        key = {k: scope.get(k) for k in ("model", "problem_set", "strategy")}
        rows = load_labelled(self.store, **key)
        if len(rows) == 0:
            raise ValueError("this scope has no labelled rounds to fit")
        # The rule `mstui fit` applies by default: a scope below it is not saved as a fit.
        short = too_little_data(rows)
        if short:
            raise ValueError(f"too little data: {short}")
        result = fit_labelled(rows, key)
        fit_id = self.store.save_fit(key, result.stored())
        return ScopeFit(key, fit_id, result.fit, check_dicts(result.checks))
