"""StoreBase: opening and migrating the file, transactions, and marking dead writers' runs."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database

from mstui.store import liveness, records
from mstui.store.errors import StoreError, translated
from mstui.store.schema import (
    MIGRATION_SET,
    SCHEMA_VERSION,
    applied_version,
    migrate,
    migrations,
)


def check_writable_path(p: Path) -> None:
    """A trace database path that can be created or written: not a folder or other non-file,
    in a folder that exists (a typo in --db must not leave a new folder tree behind).
    StoreError with one line otherwise."""
    if p.is_dir():
        raise StoreError(f"{p} is a folder; point --db (or $MSTUI_DB) at a traces file")
    if p.exists() and not p.is_file():
        raise StoreError(f"{p} is not a file; point --db (or $MSTUI_DB) at a traces file")
    if not p.parent.is_dir():
        raise StoreError(f"the folder {p.parent} does not exist; create it first or fix --db "
                         "(or $MSTUI_DB)")


class StoreBase:
    """Opens the file (see Store); owns the connection, its lock and the write transactions."""

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        busy_timeout: float = 5.0,
        durable: bool = True,
    ) -> None:
        self.memory = str(path) == ":memory:"
        self.path = Path(path)
        self.readonly = readonly
        self.busy_timeout = busy_timeout
        self.durable = durable
        self._lock = threading.RLock()
        self._open_runs: set[int] = set()  # runs this object started and has not finished
        self._host, self._pid, self._token = liveness.host(), os.getpid(), liveness.process_token()
        self.interrupted_on_open: list[int] = []
        self.schema_on_open = 0  # the file's schema version before this open migrated it
        with translated(self.path, busy_timeout):
            self.db = Database(self._connect(readonly), execute_plugins=False)
            try:
                self._setup()
            except BaseException:
                self.db.close()
                raise

    # ---- opening -------------------------------------------------------------------------------

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        p = self.path
        if self.memory:
            return sqlite3.connect(":memory:", check_same_thread=False)
        if readonly:
            if not p.exists():
                raise StoreError(f"{p} does not exist; point --db at a traces file")
            uri = f"{p.resolve().as_uri()}?mode=ro"
            return sqlite3.connect(
                uri, uri=True, timeout=self.busy_timeout, check_same_thread=False
            )
        check_writable_path(p)
        # Root ignores permission bits, so honour a read-only file ourselves: the user meant it.
        if p.exists() and not (p.stat().st_mode & 0o222):
            raise StoreError(f"{p} is read-only; make it writable (chmod u+w) or open it read-only")
        return sqlite3.connect(str(p), timeout=self.busy_timeout, check_same_thread=False)

    def _setup(self) -> None:
        db = self.db
        db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        # Only reads until the version is known: a newer or foreign file must stay untouched.
        version = applied_version(db)
        self.schema_on_open = version
        # Ours only when our migration set is recorded in it: many programs set user_version,
        # so a foreign file with user_version 3 must not pass for schema 3.
        if not migrations.applied(db):
            version = 0
            foreign = self._foreign_tables()
            if foreign:
                raise StoreError(
                    f"{self.path} is not an mstui trace store (it holds {foreign}); it was left "
                    "unchanged: point --db at a traces file or a new path")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer mstui (schema {version} > {SCHEMA_VERSION});"
                " upgrade mstui"
            )
        if self.readonly:
            if version == 0:
                raise StoreError(f"{self.path} is empty, not a trace store yet; run `mstui run` "
                                 "or `mstui sweep` with it first")
            if version < SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} is a trace store of an older mstui (schema {version} < "
                    f"{SCHEMA_VERSION}); reading commands leave it as it is: upgrade it with "
                    f"`mstui traces upgrade --db {self.path}` (it only adds columns)"
                )
            db.execute("PRAGMA query_only = 1")
            return
        if not self.memory:
            db.enable_wal()
        # FULL fsyncs each commit: a committed round survives power loss, not just a kill.
        # NORMAL (durable=False) is as safe against a killed process and ~30x faster to commit,
        # but a power cut may lose the last commits (never corrupts the file).
        db.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
        db.execute("PRAGMA foreign_keys = ON")
        if version < SCHEMA_VERSION:
            migrate(db)
        self.interrupted_on_open = self._mark_dead_runs()

    def _foreign_tables(self) -> str:
        """Names of another program's tables, views or indexes in a file with none of our
        migrations ("" for an empty file); read-only, so the file stays byte-for-byte as it was."""
        rows = self.db.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name NOT LIKE 'sqlite_%' "
            "AND tbl_name != '_sqlite_migrations' ORDER BY name").fetchall()
        names = [r[0] for r in rows]
        if self.db.table("_sqlite_migrations").exists() and self.db.execute(
                "SELECT count(*) FROM _sqlite_migrations WHERE migration_set != ?",
                [MIGRATION_SET]).fetchone()[0]:
            names.append("another tool's migrations")
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    def _mark_dead_runs(self) -> list[int]:
        """Mark 'running' runs whose writer process is gone as interrupted; leave live ones be."""
        rows = self.db.execute(
            "SELECT id, writer_host, writer_pid, writer_token FROM runs WHERE status = 'running'"
        ).fetchall()
        dead = [r[0] for r in rows if not liveness.writer_alive(r[1], r[2], r[3])]
        for run_id in dead:
            with self._write():
                self._finalize(run_id, "interrupted", None, only_if_running=True)
        return dead

    def close(self) -> None:
        """Mark runs this object started and never finished as interrupted, then close."""
        with self._lock:
            with contextlib.suppress(StoreError, sqlite3.Error):
                for run_id in sorted(self._open_runs):
                    with self._write():
                        self._finalize(run_id, "interrupted", "the store was closed mid-run")
            self.db.close()

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Database]:
        """One IMMEDIATE transaction, committed on exit: a write never waits on a read lock."""
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only; open it without --readonly")
        with self._lock, translated(self.path, self.busy_timeout):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                self.db.rollback()
                raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[Database]:
        with self._lock, translated(self.path, self.busy_timeout):
            yield self.db

    @contextlib.contextmanager
    def reader(self) -> Iterator[Database]:
        """A private read connection for long streaming reads that must not hold up writers."""
        if self.memory:  # one connection is all a memory database has
            with self._read() as db:
                yield db
            return
        conn = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout
        )
        try:
            with translated(self.path, self.busy_timeout):
                yield Database(conn, execute_plugins=False)
        finally:
            conn.close()

    def _finalize(
        self, run_id: int, status: str, error: str | None, *, only_if_running: bool = False
    ) -> bool:
        """Recompute a run's summary from its rounds and taken decisions (inside a transaction).

        The answer returned is the round where a taken 'stop' fired, else the last round that
        produced an answer (a cancelled or failed round never counts): what the loop returns.
        """
        db = self.db
        rounds = db.execute(
            "SELECT idx, answer, answer_text, correct, finish_reason, prompt_tokens, "
            "cached_tokens, completion_tokens, created_at FROM rounds WHERE run_id = ? "
            "ORDER BY idx",
            [run_id],
        ).fetchall()
        stop = db.execute(
            "SELECT min(round) FROM decisions WHERE run_id = ? "
            "AND coalesce(override, action) = 'stop'",
            [run_id],
        ).fetchone()[0]
        scored = [r for r in rounds if r[4] not in ("cancelled", "error")]
        final = next((r for r in scored if r[0] == stop), scored[-1] if scored else None)
        tokens = sum((r[5] or 0) - (r[6] or 0) + (r[7] or 0) for r in rounds)
        # An interrupted run ended some time after its last round; that is the best we know.
        finished_at = rounds[-1][8] if (status == "interrupted" and rounds) else records.now()
        cur = db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = coalesce(?, error), "
            "final_round = ?, final_answer = ?, final_answer_text = ?, final_correct = ?, "
            "n_rounds = ?, total_tokens = ? WHERE id = ?"
            + (" AND status = 'running'" if only_if_running else ""),
            [
                status,
                finished_at,
                error,
                final[0] if final else None,
                final[1] if final else None,
                final[2] if final else None,
                final[3] if final else None,
                len(rounds),
                tokens,
                run_id,
            ],
        )
        return cur.rowcount > 0
