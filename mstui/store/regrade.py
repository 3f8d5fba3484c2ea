"""Regrading stored rounds with the current grader: labels updated, old ones kept in history.

Every number mstui shows rests on the stored correct/wrong labels, so when extraction or grading
improves, the stored labels can be brought up to date instead of regenerating the traces. A
round is re-read from its stored response (answer span, rule), graded against its run's gold as
given, and its label-free features that depend on the answers (found, changed, agreement) are
recomputed. A round stored before thinking and final parts were split (m003_reasoning left them
NULL) is split first, as the loop splits a round now, so its answer comes from the final part.
What changed is kept in `grade_history`; fits made from changed labels are marked stale until
refitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mstui.core.answers import extract_answer
from mstui.core.grading import Grade, Grader, default_grader
from mstui.core.loop import observe
from mstui.core.reasoning import THINK_TAGS, Split, split_stored
from mstui.store import records
from mstui.store.query import run_filter
from mstui.store.store import Store

Scope = tuple[str | None, str | None, str | None]  # model, problem set, strategy

_ROUND_SQL = (
    "SELECT id, idx, prompt, response, answer, answer_text, extraction_rule, correct, judge, "
    "grade_error, obs_found, obs_changed, obs_agreement, finish_reason, thinking, final, "
    "truncated, obs_truncated "
    "FROM rounds "
    "WHERE run_id = ? ORDER BY idx"
)
UNSCORED = ("cancelled", "error")  # as in score_round: no answer, not graded


@dataclass
class ScopeChange:
    """What a regrade did to one scope's labels."""

    rounds: int = 0  # rounds regraded
    changed: int = 0  # labels that are now different (any of the three kinds below)
    to_right: int = 0  # wrong → right
    to_wrong: int = 0  # right → wrong
    to_ungraded: int = 0  # right or wrong → ungraded (grading timed out or failed)
    from_ungraded: int = 0  # ungraded → right or wrong
    answers: int = 0  # rounds whose extracted answer text changed
    judges: dict[str, int] = field(default_factory=dict)  # who decided, after the regrade
    right_before: int = 0
    right_after: int = 0

    def count(self, old: int | None, new: bool | None, judge: str | None,
              answer_changed: bool) -> None:
        """Add one regraded round."""
        self.rounds += 1
        self.judges[judge or "—"] = self.judges.get(judge or "—", 0) + 1
        self.answers += answer_changed
        was = None if old is None else bool(old)
        self.right_before += was is True
        self.right_after += new is True
        if was == new:
            return
        self.changed += 1
        if new is None:
            self.to_ungraded += 1
        elif was is None:
            self.from_ungraded += 1
        elif new:
            self.to_right += 1
        else:
            self.to_wrong += 1


@dataclass
class RegradeReport:
    """The outcome of `regrade`: per-scope changes, fits marked stale, the grader used.

    A caller that passes its own report to `regrade` can read it after an interruption (a lock,
    Ctrl-C): `written` and `written_runs` count what was committed, and `stale_fits` the fits
    marked stale in those same transactions.
    """

    runs: int = 0
    scopes: dict[Scope, ScopeChange] = field(default_factory=dict)
    stale_fits: list[int] = field(default_factory=list)  # marked stale by this regrade
    already_stale: list[int] = field(default_factory=list)  # stale before it, still unrefitted
    grader: str = ""
    seconds: float = 0.0
    dry_run: bool = False
    written: int = 0  # labels committed so far
    written_runs: int = 0  # runs whose changed labels were committed

    @property
    def rounds(self) -> int:
        """Rounds regraded in all."""
        return sum(s.rounds for s in self.scopes.values())

    @property
    def changed(self) -> int:
        """Labels changed in all."""
        return sum(s.changed for s in self.scopes.values())


