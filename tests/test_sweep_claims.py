"""Two sweeps on one database split the work (claims), a dead sweep's claim is taken over, and
fit/eval never count a question of a scope twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mstui.store import AlreadyClaimed, Store
from tests.test_cli_run import mstui


def sweep_args(model: Path, db: Path, limit: int = 6) -> list[str]:
    return [sys.executable, "-m", "mstui", "sweep", "--problem-set", "gen", "--limit", str(limit),
            "--max-rounds", "2", "--max-tokens", "4", "--model", str(model), "--db", str(db)]


def test_two_concurrent_sweeps_run_each_problem_once(tiny_gguf: Path, tmp_path: Path) -> None:
    db = tmp_path / "same.db"
    env = dict(os.environ)
    procs = [subprocess.Popen(sweep_args(tiny_gguf, db), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    with Store(db) as store:
        runs = store.list_runs(limit=-1)
    finished = [r["problem_id"] for r in runs if r["status"] == "finished"]
    assert sorted(finished) == sorted(set(finished)) and len(finished) == 6
    assert {r["status"] for r in runs} == {"finished"}
    # Between them the two sweeps ran six problems; whichever was second says who had the rest.
    said = " ".join(o[0] for o in outs)
    assert "run by another sweep on this file" in said or "already done earlier" in said


def test_a_dead_sweeps_claim_is_taken_over(tiny_gguf: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with Store(db) as store:
        store.upsert_problems([], problem_set="gen")
        rid = store.start_run(question="q", max_rounds=2, problem_set="gen", problem_id="x",
                              model="m", strategy="reanswer", policy="fixed:1", claim=True)
        # The same process holds it: a second claim is refused.
        with pytest.raises(AlreadyClaimed):
            store.start_run(question="q", max_rounds=2, problem_set="gen", problem_id="x",
                            model="m", strategy="reanswer", policy="fixed:1", claim=True)
        # Pretend its writer died (a pid that no longer exists).
        store.db.execute("UPDATE runs SET writer_pid = 2147480000 WHERE id = ?", [rid])
        store.db.conn.commit()
        store._open_runs.discard(rid)
        again = store.start_run(question="q", max_rounds=2, problem_set="gen", problem_id="x",
                                model="m", strategy="reanswer", policy="fixed:1", claim=True)
        assert again != rid
        assert store.get_run(rid)["status"] == "interrupted"


def test_fit_and_eval_count_a_copied_run_once(tiny_gguf: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = subprocess.run(sweep_args(tiny_gguf, db, limit=4), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    before = mstui("fit", "--json", "--min-transitions", "1", "--db", str(db))
    # Copy every run, as two racing sweeps without claims (or a double import) would have.
    with Store(db) as store:
        store.db.execute("UPDATE runs SET uuid = uuid || 'x'")
        store.db.conn.commit()
    export = tmp_path / "runs.jsonl"
    assert mstui("traces", "export", "--out", str(export), "--db", str(db)).returncode == 0
    with Store(db) as store:
        store.db.execute("UPDATE runs SET uuid = substr(uuid, 1, length(uuid) - 1)")
        store.db.conn.commit()
    assert mstui("traces", "import", str(export), "--db", str(db)).returncode == 0
    with Store(db) as store:
        assert len(store.list_runs(limit=-1)) == 8
    after = mstui("fit", "--json", "--min-transitions", "1", "--db", str(db))
    assert before.returncode == after.returncode == 0, after.stderr
    counts = [[f["counts"] for f in json.loads(p.stdout)["fits"]] for p in (before, after)]
    assert counts[0] == counts[1] and counts[0][0]["n_runs"] == 4
    assert sum(counts[0][0][k] for k in ("n_cc", "n_cw", "n_wc", "n_ww")) == 4
    pool = mstui("eval", "--json", "--db", str(db))
    assert pool.returncode == 0, pool.stderr
    scope = json.loads(pool.stdout)["scopes"][0]
    assert scope["n_train_runs"] + scope["n_test_runs"] == 4  # 8 stored runs, 4 questions
