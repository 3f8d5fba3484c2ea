"""Regrading stored rounds: exactly the expected labels change, history is kept, fits go stale."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

from mstui.cli import main
from mstui.core.fitting import fit_chain
from mstui.core.grading import Grader
from mstui.core.types import Decision, Observation, RoundRecord
from mstui.session import find_fit
from mstui.store import Store
from mstui.store.regrade import grade_history, regrade

SCOPE = ("m", "ps", "reanswer")


def old_round(index: int, response: str, answer: str | None, correct: bool) -> RoundRecord:
    """A round as the old grader stored it: its reading of the answer, its label, no judge."""
    return RoundRecord(
        index=index, prompt=f"prompt {index}", response=response, answer=answer,
        answer_text=answer, extraction_rule="last-number", correct=correct, prompt_tokens=5,
        completion_tokens=5, cached_tokens=0, finish_reason="stop", prompt_seconds=0.0,
        gen_seconds=0.1, observation=Observation(answer is not None, None, None, None),
    )


def add_run(store: Store, gold: str | None, rounds: list[RoundRecord], *,
            problem_set: str = "ps") -> int:
    # Each run its own sampling seed: runs of one question with the same settings are copies,
    # which fits count once.
    seed = store.db.execute("SELECT count(*) FROM runs").fetchone()[0]
    run_id = store.start_run(question=f"q {gold} {problem_set}", max_rounds=len(rounds),
                             model="m", problem_set=problem_set, strategy="reanswer",
                             policy=f"fixed:{len(rounds) - 1}", gold=gold,
                             settings={"seed": seed})
    for r in rounds:
        last = r.index == len(rounds) - 1
        store.add_round(run_id, r, Decision(r.index, "stop" if last else "continue", "fixed",
                                            "", "fixed"))
    store.finish_run(run_id, "finished")
    return run_id


def build(path: Path) -> dict[str, int]:
    """Four runs whose stored labels came from the old grader; two of them were wrong."""
    store = Store(path)
    ids = {
        # The old last-number rule read "\frac{10}{9}" as 9: wrong, now right.
        "frac": add_run(store, "10/9", [
            old_round(0, r"Dividing, x = \frac{10}{9}", "9", False),
            old_round(1, "The answer is 10/9.", "10/9", True),
            old_round(2, "The answer is 9.", "9", False),
        ]),
        # "32, 349" was normalized twice into 32349 and falsely accepted: now wrong.
        "list": add_run(store, "32349", [old_round(0, r"\boxed{32, 349}", "32349", True)]),
        # Another scope: an answer no grader finishes in time becomes ungraded, not wrong.
        "slow": add_run(store, "1", [old_round(0, r"\boxed{9^{9^{9^{9}}}}", "9^{9^{9^{9}}}",
                                               False)], problem_set="other"),
        # No gold: never graded.
        "nogold": add_run(store, None, [old_round(0, "The answer is 3.", "3", False)]),
    }
    fit = fit_chain(np.repeat(np.arange(4), 2), np.tile(np.arange(2), 4),
                    np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=bool))
    for pset in ("ps", "third"):
        store.save_fit({"model": "m", "problem_set": pset, "strategy": "reanswer"}, fit.to_dict())
    store.close()
    return ids


def labels(path: Path) -> list[tuple[int, int, int | None, str | None]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT run_id, idx, correct, judge FROM rounds ORDER BY id").fetchall()


def test_dry_run_counts_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    build(path)
    before = labels(path)
    with Store(path) as store:
        report = regrade(store, dry_run=True)
        assert report.runs == 3 and report.rounds == 5 and report.changed == 3
        assert grade_history(store, 1) == [] and report.stale_fits == []
        assert all(f["stale"] is None for f in store.fits())
    assert labels(path) == before


def test_regrade_changes_exactly_the_expected_labels(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    ids = build(path)
    with Store(path) as store:
        report = regrade(store, grader=Grader(timeout=3.0))
        ps, other = report.scopes[SCOPE], report.scopes[("m", "other", "reanswer")]
        assert (ps.rounds, ps.changed, ps.to_right, ps.to_wrong, ps.to_ungraded) == (4, 2, 1, 1, 0)
        assert (ps.right_before, ps.right_after) == (2, 2)
        assert (other.rounds, other.changed, other.to_ungraded) == (1, 1, 1)
        assert ("m", "ps", "reanswer") in report.scopes and len(report.scopes) == 2
        # Only the fit of a scope whose labels changed is stale.
        fits = {f["problem_set"]: f for f in store.fits()}
        assert fits["ps"]["stale"] and fits["ps"]["stale"].startswith("labels regraded")
        assert fits["third"]["stale"] is None
        assert report.stale_fits == [fits["ps"]["id"]]
        # A run that picks the stale fit learns it is stale (run and sweep say so on stderr).
        found = find_fit(store, "m", "reanswer", "ps")
        assert found is not None and found.stale == fits["ps"]["stale"]

        frac = store.get_run(ids["frac"])
        assert [r.correct for r in frac["rounds"]] == [True, True, False]
        assert [r.answer_text for r in frac["rounds"]] == [r"\frac{10}{9}", "10/9", "9"]
        assert frac["rounds"][0].judge == "exact"
        # The answers were re-read, so the label-free features follow them.
        assert [r.observation.changed for r in frac["rounds"]] == [None, False, True]
        listed = store.get_run(ids["list"])
        assert (listed["rounds"][0].correct, listed["final_correct"]) == (False, False)
        slow = store.get_run(ids["slow"])["rounds"][0]
        assert (slow.correct, slow.judge) == (None, "timeout") and slow.grade_error
        assert store.get_run(ids["nogold"])["rounds"][0].judge is None

        # The previous label and judge are kept.
        history = grade_history(store, ids["frac"])
        first = next(h for h in history if h["idx"] == 0)
        assert (first["correct"], first["judge"], first["answer"]) == (0, None, "9")
        assert (first["new_correct"], first["new_judge"]) == (1, "exact")
        assert "math-verify" in first["grader"]

        # A second regrade finds nothing new to change or to record.
        n_history = sum(len(grade_history(store, i)) for i in ids.values())
        again = regrade(store, grader=Grader(timeout=3.0))
        assert again.changed == 0 and again.stale_fits == []
        assert sum(len(grade_history(store, i)) for i in ids.values()) == n_history


def test_regrade_filters_by_scope(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    build(path)
    with Store(path) as store:
        report = regrade(store, problem_set="other")
    assert list(report.scopes) == [("m", "other", "reanswer")] and report.changed == 1
    assert next(lab for lab in labels(path) if lab[0] == 1)[2:] == (0, None)  # untouched


def test_cli_regrade_reports_per_scope_and_refits(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.db"
    build(path)
    assert main(["traces", "regrade", "--db", str(path), "--problem-set", "ps",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 label(s) would change" in out and "m · ps · reanswer: 2 of 4" in out
    assert "stale" not in out
    assert main(["traces", "regrade", "--db", str(path), "--refit"]) == 0
    out = capsys.readouterr().out
    assert "3 label(s) changed" in out and "fits marked stale: #1" in out
    assert "m · other · reanswer: 1 of 1 labels changed" in out
    # Four rounds are too few to fit: said on one line, not a traceback. The scope that was
    # never fitted ("other") is not fitted now either.
    assert "not refitted: m · ps · reanswer" in out and "not refitted: m · other" not in out


def build_misgraded_scope(path: Path) -> None:
    """build(), plus 12 runs whose 10/9 gold was misgraded: enough transitions to fit."""
    build(path)
    with Store(path) as store:
        for _ in range(12):
            add_run(store, "10/9", [old_round(0, r"so x = \frac{10}{9}", "9", False),
                                    old_round(1, "The answer is 9.", "9", False)])


def test_cli_refit_replaces_a_stale_fit(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.db"
    build_misgraded_scope(path)
    assert main(["traces", "regrade", "--db", str(path), "--problem-set", "ps",
                 "--refit"]) == 0
    out = capsys.readouterr().out
    assert "14 label(s) changed" in out and "fitted 1 scope(s)" in out
    with Store(path) as store:
        newest = store.fits()[0]
        assert newest["problem_set"] == "ps" and newest["stale"] is None
        # Each new run is right (10/9 read whole), then wrong; build()'s run adds one more.
        assert newest["n_cw"] == 12 + 1


def test_cli_show_prints_judge_and_raw_gold(tmp_path: Path) -> None:
    from mstui.cli.traces_cmd import cmd_show

    path = tmp_path / "t.db"
    with Store(path) as store:
        run_id = store.start_run(question="q", max_rounds=1, gold="14916", gold_raw="14{,}916")
        r = dataclasses.replace(old_round(0, r"\boxed{9^{9^{9^{9}}}}", None, False),
                                correct=None, judge="timeout", grade_error="took too long")
        store.add_round(run_id, r)
        store.finish_run(run_id, "finished")
    out = io.StringIO()
    import argparse

    cmd_show(argparse.Namespace(db=str(path), run=run_id, json=False, no_responses=True), out)
    text = out.getvalue()
    assert "gold: 14916 (as given: 14{,}916)" in text
    assert "judge timeout" in text and "grading: took too long" in text


# ---- rounds stored whole, before thinking and final parts were split (QA #2, #13) ------------

# The input: an R1 response whose prompt opened <think>, so it carries only </think>.
T_NO_OPEN = ("Let me compute. 3 bags of 4 is 12. I think the answer is 12... wait, he also "
             "finds 2 more, so 14.\n</think>\n\nSo Sam has 14 apples.")


def test_regrade_splits_a_round_stored_whole_and_reads_the_final_part(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with Store(db) as store:
        # Stored as main stored it before m003: no final part, the answer read from the thinking.
        run_id = add_run(store, "14", [old_round(0, T_NO_OPEN, "12", False),
                                       old_round(1, "A plain round: the answer is 14.", "14",
                                                 True)])
        assert store.rounds_of(run_id)[0].final is None
        report = regrade(store, grader=Grader(workers=1))
        r0, r1 = store.rounds_of(run_id)
        run = store.get_run(run_id)
    assert report.changed == 1
    assert r0.answer == "14" and r0.correct is True and r0.final == "So Sam has 14 apples."
    assert r0.thinking.startswith("Let me compute") and not r0.truncated
    assert r1.final is None and r1.answer == "14"  # a plain round stays whole
    assert run["final_correct"] == 1


def test_regrade_marks_an_unclosed_round_after_an_opening_prompt_truncated(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with Store(db) as store:
        cut = dataclasses.replace(old_round(0, "I think the answer is 14 but let me", "14", True),
                                  prompt="<｜User｜>q<｜Assistant｜><think>\n",
                                  finish_reason="length")
        run_id = add_run(store, "14", [cut])
        regrade(store, grader=Grader(workers=1))
        r = store.rounds_of(run_id)[0]
    assert r.truncated and r.answer is None and r.correct is False and r.final == ""


def _schema2_with_a_whole_round(path: Path) -> None:
    """A trace file as mstui wrote it before m003_reasoning: one run, one R1 round."""
    from sqlite_utils import Database

    from mstui.store.schema import migrate

    db = Database(path)
    migrate(db, upto=2)
    db.execute("INSERT INTO runs (id, uuid, started_at, status, question, max_rounds, gold, "
               "model, problem_set, strategy, final_round, final_answer, final_answer_text, "
               "final_correct) VALUES (1, 'u', '2025-01-01T00:00:00', 'finished', 'Sam?', 1, "
               "'14', 'r1.gguf', 'adhoc', 'reanswer', 0, '12', '12', 0)")
    db.execute("INSERT INTO rounds (run_id, idx, prompt, response, answer, answer_text, "
               "extraction_rule, correct, finish_reason, created_at) VALUES (1, 0, 'q', ?, "
               "'12', '12', 'answer-is', 0, 'stop', '2025-01-01T00:00:01')", [T_NO_OPEN])
    db.conn.commit()
    db.close()


def test_upgrade_says_what_it_did_and_splits_old_rounds(tmp_path: Path) -> None:
    from mstui.store.schema import SCHEMA_VERSION

    db = tmp_path / "old.db"
    _schema2_with_a_whole_round(db)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["traces", "upgrade", "--db", str(db)]) == 0
    text = out.getvalue()
    assert f"upgraded from schema 2 to {SCHEMA_VERSION}" in text and "up to date" not in text
    assert "1 round(s) in 1 run(s)" in text and "1 label(s) changed" in text
    with Store(db) as store:
        r = store.rounds_of(1)[0]
        run = store.get_run(1)
        history = grade_history(store, 1)
    assert r.answer == "14" and r.correct is True and r.final == "So Sam has 14 apples."
    assert run["final_correct"] == 1 and run["final_answer"] == "14"
    assert history[0]["answer"] == "12"  # the old reading is kept
    again = io.StringIO()
    with contextlib.redirect_stdout(again):
        assert main(["traces", "upgrade", "--db", str(db)]) == 0
    assert again.getvalue().strip() == f"{db}: schema {SCHEMA_VERSION} (up to date)"


# ---- interrupted regrades (a lock held by another process, Ctrl-C) ---------------------------

SHIPPED = Path(__file__).resolve().parents[1] / "traces.db"
LOCKER = ("import sqlite3, sys, time\n"
          "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
          "c.execute('BEGIN EXCLUSIVE')\n"
          "print('locked', flush=True)\n"
          "time.sleep(float(sys.argv[2]))\n"
          "c.execute('ROLLBACK')\n")


def _changed_pool(tmp_path: Path) -> Path:
    """The shipped pool with every gold changed: each run with a right round changes labels, so
    a regrade writes run after run for several seconds."""
    import shutil

    import pytest

    if not SHIPPED.is_file():
        pytest.skip(f"no shipped traces.db at {SHIPPED}")
    db = tmp_path / "pool.db"
    shutil.copy(SHIPPED, db)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE runs SET gold = '99999', gold_raw = '99999'")
    return db


def _history(db: Path) -> int:
    """Label changes recorded so far (a judge may change alone, e.g. Math-Verify's "wrong" on
    two integers now decided by the exact comparison: that is history, not a label change)."""
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as c:
        return int(c.execute("SELECT count(*) FROM grade_history "
                             "WHERE new_correct IS NOT correct").fetchone()[0])


def _start_regrade(db: Path) -> tuple[subprocess.Popen[str], int]:
    """`mstui traces regrade` in a subprocess, returned once it has committed a first run."""
    import time

    before = _history(db)
    env = {k: v for k, v in os.environ.items() if k != "MSTUI_DEBUG"}
    proc = subprocess.Popen([sys.executable, "-m", "mstui", "traces", "regrade", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while _history(db) == before:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the regrade never committed a run"
        time.sleep(0.02)
    return proc, before


def _assert_consistent(db: Path, before: int) -> None:
    """Labels were changed, but not all of them, and every fit of the changed scope is stale."""
    after = _history(db)
    assert before < after < before + 293
    with sqlite3.connect(db) as c:
        fits = c.execute("SELECT id, stale FROM fits ORDER BY id").fetchall()
    assert all(stale for _, stale in fits), fits


def _rerun_reports_stale(db: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mstui", "traces", "regrade", "--db", str(db)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # #1 was stale in the shipped file already; #2 and #3 were marked by the interrupted run.
    assert "fits already stale from an earlier regrade: #1, #2, #3" not in proc.stdout
    assert "fits already stale from an earlier regrade: #3" in proc.stdout, proc.stdout
    assert "regrade with --refit" in proc.stdout


def test_regrade_interrupted_by_a_lock_marks_fits_stale_with_the_labels(tmp_path: Path) -> None:
    db = _changed_pool(tmp_path)
    proc, before = _start_regrade(db)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), "8"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        _, err = proc.communicate(timeout=120)
    finally:
        locker.wait(timeout=60)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "is locked by another process" in lines[0] and "were already changed" in lines[0]
    assert "marked stale" in lines[0] and "rerun `mstui traces regrade`" in lines[0]
    _assert_consistent(db, before)
    _rerun_reports_stale(db)


def test_regrade_interrupted_by_ctrl_c_marks_fits_stale_with_the_labels(tmp_path: Path) -> None:
    import signal

    db = _changed_pool(tmp_path)
    proc, before = _start_regrade(db)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "mstui: interrupted" in err and "were already changed" in err
    _assert_consistent(db, before)
    _rerun_reports_stale(db)


def test_refit_refits_fits_made_stale_by_an_earlier_regrade(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.db"
    build_misgraded_scope(path)
    assert main(["traces", "regrade", "--db", str(path), "--problem-set", "ps"]) == 0
    assert "fits marked stale: #1" in capsys.readouterr().out
    # A second regrade changes no label, yet --refit refits the fit the first one left stale.
    assert main(["traces", "regrade", "--db", str(path), "--problem-set", "ps", "--refit"]) == 0
    out = capsys.readouterr().out
    assert "0 label(s) changed" in out and "fits already stale from an earlier regrade: #1" in out
    assert "no stale fit to refit" not in out and "fitted 1 scope(s)" in out
    with Store(path) as store:
        newest = store.fits()[0]
        assert newest["problem_set"] == "ps" and newest["stale"] is None
    # Nothing left to refit now.
    assert main(["traces", "regrade", "--db", str(path), "--refit"]) == 0
    assert "no stale fit to refit" in capsys.readouterr().out


def test_regrade_filters_that_match_nothing_are_errors(tmp_path: Path) -> None:
    from tests.test_cli_run import assert_one_line_error, mstui

    path = tmp_path / "t.db"
    build(path)
    assert_one_line_error(mstui("traces", "regrade", "--db", str(path), "--policy", "bogus"),
                          "--policy 'bogus' is not a policy", "fixed:5")
    assert_one_line_error(mstui("traces", "regrade", "--db", str(path), "--since", "2026-02-01",
                                "--until", "2026-01-01"),
                          "--since 2026-02-01 is not before --until 2026-01-01")
    proc = mstui("traces", "regrade", "--db", str(path), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("dry run, nothing written: 5 rounds of 3 runs")
    assert "3 label(s) would change" in proc.stdout
