"""Trace store: migrations, writing a run, listing/filtering/paging, search, fits, bad files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database

from mstui.store import SCHEMA_VERSION, Store, StoreError, default_db_path
from mstui.store.sample import sample_decision, sample_round
from mstui.store.schema import MIGRATION_NAMES, migrate


def schema_of(path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return [*rows, ("user_version", str(version), None)]


def write_run(store: Store, *, n: int = 3, model: str = "m", problem_set: str = "ps",
              policy: str = "markov", pid: str = "p1", correct_last: bool | None = True,
              words: str = "") -> int:
    run_id = store.start_run(question=f"question {pid}", max_rounds=8, model=model,
                             problem_set=problem_set, problem_id=pid, gold="42",
                             strategy="reanswer", policy=policy)
    for i in range(n):
        last = i == n - 1
        ok = correct_last if last else (i % 2 == 0)
        resp = f"round {i} of {pid} {words} the answer is {40 + i}"
        store.add_round(run_id, sample_round(i, answer=str(40 + i), correct=ok, response=resp),
                        sample_decision(i, stop=last))
    store.finish_run(run_id, "finished")
    return run_id


def test_migrations_from_every_earlier_version_give_the_same_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    expected = schema_of(fresh)
    assert ("user_version", str(SCHEMA_VERSION), None) in expected
    assert SCHEMA_VERSION == len(MIGRATION_NAMES) >= 2
    for k in range(SCHEMA_VERSION):
        path = tmp_path / f"v{k}.db"
        db = Database(path)
        assert migrate(db, upto=k) == k
        if k >= 1:  # data written under the old schema must survive and become searchable
            db.execute("INSERT INTO runs (uuid, started_at, status, question, max_rounds) "
                       "VALUES ('u', '2024-01-01', 'finished', 'q', 3)")
            db.execute("INSERT INTO rounds (run_id, idx, prompt, response, created_at) "
                       "VALUES (1, 0, 'p', 'ancient zebra response', '2024-01-01')")
        db.close()
        with Store(path) as store:
            assert schema_of(path) == expected, f"upgrade from version {k} differs"
            if k >= 1:
                assert [h["run_id"] for h in store.search("zebra")] == [1]
                assert store.count_runs() == 1


def test_write_and_read_back_a_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.upsert_problems([{"id": "p1", "question": "question p1", "answer": 42, "level": 3}],
                          problem_set="ps")
    run_id = store.start_run(question="question p1", max_rounds=8, model="m", problem_set="ps",
                             problem_id="p1", gold="42", strategy="reanswer", policy="markov",
                             settings={"price": 1e-4})
    r0 = sample_round(0, answer="41", correct=False)
    r1 = sample_round(1, answer="42", correct=True, previous="41")
    store.add_round(run_id, r0, sample_decision(0))
    store.add_round(run_id, r1, sample_decision(1, stop=True))
    running = store.list_runs()[0]
    assert running["status"] == "running" and running["n_rounds"] == 2
    assert running["level"] == 3  # copied from the problem
    store.finish_run(run_id, "finished")
    run = store.get_run(run_id)
    assert run["rounds"] == [r0, r1]
    assert run["decisions"] == [sample_decision(0), sample_decision(1, stop=True)]
    assert (run["final_answer"], run["final_correct"], run["final_round"]) == ("42", True, 1)
    assert run["total_tokens"] == r0.tokens + r1.tokens
    assert run["settings"] == {"price": 1e-4}
    with pytest.raises(StoreError, match="already has round 1"):
        store.add_round(run_id, r1)
    with pytest.raises(StoreError, match="no run 999"):
        store.add_round(999, r0)


def test_override_changes_the_final_answer(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    run_id = store.start_run(question="q", max_rounds=4)
    store.add_round(run_id, sample_round(0, answer="7", correct=False), sample_decision(0))
    store.add_round(run_id, sample_round(1, answer="8", correct=True), sample_decision(1))
    store.add_round(run_id, sample_round(2, answer="9", correct=False), sample_decision(2))
    store.set_override(run_id, 1, "stop")  # the user stopped after round 1
    store.finish_run(run_id, "finished")
    run = store.get_run(run_id)
    assert run["decisions"][1].final_action == "stop"
    assert (run["final_round"], run["final_answer"], run["final_correct"]) == (1, "8", True)
    with pytest.raises(StoreError, match="no decision after round 5"):
        store.set_override(run_id, 5, "stop")


def test_cancelled_round_is_kept_but_not_the_answer(tmp_path: Path) -> None:
    from dataclasses import replace

    store = Store(tmp_path / "t.db")
    run_id = store.start_run(question="q", max_rounds=4)
    store.add_round(run_id, sample_round(0, answer="5"), sample_decision(0))
    cancelled = replace(sample_round(1, answer=None, correct=None), finish_reason="cancelled")  # type: ignore[arg-type]
    store.add_round(run_id, cancelled)
    store.finish_run(run_id, "cancelled")
    run = store.get_run(run_id)
    assert run["n_rounds"] == 2 and run["final_answer"] == "5" and run["status"] == "cancelled"
    assert [r.round for r in store.labelled_rounds()] == [0]


def test_filters_paging_and_search(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    ids = []
    for i in range(25):
        ids.append(write_run(store, model="a" if i % 2 else "b",
                             problem_set="ps" if i < 20 else "qs",
                             policy="fixed:3" if i % 5 == 0 else "markov", pid=f"p{i}",
                             correct_last=i % 3 == 0,
                             words="pineapple" if i == 7 else ""))
    newest = store.list_runs(limit=10)
    assert [r["id"] for r in newest] == ids[::-1][:10]
    page2 = store.list_runs(limit=10, offset=10)
    assert [r["id"] for r in page2] == ids[::-1][10:20]
    assert store.count_runs() == 25
    assert store.count_runs(model="a") == 12
    assert store.count_runs(problem_set="qs") == 5
    assert store.count_runs(policy="fixed:3") == 5
    assert store.count_runs(correct=True) == 9
    assert {r["id"] for r in store.list_runs(correct=False, model="b")} == {
        ids[i] for i in range(0, 25, 2) if i % 3 != 0
    }
    mid = store.get_run(ids[10])["started_at"]
    assert store.count_runs(since=mid) == 15 and store.count_runs(until=mid) == 10
    hits = store.search("pineapple")
    assert [(h["run_id"], h["round"]) for h in hits] == [(ids[7], 2), (ids[7], 1), (ids[7], 0)]
    assert "[pineapple]" in hits[0]["snippet"]
    assert store.list_runs(search="pineapple")[0]["id"] == ids[7]
    assert store.search('"unbalanced (quote') == []  # user text never raises an FTS syntax error
    assert store.search("   ") == []


def test_labelled_rounds_scopes_and_resume_helpers(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    a = write_run(store, model="a", pid="p1", n=3)
    b = write_run(store, model="a", pid="p2", n=2)
    write_run(store, model="other", pid="p1", n=4)
    live = store.start_run(question="q", max_rounds=8, model="a", problem_set="ps",
                           strategy="reanswer", policy="markov", problem_id="p3")
    store.add_round(live, sample_round(0, correct=None))  # no gold: not labelled
    rows = list(store.labelled_rounds(model="a", problem_set="ps", strategy="reanswer"))
    assert [(r.run_id, r.round) for r in rows] == [(a, 0), (a, 1), (a, 2), (b, 0), (b, 1)]
    assert [r.correct for r in rows] == [True, False, True, True, True]
    assert rows[0].problem == "p1" and rows[0].changed is None and rows[1].found is True
    scopes = {(s["model"], s["problem_set"], s["strategy"]): s for s in store.scopes()}
    assert scopes[("a", "ps", "reanswer")]["n_rounds"] == 5
    assert scopes[("a", "ps", "reanswer")]["n_questions"] == 2
    assert scopes[("other", "ps", "reanswer")]["n_runs"] == 1
    assert store.finished_problem_ids("ps", "a", "reanswer", "markov", 8) == {"p1", "p2"}
    assert store.finished_problem_ids("ps", "a", "reanswer", "markov", 4) == set()
    store.finish_run(live, "interrupted")
    assert [r["id"] for r in store.interrupted_runs(model="a")] == [live]


def test_fits_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    scope = {"model": "m", "problem_set": "ps", "strategy": "reanswer"}
    assert store.latest_fit(scope) is None
    fit = {"a": 0.1, "b": 0.3, "a_interval": (0.05, 0.2), "b_interval": (0.2, 0.4), "p0": 0.4,
           "pi": 0.75, "lam": 0.6, "counts": {"n_cc": 30, "n_cw": 3, "n_wc": 9, "n_ww": 21},
           "checks": {"homogeneous_p": 0.4}, "n_questions": 20, "n_rounds": 63}
    first = store.save_fit(scope, fit)
    second = store.save_fit(scope, {**fit, "a": 0.12})
    store.save_fit({**scope, "level": 2}, fit)
    latest = store.latest_fit(scope)
    assert latest is not None and latest[0] == second and latest[1]["a"] == 0.12
    assert store.get_fit(first)["counts"]["n_wc"] == 9
    summary = next(f for f in store.fits() if f["id"] == first)
    assert (summary["a_lo"], summary["b_hi"], summary["n_cw"], summary["n_rounds"]) == (
        0.05, 0.4, 3, 63)
    assert summary["checks"] == {"homogeneous_p": 0.4} and summary["scope"]["level"] is None


def test_models_and_problems_upsert(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.upsert_model("smol", path="models/smol.gguf", size_bytes=10, backend="llama.cpp")
    store.upsert_model("smol", sha256="abc")  # partial update keeps the rest
    [m] = store.models()
    assert (m["path"], m["sha256"], m["size_bytes"]) == ("models/smol.gguf", "abc", 10)
    n = store.upsert_problems([{"id": 1, "question": "1+1?", "answer": "2", "level": 1,
                                "source": "builtin"}], problem_set="arith")
    store.upsert_problems([{"id": 1, "question": "1+1?", "answer": "2", "level": 2}],
                          problem_set="arith")
    assert n == 1
    assert [(p["id"], p["gold"], p["level"]) for p in store.problems("arith")] == [("1", "2", 2)]


def test_one_store_shared_by_threads(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(10):
                write_run(store, n=4)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    while t.is_alive():
        store.list_runs(limit=5)
        store.count_runs(search="answer")
    t.join()
    assert errors == [] and store.count_runs(status="finished") == 10


def test_default_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MSTUI_DB", raising=False)
    assert default_db_path() == Path("traces.db")
    monkeypatch.setenv("MSTUI_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"


# ---- bad input: one-line StoreError, file untouched -------------------------------------------


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        Store(path)
    assert str(err.value) == (
        f"{path} is not an SQLite database (file is not a database); "
        "point --db at a traces file or move it away"
    )
    assert path.read_bytes() == before
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store(path, readonly=True)


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with Store(path) as store:
        write_run(store)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        Store(path)
    assert str(err.value) == (
        f"{path} was written by a newer mstui (schema {SCHEMA_VERSION + 3} > {SCHEMA_VERSION}); "
        "upgrade mstui"
    )
    assert "\n" not in str(err.value) and path.read_bytes() == before


def test_unknown_migration_counts_as_newer(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                 "VALUES ('mstui', 'm999_future', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer mstui"):
        Store(path)


def test_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with Store(path) as store:
        write_run(store)
    path.chmod(0o444)
    before = path.read_bytes()
    try:
        with pytest.raises(StoreError) as err:
            Store(path)
        assert str(err.value) == (
            f"{path} is read-only; make it writable (chmod u+w) or open it read-only"
        )
        with Store(path, readonly=True) as ro:  # reading still works
            assert ro.count_runs() == 1
            with pytest.raises(StoreError, match="opened read-only"):
                ro.start_run(question="q", max_rounds=1)
        assert path.read_bytes() == before
    finally:
        path.chmod(0o644)


def test_read_only_needs_an_existing_current_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing.db", readonly=True)
    old = tmp_path / "old.db"
    db = Database(old)
    migrate(db, upto=1)
    db.close()
    with pytest.raises(StoreError, match="mstui traces upgrade"):
        Store(old, readonly=True)


def test_locked_beyond_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = Store(path, busy_timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as err:
            store.start_run(question="q", max_rounds=1)
        assert "is locked by another process" in str(err.value)
        assert store.list_runs() == []  # reads still work under WAL
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.start_run(question="q", max_rounds=1)  # and the store is usable afterwards


def test_judge_and_raw_gold_round_trip(tmp_path: Path) -> None:
    import dataclasses

    store = Store(tmp_path / "t.db")
    assert "m004_grading" in MIGRATION_NAMES
    store.upsert_problems([{"id": "p1", "question": "q", "answer": "14916",
                            "raw_answer": "14{,}916"}], problem_set="ps")
    assert store.problems("ps")[0]["gold_raw"] == "14{,}916"
    run_id = store.start_run(question="q", max_rounds=2, gold="14916", gold_raw="14{,}916")
    r0 = dataclasses.replace(sample_round(0, correct=None), judge="timeout",
                             grade_error="Math-Verify took longer than 3 s; left ungraded")
    r1 = dataclasses.replace(sample_round(1, correct=True, previous="42"), judge="exact")
    store.add_round(run_id, r0)
    store.add_round(run_id, r1)
    run = store.get_run(run_id)
    assert run["rounds"] == [r0, r1]
    assert (run["gold"], run["gold_raw"]) == ("14916", "14{,}916")
