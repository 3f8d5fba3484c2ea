"""`mstui eval` on a simulated pool stored through the Store API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mstui.analysis.pools import load_pool, split_by_problem
from mstui.cli import main
from mstui.core.evaluation import simulate_pool
from mstui.store import Store
from tests.test_cli_fit import write_pool

N_ROUNDS = 5


@pytest.fixture(scope="module")
def pool_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "pool.db"
    with Store(path, durable=False) as store:
        write_pool(store, simulate_pool(240, N_ROUNDS, 0.1, 0.3, 0.4, seed=11))
        # Noise that must stay out of the pool: another cap, a run stopped early by its policy.
        write_pool(store, simulate_pool(10, 3, 0.1, 0.3, 0.4, seed=12), prefix="other")
        rid = store.start_run(question="q", max_rounds=N_ROUNDS, model="sim.gguf",
                              problem_set="sim", problem_id="early", strategy="reanswer",
                              policy="repeat", gold="0")
        store.finish_run(rid, "finished")
    return path


def test_eval_json_oracle_bounds_and_fixed_tokens(pool_db: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--db", str(pool_db), "--json", "--sensitivity", "5",
                 "--kappas", "0,0.0001,0.001"]) == 0
    out = json.loads(capsys.readouterr().out)
    (rep,) = out["scopes"]
    assert rep["max_rounds"] == N_ROUNDS and rep["other_caps"] == {"3": 10}
    assert rep["n_train_questions"] + rep["n_test_questions"] == 240
    res = {r["policy"]: r for r in rep["results"]}
    expected = {"none", "repeat", "gate", "oracle", "markov:0", "markov:0.0001", "markov:0.001",
                "mixture", *(f"fixed:{n}" for n in range(1, N_ROUNDS))}
    assert set(res) == expected
    for name, r in res.items():
        assert r["acc_lo"] <= r["accuracy"] <= r["acc_hi"]
        assert res["oracle"]["accuracy"] >= r["accuracy"], name
    assert "sensitivity" in res["markov:0"] and "sensitivity" in res["gate"]
    b = rep["bounds"]
    assert {"neutral", "upper", "lower", "oracle_observed"} <= set(b)
    assert b["lower"] <= b["neutral"] <= b["upper"]
    # fixed:N tokens by hand: rounds 0..N of every held-out question, from the stored rounds.
    with Store(pool_db) as store:
        sp = load_pool(store, model="sim.gguf", problem_set="sim", strategy="reanswer")
        assert sp is not None
        _, test = split_by_problem(sp.problems, 0.5, 0)
        by_problem = {r["problem_id"]: r["id"] for r in store.list_runs(limit=-1)}
        for n in range(1, N_ROUNDS):
            paid = [sum(r.tokens for r in store.rounds_of(by_problem[sp.problems[i]])[: n + 1])
                    for i in test]
            assert res[f"fixed:{n}"]["mean_tokens"] == pytest.approx(np.mean(paid))
            assert res[f"fixed:{n}"]["mean_rounds"] == n + 1


def test_eval_text_table_and_svg(pool_db: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    svg = tmp_path / "plot.svg"
    assert main(["eval", "--db", str(pool_db), "--policies", "none,fixed:2,markov,oracle",
                 "--sensitivity", "0", "--plot", str(svg)]) == 0
    text = capsys.readouterr().out
    for needle in ("accuracy [95%]", "fixed:2", "markov:0", "oracle", "bounds: neutral",
                   "mean tokens per question", "plot written"):
        assert needle in text, needle
    assert "fixed:1 " not in text
    body = svg.read_text()
    assert body.startswith("<svg") and body.count("<circle") == 2 + 1 + 7


def test_eval_split_never_shares_questions(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with Store(db, durable=False) as store:
        write_pool(store, simulate_pool(60, 3, 0.1, 0.3, 0.5, seed=1), repeat=3)
        sp = load_pool(store, model="sim.gguf", problem_set="sim", strategy="reanswer")
    assert sp is not None and len(sp.problems) == 60
    train, test = split_by_problem(sp.problems, 0.5, 0)
    assert not {sp.problems[i] for i in train} & {sp.problems[i] for i in test}
    assert train.size + test.size == 60


def test_eval_errors_are_one_line(tmp_path: Path, pool_db: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def err(argv: list[str]) -> str:
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mstui: error: "), lines
        return lines[0]

    assert "no trace database" in err(["eval", "--db", str(tmp_path / "none.db")])
    assert "match the filters" in err(["eval", "--db", str(pool_db), "--model", "x.gguf"])
    assert "no pool capped at 9" in err(["eval", "--db", str(pool_db), "--max-rounds", "9"])
    assert "--kappas" in err(["eval", "--db", str(pool_db), "--kappas", "a,b"])
    assert "unknown policy" in err(["eval", "--db", str(pool_db), "--policies", "bogus"])
    assert "--test-fraction" in err(["eval", "--db", str(pool_db), "--test-fraction", "1.5"])


@pytest.fixture(scope="module")
def level_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Level 1 has data both ways; level 2 is never right, so a fit of level 2 alone has no
    transition from C: its a is the prior."""
    import sqlite3

    path = tmp_path_factory.mktemp("levels") / "levels.db"
    with Store(path, durable=False) as store:
        write_pool(store, simulate_pool(120, N_ROUNDS, 0.1, 0.3, 0.4, seed=5), prefix="a")
        write_pool(store, simulate_pool(40, N_ROUNDS, 0.1, 0.0, 0.0, seed=6), prefix="b")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET level = 2 WHERE problem_id LIKE 'b%'")
    return path


