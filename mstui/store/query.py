"""Query helpers shared by the Store and the exporter: run filters, FTS quoting, row shaping."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from mstui.store import records

RUN_STATUSES = ("running", "finished", "interrupted", "cancelled", "failed")
UNSCORED = "('cancelled', 'error')"  # rounds that never produced an answer to label
# Columns callers see; the writer_* bookkeeping stays internal.
RUN_COLUMNS = (
    "id",
    "uuid",
    "started_at",
    "finished_at",
    "status",
    "model",
    "backend",
    "problem_set",
    "problem_id",
    "level",
    "question",
    "gold",
    "gold_raw",
    "strategy",
    "policy",
    "max_rounds",
    "fit_id",
    "sweep",
    "settings",
    "final_round",
    "final_answer",
    "final_answer_text",
    "final_correct",
    "n_rounds",
    "total_tokens",
    "error",
)
RUN_SELECT = ", ".join(f"runs.{c}" for c in RUN_COLUMNS)


def parse_date(text: str, *, end: bool = False) -> datetime:
    """An ISO date or date-time (UTC when no zone); a bare date as `end` means the next day.
    ValueError with one line that says what is accepted."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"cannot read date {text!r}; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if end and len(text.strip()) == 10:
        value += timedelta(days=1)
    return value


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def default_db_path() -> Path:
    """$MSTUI_DB when set, else ./traces.db (the CLI's --db overrides both)."""
    return Path(os.environ.get("MSTUI_DB") or "traces.db")


class LabelledRound(NamedTuple):
    """One labelled round as the fitter streams it (ordered by run, then round)."""

    problem: str  # problem id, or the question text for ad-hoc questions
    run_id: int
    round: int
    correct: bool
    found: bool
    changed: bool | None
    agreement: float | None
    logprob: float | None
    level: int | None
    truncated: bool = False  # ended inside its thinking
    thinking_tokens: int | None = None  # None: the model does not think


def run_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A runs row as callers want it: JSON parsed, 0/1 as bool."""
    d = dict(row)
    d["settings"] = records.loads_json(d.get("settings")) or {}
    if d.get("final_correct") is not None:
        d["final_correct"] = bool(d["final_correct"])
    return d


def run_filter(
    *,
    model: str | None = None,
    problem_set: str | None = None,
    policy: str | None = None,
    strategy: str | None = None,
    status: str | None = None,
    correct: bool | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    search: str | None = None,
    problem_id: str | None = None,
    sweep: str | None = None,
    model_like: str | None = None,
) -> tuple[str, list[Any]]:
    """A WHERE clause over `runs` (always valid SQL, '1' when unfiltered) and its parameters.

    `model` matches exactly (scopes, fits); `model_like` is what a person types: part of the
    name, any case ("smol" finds SmolLM2-135M-Instruct.Q4_1.gguf).
    """
    where: list[str] = []
    params: list[Any] = []
    if model_like is not None:
        where.append("runs.model LIKE ? ESCAPE '\\'")
        params.append(like_pattern(model_like))
    for column, value in (
        ("model", model),
        ("problem_set", problem_set),
        ("policy", policy),
        ("strategy", strategy),
        ("status", status),
        ("problem_id", problem_id),
        ("sweep", sweep),
    ):
        if value is not None:
            where.append(f"runs.{column} = ?")
            params.append(value)
    if correct is not None:
        where.append("runs.final_correct = ?")
        params.append(int(correct))
    if since is not None:
        where.append("runs.started_at >= ?")
        params.append(records.as_time(since))
    if until is not None:
        where.append("runs.started_at < ?")
        params.append(records.as_time(until))
    if search:
        where.append(
            "runs.id IN (SELECT rounds.run_id FROM rounds_fts "
            "JOIN rounds ON rounds.id = rounds_fts.rowid WHERE rounds_fts MATCH ?)"
        )
        params.append(fts_query(search))
    return (" AND ".join(where) or "1"), params


def match_snippets(db: Any, run_ids: Iterable[int], text: str, *,
                   mark: tuple[str, str] = ("[", "]")) -> dict[int, tuple[int, int, str]]:
    """For each run, where `text` matched: (first matching round, matching rounds, snippet of
    that round), for the runs that have a match. One query for a page of runs."""
    ids = [int(i) for i in run_ids]
    if not ids or not text.split():
        return {}
    rows = db.execute(
        "SELECT rounds.run_id, rounds.idx, snippet(rounds_fts, 0, ?, ?, '…', 10) "
        "FROM rounds_fts JOIN rounds ON rounds.id = rounds_fts.rowid WHERE rounds_fts MATCH ? "
        f"AND rounds.run_id IN ({', '.join('?' * len(ids))}) ORDER BY rounds.run_id, rounds.idx",
        [mark[0], mark[1], fts_query(text), *ids],
    ).fetchall()
    out: dict[int, tuple[int, int, str]] = {}
    for run_id, idx, snippet in rows:
        first, count, text_ = out.get(run_id, (idx, 0, snippet))
        out[run_id] = (first, count + 1, text_)
    return out


def best_rate(db: Any, model: str, backend: str, host: str, *, recent: int = 200,
              min_tokens: int = 8, min_seconds: float = 0.1) -> float | None:
    """The best generation rate (tok/s after the first token) this model reached on this host
    in its `recent` latest runs: the model's measured rate a slow round is compared with.
    Rounds on other hosts (a shipped or imported file) say nothing about this machine."""
    row = db.execute(
        "SELECT max((r.completion_tokens - 1) / r.gen_seconds) FROM rounds r WHERE r.run_id IN "
        "(SELECT id FROM runs WHERE model IS ? AND backend IS ? AND writer_host IS ? "
        "ORDER BY id DESC LIMIT ?) AND r.completion_tokens > ? AND r.gen_seconds >= ? "
        f"AND r.finish_reason NOT IN {UNSCORED}",
        [model, backend, host, recent, min_tokens, min_seconds],
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def fts_query(text: str) -> str:
    """Quote each word, so user text such as `x+y` or `"3` is searched, not parsed as FTS syntax."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in text.split())


def problem_row(p: Any, problem_set: str | None) -> dict[str, Any]:
    get = p.get if isinstance(p, Mapping) else (lambda k, d=None: getattr(p, k, d))
    pset = problem_set or get("problem_set") or get("source")
    if pset is None or get("id") is None:
        raise ValueError("a problem needs an id and a problem set (pass problem_set=)")
    gold = get("answer")
    gold = get("gold") if gold is None else gold
    raw = get("raw_answer")
    raw = get("gold_raw") if raw is None else raw
    return {
        "problem_set": pset,
        "id": str(get("id")),
        "question": get("question"),
        "gold": None if gold is None else str(gold),
        "gold_raw": None if raw is None else str(raw),
        "level": get("level"),
        "source": get("source"),
    }
