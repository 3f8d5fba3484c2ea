"""Built-in problem generator and JSONL problem import."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mstui.core.problems import (
    BUILTIN_SETS,
    Problem,
    ProblemSetError,
    builtin_problem_set,
    generate_problems,
    load_problem_set,
    load_problems_jsonl,
)

# DESIGN §3: read from ../shared/data next to the checkout, never copied into the project.
GSM8K_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k-dev.jsonl"
needs_gsm8k = pytest.mark.skipif(
    not GSM8K_DEV.exists(), reason="shared/data/gsm8k-dev.jsonl absent"
)

# --- the generator --------------------------------------------------------------------------

# Each generator template, recognised from its wording, with the gold answer recomputed from
# the numbers in the question. A pattern must match every generated question exactly once.
_D = r"(\d+)"
SOLVERS: list[tuple[str, Callable[..., float]]] = [
    (rf"^What is {_D} \+ {_D}\?$", lambda a, b: a + b),
    (rf"^What is {_D} - {_D}\?$", lambda a, b: a - b),
    (rf"^What is {_D} \* {_D}\?$", lambda a, b: a * b),
    (rf"^What is {_D} / {_D} \+ {_D} \* {_D}\?$", lambda a, b, c, d: a / b + c * d),
    (rf"has {_D} \w+\. (?:He|She) gets {_D} more", lambda a, b: a + b),
    (rf"has {_D} \w+\. (?:He|She) gives {_D} ", lambda a, b: a - b),
    (rf"has {_D} bags\. Each bag has {_D} ", lambda a, b: a * b),
    (rf"has {_D} coins\. Each coin is worth {_D} cents", lambda a, b: a * b),
    (rf"^A train travels at {_D} miles per hour\. How many miles .* in {_D} hours",
     lambda a, b: a * b),
    (rf"shares {_D} \w+ equally among {_D} friends", lambda a, b: a / b),
    (rf"has {_D} \w+\. (?:He|She) buys {_D} packs of \w+ with {_D} ", lambda a, b, c: a + b * c),
    (rf"has {_D} dollars\. (?:He|She) buys {_D} books that cost {_D} ", lambda a, b, c: a - b * c),
    (rf"makes {_D} cookies and {_D} muffins\. {_D} of them", lambda a, b, c: a + b - c),
    (rf"at {_D} miles per hour for {_D} hours, then at {_D} miles per hour for {_D} hours",
     lambda a, b, c, d: a * b + c * d),
    (rf"has {_D} boxes of eggs with {_D} eggs in each box, and {_D} more",
     lambda a, b, c: a * b + c),
    (rf"has {_D} classes with {_D} students in each class\. {_D} students go home early\. "
     rf"The rest are split into groups of {_D}\.", lambda a, b, c, d: (a * b - c) / d),
    (rf"buys {_D} pens at {_D} dollars each and {_D} notebooks at {_D} dollars each\. "
     rf"(?:He|She) pays with {_D} dollars", lambda a, b, c, d, e: e - (a * b + c * d)),
    (rf"travels {_D} miles in {_D} hours\. At the same speed, how many miles does it travel "
     rf"in {_D} hours", lambda a, b, c: a / b * c),
    (rf"earns {_D} dollars per hour and works {_D} hours a day for {_D} days\. "
     rf"(?:He|She) spends {_D} dollars", lambda a, b, c, d: a * b * c - d),
]  # fmt: skip


def solve(question: str) -> tuple[int, float]:
    """(index of the matching template, the answer recomputed from the question's numbers)."""
    hits = [(i, re.search(pattern, question)) for i, (pattern, _) in enumerate(SOLVERS)]
    found = [(i, m) for i, m in hits if m is not None]
    assert len(found) == 1, f"{len(found)} templates match: {question}"
    index, match = found[0]
    return index, SOLVERS[index][1](*(int(g) for g in match.groups()))


def test_generator_is_deterministic_per_seed() -> None:
    assert generate_problems(40, seed=3) == generate_problems(40, seed=3)
    assert [p.question for p in generate_problems(40, seed=3)] != [
        p.question for p in generate_problems(40, seed=4)
    ]


def test_generator_prefix_stable_and_ids() -> None:
    small, large = generate_problems(7, seed=0), generate_problems(30, seed=0)
    assert large[:7] == small
    assert [p.id for p in small[:6]] == [
        "gen-L1-0000-s0",
        "gen-L2-0001-s0",
        "gen-L3-0002-s0",
        "gen-L4-0003-s0",
        "gen-L5-0004-s0",
        "gen-L1-0005-s0",
    ]
    assert len({p.id for p in large}) == 30
    assert all(p.source == "gen" for p in large)
    # An id names the same question whichever set produced it.
    only_l3 = {p.id: p.question for p in builtin_problem_set("gen:L3", 10, seed=0)}
    both = [p for p in large if p.id in only_l3]
    assert both and all(only_l3[p.id] == p.question for p in both)


def test_generator_levels_present_and_cycled() -> None:
    problems = generate_problems(100, seed=1)
    assert [p.level for p in problems[:10]] == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    assert {p.level: sum(q.level == p.level for q in problems) for p in problems} == {
        1: 20, 2: 20, 3: 20, 4: 20, 5: 20,
    }  # fmt: skip
    some = generate_problems(9, seed=1, levels=(2, 4))
    assert {p.level for p in some} == {2, 4}


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_generated_gold_answers_are_correct_integers(seed: int) -> None:
    problems = generate_problems(600, seed=seed)
    used = set()
    for p in problems:
        assert re.fullmatch(r"\d+", p.answer), p  # a non-negative integer, normalized
        index, expected = solve(p.question)
        used.add(index)
        assert expected == int(p.answer), p  # also proves every division was exact
    assert used == set(range(len(SOLVERS)))  # every template was exercised


def test_generator_difficulty_grows_with_level() -> None:
    problems = generate_problems(500, seed=0)

    def median(level: int) -> int:
        values = sorted(int(p.answer) for p in problems if p.level == level)
        return values[len(values) // 2]

    assert median(1) < 10 < median(2) < median(5)
    assert all(int(p.answer) <= 18 for p in problems if p.level == 1)
    assert all(p.question.startswith("What is") for p in problems if p.level in (1, 2))


def test_builtin_sets() -> None:
    assert BUILTIN_SETS == ("gen", "gen:L1", "gen:L2", "gen:L3", "gen:L4", "gen:L5")
    l3 = builtin_problem_set("gen:L3", 12, seed=2)
    assert len(l3) == 12 and {p.level for p in l3} == {3}
    assert {p.source for p in l3} == {"gen:L3"}
    assert l3[0].id == "gen-L3-0000-s2"
    assert len({p.question for p in l3}) > 8
    with pytest.raises(ProblemSetError, match="unknown problem set 'gen:L9'"):
        builtin_problem_set("gen:L9", 5, 0)
    with pytest.raises(ProblemSetError, match=">= 0"):
        generate_problems(-1)
    with pytest.raises(ProblemSetError, match="levels"):
        generate_problems(3, levels=(6,))


# --- JSONL import ---------------------------------------------------------------------------


def write(tmp_path: Path, name: str, lines: list[object | str]) -> Path:
    path = tmp_path / name
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


@needs_gsm8k
def test_import_shared_gsm8k_dev() -> None:
    problems, warnings = load_problems_jsonl(GSM8K_DEV)
    assert warnings == []
    assert len(problems) == 50
    first = problems[0]
    assert (first.id, first.answer, first.level, first.source) == (
        "gsm8k_test_1165", "1248", None, "gsm8k-dev",
    )  # fmt: skip
    assert first.question.startswith("John collects garbage")
    assert problems[6].answer == "3.5"
    assert len({p.id for p in problems}) == 50


@needs_gsm8k
def test_load_problem_set_dispatch() -> None:
    problems, _ = load_problem_set(str(GSM8K_DEV), n=5, seed=0)
    assert [p.id for p in problems][:1] == ["gsm8k_test_1165"] and len(problems) == 5
    generated, warnings = load_problem_set("gen:L2", n=4, seed=9)
    assert warnings == [] and [p.level for p in generated] == [2, 2, 2, 2]
    assert len(load_problem_set("gen", None, 0)[0]) == 50
    with pytest.raises(ProblemSetError, match="unknown problem set 'nonsense'"):
        load_problem_set("nonsense", 3, 0)
    with pytest.raises(ProblemSetError, match="no such problem file"):
        load_problem_set("missing.jsonl", 3, 0)


def test_gsm8k_hashes_answers_and_default_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.jsonl", [
        {"question": "Eggs?", "answer": "She has 3*4 = <<3*4=12>>12 eggs.\n#### 12"},
        "",
        "   ",
        {"question": "Money?", "answer": "Total is 1,000 + 248\n#### 1,248"},
        {"question": "Number answer", "answer": 7},
        {"question": "Float answer", "answer": 2.50},
    ])  # fmt: skip
    problems, warnings = load_problems_jsonl(path)
    assert warnings == []
    assert [(p.id, p.answer) for p in problems] == [
        ("mine-1", "12"), ("mine-4", "1248"), ("mine-5", "7"), ("mine-6", "2.5"),
    ]  # fmt: skip
    assert {p.source for p in problems} == {"mine"}