def test_per_level_fits_follow_the_one_sparse_rule(level_db: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--db", str(level_db), "--by-level", "--fit-per-level", "--sensitivity", "0"]
    assert main([*argv, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)["scopes"][0]
    assert rep["refused"] is None  # the fit on every level has data both ways
    levels = {lv["level"]: lv for lv in rep["by_level"]}
    assert levels[1]["refused"] is None
    assert any(r["policy"].startswith("markov") for r in levels[1]["results"])
    two = levels[2]
    assert two["refused"]["policies"] == ["gate", "markov", "mixture"]
    assert "a rests on 0 transition(s) from C" in two["refused"]["reason"]
    assert not any(r["policy"].startswith(("markov", "gate", "mixture")) for r in two["results"])
    assert two["fit"]["sparse"]["rates"] == ["a"] and two["bounds"]["from_sparse_fit"] is True
    assert main(argv) == 0
    text = capsys.readouterr().out
    level2 = text[text.index("level 2:"):]
    assert "⚠ sparse: a is (mostly) the prior" in level2.splitlines()[0]
    assert "not scored: gate, markov, mixture — refused as `mstui run` would refuse them: the " \
           "training fit is sparse: a rests on 0 transition(s) from C" in level2
    assert "⚠ upper and lower rest on π of a sparse fit" in level2


def test_a_sparse_split_fit_is_flagged_with_its_bounds(pool_db: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "--db", str(pool_db), "--test-fraction", "0.996", "--sensitivity", "0"]
    assert main([*argv, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)["scopes"][0]
    assert rep["n_train_questions"] == 1 and rep["fit"]["sparse"]["rates"]
    assert rep["bounds"]["from_sparse_fit"] is True and rep["refused"]["policies"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    fit_line = next(line for line in text.splitlines() if line.startswith("fit on 1 questions"))
    assert "⚠ sparse:" in fit_line
    bounds_line = next(line for line in text.splitlines() if "bounds: neutral" in line)
    assert "⚠ upper and lower rest on π of a sparse fit" in bounds_line
    # The sentence reads as one (it once said "the training the fit is sparse").
    assert "the training the fit" not in text and "the training fit is sparse" in text


def test_eval_policy_specs_are_checked_before_the_table(pool_db: Path) -> None:
    from tests.test_cli_run import assert_one_line_error, mstui

    assert_one_line_error(mstui("eval", "--db", str(pool_db), "--policies", "mixture:abc"),
                          "'mixture:abc'", "the price κ after mixture: must be a number")
    assert_one_line_error(mstui("eval", "--db", str(pool_db), "--policies", "fixed:99"),
                          "'fixed:99' asks for 99 refinement rounds", "fixed:0 to fixed:4")
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        proc = mstui("eval", "--db", str(pool_db), "--plot", str(pool_db.parent / "x.png"))
        assert_one_line_error(proc, "a PNG plot needs matplotlib")
        assert proc.stdout == ""  # said before the table, not after it
