"""Fault series: kill -9 a sweep 20 times and resume it, then race two sweeps on one file.

Prints what the trace store kept: finished rounds lost across kills, duplicate runs, problems
finished more or less than once. Run: `python bench/fault_series.py [--kills 20]` (a few minutes
on 2 cores with the default model).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def sweep(db: Path, limit: int) -> list[str]:
    return [sys.executable, "-m", "mstui", "sweep", "--problem-set", "gen", "--limit", str(limit),
            "--max-rounds", "3", "--max-tokens", "24", "--threads", "1", "--model", str(MODEL),
            "--db", str(db)]


def finished_rounds(db: Path) -> set[tuple[str, int, str]]:
    """(run uuid, round, response) of every round of a finished run."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT runs.uuid, r.idx, r.response FROM rounds r JOIN runs "
                           "ON runs.id = r.run_id WHERE runs.status = 'finished'").fetchall()
    except sqlite3.OperationalError:
        rows = []
    con.close()
    return {(u, i, t) for u, i, t in rows}


def round_count(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM rounds").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def per_problem(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("SELECT problem_id, count(*) FROM runs WHERE status = 'finished' "
                       "GROUP BY problem_id").fetchall()
    con.close()
    return dict(rows)


def kill_series(kills: int, limit: int, work: Path, rng: random.Random) -> None:
    db = work / "kills.db"
    lost = killed_mid_run = 0
    for _ in range(kills):
        before = finished_rounds(db) if db.exists() else set()
        written = round_count(db)
        proc = subprocess.Popen(sweep(db, limit), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # Kill only once this sweep has written a round, at a random moment after it: a kill
        # during start-up (imports, model load) would test nothing.
        while round_count(db) <= written and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        killed_mid_run += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lost += len(before - finished_rounds(db))
    done = subprocess.run(sweep(db, limit), capture_output=True, text=True)
    counts = per_problem(db)
    con = sqlite3.connect(db)
    check = con.execute("PRAGMA integrity_check").fetchone()[0]
    dup_rounds = con.execute("SELECT count(*) FROM (SELECT run_id, idx FROM rounds GROUP BY "
                             "run_id, idx HAVING count(*) > 1)").fetchone()[0]
    statuses = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    con.close()
    print(f"kill -9 series: {kills} kills ({killed_mid_run} while the sweep was running, each "
          f"after it had written a round), then a resume (exit {done.returncode})")
    print(f"  finished rounds lost: {lost}; duplicate rounds: {dup_rounds}; integrity: {check}")
    print(f"  problems finished: {len(counts)}/{limit}, each exactly once: "
          f"{all(v == 1 for v in counts.values())}; runs by status: {statuses}")


def race(limit: int, work: Path, repeats: int) -> None:
    ok = 0
    for i in range(repeats):
        db = work / f"race-{i}.db"
        procs = [subprocess.Popen(sweep(db, limit), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(2)]
        codes = [p.wait() for p in procs]
        counts = per_problem(db)
        good = codes == [0, 0] and len(counts) == limit and all(v == 1 for v in counts.values())
        ok += good
        print(f"  race {i}: exits {codes}, problems finished {len(counts)}/{limit}, "
              f"max runs of one problem {max(counts.values(), default=0)}")
    print(f"two-sweeps race: {ok}/{repeats} ended with every problem finished exactly once")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--races", type=int, default=3)
    parser.add_argument("--race-limit", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not MODEL.is_file():
        sys.exit(f"no default model at {MODEL}; run `make model`")
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        kill_series(args.kills, args.limit, Path(tmp), random.Random(args.seed))
        race(args.race_limit, Path(tmp), args.races)


if __name__ == "__main__":
    main()