def test_math_style_problem_answer_solution_and_levels(tmp_path: Path) -> None:
    path = write(tmp_path, "math.jsonl", [
        {"problem": "Half of one?", "answer": "\\frac{1}{2}", "level": "Level 3", "id": 11},
        {"problem": "Box?", "solution": "So $x = \\boxed{\\dfrac{3}{4}}$.", "level": 2},
        {"problem": "Odd level", "answer": "x+1", "level": "Level ?"},
    ])  # fmt: skip
    problems, warnings = load_problems_jsonl(path)
    assert [(p.id, p.answer, p.level) for p in problems] == [
        ("11", "0.5", 3), ("math-2", "0.75", 2), ("math-3", "x+1", None),
    ]  # fmt: skip
    assert warnings == ["math.jsonl line 3: level 'Level ?' is not an integer or 'Level N'; "
                        "level left empty"]  # fmt: skip


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "gsm8k.jsonl", [{"question": "a", "answer": "1"}] * 6 + ['{"q": 1,'])
    with pytest.raises(ProblemSetError) as info:
        load_problems_jsonl(path)
    message = str(info.value)
    assert message.startswith("gsm8k.jsonl line 7: not valid JSON (")
    assert message.endswith("; fix the line or pass --on-bad-line skip")
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"answer": "3"}, "missing 'question' (or MATH-style 'problem') field"),
        ({"question": "What?"}, "missing 'answer' field"),
        ({"question": "What?", "answer": ""}, "missing 'answer' field"),
        ({"question": "What?", "answer": None}, "'answer' is null; give the gold answer as a"),
        ({"question": "What?", "answer": "#### "}, "the 'answer' is empty"),
        ({"question": "What?", "answer": [1]}, "'answer' must be a string or a number"),
        ({"problem": "P", "solution": "no box"}, "no 'answer' field and no \\boxed{} answer"),
        ([1, 2], "expected a JSON object, got list"),
    ],
)
def test_missing_fields_are_errors(tmp_path: Path, record: object, why: str) -> None:
    path = write(tmp_path, "bad.jsonl", [{"question": "ok", "answer": "1"}, record])
    with pytest.raises(ProblemSetError, match=re.escape(f"bad.jsonl line 2: {why}")):
        load_problems_jsonl(path)


