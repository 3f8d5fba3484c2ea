"""Streaming export of runs to JSONL (one run per line, rounds nested) or CSV (one row per round),
and re-import of a JSONL export."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

from mstui.core.grading import JUDGES
from mstui.store import records
from mstui.store.query import RUN_COLUMNS, RUN_SELECT, run_dict, run_filter
from mstui.store.records import DECISION_COLUMNS, ROUND_COLUMNS
from mstui.store.schema import SCHEMA_VERSION
from mstui.store.store import Store

_BOOL_ROUND = ("correct", "obs_found", "obs_changed", "truncated", "obs_truncated")
# CSV columns are the store's own column lists: settings (JSON) and the raw answer text stay
# in the JSONL export, which round-trips; CSV is for spreadsheets.
_RUN_CSV = tuple(c for c in RUN_COLUMNS if c not in ("settings", "final_answer_text"))
_ROUND_CSV = (*ROUND_COLUMNS, "created_at")
_DECISION_CSV = tuple(c for c in DECISION_COLUMNS if c != "round")


def _rows(cur: sqlite3.Cursor) -> Iterator[dict[str, Any]]:
    keys = [d[0] for d in cur.description]
    while batch := cur.fetchmany(1000):
        for row in batch:
            yield dict(zip(keys, row, strict=True))


def _round_obj(row: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in row.items() if k not in ("id", "run_id")}
    for k in _BOOL_ROUND:
        if row.get(k) is not None:
            row[k] = bool(row[k])
    return row


def _decision_obj(row: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in row.items() if k not in ("id", "run_id")}
    row["extra"] = records.loads_json(row.get("extra")) or {}
    return row


def export_runs(store: Store, fmt: Literal["jsonl", "csv"], out: TextIO, **filters: Any) -> int:
    """Write the runs matching list_runs filters, oldest first; returns runs (JSONL) or rows (CSV).

    Streams: three cursors (runs, rounds, decisions) in run order are merged, so memory stays
    flat however many runs there are.
    """
    where, params = run_filter(**filters)
    with store.reader() as db:
        if fmt == "csv":
            return _export_csv(db.conn, where, params, out)
        if fmt != "jsonl":
            raise ValueError(f"export format must be 'jsonl' or 'csv', not {fmt!r}")
        conn = db.conn
        runs = _rows(
            conn.execute(f"SELECT {RUN_SELECT} FROM runs WHERE {where} ORDER BY runs.id", params)
        )
        rounds = _rows(
            conn.execute(
                f"SELECT rounds.* FROM rounds JOIN runs ON runs.id = rounds.run_id WHERE {where} "
                "ORDER BY rounds.run_id, rounds.idx",
                params,
            )
        )
        decisions = _rows(
            conn.execute(
                f"SELECT decisions.* FROM decisions JOIN runs ON runs.id = decisions.run_id "
                f"WHERE {where} ORDER BY decisions.run_id, decisions.round",
                params,
            )
        )
        next_round, next_decision = next(rounds, None), next(decisions, None)
        n = 0
        for run in runs:
            obj = run_dict(run)
            obj["schema"] = SCHEMA_VERSION
            obj["rounds"], obj["decisions"] = [], []
            while next_round is not None and next_round["run_id"] == run["id"]:
                obj["rounds"].append(_round_obj(next_round))
                next_round = next(rounds, None)
            while next_decision is not None and next_decision["run_id"] == run["id"]:
                obj["decisions"].append(_decision_obj(next_decision))
                next_decision = next(decisions, None)
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
        return n


def _export_csv(conn: sqlite3.Connection, where: str, params: list[Any], out: TextIO) -> int:
    cols = (
        [f"runs.{c} AS run_{c}" for c in _RUN_CSV]
        + [f"r.{c} AS {'round' if c == 'idx' else 'round_' + c}" for c in _ROUND_CSV]
        + [f"d.{c} AS decision_{c}" for c in _DECISION_CSV]
    )
    cur = conn.execute(
        f"SELECT {', '.join(cols)} FROM runs JOIN rounds r ON r.run_id = runs.id "
        "LEFT JOIN decisions d ON d.run_id = r.run_id AND d.round = r.idx "
        f"WHERE {where} ORDER BY runs.id, r.idx",
        params,
    )
    writer = csv.writer(out)
    writer.writerow([d[0] for d in cur.description])
    n = 0
    while batch := cur.fetchmany(1000):
        writer.writerows(batch)
        n += len(batch)
    return n


def import_jsonl(store: Store, path: str | Path) -> tuple[int, int]:
    """Re-import a JSONL export; returns (imported, skipped). A run already present (same uuid)
    is skipped, so importing a file twice, or into the database it came from, adds nothing.
    The whole file is checked first: a bad line raises (file:line) before anything is written."""
    with store._read() as db:
        columns = {t: db[t].columns_dict for t in ("runs", "rounds", "decisions")}
        for t in columns:
            # Columns that must hold a value (NOT NULL without a default), by the schema itself.
            _REQUIRED[t] = tuple(c.name for c in db[t].columns if c.notnull and not c.is_pk
                                 and c.default_value is None and c.name != "run_id")
    check_export_file(path, columns)
    imported = skipped = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            if _import_run(store, json.loads(line)):  # every line was checked above
                imported += 1
            else:
                skipped += 1
    return imported, skipped


def _import_run(store: Store, obj: dict[str, Any]) -> bool:
    run = {k: obj.get(k) for k in _RUN_CSV if k != "id"}
    run["settings"] = json.dumps(obj.get("settings") or {})
    run["final_answer_text"] = obj.get("final_answer_text")
    if run["final_correct"] is not None:
        run["final_correct"] = int(run["final_correct"])
    # A snapshot taken mid-run has no writer here to finish it.
    if run["status"] == "running":
        run["status"] = "interrupted"
    with store._write() as db:
        if db.execute("SELECT 1 FROM runs WHERE uuid = ?", [run["uuid"]]).fetchone():
            return False
        run_id = db.table("runs").insert(run).last_pk
        rounds = [dict(r, run_id=run_id) for r in obj.get("rounds", [])]
        for r in rounds:
            for k in _BOOL_ROUND:
                if r.get(k) is not None:
                    r[k] = int(r[k])
        decisions = [
            dict(d, run_id=run_id, extra=json.dumps(d["extra"]) if d.get("extra") else None)
            for d in obj.get("decisions", [])
        ]
        if rounds:
            db.table("rounds").insert_all(rounds)
        if decisions:
            db.table("decisions").insert_all(decisions)
    return True


_NEEDED = {"runs": ("uuid", "question", "max_rounds"), "rounds": ("idx", "prompt", "response"),
           "decisions": ("round", "action")}
_JSON_COLUMNS = {"settings", "extra"}  # objects in an export, JSON text in the table
_REQUIRED: dict[str, tuple[str, ...]] = {}  # filled from the store's schema at import
_CHOICES = {"status": ("running", "finished", "interrupted", "cancelled", "failed"),
            "finish_reason": ("stop", "length", "cancelled", "error"),
            "action": ("continue", "stop"), "override": ("continue", "stop"),
            "judge": JUDGES}
_INT_LIMIT = (1 << 63) - 1  # SQLite's INTEGER


def _type_error(obj: Any, table: str, types: dict[str, type]) -> str:
    """What is wrong with one exported record for `table`, "" when nothing is: required fields
    present, and every field of a column holding a value of that column's type."""
    if not isinstance(obj, dict):
        return f"a {table[:-1]} is not an object"
    required = dict.fromkeys(_NEEDED[table] + _REQUIRED.get(table, ()))
    missing = [k for k in required if obj.get(k) is None]
    if missing:
        return f"a {table[:-1]} is missing {', '.join(missing)}"
    for key, value in obj.items():
        kind = types.get(key)
        if kind is None:
            if table != "runs":  # a run also carries its rounds and decisions
                return f"a {table[:-1]} has a field {str(key)[:30]!r} no mstui writes"
            continue
        if value is None:
            continue
        if key in _JSON_COLUMNS:
            if not isinstance(value, dict):
                return f"{table[:-1]} field {key!r} is {type(value).__name__}, expected an object"
            continue
        ok = (isinstance(value, int | float) and not isinstance(value, bool) if kind is float
              else isinstance(value, int) if kind is int else isinstance(value, kind))
        if not ok:
            return (f"{table[:-1]} field {key!r} is {type(value).__name__} {str(value)[:20]!r}, "
                    f"expected {kind.__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            # JSON as Python reads it takes NaN and Infinity; no mstui writes them.
            return f"{table[:-1]} field {key!r} is {value}, expected a finite number"
        if isinstance(value, int) and not -_INT_LIMIT <= value <= _INT_LIMIT:
            return f"{table[:-1]} field {key!r} is out of SQLite's integer range"
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{table[:-1]} field {key!r} is not UTF-8 text"
        if key in _CHOICES and value not in _CHOICES[key]:
            return (f"{table[:-1]} field {key!r} is {str(value)[:20]!r}, expected one of "
                    f"{', '.join(_CHOICES[key])}")
    return ""


def _check_types(obj: dict[str, Any], columns: dict[str, dict[str, type]]) -> str:
    problem = _type_error(obj, "runs", columns["runs"])
    for table in ("rounds", "decisions"):
        items = obj.get(table, [])
        if not isinstance(items, list):
            return f"{table} is not a list"
        for item in items:
            problem = problem or _type_error(item, table, columns[table])
    if not problem:
        seen = [r.get("idx") for r in obj.get("rounds", [])]
        if len(seen) != len(set(seen)):
            problem = "two rounds of the run have the same idx"
    return problem


def check_export_file(path: str | Path,
                      columns: dict[str, dict[str, type]] | None = None) -> None:
    """Read a JSONL export once before importing: a bad line is reported (file:line) and
    nothing is imported. With the store's `columns` (table -> column -> Python type), every
    run, round and decision is checked against them too, so a wrong type is a line here,
    not an IntegrityError halfway through."""
    needed = _NEEDED["runs"]
    with open(path, encoding="utf-8") as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not JSON ({exc.msg}); nothing imported")\
                        from None
                except (RecursionError, ValueError):  # nested too deep, a number too long
                    raise ValueError(f"{path}:{lineno}: JSON beyond what an export holds "
                                     "(nested too deep or a number too long); nothing imported")\
                        from None
                missing = [k for k in needed if not isinstance(obj, dict) or obj.get(k) is None]
                if missing:
                    raise ValueError(f"{path}:{lineno}: not a run from `mstui traces export` "
                                     f"(missing {', '.join(missing)}); nothing imported")
                if columns is not None:
                    problem = _check_types(obj, columns)
                    if problem:
                        raise ValueError(f"{path}:{lineno}: {problem}; nothing imported")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text; nothing imported") from None
