"""`mstui eval` extras on simulated pools stored through the Store: ±δ, learning curve, levels."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mstui.analysis.pools import load_pool, split_by_problem
from mstui.analysis.report import curve_sizes, fit_train
from mstui.cli import main
from mstui.core.evaluation import score, simulate_pool, stop_rounds, sweep
from mstui.core.policies import GatePolicy, MarkovPolicy
from mstui.store import Store
from tests.test_cli_fit import write_pool

N_Q, N_ROUNDS, LEVELS = 400, 6, 3


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("extras") / "pool.db"
    with Store(path, durable=False) as store:
        write_pool(store, simulate_pool(N_Q, N_ROUNDS, 0.1, 0.3, 0.4, seed=5), levels=LEVELS)
    return path


def run(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> dict[str, Any]:
    assert main(["eval", "--db", str(db), "--json", "--kappas", "0,0.0001,0.001", *argv]) == 0
    (rep,) = json.loads(capsys.readouterr().out)["scopes"]
    return rep


def test_zero_delta_equals_the_unperturbed_row(db: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(capsys, db, "--perturb", "0", "--sensitivity", "0", "--policies",
              "gate,markov,markov:0.0003,fixed:2")
    assert rep["perturb"] == 0.0
    rows = {r["policy"]: r for r in rep["results"]}
    shifted = [r for r in rows.values() if "perturbation" in r]
    assert {r["policy"] for r in shifted} == {"gate", "markov:0", "markov:0.0001",
                                             "markov:0.001", "markov:0.0003"}
    assert "perturbation" not in rows["fixed:2"]
    for r in shifted:
        p = r["perturbation"]
        assert len(p["corners"]) == 8 and set(p["one_at_a_time"]) == {"a", "b", "p0"}
        assert p["accuracy"] == [r["accuracy"]] * 2
        assert p["tokens"] == pytest.approx([r["mean_tokens"]] * 2)
        for c in p["corners"]:
            assert c["accuracy"] == r["accuracy"]
            assert c["mean_tokens"] == pytest.approx(r["mean_tokens"])
        for one in p["one_at_a_time"].values():
            assert one["accuracy"] == [r["accuracy"]] * 2


def test_perturbed_corner_matches_a_hand_built_fit(db: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    delta = 0.05
    rep = run(capsys, db, "--perturb", str(delta), "--sensitivity", "0", "--policies",
              "gate,markov", "--no-obs-model")
    rows = {r["policy"]: r for r in rep["results"]}
    with Store(db) as store:
        sp = load_pool(store, model="sim.gguf", problem_set="sim", strategy="reanswer")
    assert sp is not None
    train_idx, test_idx = split_by_problem(sp.problems, 0.5, 0)
    tf = fit_train(sp.pool.subset(train_idx), [sp.problems[i] for i in train_idx], False)
    test = sp.pool.subset(test_idx)
    assert rep["fit"]["a"] == pytest.approx(tf.fit.a)
    for r in sweep(test, tf.fit, None, kappas=[0, 1e-4, 1e-3]):  # the table's markov rows
        assert rows[r.policy]["accuracy"] == r.accuracy
        assert rows[r.policy]["mean_tokens"] == pytest.approx(r.mean_tokens)
    for corner in rows["markov:0.0001"]["perturbation"]["corners"]:
        f = dataclasses.replace(tf.fit, a=tf.fit.a + corner["a"] * delta,
                                b=tf.fit.b + corner["b"] * delta,
                                p0=tf.fit.p0 + corner["p0"] * delta)
        r = score(test, stop_rounds(test, MarkovPolicy(f, None, 1e-4)), "m")
        assert corner["accuracy"] == pytest.approx(r.accuracy)
        assert corner["mean_tokens"] == pytest.approx(r.mean_tokens)
    # One at a time, a + δ only: the gate row's plan from that fit.
    f = dataclasses.replace(tf.fit, a=tf.fit.a + delta)
    r = score(test, stop_rounds(test, GatePolicy(f)), "g")
    one = rows["gate"]["perturbation"]["one_at_a_time"]["a"]
    assert one["accuracy"][1] == pytest.approx(r.accuracy)
    assert one["tokens"][1] == pytest.approx(r.mean_tokens)
    # A wider shift moves markov's decisions: the band is no longer a point.
    p = rows["markov:0.001"]["perturbation"]
    assert p["tokens"][0] < p["tokens"][1]


def test_learning_curve_converges_to_the_full_fit(db: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(capsys, db, "--learning-curve", "--curve-repeats", "6", "--sensitivity", "0")
    curve = rep["learning_curve"]
    n_train = rep["n_train_questions"]
    sizes = curve["sizes"]
    assert [s["questions"] for s in sizes] == curve_sizes(n_train) == [10, 20, 40, 80, 160, 200]
    assert [s["fits"] for s in sizes] == [6] * 5 + [1]
    full = sizes[-1]
    assert full["disagreement_mean"] == 0.0 and full["disagreement_worst"] == 0.0
    assert set(full["disagreement"]) == {"gate", "markov:0", "markov:0.0001", "markov:0.001"}
    rows = {r["policy"]: r for r in rep["results"]}
    for name, acc in full["accuracy"].items():  # the full-size fit is the table's fit
        assert acc == pytest.approx(rows[name]["accuracy"])
        assert full["mean_tokens"][name] == pytest.approx(rows[name]["mean_tokens"])
    dis = np.array([s["disagreement_mean"] for s in sizes])
    assert dis[0] > 0.1 > dis[-2]
    assert np.all(np.diff(dis) <= 0.03)  # non-increasing up to sampling noise
    assert np.polyfit(np.log2([s["questions"] for s in sizes]), dis, 1)[0] < 0
    stable = curve["stable_at"]
    proper = sizes[:-1]
    if stable is None:
        assert proper[-1]["disagreement_worst"] >= curve["threshold"]
    else:
        i = [s["questions"] for s in proper].index(stable)
        assert all(s["disagreement_worst"] < curve["threshold"] for s in proper[i:])
        assert i == 0 or proper[i - 1]["disagreement_worst"] >= curve["threshold"]


def test_by_level_counts_add_up_and_accuracy_decomposes(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(capsys, db, "--by-level", "--sensitivity", "3", "--perturb", "0.02")
    levels = rep["by_level"]
    assert [lv["level"] for lv in levels] == [1, 2, 3]
    assert sum(lv["n_test_questions"] for lv in levels) == rep["n_test_questions"]
    assert sum(lv["n_test_runs"] for lv in levels) == rep["n_test_runs"]
    # One fit for all levels: each question stops where it does in the overall table, so the
    # overall accuracy and tokens are the run-weighted means of the levels'.
    overall = {r["policy"]: r for r in rep["results"]}
    for name, r in overall.items():
        w = [lv["n_test_runs"] for lv in levels]
        by = [{x["policy"]: x for x in lv["results"]}[name] for lv in levels]
        assert np.average([x["accuracy"] for x in by], weights=w) == pytest.approx(r["accuracy"])
        assert np.average([x["mean_tokens"] for x in by],
                          weights=w) == pytest.approx(r["mean_tokens"])
    assert all(lv["fit"]["a"] == rep["fit"]["a"] for lv in levels)
    for lv in levels:
        marked = {x["policy"] for x in lv["results"] if "perturbation" in x and "sensitivity" in x}
        assert marked == {"gate", "markov:0", "markov:0.0001", "markov:0.001"}


def test_fit_per_level_uses_each_levels_training_questions(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(capsys, db, "--by-level", "--fit-per-level", "--sensitivity", "0")
    levels = rep["by_level"]
    assert sum(lv["n_train_questions"] for lv in levels) == rep["n_train_questions"]
    assert sum(lv["n_test_questions"] for lv in levels) == rep["n_test_questions"]
    assert all(lv["fit_scope"] == "level" for lv in levels)
    assert len({lv["fit"]["a"] for lv in levels}) == LEVELS  # three separate fits
    with Store(db) as store:
        sp = load_pool(store, model="sim.gguf", problem_set="sim", strategy="reanswer")
    assert sp is not None
    assert sp.levels.tolist() == [1 + i % LEVELS for i in range(N_Q)]


def test_text_report_shows_the_extras(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--db", str(db), "--sensitivity", "0", "--perturb", "0.05",
                 "--learning-curve", "--by-level", "--policies", "none,gate,markov"]) == 0
    text = capsys.readouterr().out
    for needle in ("±δ (acc · tokens)", "2³ corners", "learning curve", "worst row",
                   "level 1:", "level 3:", "training questions"):
        assert needle in text, needle
    assert "stay within 5%" in text or "never settle within 5%" in text


def test_extras_without_decision_rows(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = run(capsys, db, "--policies", "none,fixed:2", "--learning-curve", "--perturb", "0.1",
              "--by-level", "--fit-per-level", "--sensitivity", "0")
    assert rep["learning_curve"]["sizes"] == [] and rep["learning_curve"]["stable_at"] is None
    assert not any("perturbation" in r for r in rep["results"])
    assert main(["eval", "--db", str(db), "--policies", "none", "--learning-curve",
                 "--by-level", "--fit-per-level"]) == 0
    assert "no gate or markov row" in capsys.readouterr().out


def test_extras_errors_are_one_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in ((["--perturb", "1.5"], "--perturb"),
                         (["--fit-per-level"], "--by-level"),
                         (["--learning-curve", "--curve-repeats", "0"], "--curve-repeats")):
        assert main(["eval", "--db", str(db), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
