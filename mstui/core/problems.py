"""Problem sets: the seeded built-in generator (levels 1–5) and JSONL import (DESIGN §3)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mstui.core.answers import extract_answer, normalize_answer

__all__ = [
    "BUILTIN_SETS",
    "LEVELS",
    "Problem",
    "ProblemSetError",
    "builtin_problem_set",
    "generate_problems",
    "load_problem_set",
    "load_problems_jsonl",
]

OnError = Literal["stop", "skip"]
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)
BUILTIN_SETS: tuple[str, ...] = ("gen", *(f"gen:L{level}" for level in LEVELS))
DEFAULT_BUILTIN_SIZE = 50  # problems in a built-in set when no size is asked for


class ProblemSetError(ValueError):
    """A problem set cannot be loaded; the message is one line that says what to do."""


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer, normalized (`answer`) and as the source wrote it.

    Rounds are graded against `gold`, the raw form: a normalized gold can lose what an
    equivalence judge needs (`\\boxed{14{,}916}` once became `14{,}916`, which nothing matched).
    """

    id: str
    question: str
    answer: str  # normalized with `normalize_answer`: shown, and compared by the exact judge
    level: int | None
    source: str  # the problem set's name: "gen", "gen:L3", or a JSONL file's stem
    raw_answer: str | None = None  # the gold as given (GSM8K's text after "####", a box's content)

    @property
    def gold(self) -> str:
        """The gold answer to grade against: as given when known, else the normalized one."""
        return self.raw_answer if self.raw_answer is not None else self.answer


# --- the generator --------------------------------------------------------------------------
# Each template draws its numbers from the rng and returns (question, answer). Answers are
# computed here, never parsed back out of text, and are non-negative integers: divisions are
# built from their quotient so they are always exact.

Template = Callable[[random.Random], tuple[str, int]]

_NAMES = (
    "Tom", "Mia", "Sam", "Lena", "Omar", "Ana", "Ben", "Zoe", "Ravi", "Emma", "Leo", "Nora",
)  # fmt: skip
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "shells")


def _pronoun(name: str) -> str:
    return "She" if name in {"Mia", "Lena", "Ana", "Zoe", "Emma", "Nora"} else "He"


def _arithmetic(op: str, a_range: tuple[int, int], b_range: tuple[int, int]) -> Template:
    """ "What is a op b?" with operands drawn from the given inclusive ranges."""

    def template(rng: random.Random) -> tuple[str, int]:
        a, b = rng.randint(*a_range), rng.randint(*b_range)
        if op == "-":
            a, b = max(a, b), min(a, b)  # never negative
        return f"What is {a} {op} {b}?", {"+": a + b, "-": a - b, "*": a * b}[op]

    return template


