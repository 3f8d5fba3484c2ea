"""Benchmark of grading: per-round time of the exact path and the Math-Verify path, import cost,
worker start, the pathological case, worker memory, and the install size Math-Verify adds."""

from __future__ import annotations

import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mstui.core.answers import extract_answer  # noqa: E402
from mstui.core.grading import Grader  # noqa: E402

# Math-Verify and what it pulls in that mstui did not have before (sympy, mpmath, antlr4).
ADDED = ("math-verify", "latex2sympy2_extended", "sympy", "mpmath", "antlr4-python3-runtime")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def import_cost() -> tuple[float, float, bool]:
    """(ms to import mstui.core.loop + grading, ms to import math_verify, did the first pull in
    sympy?), each in a fresh interpreter."""
    probe = ("import sys, time; t = time.perf_counter(); import {mod}; "
             "print((time.perf_counter() - t) * 1e3, 'sympy' in sys.modules)")
    out = []
    for mod in ("mstui.core.loop, mstui.core.grading", "math_verify"):
        res = subprocess.run([sys.executable, "-c", probe.format(mod=mod)], capture_output=True,
                             text=True, check=True, cwd=ROOT)
        ms, sympy = res.stdout.split()
        out.append((float(ms), sympy == "True"))
    return out[0][0], out[1][0], out[0][1]


def pool_pairs(db: Path) -> list[tuple[str | None, str]]:
    """(extracted answer text, gold as given) of every round of the shipped pool."""
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT r.response, runs.gold FROM rounds r JOIN runs ON runs.id = r.run_id "
            "WHERE runs.gold IS NOT NULL ORDER BY r.id").fetchall()
    return [(extract_answer(response).text, gold) for response, gold in rows]


def latex_pairs() -> list[tuple[str | None, str]]:
    """MATH-style answers (tests/test_grading.py's table): most need Math-Verify."""
    sys.path.insert(0, str(ROOT))
    from tests.test_grading import TABLE

    return [(extract_answer(response).text, gold) for _, gold, response, _ in TABLE]


def time_pairs(grader: Grader, pairs: list[tuple[str | None, str]],
               by_judge: dict[str, list[float]]) -> None:
    for pred, gold in pairs:
        t0 = time.perf_counter()
        grade = grader.grade(pred, gold)
        by_judge.setdefault(grade.judge, []).append(time.perf_counter() - t0)


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux), None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def installed_mib() -> tuple[float, list[str]]:
    """Bytes on disk of the packages Math-Verify adds, in MiB, and any that are missing."""
    total, missing = 0, []
    for name in ADDED:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            missing.append(name)
            continue
        for f in dist.files or []:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20, missing


def main() -> None:
    """Print the figures."""
    mstui_ms, mv_ms, pulled = import_cost()
    print(f"import mstui.core.loop + grading:            {mstui_ms:8.1f} ms  (sympy imported: "
          f"{'yes' if pulled else 'no'})")
    print(f"import math_verify (kept off the first frame): {mv_ms:6.1f} ms")

    grader = Grader()
    t0 = time.perf_counter()
    grader.grade("x+x", "2x")  # starts the first worker
    started = (time.perf_counter() - t0) * 1e3
    print(f"first Math-Verify grading (worker start):    {started:8.1f} ms")

    by_judge: dict[str, list[float]] = {}
    db = ROOT / "traces.db"
    pool = pool_pairs(db) if db.is_file() else []
    latex = latex_pairs() * 5
    time_pairs(grader, pool + latex, by_judge)
    print(f"graded {len(pool)} rounds of the shipped pool and {len(latex)} MATH-style answers:")
    for judge, label in (("exact", "fast path (exact match)"), ("math-verify", "Math-Verify path"),
                         ("none", "no answer found")):
        times = by_judge.get(judge, [])
        if times:
            print(f"  {label:27} n={len(times):5}  median {statistics.median(times) * 1e3:7.3f} ms"
                  f"  p99 {percentile(times, 99) * 1e3:8.3f} ms")

    t0 = time.perf_counter()
    grade = grader.grade(r"9^{9^{9^{9}}}", "1")
    print(f"9^{{9^{{9^{{9}}}}}} (Math-Verify's own timeout): {time.perf_counter() - t0:6.2f} s "
          f"-> {grade.judge}")
    fast_kill = Grader(workers=1)
    fast_kill.grade("x+x", "2x")  # started under the default limit
    fast_kill.timeout = 0.4
    t0 = time.perf_counter()
    grade = fast_kill.grade(r"9^{9^{9^{9}}}", "1")
    killed = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast_kill.timeout = 3.0
    fast_kill.grade("x+x", "2x")
    print(f"hard limit 0.4 s: killed after {killed:5.2f} s -> {grade.judge}; replacement worker "
          f"graded the next in {time.perf_counter() - t0:5.2f} s")
    fast_kill.close()

    worker_rss = [rss_mib(w.process.pid) for w in grader._idle]
    shown = ", ".join(f"{r:.0f}" for r in worker_rss if r is not None) or "n/a"
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS: this process {parent:.0f} MiB; grading worker(s) {shown} MiB")
    mib, missing = installed_mib()
    print(f"installed size of {', '.join(ADDED)}: {mib:.1f} MiB"
          + (f" (not installed: {', '.join(missing)})" if missing else ""))
    grader.close()


if __name__ == "__main__":
    main()
