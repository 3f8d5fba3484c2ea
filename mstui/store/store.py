"""The Store: the trace store's API — write runs round by round, list, search, stream, fits."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlite_utils import Database

from mstui.core.types import Action, Decision, RoundRecord
from mstui.store import fits as fitrows
from mstui.store import records
from mstui.store.base import StoreBase
from mstui.store.errors import AlreadyClaimed, StoreError
from mstui.store.query import (
    RUN_SELECT,
    RUN_STATUSES,
    UNSCORED,
    LabelledRound,
    fts_query,
    problem_row,
    run_dict,
    run_filter,
)


class Store(StoreBase):
    """The SQLite trace store. One object may be shared by threads (calls are serialized).

    Store(path, readonly=False) opens (creating) the file, migrates it, turns on WAL and marks
    runs whose writer process died as interrupted; see StoreBase.
    """

    def __enter__(self) -> Store:
        return self

    # ---- models and problems ---------------------------------------------------------------

    def upsert_model(
        self,
        name: str,
        *,
        path: str | None = None,
        sha256: str | None = None,
        size_bytes: int | None = None,
        architecture: str | None = None,
        quantization: str | None = None,
        backend: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a model; fields left None keep what an earlier call stored."""
        fields = {
            "path": path,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "architecture": architecture,
            "quantization": quantization,
            "backend": backend,
            "details": None if details is None else json.dumps(dict(details)),
        }
        cols = ", ".join(fields)
        updates = ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in fields)
        with self._write() as db:
            t = records.now()
            db.execute(
                f"INSERT INTO models (name, {cols}, added_at, updated_at) "
                f"VALUES (?, {', '.join('?' * len(fields))}, ?, ?) "
                f"ON CONFLICT(name) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
                [name, *fields.values(), t, t],
            )

    def models(self) -> list[dict[str, Any]]:
        """All recorded models, by name."""
        with self._read() as db:
            return list(db.query("SELECT * FROM models ORDER BY name"))

    def upsert_problems(self, problems: Iterable[Any], *, problem_set: str | None = None) -> int:
        """Record problems (mappings or objects with id/question/answer|gold/level/source)."""
        rows = [problem_row(p, problem_set) for p in problems]
        with self._write() as db:
            db.table("problems").upsert_all(rows, pk=("problem_set", "id"))
        return len(rows)

    def problems(self, problem_set: str) -> list[dict[str, Any]]:
        """The problems of one set, by id."""
        with self._read() as db:
            return list(
                db.query("SELECT * FROM problems WHERE problem_set = ? ORDER BY id", [problem_set])
            )

    # ---- writing a run -------------------------------------------------------------------------

    def start_run(
        self,
        *,
        question: str,
        max_rounds: int,
        model: str | None = None,
        backend: str | None = None,
        problem_set: str | None = None,
        problem_id: str | None = None,
        level: int | None = None,
        gold: str | None = None,
        strategy: str | None = None,
        policy: str | None = None,
        fit_id: int | None = None,
        settings: Mapping[str, Any] | None = None,
        sweep: str | None = None,
        gold_raw: str | None = None,
        claim: bool = False,
    ) -> int:
        """Insert a 'running' run row, committed at once, and return its id.

        `gold` is the normalized gold answer, `gold_raw` the gold as given (what rounds are graded
        against, and regraded against later).

        With `claim`, the row is a claim on its problem in this configuration (problem set,
        problem, model, strategy, policy, cap): AlreadyClaimed is raised, and nothing written,
        when such a run has finished already or is running in a live process (another sweep on
        the same file, say). A running run whose writer died is marked interrupted and taken
        over. The check and the insert are one IMMEDIATE transaction, so two sweeps never both
        claim.
        """
        row = {
            "uuid": uuid.uuid4().hex,
            "started_at": records.now(),
            "status": "running",
            "model": model,
            "backend": backend,
            "problem_set": problem_set,
            "problem_id": problem_id,
            "level": level,
            "question": question,
            "gold": gold,
            "gold_raw": gold_raw,
            "strategy": strategy,
            "policy": policy,
            "max_rounds": max_rounds,
            "fit_id": fit_id,
            "sweep": sweep,
            "settings": json.dumps(dict(settings or {}), default=str),
            "writer_host": self._host,
            "writer_pid": self._pid,
            "writer_token": self._token,
        }
        with self._write() as db:
            if claim and not self._claimable(db, row):
                raise AlreadyClaimed(f"{problem_set}/{problem_id} is finished or being run by "
                                     "another process in this configuration")
            if level is None and problem_id is not None:
                # The level lives with the problem; copy it so scopes can split by difficulty.
                found = db.execute(
                    "SELECT level FROM problems WHERE problem_set IS ? AND id = ?",
                    [problem_set, problem_id],
                ).fetchone()
                row["level"] = found[0] if found else None
            cur = db.execute(
                f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            run_id = int(cur.lastrowid or 0)
        self._open_runs.add(run_id)
        return run_id

    CLAIM_SILENCE_HOURS = 6.0

    def _silent(self, db: Any, run_id: int, host: str | None) -> bool:
        """A run written on another host (whose process cannot be checked from here) that has
        written nothing for CLAIM_SILENCE_HOURS: its claim has expired (a container restarted
        under a new name, say). Runs of this host are judged by their process alone."""
        if host == self._host:
            return False
        last = db.execute("SELECT max(t) FROM (SELECT started_at AS t FROM runs WHERE id = ? "
                          "UNION ALL SELECT created_at FROM rounds WHERE run_id = ?)",
                          [run_id, run_id]).fetchone()[0]
        if not last:
            return True
        from datetime import UTC, datetime

        age = datetime.now(UTC) - datetime.fromisoformat(last)
        return age.total_seconds() > self.CLAIM_SILENCE_HOURS * 3600

    def _claimable(self, db: Any, row: Mapping[str, Any]) -> bool:
        """Inside the claiming transaction: no finished or live running run holds the problem."""
        from mstui.store import liveness

        rows = db.execute(
            "SELECT id, status, writer_host, writer_pid, writer_token FROM runs "
            "WHERE problem_set IS ? AND problem_id IS ? AND model IS ? AND strategy IS ? "
            "AND policy IS ? AND max_rounds IS ? AND status IN ('finished', 'running')",
            [row["problem_set"], row["problem_id"], row["model"], row["strategy"],
             row["policy"], row["max_rounds"]]).fetchall()
        for run_id, status, host, pid, token in rows:
            if status == "finished" or run_id in self._open_runs:
                return False
            if liveness.writer_alive(host, pid, token) and not self._silent(db, run_id, host):
                return False
            self._finalize(run_id, "interrupted", "its writer died; the problem was taken over",
                           only_if_running=True)
        return True

    def add_round(self, run_id: int, record: RoundRecord, decision: Decision | None = None) -> None:
        """Store a finished round and the decision after it in one transaction, committed now."""
        row = records.round_row(run_id, record)
        row["created_at"] = records.now()
        try:
            with self._write() as db:
                db.execute(
                    f"INSERT INTO rounds ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )
                if decision is not None:
                    self._insert_decision(db, run_id, decision)
                db.execute(
                    "UPDATE runs SET n_rounds = n_rounds + 1, total_tokens = total_tokens + ? "
                    "WHERE id = ?",
                    [record.tokens, run_id],
                )
        except sqlite3.IntegrityError as exc:
            raise self._integrity(exc, run_id, record.index) from exc

    def add_decision(self, run_id: int, decision: Decision) -> None:
        """Store (or replace) the decision after a round already stored."""
        try:
            with self._write() as db:
                self._insert_decision(db, run_id, decision)
        except sqlite3.IntegrityError as exc:
            raise self._integrity(exc, run_id, decision.round) from exc

    def _insert_decision(self, db: Database, run_id: int, decision: Decision) -> None:
        row = records.decision_row(run_id, decision)
        row["created_at"] = records.now()
        db.execute(
            f"INSERT OR REPLACE INTO decisions ({', '.join(row)}) "
            f"VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )

    def _integrity(self, exc: sqlite3.IntegrityError, run_id: int, index: int) -> StoreError:
        if "FOREIGN KEY" in str(exc):
            return StoreError(f"no run {run_id} in {self.path}; start_run() first")
        return StoreError(f"run {run_id} already has round {index} stored; rounds are write-once")

    def set_override(self, run_id: int, round: int, action: Action | None) -> None:
        """Record (or clear, with None) the user's forced action for a stored decision."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE decisions SET override = ? WHERE run_id = ? AND round = ?",
                [action, run_id, round],
            )
            if cur.rowcount == 0:
                raise StoreError(f"run {run_id} has no decision after round {round}")

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        """Close a run: status, time, and the final answer/correctness/tokens from stored rounds."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish status must be one of {RUN_STATUSES[1:]}, not {status!r}")
        with self._write():
            if not self._finalize(run_id, status, error):
                raise StoreError(f"no run {run_id} in {self.path}")
        self._open_runs.discard(run_id)

    # ---- reading -------------------------------------------------------------------------------

    def list_runs(
        self, *, limit: int = 100, offset: int = 0, **filters: Any
    ) -> list[dict[str, Any]]:
        """Runs newest first, filtered (see run_filter) and paged in SQL."""
        where, params = run_filter(**filters)
        with self._read() as db:
            rows = db.query(
                f"SELECT {RUN_SELECT} FROM runs WHERE {where} "
                "ORDER BY runs.started_at DESC, runs.id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            return [run_dict(r) for r in rows]

    def count_runs(self, **filters: Any) -> int:
        """How many runs match the filters of list_runs."""
        where, params = run_filter(**filters)
        with self._read() as db:
            return int(db.execute(f"SELECT count(*) FROM runs WHERE {where}", params).fetchone()[0])

    def get_run(self, run_id: int) -> dict[str, Any]:
        """A run with its `rounds` (RoundRecord list) and `decisions` (Decision list)."""
        with self._read() as db:
            rows = list(db.query(f"SELECT {RUN_SELECT} FROM runs WHERE id = ?", [run_id]))
            if not rows:
                raise StoreError(f"no run {run_id} in {self.path}; list runs to see the ids")
            run = run_dict(rows[0])
            run["rounds"] = self.rounds_of(run_id)
            run["decisions"] = self.decisions_of(run_id)
            return run

    def rounds_of(self, run_id: int) -> list[RoundRecord]:
        """The stored rounds of a run, in order."""
        with self._read() as db:
            rows = db.query("SELECT * FROM rounds WHERE run_id = ? ORDER BY idx", [run_id])
            return [records.round_record(r) for r in rows]

    def decisions_of(self, run_id: int) -> list[Decision]:
        """The stored decisions of a run, by round (override included)."""
        with self._read() as db:
            rows = db.query("SELECT * FROM decisions WHERE run_id = ? ORDER BY round", [run_id])
            return [records.decision(r) for r in rows]

    def search(
        self, text: str, limit: int = 20, *, mark: tuple[str, str] = ("[", "]")
    ) -> list[dict[str, Any]]:
        """Rounds whose response has every word of `text`, newest first, with a snippet.

        Newest first, not by rank: FTS5 walks its index in rowid order and stops at `limit`,
        where ranking would score every match (seconds for a common word in a big file).
        """
        if not text.split():
            return []
        with self._read() as db:
            hits = list(
                db.query(
                    "SELECT rounds.run_id, rounds.idx AS round, "
                    "snippet(rounds_fts, 0, ?, ?, '…', 12) AS snippet, rounds.answer, "
                    "rounds.correct, runs.model, runs.problem_set, runs.problem_id, runs.question, "
                    "runs.started_at FROM rounds_fts JOIN rounds ON rounds.id = rounds_fts.rowid "
                    "JOIN runs ON runs.id = rounds.run_id WHERE rounds_fts MATCH ? "
                    "ORDER BY rounds_fts.rowid DESC LIMIT ?",
                    [mark[0], mark[1], fts_query(text), limit],
                )
            )
        for hit in hits:
            hit["correct"] = None if hit["correct"] is None else bool(hit["correct"])
        return hits

    # ---- sweeps and fitting --------------------------------------------------------------------

    def finished_problem_ids(
        self,
        problem_set: str | None,
        model: str | None,
        strategy: str | None,
        policy: str | None,
        max_rounds: int | None,
    ) -> set[str]:
        """Problem ids already run to the end in this exact configuration (a sweep skips them)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT DISTINCT problem_id FROM runs WHERE status = 'finished' "
                "AND problem_set IS ? AND model IS ? AND strategy IS ? AND policy IS ? "
                "AND max_rounds IS ? AND problem_id IS NOT NULL",
                [problem_set, model, strategy, policy, max_rounds],
            )
            return {r[0] for r in rows}

    def interrupted_runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Interrupted runs (newest first) matching list_runs filters, for a resumed sweep."""
        return self.list_runs(status="interrupted", limit=-1, **filters)

    def labelled_rounds(
        self,
        *,
        model: str | None = None,
        problem_set: str | None = None,
        strategy: str | None = None,
        level: int | None = None,
        statuses: Iterable[str] | None = None,
    ) -> Iterator[LabelledRound]:
        """Stream rounds with known correctness, by run then round, without loading them all.

        Cancelled and failed rounds are left out: they produced no answer to label.
        """
        where, params = run_filter(model=model, problem_set=problem_set, strategy=strategy)
        if level is not None:
            where += " AND runs.level = ?"
            params.append(level)
        if statuses is not None:
            st = list(statuses)
            where += f" AND runs.status IN ({', '.join('?' * len(st))})"
            params += st
        sql = (
            "SELECT coalesce(runs.problem_id, runs.question), runs.id, r.idx, r.correct, "
            "r.obs_found, r.obs_changed, r.obs_agreement, r.obs_logprob, runs.level, "
            "r.obs_truncated, r.obs_thinking_tokens, runs.policy, runs.max_rounds, "
            f"runs.settings FROM runs JOIN rounds r ON r.run_id = runs.id WHERE {where} "
            f"AND r.correct IS NOT NULL AND r.finish_reason NOT IN {UNSCORED} "
            # A broken attempt (interrupted, failed) whose retry finished is the same question:
            # the finished run counts, the attempt does not.
            "AND NOT (runs.status != 'finished' AND EXISTS (SELECT 1 FROM runs f WHERE "
            "f.status = 'finished' AND f.model IS runs.model AND f.problem_set IS "
            "runs.problem_set AND f.strategy IS runs.strategy AND coalesce(f.problem_id, "
            "f.question) = coalesce(runs.problem_id, runs.question) AND f.policy IS runs.policy "
            "AND f.max_rounds IS runs.max_rounds AND f.settings IS runs.settings)) "
            "ORDER BY runs.id, r.idx"
        )
        # A question run twice in the same configuration (two sweeps racing on one file before
        # claims existed, an import of the same runs) would count its transitions twice: the
        # first run of each (question, policy, cap, settings) counts, later copies are skipped.
        # Runs with other settings (another seed, say) are real repeats and all count.
        seen: dict[tuple[Any, ...], int] = {}
        with self.reader() as db:
            cur = db.execute(sql, params)
            while batch := cur.fetchmany(2000):
                for (p, run, idx, ok, found, ch, agr, lp, lvl, trunc, think, pol, cap,
                     settings) in batch:
                    if seen.setdefault((p, pol, cap, settings), run) != run:
                        continue
                    yield LabelledRound(
                        p,
                        run,
                        idx,
                        bool(ok),
                        bool(found),
                        None if ch is None else bool(ch),
                        agr,
                        lp,
                        lvl,
                        bool(trunc),
                        think,
                    )

    def scopes(self) -> list[dict[str, Any]]:
        """model × problem_set × strategy with counts of labelled rounds, runs and questions."""
        with self._read() as db:
            rows = list(
                db.query(
                    "SELECT runs.model, runs.problem_set, runs.strategy, count(*) AS n_rounds, "
                    "count(DISTINCT runs.id) AS n_runs, "
                    "count(DISTINCT coalesce(runs.problem_id, runs.question)) AS n_questions "
                    "FROM rounds r JOIN runs ON runs.id = r.run_id WHERE r.correct IS NOT NULL "
                    f"AND r.finish_reason NOT IN {UNSCORED} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                )
            )
        for row in rows:
            latest = self.latest_fit(row)
            row["latest_fit_id"] = latest[0] if latest else None
        return rows

    def save_fit(self, scope: Any, fit: Any) -> int:
        """Store a fit for a scope (mapping or object with model/problem_set/strategy[/level])."""
        row = fitrows.fit_row(scope, fit)
        with self._write() as db:
            cur = db.execute(
                f"INSERT INTO fits ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            return int(cur.lastrowid or 0)

    def latest_fit(self, scope: Any) -> tuple[int, dict[str, Any]] | None:
        """(id, fit as saved) of the newest fit for exactly this scope, or None."""
        with self._read() as db:
            row = db.execute(
                "SELECT id, fit_json FROM fits WHERE scope = ? ORDER BY created_at DESC, id DESC "
                "LIMIT 1",
                [fitrows.scope_key(scope)],
            ).fetchone()
        return (int(row[0]), json.loads(row[1])) if row else None

    def get_fit(self, fit_id: int) -> dict[str, Any]:
        """The fit saved under an id, as saved."""
        with self._read() as db:
            row = db.execute("SELECT fit_json FROM fits WHERE id = ?", [fit_id]).fetchone()
        if row is None:
            raise StoreError(f"no fit {fit_id} in {self.path}; list fits to see the ids")
        return dict(json.loads(row[0]))

    def fits(self) -> list[dict[str, Any]]:
        """Every fit's summary columns, newest first (the whole fit via get_fit)."""
        with self._read() as db:
            rows = db.query("SELECT * FROM fits ORDER BY created_at DESC, id DESC")
            return [fitrows.fit_summary(r) for r in rows]
