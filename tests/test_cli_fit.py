"""`mstui fit` on simulated traces written through the Store: recovers known (a, b)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mstui.analysis.pools import load_labelled
from mstui.cli import main
from mstui.core.evaluation import Pool, simulate_pool
from mstui.session import find_fit
from mstui.store import Store

A, B = 0.1, 0.3


def write_pool(store: Store, pool: Pool, *, model: str = "sim.gguf", problem_set: str = "sim",
               strategy: str = "reanswer", levels: int = 1, prefix: str = "q",
               repeat: int = 1) -> list[int]:
    """Store a pool as finished fixed-policy runs to the cap (row i = problem i // repeat).

    Repeats of a problem carry different sampling seeds, as real repeated runs do: a run with
    the same settings would be a copy, which fit and eval count once."""
    ids = []
    nr = pool.n_rounds
    for i, history in enumerate(pool.records()):
        pid = f"{prefix}{i // repeat}"
        rid = store.start_run(question=f"question {pid}", max_rounds=nr, model=model,
                              problem_set=problem_set, problem_id=pid, strategy=strategy,
                              policy=f"fixed:{nr - 1}", gold="0", level=1 + (i // repeat) % levels,
                              settings={"seed": i % repeat})
        for record in history:
            store.add_round(rid, record)
        store.finish_run(rid, "finished")
        ids.append(rid)
    return ids


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "sim.db"
    pool = simulate_pool(400, 6, A, B, 0.4, seed=7)
    with Store(path, durable=False) as store:
        write_pool(store, pool, levels=2)
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_recovers_a_and_b(sim_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "fit", "--db", str(sim_db), "--json")
    assert len(out["fits"]) == 1 and out["too_little_data"] == []
    f = out["fits"][0]
    assert f["scope"] == {"model": "sim.gguf", "problem_set": "sim", "strategy": "reanswer",
                          "level": None}
    for key, truth in (("a", A), ("b", B), ("pi", B / (A + B)), ("lam", 1 - A - B)):
        v = f[key]
        assert v["lo"] <= truth <= v["hi"], (key, v)
        assert abs(v["mean"] - truth) < 0.03, (key, v)
    c = f["counts"]
    assert c["n_runs"] == 400 and c["n_rounds"] == 2400
    assert c["n_cc"] + c["n_cw"] + c["n_wc"] + c["n_ww"] == 2000
    assert set(f["checks"]) == {"accuracy-by-round", "time-homogeneity", "first-order-markov",
                                "question-heterogeneity"}
    for chk in f["checks"].values():
        assert 0.0 <= chk["p_value"] <= 1.0
    cal = f["observation_model"]
    assert 0 <= cal["filtered_ece"] < 0.1
    # Stored where `mstui run` finds it, with the observation model.
    with Store(sim_db) as store:
        found = find_fit(store, "sim.gguf", "reanswer", "sim")
        assert found is not None and found.id == f["fit_id"] and found.obs_model is not None
        assert abs(found.fit.a - f["a"]["mean"]) < 1e-12
        saved = store.get_fit(found.id)
        assert "checks" in saved and "obs_model" in saved


def test_fit_text_and_by_level(sim_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--db", str(sim_db), "--by-level"]) == 0
    text = capsys.readouterr().out
    assert "fitted 3 scope(s)" in text
    for needle in ("a  = ", "b  = ", "π  = ", "λ  = ", "p̂0 = ", "level 1", "level 2",
                   "check time-homogeneity", "check first-order-markov", "calibration error"):
        assert needle in text, needle


def test_too_little_data_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    with Store(db, durable=False) as store:
        write_pool(store, simulate_pool(300, 4, A, B, 0.4, seed=1), problem_set="big")
        write_pool(store, simulate_pool(2, 3, A, B, 0.4, seed=2), problem_set="tiny")
    out = run_json(capsys, "fit", "--db", str(db), "--json")
    assert [f["scope"]["problem_set"] for f in out["fits"]] == ["big"]
    assert out["too_little_data"][0]["scope"]["problem_set"] == "tiny"
    assert main(["fit", "--db", str(db)]) == 0
    assert "too little data: sim.gguf · tiny · reanswer" in capsys.readouterr().out


def test_repeated_problems_identify_p0_spread(tmp_path: Path) -> None:
    from mstui.analysis.pools import fit_labelled

    rng = np.random.default_rng(3)
    p0 = np.repeat(rng.beta(1.0, 1.0, 150), 4)  # 150 problems, 4 runs each
    db = tmp_path / "t.db"
    with Store(db, durable=False) as store:
        write_pool(store, simulate_pool(600, 3, A, B, p0, seed=4), repeat=4)
        data = load_labelled(store, model="sim.gguf", problem_set="sim", strategy="reanswer")
    assert data.n_runs == 600 and data.n_problems == 150
    fit = fit_labelled(data, {"model": "sim.gguf"}).fit
    assert "p0-spread-unidentified" not in fit.flags
    assert fit.p0_alpha is not None and fit.p0_alpha + (fit.p0_beta or 0) < 10


def test_fit_errors_are_one_line(tmp_path: Path, sim_db: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    def err(argv: list[str]) -> str:
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mstui: error: ")
        return lines[0]

    assert "no trace database" in err(["fit", "--db", str(tmp_path / "missing.db")])
    assert "no scope matches" in err(["fit", "--db", str(sim_db), "--model", "other.gguf"])
    empty = tmp_path / "empty.db"
    Store(empty).close()
    assert "no labelled rounds" in err(["fit", "--db", str(empty)])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 200)
    err(["fit", "--db", str(junk)])


def _store_pools(db: Path, *pools: tuple[Pool, str]) -> None:
    with Store(db, durable=False) as store:
        for pool, prefix in pools:
            write_pool(store, pool, prefix=prefix)


def test_a_fit_on_the_prior_says_so_and_its_checks_cannot_test(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 20 questions, never right: no transition from C, so a (and π) is the prior, and the
    # time-homogeneity and first-order checks have nothing to compare (df 0).
    db = tmp_path / "wrong.db"
    _store_pools(db, (simulate_pool(20, 6, A, 0.0, 0.0, seed=1), "w"))
    out = run_json(capsys, "fit", "--db", str(db), "--json")
    f = out["fits"][0]
    assert f["sparse"]["rates"] == ["a"]
    for name in ("time-homogeneity", "first-order-markov"):
        chk = f["checks"][name]
        assert chk["df"] == 0 and chk["testable"] is False and chk["passed"] is None
        assert chk["verdict"].startswith("cannot test: df 0")
    acc = f["checks"]["accuracy-by-round"]
    assert acc["testable"] is True and acc["method"] == "parametric bootstrap, 199 draws"
    assert acc["p_floor"] == pytest.approx(1 / 200)
    assert main(["fit", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "check time-homogeneity: cannot test: df 0" in text
    assert "— ok" not in text.split("check time-homogeneity")[1].splitlines()[0]
    regime = next(line for line in text.splitlines() if "regime:" in line)
    assert "⚠ rests on the prior: a is (mostly) the prior, so π is too" in regime
    assert "check accuracy-by-round: statistic" in text and "(bootstrap, 199 draws)" in text
    # Every K tried is printed once, and markov's use of the fit is not claimed.
    mix = next(line for line in text.splitlines() if "mixture of chains" in line)
    assert mix.count("K=1 ") == 1 and "K=4 " in mix
    assert "markov uses" not in text and "but refuses this fit (sparse" in text
    assert "0.5 pseudo-count" in text  # why a one-class mixture is not the chain above


def test_bootstrap_p_values_say_so_and_name_their_floor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Questions whose answers flip every round beside questions that never change: one (a, b)
    # cannot fit both, no bootstrap draw comes near, so the p-value is the floor 1/(199 + 1).
    db = tmp_path / "mix.db"
    _store_pools(db, (simulate_pool(100, 6, 0.9, 0.9, 0.5, seed=2), "flip"),
                 (simulate_pool(100, 6, 0.02, 0.02, 0.5, seed=3), "stay"))
    out = run_json(capsys, "fit", "--db", str(db), "--json")
    het = out["fits"][0]["checks"]["question-heterogeneity"]
    assert het["p_value"] == pytest.approx(1 / 200) and het["verdict"] == "REJECTED at 5%"
    assert het["p_text"] == "p ≤ 0.005 (bootstrap floor, 199 draws)"
    assert "bootstrap" in het["method"]
    first = out["fits"][0]["checks"]["first-order-markov"]
    assert "(χ², df 2)" in first["p_text"]
    assert main(["fit", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "check question-heterogeneity: statistic" in text
    assert "p ≤ 0.005 (bootstrap floor, 199 draws) — REJECTED at 5%" in text


def test_the_fit_screen_reads_checks_as_the_cli_does(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from mstui.ui.fit import detail
    from mstui.ui.services import TraceService

    db = tmp_path / "wrong.db"
    _store_pools(db, (simulate_pool(20, 6, A, 0.0, 0.0, seed=1), "w"))
    service = TraceService(db)
    scope = service.scopes()[0]
    sf = service.refit(scope)  # 100 transitions: enough to fit, sparse from C
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(detail(sf))
    text = console.export_text()
    line = next(row for row in text.splitlines() if "time-homogeneity" in row)
    assert "cannot test: df 0" in line and "fits" not in line
    acc = next(row for row in text.splitlines() if "accuracy-by-round" in row)
    assert "(bootstrap, 199 draws)" in acc


def test_the_tui_refit_applies_the_clis_minimum_data_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mstui.ui.services import TraceService

    db = tmp_path / "tiny.db"
    _store_pools(db, (simulate_pool(1, 4, A, B, 0.4, seed=4), "t"))  # 1 run, 3 transitions
    service = TraceService(db)
    with pytest.raises(ValueError, match=r"too little data: 3 transitions .* \(need 10\)"):
        service.refit(service.scopes()[0])
    with Store(db) as store:
        assert store.fits() == []  # nothing saved, as `mstui fit` saves nothing
    assert main(["fit", "--db", str(db)]) == 2
    assert "need 10" in capsys.readouterr().err
