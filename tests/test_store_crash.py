"""Crash safety with real processes: SIGKILL mid-run, kills mid-commit, a reader beside a writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mstui.store import Store

ROOT = Path(__file__).resolve().parents[1]

# A writer process: one run, round by round; after round STOP_AT it sleeps "mid-round" forever.
WRITER = """
import sys, time
from mstui.store import Store
from mstui.store.sample import sample_decision, sample_round
path, rounds, stop_at, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
store = Store(path)
for run in range(int(sys.argv[5])):
    rid = store.start_run(question=f"q{run}", max_rounds=rounds, model="m", problem_set="ps",
                          problem_id=f"p{run}", gold="42", strategy="reanswer", policy="markov")
    for i in range(rounds):
        store.add_round(rid, sample_round(i, answer=str(40 + i), correct=i % 2 == 0),
                        sample_decision(i, stop=i == rounds - 1))
        print(f"committed {rid} {i}", flush=True)
        if i == stop_at:
            time.sleep(3600)
        time.sleep(pause)
    store.finish_run(rid, "finished")
print("done", flush=True)
"""


def spawn(
    path: Path, rounds: int, stop_at: int, pause: float, runs: int = 1
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(rounds), str(stop_at), str(pause), str(runs)],
        stdout=subprocess.PIPE, text=True, env=env,
    )


def wait_for(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    for got in proc.stdout:
        if got.strip() == line:
            return
    raise AssertionError(f"writer exited before printing {line!r}")


def test_sigkill_mid_run_keeps_finished_rounds_and_marks_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    proc = spawn(path, rounds=8, stop_at=2, pause=0.0)
    try:
        wait_for(proc, "committed 1 2")
        # A second process opening now (read-write: it runs the dead-writer check) must leave
        # the live run alone and already see the three committed rounds.
        with Store(path) as reader:
            assert reader.interrupted_on_open == []
            run = reader.get_run(1)
            assert run["status"] == "running" and len(run["rounds"]) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(path) as conn:  # the killed writer left a valid database
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    store = Store(path)
    assert store.interrupted_on_open == [1]
    run = store.get_run(1)
    assert run["status"] == "interrupted"
    assert [r.index for r in run["rounds"]] == [0, 1, 2]
    assert [d.round for d in run["decisions"]] == [0, 1, 2]
    assert (run["final_round"], run["final_answer"], run["final_correct"]) == (2, "42", True)
    assert run["n_rounds"] == 3 and run["total_tokens"] == sum(r.tokens for r in run["rounds"])
    assert run["finished_at"] == store.db.execute(
        "SELECT max(created_at) FROM rounds WHERE run_id = 1").fetchone()[0]
    store.close()
    assert Store(path).interrupted_on_open == []  # marking happens once


@pytest.mark.parametrize("delay", [0.15, 0.35, 0.6])
def test_kill_at_an_arbitrary_moment_never_splits_a_round_from_its_decision(
    tmp_path: Path, delay: float
) -> None:
    path = tmp_path / "t.db"
    proc = spawn(path, rounds=8, stop_at=-1, pause=0.0, runs=100000)
    wait_for(proc, "committed 1 0")
    time.sleep(delay)  # lands anywhere: inside a transaction, between them, in start_run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(path)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.db.execute("INSERT INTO rounds_fts(rounds_fts) VALUES ('integrity-check')")
    runs = store.list_runs(limit=-1)
    assert len(runs) >= 1
    unfinished = [r["status"] for r in runs if r["status"] != "finished"]
    assert unfinished in ([], ["interrupted"])  # [] when the kill fell between two runs
    for run in runs:
        rounds, decisions = store.rounds_of(run["id"]), store.decisions_of(run["id"])
        assert [r.index for r in rounds] == list(range(len(rounds)))
        assert [d.round for d in decisions] == [r.index for r in rounds]
        assert run["n_rounds"] == len(rounds)


def test_reader_lists_while_writer_commits(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    Store(path).close()  # create it, so the two processes do not race to migrate
    proc = spawn(path, rounds=8, stop_at=-1, pause=0.01, runs=6)
    seen_rounds: list[int] = []
    errors: list[str] = []
    try:
        while proc.poll() is None:
            try:
                with Store(path, busy_timeout=5.0) as reader:  # a fresh open each time
                    assert reader.interrupted_on_open == []
                    runs = reader.list_runs(limit=100)
                    reader.count_runs(search="apples")
                    if runs:
                        seen_rounds.append(sum(r["n_rounds"] for r in runs))
                        assert all(r["status"] in ("running", "finished") for r in runs)
                        reader.get_run(runs[0]["id"])
            except Exception as exc:  # collect, so the writer is still reaped below
                errors.append(repr(exc))
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert errors == []
    assert proc.returncode == 0
    assert seen_rounds == sorted(seen_rounds) and len(set(seen_rounds)) > 3  # it saw progress
    with Store(path) as store:
        assert [r["status"] for r in store.list_runs()] == ["finished"] * 6
        assert store.count_runs() == 6 and len(list(store.labelled_rounds())) == 48


def test_dead_writer_detection(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(done.stdout)
    with Store(path) as store:
        mine = store.start_run(question="mine", max_rounds=2)
        ids = [store.start_run(question=q, max_rounds=2) for q in ("dead", "remote", "reused")]
        store.db.execute("UPDATE runs SET writer_pid = ? WHERE id = ?", [dead_pid, ids[0]])
        store.db.execute("UPDATE runs SET writer_host = 'elsewhere' WHERE id = ?", [ids[1]])
        # our own pid, but a different start token: the pid was reused by a new process
        store.db.execute("UPDATE runs SET writer_token = 'x:1' WHERE id = ?", [ids[2]])
        other = Store(path)
        expected = [ids[0], ids[2]] if Path("/proc/self/stat").exists() else [ids[0]]
        assert other.interrupted_on_open == expected
        statuses = {r["id"]: r["status"] for r in other.list_runs()}
        assert statuses[mine] == "running" and statuses[ids[1]] == "running"
        other.close()
    # closing the writer's store marks what it left open
    with Store(path) as again:
        assert again.get_run(mine)["status"] == "interrupted"