def grader_label(grader: Grader) -> str:
    """The grader and its version, as recorded in history rows."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("mstui")
    except PackageNotFoundError:
        mine = "dev"
    mv = grader.mathverify_version or "not started"
    return f"mstui {mine} + math-verify {mv}"


def regrade(store: Store, *, grader: Grader | None = None, dry_run: bool = False,
            on_run: Callable[[int, int], None] | None = None,
            report: RegradeReport | None = None, run_ids: Sequence[int] | None = None,
            **filters: Any) -> RegradeReport:
    """Regrade every round of the runs matching `filters` (list_runs' filters) that have gold,
    or of exactly the runs `run_ids` (with gold or not: those without have their answers
    re-read and stay ungraded).

    Runs are graded one at a time, their rounds in parallel on the grader's workers. Each run's
    updates are committed in one transaction that also marks stale the fits of its scope when a
    label changed, so an interrupted regrade (a lock held elsewhere, Ctrl-C) never leaves a
    fresh-looking fit over changed labels. `dry_run` counts what would change and writes
    nothing. `on_run(done, total)` is called after each run; `report` is filled in as it goes.
    """
    grader = grader or default_grader()
    started = time.perf_counter()
    report = report if report is not None else RegradeReport()
    report.dry_run = dry_run
    if run_ids is not None:
        ids = sorted(set(run_ids))
        where, params = f"runs.id IN ({', '.join('?' * len(ids)) or 'NULL'})", list(ids)
    else:
        where, params = run_filter(**filters)
        where += " AND runs.gold IS NOT NULL"
    with store._read() as db:
        runs = db.execute(
            "SELECT id, model, problem_set, strategy, coalesce(gold_raw, gold), final_round "
            f"FROM runs WHERE {where} ORDER BY id",
            params,
        ).fetchall()
    stale_before = {f["id"] for f in stale_fits(store)}
    with ThreadPoolExecutor(max_workers=grader.workers, thread_name_prefix="regrade") as pool:
        for n, (run_id, model, pset, strategy, gold, final_round) in enumerate(runs, 1):
            scope: Scope = (model, pset, strategy)
            change = report.scopes.setdefault(scope, ScopeChange())
            _regrade_run(store, pool, grader, run_id, gold, final_round, scope, change, report)
            report.runs += 1
            if on_run is not None:
                on_run(n, len(runs))
    report.grader = grader_label(grader)
    # Fits stale from an earlier (perhaps interrupted) regrade of these scopes: said again, so a
    # rerun that changes nothing still tells the user which fits rest on old labels.
    report.already_stale = sorted(
        f["id"] for f in stale_fits(store)
        if (f["model"], f["problem_set"], f["strategy"]) in report.scopes
        and f["id"] in stale_before)
    report.seconds = time.perf_counter() - started
    return report


def resplit(prompt: str | None, response: str | None, final: str | None) -> Split | None:
    """The split of a round stored with no final part (`final` NULL: before m003_reasoning, or a
    model that did not think) when its text has thinking after all; None when it has none."""
    if final is not None or not response:
        return None
    split = split_stored(prompt or "", response)
    return split if split.has_thinking else None


def unsplit_runs(store: Store) -> tuple[list[int], int]:
    """Runs with rounds stored whole that hold thinking (see `resplit`), and how many rounds."""
    tests = " OR ".join(["instr(response, ?) > 0"] * len(THINK_TAGS)
                        + ["instr(prompt, ?) > 0"] * len(THINK_TAGS))
    with store._read() as db:
        rows = db.execute(
            f"SELECT run_id, prompt, response FROM rounds WHERE final IS NULL AND ({tests})",
            [t.close for t in THINK_TAGS] + [t.open for t in THINK_TAGS]).fetchall()
    found = [run_id for run_id, prompt, response in rows
             if resplit(prompt, response, None) is not None]
    return sorted(set(found)), len(found)


def _regrade_run(store: Store, pool: ThreadPoolExecutor, grader: Grader, run_id: int,
                 gold: str | None, final_round: int | None, scope: Scope, change: ScopeChange,
                 report: RegradeReport) -> None:
    with store._read() as db:
        rows = [dict(r) for r in db.query(_ROUND_SQL, [run_id])]
    # The same reading as the loop's score_round: the answer comes from the final part only
    # (the whole response for a model that does not think); a round that ended inside its
    # thinking, was cancelled or failed has none and is not graded. A round stored whole whose
    # text holds thinking is split first, as score_round splits it.
    splits = [resplit(r["prompt"], r["response"], r["final"]) for r in rows]

    def read(r: dict[str, Any], split: Split | None) -> Any:
        truncated = r["truncated"] if split is None else not split.closed
        if truncated or r["finish_reason"] in UNSCORED:
            return extract_answer("")
        if split is not None:
            return extract_answer(split.final)
        return extract_answer(r["response"] if r["final"] is None else r["final"])

    def judge(r: dict[str, Any], text: str | None) -> Grade:
        if gold is None:
            return Grade(None, "none")
        if r["finish_reason"] in UNSCORED:
            return Grade(None, "none", f"not graded: the round was {r['finish_reason']}")
        return grader.grade(text, gold)

    exts = [read(r, split) for r, split in zip(rows, splits, strict=True)]
    grades: list[Grade] = list(pool.map(lambda re: judge(re[0], re[1].text),
                                        zip(rows, exts, strict=True)))
    updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    answers: list[str | None] = []
    changed_before = change.changed
    for row, split, ext, grade in zip(rows, splits, exts, grades, strict=True):
        obs = observe(ext.answer, answers, None)
        answers.append(ext.answer)
        new = {
            "answer": ext.answer,
            "answer_text": ext.text,
            "extraction_rule": ext.rule,
            "correct": None if grade.correct is None else int(grade.correct),
            "judge": grade.judge if gold is not None else row["judge"],
            "grade_error": grade.note or None,
            "obs_found": int(obs.found),
            "obs_changed": None if obs.changed is None else int(obs.changed),
            "obs_agreement": obs.agreement,
        }
        if split is not None:  # stored whole before the split existed: store the parts too
            new |= {"thinking": split.thinking or None, "final": split.final,
                    "truncated": int(not split.closed), "obs_truncated": int(not split.closed)}
        change.count(row["correct"], grade.correct, grade.judge,
                     row["answer_text"] != ext.text)
        if any(row[k] != v for k, v in new.items()):
            updates.append((row, new))
    labels_changed = change.changed - changed_before
    if report.dry_run or not updates:
        return
    label = grader_label(grader)
    with store._write() as db:
        at = records.now()
        for row, new in updates:
            db.execute(
                f"UPDATE rounds SET {', '.join(f'{k} = ?' for k in new)} WHERE id = ?",
                [*new.values(), row["id"]],
            )
            if any(row[k] != new[k] for k in ("correct", "judge", "answer", "answer_text")):
                db.execute(
                    "INSERT INTO grade_history (round_id, run_id, idx, changed_at, grader, "
                    "correct, judge, answer, answer_text, extraction_rule, new_correct, "
                    "new_judge) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [row["id"], run_id, row["idx"], at, label, row["correct"], row["judge"],
                     row["answer"], row["answer_text"], row["extraction_rule"], new["correct"],
                     new["judge"]],
                )
        if final_round is not None:
            # The run's final answer is its final round's, re-read like the rest.
            pick = "(SELECT {} FROM rounds WHERE run_id = ? AND idx = ?)"
            db.execute(
                f"UPDATE runs SET final_answer = {pick.format('answer')}, "
                f"final_answer_text = {pick.format('answer_text')}, "
                f"final_correct = {pick.format('correct')} WHERE id = ?",
                [run_id, final_round] * 3 + [run_id],
            )
        # In the same transaction: the labels and the stale marks are committed together or not
        # at all. (Answer texts and features may change without a label changing; the fits'
        # counts do not, so those fits stay fresh.)
        marked = _mark_stale(db, scope, label) if labels_changed else []
    report.written += labels_changed
    report.written_runs += labels_changed > 0
    report.stale_fits = sorted({*report.stale_fits, *marked})


def _mark_stale(db: Any, scope: Scope, grader: str) -> list[int]:
    """Mark every fit of a scope (every level) that is not yet stale as stale, inside the
    caller's transaction; their ids."""
    model, pset, strategy = scope
    note = f"labels regraded {records.now()[:16].replace('T', ' ')} UTC ({grader})"
    found = [r[0] for r in db.execute(
        "SELECT id FROM fits WHERE model IS ? AND problem_set IS ? AND strategy IS ? "
        "AND stale IS NULL", [model, pset, strategy])]
    if found:
        db.execute(f"UPDATE fits SET stale = ? WHERE id IN ({', '.join('?' * len(found))})",
                   [note, *found])
    return found


def grade_history(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Earlier labels of a run's rounds, oldest change first."""
    with store._read() as db:
        return list(db.query(
            "SELECT * FROM grade_history WHERE run_id = ? ORDER BY idx, id", [run_id]))


def stale_fits(store: Store, *, model: str | None = None, problem_set: str | None = None,
               strategy: str | None = None) -> list[dict[str, Any]]:
    """Fits still in use that are stale: the newest fit of its scope (a refit of the same scope
    replaces a stale one), optionally only those of a model, problem set or strategy."""
    with store._read() as db:
        rows = list(db.query(
            "SELECT id, model, problem_set, strategy, level, stale FROM fits WHERE stale IS NOT "
            "NULL AND id IN (SELECT max(id) FROM fits GROUP BY scope) ORDER BY id"))
    return [r for r in rows
            if (model is None or r["model"] == model)
            and (problem_set is None or r["problem_set"] == problem_set)
            and (strategy is None or r["strategy"] == strategy)]



