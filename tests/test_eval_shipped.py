"""`mstui eval` on the shipped traces.db after a stray `mstui run` (issue 11, item 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mstui.cli import main
from mstui.config import RunConfig
from mstui.engine.scripted import ScriptedBackend
from mstui.session import RunRecorder
from mstui.store import Store
from tests.conftest import ROOT

SHIPPED = ROOT / "traces.db"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture()
def stray_db(tmp_path: Path) -> Path:
    if not SHIPPED.is_file():
        pytest.skip(f"no shipped traces.db at {SHIPPED}")
    db = tmp_path / "traces.db"
    shutil.copy(SHIPPED, db)
    # What one ordinary `mstui run --question ... --gold 5` leaves: an ad-hoc run of one
    # question, fixed to its cap, in a scope of its own.
    from mstui.core.loop import run_refinement
    from mstui.runner import build_run

    config = RunConfig(max_rounds=4)
    backend = ScriptedBackend(["The answer is 5."], name=MODEL)  # as `mstui run` stores
    run = build_run(config, gold="5", backend=backend)
    with Store(db) as store:
        rec = RunRecorder(store, run.config, backend, question="What is 2 + 3?", gold="5",
                          problem_set="adhoc", policy=run.policy.spec)
        for event in run_refinement("What is 2 + 3?", backend=run.backend,
                                    prompter=run.prompter, policy=run.policy,
                                    max_rounds=run.config.max_rounds, settings=run.config.gen,
                                    gold="5"):
            rec.handle(event)
    return db


def test_eval_survives_a_stray_run_on_the_shipped_pool(
        stray_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--db", str(stray_db), "--json", "--sensitivity", "0",
                 "--policies", "none,repeat,markov"]) == 0
    out = json.loads(capsys.readouterr().out)
    scopes = {s["scope"]["problem_set"]: s for s in out["scopes"]}
    assert set(scopes) == {"gen"}
    assert scopes["gen"]["n_test_questions"] == 150
    skipped = {s["scope"]["problem_set"]: s["reason"] for s in out["skipped"]}
    assert "1 distinct question(s)" in skipped["adhoc"]
    assert main(["eval", "--db", str(stray_db), "--sensitivity", "0",
                 "--policies", "none"]) == 0
    text = capsys.readouterr().out
    assert "skipped SmolLM2-135M-Instruct.Q4_1.gguf · adhoc · reanswer: 1 distinct" in text
