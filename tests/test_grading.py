"""Grading through the whole path: extraction, exact match, Math-Verify in a bounded process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from mstui.core.backend import GenSettings
from mstui.core.grading import Grade, Grader, grade_answer, mathverify_input
from mstui.core.loop import RoundFinished, run_refinement
from mstui.core.policies import parse_policy
from mstui.core.prompts import Prompter, load_format
from mstui.core.types import RoundRecord
from mstui.engine.scripted import ScriptedBackend

# (gold as given, the model's whole response, is the answer right?). Grouped by Math-Verify's
# categories plus the extraction kinds mstui fixed; every expected value is the mathematically
# right verdict, whoever reaches it.
CASES: dict[str, list[tuple[str, str, bool]]] = {
    "numbers": [
        ("7425000", "So the total is 7,425,000.", True),
        ("1000", r"The answer is \boxed{1\,000}", True),
        ("1000.99", "It costs $1,000.99 in all.", True),
        ("0.4", "The answer is .4", True),
        ("-5", r"Temperature falls to \boxed{-5}", True),
        ("5", r"Temperature falls to \boxed{-5}", False),
        ("12.5", "The answer is 12.50 dollars.", True),
        ("2", "The answer is 3.", False),
        ("14916", r"So there are \boxed{14{,}916} ways.", True),
        (r"\boxed{14{,}916}", "There are 14916 ways. The answer is 14916.", True),
        ("9500", r"\boxed{9{,}500}", True),
        ("32349", r"\boxed{32, 349}", False),
    ],
    "fractions": [
        ("10/9", r"Dividing both sides, x = \frac{10}{9}", True),
        (r"\frac{10}{9}", r"so the answer is \boxed{\dfrac{10}{9}}", True),
        ("-10/9", r"\boxed{-\frac{10}{9}}", True),
        ("1/3", r"\boxed{\left( \frac{1}{3} \right)}", True),
        ("1/3", r"\boxed{\cfrac{1}{3}}", True),
        (r"\frac{1}{3}", "The answer is 0.33.", False),
        ("0.5", r"The answer is \boxed{\frac{2}{4}}", True),
        (r"\frac{\sqrt{3}}{2}", r"\boxed{\dfrac{\sqrt{3}}{2}}", True),
        (r"\frac{3}{4}", r"\boxed{\frac{4}{3}}", False),
    ],
    "percentages and units": [
        (r"28\%", r"The final answer is $28\%$.", True),
        ("28", r"So the loss is \boxed{28\%}", True),
        ("0.28", r"\boxed{28\%}", True),
        ("3/4", r"\boxed{\frac{3}{4}\textnormal{ miles}}", True),
        ("5", r"He runs \boxed{5 \text{ miles per hour}}", True),
        ("90", r"The angle is \boxed{90^\circ}", True),
        ("12", "The answer is $12.", True),
        ("12", r"\boxed{13 \text{ apples}}", False),
    ],
    "latex formatting": [
        (r"\sqrt{3}", r"\boxed{\sqrt3}", True),
        (r"\sqrt{2}+\sqrt{5}", r"\boxed{\sqrt 2+\sqrt 5}", True),
        ("3", r"\boxed{\textbf{3}}", True),
        (r"\frac{1}{2}", r"\boxed{\displaystyle \frac{1}{2}}", True),
        (r"2\sqrt{2}", r"\boxed{\sqrt{8}}", True),
        (r"\pi/2", r"\boxed{\frac{\pi}{2}}", True),
        (r"\pi", r"\boxed{3.14}", False),
    ],
    "sets and intervals": [
        (r"\{1,2,3\}", r"\boxed{\{3, 2, 1\}}", True),
        ("[0,1)", r"The solution set is \boxed{[0, 1)}", True),
        ("[0,1)", r"\boxed{(0,1)}", False),
        (r"(-\infty, 2]", r"\boxed{(-\infty,2]}", True),
        (r"\{1,3\} \cup \{2,4\}", r"\boxed{\{1,2,3,4\}}", True),
        ("[0,1)", "The solution set is $[0, 1)$.", True),
        ("(-6, 10)", r"The final answer is \((-6, 10)\). I hope it is correct.", True),
    ],
    "expressions": [
        ("x+1", r"\boxed{1+x}", True),
        ("x^2-1", r"\boxed{(x-1)(x+1)}", True),
        ("2x", r"\boxed{x+x}", True),
        ("x^2", r"\boxed{x^3}", False),
        (r"\frac{x}{2}", r"\boxed{0.5x}", True),
    ],
    "relations": [
        ("5", r"Solving, \boxed{x = 5}", True),
        (r"x \leq 3", r"\boxed{x \le 3}", True),
        ("y = 2x+1", r"\boxed{y = 1 + 2x}", True),
        ("x < 2", r"\boxed{2 > x}", True),
        ("x > 2", r"\boxed{x < 2}", False),
        (r"x \geq 5", r"Therefore $x \geq 5$ is the solution.", True),
        (r"x \geq 5", r"Therefore $x \leq 5$ is the solution.", False),
    ],
    "extraction": [
        ("6", r"\boxed{5}. Wait, 5 is wrong. The final answer is 6.", True),
        ("5", r"\boxed{5}. Wait, 5 is wrong. The final answer is 6.", False),
        ("New York", "The answer is New York.", True),
        ("New York", "The answer is Boston.", False),
        ("7", "I don't know.", False),
    ],
}
TABLE = [(kind, *case) for kind, cases in CASES.items() for case in cases]


def one_round(response: str, gold: str | None) -> RoundRecord:
    """Run the real loop for one round on a scripted reply and return the scored round."""
    backend = ScriptedBackend([response])
    prompter = Prompter(load_format("fewshot"), "reanswer", backend.render_chat)
    events = run_refinement("What is it?", backend=backend, prompter=prompter,
                            policy=parse_policy("fixed:0", None), max_rounds=1,
                            settings=GenSettings(), gold=gold)
    rounds = [e.record for e in events if isinstance(e, RoundFinished)]
    assert len(rounds) == 1
    return rounds[0]


@pytest.mark.parametrize(("kind", "gold", "response", "expected"), TABLE,
                         ids=[f"{k}:{g}:{r[:24]}" for k, g, r, _ in TABLE])
def test_agreement_table_through_the_loop(kind: str, gold: str, response: str,
                                          expected: bool) -> None:
    r = one_round(response, gold)
    assert r.response == response
    assert r.correct is expected, (r.answer_text, r.judge, r.grade_error)
    assert r.judge in ("exact", "math-verify", "none")
    if r.answer_text is None:
        assert r.judge == "none"


def test_table_covers_every_category_with_both_verdicts() -> None:
    for kind, cases in CASES.items():
        if kind != "numbers":
            assert any(e for *_, e in cases) and not all(e for *_, e in cases), kind
    assert len(TABLE) >= 50


def test_no_gold_means_no_grading() -> None:
    r = one_round(r"\boxed{3}", None)
    assert (r.correct, r.judge, r.grade_error) == (None, None, None)
    assert grade_answer("3", None) == Grade(None, "none", "no gold answer")


def test_exact_path_needs_no_process() -> None:
    grader = Grader()
    assert grader.grade(r"\boxed{9{,}500}", "9500") == Grade(True, "exact")
    assert grader.grade(None, "9500") == Grade(False, "none", "no answer found")
    # A cancelled round gets the exact check only: a cancel never waits on Math-Verify.
    assert grader.grade("x+x", "2x", exact_only=True) == Grade(False, "exact", "exact match only")
    assert grader._live == 0  # nothing was started for these


def test_mathverify_input_keeps_numbers_exact_and_wraps_latex() -> None:
    assert mathverify_input("$1,248.00") == "1248"
    assert mathverify_input(r"14{,}916") == "14916"
    assert mathverify_input(r"\sqrt{8}") == r"$\sqrt{8}$"
    assert mathverify_input(r"28\%") == r"$28\%$"  # Math-Verify's own percent rule applies
    assert mathverify_input(r"$x$") == r"$x$"


# --- bounded in time, from any thread -------------------------------------------------------

PATHOLOGICAL = r"9^{9^{9^{9}}}"


def test_pathological_answer_on_a_worker_thread_is_ungraded_within_the_limit() -> None:
    grader = Grader()  # the default limit
    assert grader.grade(r"2\sqrt{2}", r"\sqrt{8}") == Grade(True, "math-verify")  # started
    out: dict[str, object] = {}

    def work() -> None:
        t0 = time.perf_counter()
        out["grade"] = grader.grade(PATHOLOGICAL, "1")
        out["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    grade = out["grade"]
    assert isinstance(grade, Grade)
    assert grade.correct is None and grade.judge == "timeout" and grade.note
    assert float(out["seconds"]) < grader.timeout + 0.5  # type: ignore[arg-type]
    grader.close()


def test_a_worker_past_the_hard_limit_is_killed_and_replaced() -> None:
    # 0.4 s is shorter than Math-Verify's own 1 s timeout inside the worker, so the hard limit
    # fires: the worker is killed mid-computation and the next grading gets a fresh one.
    grader = Grader(timeout=3.0, workers=1)
    assert grader.grade(r"2\sqrt{2}", r"\sqrt{8}").correct  # started under a generous limit
    grader.timeout = 0.4
    t0 = time.perf_counter()
    grade = grader.grade(PATHOLOGICAL, "1")
    assert time.perf_counter() - t0 < 0.4 + 1.0  # slack for a loaded machine
    assert (grade.correct, grade.judge) == (None, "timeout")
    assert "longer than 0.4 s" in grade.note
    assert grader._live == 0 and not grader._idle
    grader.timeout = 3.0
    assert grader.grade(r"\frac{\pi}{2}", r"\pi/2") == Grade(True, "math-verify")
    grader.close()


def test_the_whole_loop_on_a_thread_stores_a_timeout_as_ungraded() -> None:
    out: dict[str, RoundRecord] = {}
    thread = threading.Thread(target=lambda: out.setdefault(
        "r", one_round(rf"So it is \boxed{{{PATHOLOGICAL}}}", "1")))
    thread.start()
    thread.join(timeout=60)
    r = out["r"]
    assert r.answer_text == PATHOLOGICAL
    assert r.correct is None and r.judge == "timeout" and r.grade_error


def test_concurrent_gradings_share_the_pool() -> None:
    grader = Grader(workers=2)
    pairs = [(r"\sqrt{8}", r"2\sqrt{2}", True), ("x+x", "2x", True), ("x^3", "x^2", False),
             (r"\{2,1\}", r"\{1,2\}", True)] * 2
    results: list[Grade | None] = [None] * len(pairs)

    def work(i: int) -> None:
        results[i] = grader.grade(pairs[i][0], pairs[i][1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [g.correct if g else None for g in results] == [p[2] for p in pairs]
    assert grader._live <= 2
    grader.close()


def test_importing_the_grader_does_not_import_math_verify() -> None:
    # The TUI's first frame must not wait for sympy: Math-Verify loads in the workers only.
    code = ("import sys, mstui.core.loop, mstui.core.grading\n"
            "print(sorted(m for m in ('math_verify', 'sympy', 'latex2sympy2_extended') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_close_stops_a_busy_worker_too() -> None:
    grader = Grader(timeout=10.0, workers=1)
    grader.grade("x+x", "2x")
    (worker,) = grader._idle
    out: dict[str, Grade] = {}
    thread = threading.Thread(target=lambda: out.setdefault("g", grader.grade(PATHOLOGICAL, "1")))
    thread.start()
    time.sleep(0.3)  # the worker is now inside the computation
    t0 = time.perf_counter()
    grader.close()
    thread.join(timeout=10)
    assert time.perf_counter() - t0 < 3.0  # well before Math-Verify's own 4 s timeout
    assert out["g"].correct is None and out["g"].judge == "error"
    worker.process.wait(timeout=5)
    assert worker.process.returncode is not None


@pytest.mark.parametrize("value", ["inf", "1e9", "nan", "-1", "0", "abc"])
def test_a_bad_grade_timeout_is_one_line_at_start(value: str, tiny_gguf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    db = tmp_path / "g.db"
    env = {k: v for k, v in os.environ.items() if k != "MSTUI_DEBUG"}
    env["MSTUI_GRADE_TIMEOUT"] = value
    for argv in (["run", "--question", "What is 2 + 3?", "--gold", "5+0", "--model",
                  str(tiny_gguf), "--max-rounds", "1", "--max-tokens", "4", "--db", str(db)],
                 ["traces", "regrade", "--db", str(db)]):
        proc = subprocess.run([sys.executable, "-m", "mstui", *argv], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr
        assert lines[0] == (f"mstui: error: MSTUI_GRADE_TIMEOUT must be a number of seconds in "
                            f"(0, 3600], got {value!r}; unset it for the default 5 s")
        assert not db.exists()  # refused before anything was opened or run


def test_grade_timeout_from_the_environment_and_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSTUI_GRADE_TIMEOUT", "2.5")
    assert Grader().timeout == 2.5
    monkeypatch.setenv("MSTUI_GRADE_TIMEOUT", " ")
    assert Grader().timeout == 5.0
    for bad in (float("inf"), float("nan"), 0.0, -1.0, 1e9):
        with pytest.raises(ValueError, match=r"seconds in \(0, 3600\]"):
            Grader(timeout=bad)


def test_different_integers_are_wrong_without_a_worker_and_as_math_verify_says() -> None:
    # The fast path must agree with Math-Verify itself: every pair below is also put to it.
    pairs = [("17", "42"), ("-3", "3"), ("1,000", "100"), ("$1,248", "1249"), ("0", "-1"),
             ("12345678901234567", "12345678901234568"), ("2", "two"), ("7", "007"),
             ("28%", "28"), ("0.5", "1/2"), ("3", "3.0")]
    fast = Grader()
    verdicts = [fast.grade(p, g) for p, g in pairs]
    taken = [v for v in verdicts if v.note == "different integers"]
    assert len(taken) == 6  # the integer pairs; words, percentages, decimals go to Math-Verify
    assert all(v == Grade(False, "exact", "different integers") for v in taken)
    judge = Grader()
    for (pred, gold), verdict in zip(pairs, verdicts, strict=True):
        if verdict.note == "different integers":
            assert judge.judge(pred, gold).correct is False, (pred, gold)
    fast.close()
    judge.close()


def test_an_integer_fast_path_starts_no_grading_process() -> None:
    grader = Grader()
    assert grader.grade("17", "42") == Grade(False, "exact", "different integers")
    assert grader.grade("1,000", "1000") == Grade(True, "exact")
    assert grader.grade("-5", "5") == Grade(False, "exact", "different integers")
    assert grader._live == 0 and not grader._all  # no Math-Verify worker was started
    grader.close()
