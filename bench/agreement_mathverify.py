"""Agreement of mstui's grading path with Math-Verify's own test expectations.

Usage: python bench/agreement_mathverify.py PATH/TO/Math-Verify/tests

Every literal `@pytest.mark.parametrize` case (gold, prediction, expected) in those test files is
run the way a sweep would see it: the prediction as the model's whole reply, mstui's extraction of
the answer span, then mstui's grading (exact match, then Math-Verify) against the gold as given.
The test files are read with `ast`, never imported or copied. Not part of `make bench`: it needs
a checkout of huggingface/Math-Verify.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstui.core.answers import extract_answer
from mstui.core.grading import Grader


def cases(tests: Path) -> list[tuple[str, str, str, bool]]:
    """(file, gold, prediction, expected) of every literal parametrized case."""
    out = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if not (isinstance(deco, ast.Call) and getattr(deco.func, "attr", "")
                        == "parametrize" and len(deco.args) >= 2):
                    continue
                try:
                    names = [n.strip() for n in ast.literal_eval(deco.args[0]).split(",")]
                    rows = ast.literal_eval(deco.args[1])
                except (ValueError, SyntaxError, AttributeError):
                    continue  # built at run time: not a literal table
                for row in rows:
                    case = dict(zip(names, row, strict=False))
                    expected = case.get("expected", case.get("result"))
                    if {"gold", "pred"} <= case.keys() and expected is not None:
                        out.append((path.name, str(case["gold"]), str(case["pred"]),
                                    bool(expected)))
    return out


def main() -> int:
    """Print agreement per file and overall, then every disagreement."""
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: python bench/agreement_mathverify.py PATH/TO/Math-Verify/tests",
              file=sys.stderr)
        return 2
    table = cases(Path(sys.argv[1]))
    grader = Grader()
    total, agree = Counter[str](), Counter[str]()
    misses = []
    for name, gold, pred, expected in table:
        text = extract_answer(pred).text
        grade = grader.grade(text, gold)
        total[name] += 1
        agree[name] += grade.correct is expected
        if grade.correct is not expected:
            misses.append((name, gold, pred, text, expected, grade))
    n, k = sum(total.values()), sum(agree.values())
    print(f"{k} of {n} cases agree ({k / max(n, 1):.0%}) with math-verify "
          f"{grader.mathverify_version}")
    for name in total:
        print(f"  {name}: {agree[name]} of {total[name]}")
    for name, gold, pred, text, expected, grade in misses:
        print(f"- {name}: gold {gold[:50]!r} · reply …{pred[-50:]!r} · extracted {text!r} · "
              f"expected {expected}, got {grade.correct} ({grade.judge})")
    grader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
