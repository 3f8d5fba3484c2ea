"""Another program's SQLite file is never changed: every command refuses it in one line and leaves
it byte-for-byte as it was (no mstui tables, no WAL switch, no side files)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli_run import assert_one_line_error, mstui


def foreign(path: Path, schema: str) -> Path:
    con = sqlite3.connect(path)
    con.executescript(schema)
    con.commit()
    con.close()
    return path


SCHEMAS = {
    "users": "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); "
             "INSERT INTO users (name) VALUES ('ada'), ('bob');",
    "own-runs": "CREATE TABLE runs (id INTEGER PRIMARY KEY, what TEXT, started_at TEXT); "
                "INSERT INTO runs (what) VALUES ('a 5k'); CREATE INDEX r ON runs(what);",
}
READING = [
    ["traces", "list"], ["traces", "show", "1"], ["traces", "search", "ada"],
    ["traces", "export"], ["traces", "export", "--format", "csv"], ["eval"],
]
WRITING = [["fit"], ["traces", "upgrade"], ["sweep", "--problem-set", "gen", "--limit", "1"]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_command_refuses_a_foreign_file_unchanged(kind: str, tmp_path: Path,
                                                        tiny_gguf: Path) -> None:
    db = foreign(tmp_path / "other.db", SCHEMAS[kind])
    before = digest(db)
    for args in READING + WRITING:
        extra = ["--model", str(tiny_gguf), "--max-tokens", "2"] if args[0] == "sweep" else []
        proc = mstui(*args, *extra, "--db", str(db))
        assert_one_line_error(proc, "is not an mstui trace store", "left unchanged")
        assert digest(db) == before, args
        assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"], args
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_reading_commands_never_create_a_database(tmp_path: Path) -> None:
    for args in READING:
        proc = mstui(*args, "--db", str(tmp_path / "none.db"))
        assert_one_line_error(proc, "no trace database")
    empty = tmp_path / "empty.db"
    empty.touch()
    proc = mstui("traces", "list", "--db", str(empty))
    assert_one_line_error(proc, "not a trace store yet")
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_user_version_alone_does_not_make_a_file_ours(tmp_path: Path) -> None:
    for uv in (1, 3, 4):
        db = foreign(tmp_path / f"uv{uv}.db", SCHEMAS["users"] + f" PRAGMA user_version = {uv};")
        before = digest(db)
        for args in (["traces", "list"], ["traces", "upgrade"], ["fit"]):
            proc = mstui(*args, "--db", str(db))
            assert_one_line_error(proc, "is not an mstui trace store")
            assert digest(db) == before


def test_export_onto_its_own_database_is_refused(tmp_path: Path) -> None:
    from mstui.store import Store
    from mstui.store.sample import sample_decision, sample_round

    db = tmp_path / "self.db"
    with Store(db) as store:
        rid = store.start_run(question="q", max_rounds=1)
        store.add_round(rid, sample_round(0), sample_decision(0, stop=True))
        store.finish_run(rid, "finished")
    before = digest(db)
    for out in (str(db), f"{tmp_path}/./self.db"):
        for fmt in ("jsonl", "csv"):
            proc = mstui("traces", "export", "--format", fmt, "--out", out, "--db", str(db))
            assert_one_line_error(proc, "is the trace database itself")
    assert digest(db) == before


def test_non_utf8_arguments_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable.encode(), b"-m", b"mstui", b"traces", b"search",
                           b"caf\xe9", b"--db", str(tmp_path / "x.db").encode()],
                          capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc, "not UTF-8 text")