def test_skip_mode_reports_bad_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.jsonl", [
        {"question": "one", "answer": "1", "id": "a"},
        "not json at all",
        {"question": "no answer"},
        {"question": "dup", "answer": "2", "id": "a"},
        {"question": "three", "answer": "3"},
    ])  # fmt: skip
    problems, warnings = load_problems_jsonl(path, on_error="skip")
    assert [(p.id, p.answer) for p in problems] == [("a", "1"), ("mixed-5", "3")]
    assert len(warnings) == 3
    assert warnings[0].startswith("mixed.jsonl line 2: not valid JSON (")
    assert warnings[1].startswith("mixed.jsonl line 3: missing 'answer' field")
    assert warnings[2] == "mixed.jsonl line 4: duplicate id 'a' (first used on line 1); skipped"
    assert all(w.endswith("; skipped") for w in warnings)


def test_invalid_utf8_line_is_a_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"question": "q", "answer": "1"}\n\xff\xfe\n')
    with pytest.raises(ProblemSetError, match=r"bytes\.jsonl line 2: not UTF-8 text"):
        load_problems_jsonl(path)
    problems, warnings = load_problems_jsonl(path, on_error="skip")
    assert [p.id for p in problems] == ["bytes-1"] and len(warnings) == 1


def test_empty_and_all_bad_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ProblemSetError, match=r"^empty\.jsonl: no problems \(the file is empty\)"):
        load_problems_jsonl(empty)
    bad = write(tmp_path, "bad.jsonl", ["{", "[]"])
    with pytest.raises(ProblemSetError, match=r"no problems \(all 2 non-blank lines were bad\)"):
        load_problems_jsonl(bad, on_error="skip")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ProblemSetError, match=f"^no such problem file: {re.escape(str(missing))}$"):
        load_problems_jsonl(missing)
    with pytest.raises(ProblemSetError, match="not a problem file"):
        load_problems_jsonl(tmp_path)