def _l3_gain(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(5, 40), rng.randint(2, 30)
    return (
        f"{name} has {a} {item}. {_pronoun(name)} gets {b} more {item}. "
        f"How many {item} does {name} have now?",
        a + b,
    )


def _l3_give(rng: random.Random) -> tuple[str, int]:
    name, friend = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    a = rng.randint(10, 50)
    b = rng.randint(1, a - 1)
    return (
        f"{name} has {a} {item}. {_pronoun(name)} gives {b} {item} to {friend}. "
        f"How many {item} does {name} have left?",
        a - b,
    )


def _l3_bags(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    bags, each = rng.randint(2, 9), rng.randint(2, 10)
    return (
        f"{name} has {bags} bags. Each bag has {each} {item}. "
        f"How many {item} does {name} have in total?",
        bags * each,
    )


def _l3_coins(rng: random.Random) -> tuple[str, int]:
    name = rng.choice(_NAMES)
    coins, value = rng.randint(2, 12), rng.choice((2, 5, 10, 20, 25))
    return (
        f"{name} has {coins} coins. Each coin is worth {value} cents. "
        f"How many cents does {name} have?",
        coins * value,
    )


def _l3_train(rng: random.Random) -> tuple[str, int]:
    speed, hours = rng.choice((20, 30, 40, 50, 60, 80)), rng.randint(2, 6)
    return (
        f"A train travels at {speed} miles per hour. How many miles does it travel in "
        f"{hours} hours?",
        speed * hours,
    )


def _l3_share(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    friends, each = rng.randint(2, 6), rng.randint(2, 9)
    return (
        f"{name} shares {friends * each} {item} equally among {friends} friends. "
        f"How many {item} does each friend get?",
        each,
    )


def _l4_buy_packs(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, packs, each = rng.randint(5, 30), rng.randint(2, 6), rng.randint(3, 10)
    return (
        f"{name} has {a} {item}. {_pronoun(name)} buys {packs} packs of {item} with {each} "
        f"{item} in each pack. How many {item} does {name} have now?",
        a + packs * each,
    )


def _l4_spend(rng: random.Random) -> tuple[str, int]:
    name = rng.choice(_NAMES)
    count, price = rng.randint(2, 6), rng.randint(3, 12)
    money = count * price + rng.randint(1, 40)
    return (
        f"{name} has {money} dollars. {_pronoun(name)} buys {count} books that cost {price} "
        f"dollars each. How many dollars does {name} have left?",
        money - count * price,
    )


def _l4_bakery(rng: random.Random) -> tuple[str, int]:
    cookies, muffins = rng.randint(10, 40), rng.randint(10, 40)
    sold = rng.randint(5, cookies + muffins - 1)
    return (
        f"A baker makes {cookies} cookies and {muffins} muffins. {sold} of them are sold. "
        f"How many are left?",
        cookies + muffins - sold,
    )


def _l4_two_legs(rng: random.Random) -> tuple[str, int]:
    s1, h1 = rng.choice((30, 40, 50, 60)), rng.randint(2, 4)
    s2, h2 = rng.choice((20, 30, 40, 70)), rng.randint(1, 3)
    return (
        f"A train travels at {s1} miles per hour for {h1} hours, then at {s2} miles per hour "
        f"for {h2} hours. How many miles does it travel in total?",
        s1 * h1 + s2 * h2,
    )


def _l4_eggs(rng: random.Random) -> tuple[str, int]:
    boxes, per_box, extra = rng.randint(3, 9), rng.choice((6, 10, 12)), rng.randint(2, 5)
    return (
        f"A farmer has {boxes} boxes of eggs with {per_box} eggs in each box, and {extra} "
        f"more eggs in a basket. How many eggs does the farmer have?",
        boxes * per_box + extra,
    )


def _l5_groups(rng: random.Random) -> tuple[str, int]:
    classes, students = rng.randint(4, 12), rng.randint(20, 32)
    size = rng.randint(4, 9)
    total = classes * students
    # Pick how many leave so the rest split into groups exactly.
    groups = rng.randint(total // size // 2, (total - 1) // size)
    left = total - groups * size
    return (
        f"A school has {classes} classes with {students} students in each class. {left} "
        f"students go home early. The rest are split into groups of {size}. "
        f"How many groups are there?",
        groups,
    )


def _l5_change(rng: random.Random) -> tuple[str, int]:
    name = rng.choice(_NAMES)
    pens, pen_price = rng.randint(4, 15), rng.randint(2, 5)
    books, book_price = rng.randint(2, 6), rng.randint(6, 15)
    cost = pens * pen_price + books * book_price
    paid = (cost // 50 + 1) * 50
    return (
        f"{name} buys {pens} pens at {pen_price} dollars each and {books} notebooks at "
        f"{book_price} dollars each. {_pronoun(name)} pays with {paid} dollars. "
        f"How many dollars of change does {name} get?",
        paid - cost,
    )


def _l5_rate(rng: random.Random) -> tuple[str, int]:
    speed, hours, later = rng.randint(35, 90), rng.randint(2, 8), rng.randint(3, 12)
    return (
        f"A train travels {speed * hours} miles in {hours} hours. At the same speed, "
        f"how many miles does it travel in {later} hours?",
        speed * later,
    )


def _l5_savings(rng: random.Random) -> tuple[str, int]:
    name = rng.choice(_NAMES)
    wage, hours, days = rng.randint(12, 25), rng.randint(4, 8), rng.randint(3, 6)
    spent = rng.randint(50, wage * hours * days - 10)
    return (
        f"{name} earns {wage} dollars per hour and works {hours} hours a day for {days} "
        f"days. {_pronoun(name)} spends {spent} dollars. How many dollars does {name} save?",
        wage * hours * days - spent,
    )


def _l5_arith(rng: random.Random) -> tuple[str, int]:
    divisor, quotient = rng.randint(3, 12), rng.randint(12, 60)
    a, b = rng.randint(11, 40), rng.randint(5, 25)
    return f"What is {divisor * quotient} / {divisor} + {a} * {b}?", quotient + a * b


_TEMPLATES: dict[int, tuple[Template, ...]] = {
    1: (_arithmetic("+", (1, 9), (1, 9)), _arithmetic("-", (1, 9), (1, 9))),
    2: (
        _arithmetic("+", (10, 99), (10, 99)),
        _arithmetic("-", (10, 99), (10, 99)),
        _arithmetic("*", (2, 9), (2, 12)),
    ),
    3: (_l3_gain, _l3_give, _l3_bags, _l3_coins, _l3_train, _l3_share),
    4: (_l4_buy_packs, _l4_spend, _l4_bakery, _l4_two_legs, _l4_eggs),
    5: (_l5_groups, _l5_change, _l5_rate, _l5_savings, _l5_arith),
}


def _generate_one(index: int, level: int, seed: int, source: str) -> Problem:
    # Each problem has its own rng keyed by (seed, level, index): a problem's id always names
    # the same question, whatever n or level mix it was generated in. String seeds are hashed
    # with SHA-512 by `random`, so this is stable across runs and PYTHONHASHSEED.
    rng = random.Random(f"mstui-gen:{seed}:{level}:{index}")
    question, answer = rng.choice(_TEMPLATES[level])(rng)
    gold = normalize_answer(str(answer))
    assert gold is not None and answer >= 0
    return Problem(f"gen-L{level}-{index:04d}-s{seed}", question, gold, level, source)


def generate_problems(
    n: int, seed: int = 0, levels: Sequence[int] = LEVELS, *, source: str = "gen"
) -> list[Problem]:
    """`n` generated problems cycling through `levels` (L1, L2, ... L1, ...), deterministic in seed.

    Problem i of a set is the same for any n, so a larger set extends a smaller one.
    """
    if n < 0:
        raise ProblemSetError(f"problem count must be >= 0, not {n}")
    bad = [level for level in levels if level not in _TEMPLATES]
    if bad or not levels:
        raise ProblemSetError(f"levels must be among {list(LEVELS)}, not {list(levels)}")
    return [_generate_one(i, levels[i % len(levels)], seed, source) for i in range(n)]


def builtin_problem_set(name: str, n: int, seed: int) -> list[Problem]:
    """A built-in set by name: "gen" (levels 1–5 interleaved) or "gen:L3" (one level)."""
    if name == "gen":
        return generate_problems(n, seed, LEVELS, source=name)
    m = re.fullmatch(r"gen:L([1-5])", name)
    if m is None:
        raise ProblemSetError(
            f"unknown problem set {name!r}; use one of {', '.join(BUILTIN_SETS)} "
            f"or a path to a .jsonl file"
        )
    return generate_problems(n, seed, (int(m.group(1)),), source=name)


# --- JSONL import ---------------------------------------------------------------------------

_LEVEL_TEXT = re.compile(r"(?:level\s*)?(\d+)", re.IGNORECASE)


class _BadLine(Exception):
    """One line cannot become a problem; the message says why."""


def _gold_from(record: dict[str, Any]) -> tuple[str, str]:
    """(normalized, as given) gold: `answer` (GSM8K's `#### N` tail if present), else a MATH
    `solution`'s `\\boxed{}` content."""
    raw = record.get("answer")
    if raw is None and "answer" in record and not isinstance(record.get("solution"), str):
        raise _BadLine("'answer' is null; give the gold answer as a string or a number")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        solution = record.get("solution")
        if isinstance(solution, str):
            found = extract_answer(solution)
            if found.rule != "boxed" or found.answer is None or found.text is None:
                raise _BadLine("no 'answer' field and no \\boxed{} answer in 'solution'")
            return found.answer, found.text.strip()
        raise _BadLine("missing 'answer' field (or a MATH 'solution' with \\boxed{})")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _BadLine(f"'answer' must be a string or a number, not {type(raw).__name__}")
    text = str(raw)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    gold = normalize_answer(text)
    if gold is None:
        raise _BadLine("the 'answer' is empty")
    return gold, text.strip()


def _level_from(value: object) -> tuple[int | None, str | None]:
    """Level as an int, or None with a warning when it cannot be read (MATH has 'Level ?')."""
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, str):
        m = _LEVEL_TEXT.fullmatch(value.strip())
        if m:
            return int(m.group(1)), None
    return None, f"level {value!r} is not an integer or 'Level N'; level left empty"


def _problem_from(
    line: str, lineno: int, stem: str, seen: dict[str, int]
) -> tuple[Problem, str | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _BadLine(f"expected a JSON object, got {type(record).__name__}")
    question = record.get("question", record.get("problem"))
    if not isinstance(question, str) or not question.strip():
        raise _BadLine("missing 'question' (or MATH-style 'problem') field")
    gold, raw_gold = _gold_from(record)
    pid = str(record["id"]) if record.get("id") not in (None, "") else f"{stem}-{lineno}"
    if pid in seen:
        raise _BadLine(f"duplicate id {pid!r} (first used on line {seen[pid]})")
    seen[pid] = lineno
    level, warning = _level_from(record.get("level"))
    return Problem(pid, question.strip(), gold, level, stem, raw_gold), warning


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) one line at a time; text None when the line is not UTF-8."""
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                yield lineno, None
                continue
            yield lineno, text


def load_problems_jsonl(
    path: str | Path, *, on_error: OnError = "stop", limit: int | None = None
) -> tuple[list[Problem], list[str]]:
    """Read a JSONL problem file line by line; returns (problems, warnings).

    on_error="stop" raises ProblemSetError at the first bad line; "skip" drops bad lines and
    reports each in the warnings. Blank lines are ignored; no problems at all is an error.
    `limit` stops reading once that many problems are in hand (the rest is not checked).
    """
    path = Path(path)
    if not path.exists():
        raise ProblemSetError(f"no such problem file: {path}")
    if not path.is_file():
        raise ProblemSetError(f"not a problem file (a directory?): {path}")
    problems: list[Problem] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    golds: dict[str, tuple[int, str, str]] = {}  # question -> (first line, gold, as given)
    skipped = 0
    try:
        for lineno, text in _lines(path):
            where = f"{path.name} line {lineno}"
            if text is not None and not text.strip():
                continue
            try:
                if text is None:
                    raise _BadLine("not UTF-8 text")
                problem, warning = _problem_from(text, lineno, path.stem, seen)
            except _BadLine as exc:
                if on_error != "skip":
                    raise ProblemSetError(
                        f"{where}: {exc}; fix the line or pass --on-bad-line skip"
                    ) from None
                skipped += 1
                warnings.append(f"{where}: {exc}; skipped")
                continue
            if warning:
                warnings.append(f"{where}: {warning}")
            # The same question with another gold: one of them labels every round wrongly.
            first = golds.setdefault(problem.question, (lineno, problem.answer, problem.gold))
            if first[0] != lineno and problem.answer != first[1]:
                warnings.append(f"{where}: the same question as line {first[0]} with another "
                                f"gold ({problem.gold!r}, there {first[2]!r}); check which is "
                                "right")
            problems.append(problem)
            if limit is not None and len(problems) >= limit:
                break
    except OSError as exc:
        raise ProblemSetError(f"cannot read problem file {path}: {exc.strerror or exc}") from None
    if not problems:
        why = f"all {skipped} non-blank lines were bad" if skipped else "the file is empty"
        raise ProblemSetError(
            f"{path.name}: no problems ({why}); each line must be a JSON object with "
            f"'question' and 'answer'"
        )
    return problems, warnings


def load_problem_set(
    spec: str, n: int | None = None, seed: int = 0, on_error: OnError = "stop"
) -> tuple[list[Problem], list[str]]:
    """A built-in set name or a .jsonl path; returns (problems, warnings).

    For built-ins, n is the set size (None: DEFAULT_BUILTIN_SIZE). For files, n keeps the
    first n problems in file order (None: all) so a run is reproducible; seed is unused there.
    """
    if n is not None and n < 0:
        raise ProblemSetError(f"problem count must be >= 0, not {n}")
    if spec == "gen" or spec.startswith("gen:"):
        size = DEFAULT_BUILTIN_SIZE if n is None else n
        return builtin_problem_set(spec, size, seed), []
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".jsonl" and not path.exists():
        raise ProblemSetError(
            f"unknown problem set {spec!r}; use one of {', '.join(BUILTIN_SETS)} "
            f"or a path to a .jsonl file"
        )
    if n == 0:
        return [], []
    return load_problems_jsonl(path, on_error=on_error, limit=n)
