"""Which fit a run uses (issue 11, item 3); the one sparse-fit rule on every surface (item 2)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mstui.analysis.choose import choose_fit
from mstui.cli import main
from mstui.cli.sweep_cmd import run_sweep
from mstui.config import RunConfig
from mstui.core.fitting import fit_pool
from mstui.store import Store
from tests.test_cli_sweep import GoldBackend, problems
from tests.test_ui_live import SIZE, scripted_app, text_of, wait_for

MODEL = "sim.gguf"


def _fit_dict(nq: int, nr: int, seed: int, p_right: float = 0.5) -> dict:
    rng = np.random.default_rng(seed)
    return fit_pool(rng.random((nq, nr)) < p_right).to_dict()


def _save(store: Store, problem_set: str, data: dict, *, model: str = MODEL,
          level: int | None = None) -> int:
    scope = {"model": model, "problem_set": problem_set, "strategy": "reanswer", "level": level}
    return store.save_fit(scope, data)


def test_chooser_prefers_this_set_then_the_most_data_and_says_why(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        big = _save(store, "pool", _fit_dict(300, 6, 1))
        small = _save(store, "other", _fit_dict(30, 3, 2))  # newer, far less data
        _save(store, "pool", _fit_dict(30, 3, 3), level=1)  # a level fit is never chosen
        found = choose_fit(store, MODEL, "reanswer", "new-set")
        assert found is not None and found.id == big and not found.exact
        assert "no fit of new-set" in found.why and "most data" in found.why
        assert "most data" in found.describe()
        mine = _save(store, "new-set", _fit_dict(40, 4, 4))
        found = choose_fit(store, MODEL, "reanswer", "new-set")
        assert found is not None and found.id == mine and found.exact
        assert "this problem set" in found.why
        # An ad-hoc run (no set) takes the fit with the most data, not the newest.
        adhoc = choose_fit(store, MODEL, "reanswer", None)
        assert adhoc is not None and adhoc.id == big
        # Pinned: used whatever its scope, and the reason says so.
        pinned = choose_fit(store, MODEL, "reanswer", "new-set", pin=small)
        assert pinned is not None and pinned.id == small and "pinned" in pinned.why
        with pytest.raises(Exception, match="no fit 999"):
            choose_fit(store, MODEL, "reanswer", "new-set", pin=999)


def test_a_sparse_fit_of_this_set_yields_to_a_fit_with_data(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        big = _save(store, "pool", _fit_dict(300, 6, 1))
        _save(store, "new-set", fit_pool(np.ones((2, 3), bool)).to_dict())  # 4 C→C, 0 from W
        found = choose_fit(store, MODEL, "reanswer", "new-set")
        assert found is not None and found.id == big and "sparse" in found.why


def _sparse_store(path: Path, model: str) -> int:
    with Store(path) as store:
        return _save(store, "toy", fit_pool(np.zeros((3, 1), bool)).to_dict(), model=model)


def test_sweep_refuses_a_zero_transition_fit_unless_insisted(tmp_path: Path) -> None:
    _sparse_store(tmp_path / "t.db", "scripted")
    config = RunConfig(policy="markov", max_rounds=3)
    with Store(tmp_path / "t.db") as store:
        with pytest.raises(ValueError, match=r"refuses this fit.*0 transition"):
            run_sweep(config, problems(2), store, problem_set="toy", backend=GoldBackend(["x"]))
        insist = dataclasses.replace(config, allow_sparse_fit=True)
        result = run_sweep(insist, problems(2), store, problem_set="toy",
                           backend=GoldBackend(["x"]))
        assert len(result.run_ids) == 2


def test_cli_run_refuses_a_zero_transition_fit_on_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    _sparse_store(db, "SmolLM2-135M-Instruct.Q4_1.gguf")
    rc = main(["run", "--question", "What is 2 + 2?", "--policy", "markov", "--db", str(db)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "refuses this fit" in err and "--allow-sparse-fit" in err


async def test_tui_does_not_use_a_zero_transition_fit(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    with Store(db) as store:
        for ps in ("gen:L2",):
            _save(store, ps, fit_pool(np.zeros((3, 1), bool)).to_dict(), model="scripted")
    app = scripted_app(db, rounds=3)  # policy auto: markov only with a usable fit
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 3)
        assert all(d.policy.startswith("fixed") for d in app.live.decisions)
        assert "auto→markov" not in text_of(app.live.query_one("#status"))