def test_limit_stops_reading_early(tmp_path: Path) -> None:
    path = write(tmp_path, "big.jsonl", [{"question": "q", "answer": "1"}] * 3 + ["{broken"])
    problems, _ = load_problem_set(str(path), n=3, seed=0)
    assert len(problems) == 3  # the broken 4th line is never read
    assert load_problem_set(str(path), n=0, seed=0) == ([], [])


def test_problem_is_frozen() -> None:
    problem = Problem("x", "q", "1", None, "s")
    with pytest.raises(AttributeError):
        problem.answer = "2"  # type: ignore[misc]


def test_raw_gold_is_kept_beside_the_normalized_one(tmp_path: Path) -> None:
    # A normalized gold can lose what an equivalence judge needs; the raw form is graded against.
    path = write(tmp_path, "raw.jsonl", [
        {"problem": "Ways?", "solution": "Hence $\\boxed{14{,}916}$ ways."},
        {"question": "Sum?", "answer": "She pays 2 + 3.\n#### 1,000"},
        {"question": "Root?", "answer": "\\dfrac{\\sqrt{3}}{2}"},
    ])  # fmt: skip
    problems, _ = load_problems_jsonl(path)
    assert [(p.answer, p.raw_answer, p.gold) for p in problems] == [
        ("14916", "14{,}916", "14{,}916"),
        ("1000", "1,000", "1,000"),
        ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt{3}}{2}"),
    ]
    generated = generate_problems(3)
    assert all(p.raw_answer is None and p.gold == p.answer for p in generated)


def test_a_repeated_question_with_another_gold_is_warned(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.jsonl", [
        {"question": "What is 2+2?", "answer": "4"},
        {"question": "What is 2+2?", "answer": "5"},
        {"question": "What is 2+2?", "answer": "4.0"},  # the same gold, written otherwise
        {"question": "What is 3+3?", "answer": "6"},
    ])  # fmt: skip
    problems, warnings = load_problems_jsonl(path)
    assert len(problems) == 4  # kept: repeats are legitimate, the conflict is the user's call
    assert warnings == ["dup.jsonl line 2: the same question as line 1 with another gold "
                        "('5', there '4'); check which is right"]
