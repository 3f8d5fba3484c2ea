"""Regrading stored rounds: exactly the expected labels change, history is kept, fits go stale."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
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


def test_cli_refit_replaces_a_stale_fit(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.db"
    build(path)
    with Store(path) as store:
        for _ in range(12):  # enough transitions to fit the scope
            add_run(store, "10/9", [old_round(0, r"so x = \frac{10}{9}", "9", False),
                                    old_round(1, "The answer is 9.", "9", False)])
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
