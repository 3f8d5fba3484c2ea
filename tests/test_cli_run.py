"""`mstui run` and `mstui models` end to end in a subprocess: output, storage and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mstui.store import Store

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def mstui(*args: str, db: Path | None = None, timeout: float = 300,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("MSTUI_DEBUG", None)
    if db is not None:
        env["MSTUI_DB"] = str(db)
    if cwd is not None:  # `python -m mstui` from elsewhere still imports this checkout
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return subprocess.run([sys.executable, "-m", "mstui", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mstui: error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_run_json_three_rounds_on_real_llama_and_stored(tiny_gguf: Path, tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    proc = mstui("run", "--question", QUESTION, "--gold", "7", "--model", str(tiny_gguf),
                 "--max-rounds", "3", "--max-tokens", "8", "--json", db=db)
    assert proc.returncode == 0, proc.stderr
    *rows, final = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["finish_reason"] in ("stop", "length") and r["correct"] in (True, False)
        assert r["prompt_tokens"] > 100 and r["completion_tokens"] >= 1
        assert set(r) >= {"answer", "tokens_per_s", "cached_tokens", "decision"}
        assert r["judge"] in ("exact", "math-verify", "none")  # who decided ✓/✗
    assert rows[1]["cached_tokens"] > 100  # reanswer shares the few-shot prefix
    assert [r["decision"]["action"] for r in rows] == ["continue", "continue", "stop"]
    with Store(db) as store:
        runs = store.list_runs()
        assert len(runs) == 1 and runs[0]["status"] == "finished"
        stored = store.rounds_of(runs[0]["id"])
        assert [s.completion_tokens for s in stored] == [r["completion_tokens"] for r in rows]
        assert [s.judge for s in stored] == [r["judge"] for r in rows]
    # The last line names the stored run, its final answer and why it stopped.
    assert "round" not in final and final["run_id"] == runs[0]["id"] and final["db"] == str(db)
    assert final["final_answer"] == rows[-1]["answer"] == runs[0]["final_answer"]
    assert final["final_correct"] == rows[-1]["correct"] and final["rounds"] == 3
    assert final["stopped_by"] == "policy"
    assert final["stop_rule"] == rows[-1]["decision"]["rule"]
    assert final["stop_reason"] == rows[-1]["decision"]["reason"]
    assert final["tokens"] == runs[0]["total_tokens"]


def test_run_json_final_line_without_a_store(tiny_gguf: Path) -> None:
    proc = mstui("run", "--question", QUESTION, "--model", str(tiny_gguf), "--max-rounds", "1",
                 "--max-tokens", "4", "--json", "--no-store")
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout.splitlines()[-1])
    assert final["run_id"] is None and final["db"] is None and final["rounds"] == 1
    assert final["stopped_by"] == "policy" and final["stop_rule"]


def test_run_text_streams_rounds(tiny_gguf: Path, tmp_path: Path) -> None:
    proc = mstui("run", "--question", "What is 1 + 1?", "--model", str(tiny_gguf),
                 "--max-rounds", "2", "--max-tokens", "4", "--no-store")
    assert proc.returncode == 0, proc.stderr
    assert "── round 0 ──" in proc.stdout and "── round 1 ──" in proc.stdout
    assert "CPU only" in proc.stdout or "GPU:" in proc.stdout
    assert "final answer:" in proc.stdout
    assert not (tmp_path / "traces.db").exists()


def test_models_lists_gguf_metadata(tiny_gguf: Path, tmp_path: Path) -> None:
    proc = mstui("models", "--models-dir", str(tmp_path), str(tiny_gguf), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data["gpu_offload"], bool)
    (row,) = data["models"]
    assert row["architecture"] == "llama" and row["context"] == 2048 and row["layers"] == 2
    assert row["quantization"] == "ALL_F32" and row["size_bytes"] == tiny_gguf.stat().st_size
    table = mstui("models", "--models-dir", str(tmp_path), str(tiny_gguf))
    assert "tiny.gguf" in table.stdout and "GPU offload:" in table.stdout


def test_bad_inputs_give_one_line_errors(tiny_gguf: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    base = ["run", "--question", QUESTION]
    assert_one_line_error(mstui(*base, "--model", str(tmp_path / "nope.gguf"), db=db),
                          "no such model file")
    text = tmp_path / "readme.gguf"
    text.write_text("not a model at all")
    assert_one_line_error(mstui(*base, "--model", str(text), db=db), "not a GGUF model")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:100_000])
    assert_one_line_error(mstui(*base, "--model", str(cut), db=db), "truncated")
    assert_one_line_error(mstui(*base, "--strategy", "think", db=db), "invalid choice", "think")
    assert_one_line_error(mstui(*base, "--max-rounds", "0", db=db),
                          "--max-rounds", "out of range")
    assert_one_line_error(mstui(*base, "--max-rounds", "-3", db=db), "--max-rounds")
    assert_one_line_error(mstui("run", "--question", "   ", db=db), "--question is empty")
    assert_one_line_error(mstui(*base, "--policy", "sometimes", db=db), "unknown policy")
    assert_one_line_error(mstui(*base, "--policy", "oracle", db=db), "needs the gold answer")
    long_question = "How many apples? " * 400
    assert_one_line_error(mstui("run", "--question", long_question, "--model", str(tiny_gguf),
                                db=db),
                          "context window is 2048")
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello")
    assert_one_line_error(mstui(*base, "--model", str(tiny_gguf), "--db", str(not_db)),
                          "not an SQLite database")
    assert not_db.read_text() == "hello"


def test_help_explains_every_option() -> None:
    top = mstui("--help")
    assert top.returncode == 0 and "run" in top.stdout and "models" in top.stdout
    run = mstui("run", "--help")
    for option in ("--question", "--gold", "--model", "--strategy", "--max-rounds", "--json",
                   "--policy", "--db", "--logprobs", "--gpu-layers"):
        assert option in run.stdout


def test_help_never_shows_a_doubled_percent() -> None:
    import argparse

    from mstui.cli.parser import build_parser

    def parsers(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        return [p] + [q for s in subs for c in s.choices.values() for q in parsers(c)]

    every = parsers(build_parser())
    assert len(every) > 10  # run, sweep, fit, eval, models, traces and its commands
    for p in every:
        text = p.format_help()
        assert "%%" not in text, (p.prog, text[text.index("%%") - 60:text.index("%%") + 10])
    fit = next(p for p in every if p.prog.endswith(" fit")).format_help()
    assert "95% intervals" in " ".join(fit.split())


@pytest.mark.model
def test_default_model_one_short_round(default_model: Path, tmp_path: Path) -> None:
    proc = mstui("run", "--question", QUESTION, "--gold", "7", "--max-rounds", "1",
                 "--max-tokens", "24", "--json", db=tmp_path / "t.db")
    assert proc.returncode == 0, proc.stderr
    row, final = [json.loads(line) for line in proc.stdout.splitlines()]
    assert final["rounds"] == 1 and final["final_answer"] == row["answer"]
    assert row["round"] == 0 and row["prompt_tokens"] > 100 and row["completion_tokens"] >= 1
    assert row["finish_reason"] in ("stop", "length")
    assert row["decision"]["action"] == "stop"


def test_run_sweep_and_tui_share_one_default_round_cap() -> None:
    from mstui.cli.parser import build_parser, config_from_args
    from mstui.config import DEFAULT_MAX_ROUNDS, RunConfig

    parser = build_parser()
    caps = {argv[0] if argv else "tui": config_from_args(parser.parse_args(argv)).max_rounds
            for argv in ([], ["run", "--question", "q"], ["sweep", "--problem-set", "gen"])}
    assert caps == dict.fromkeys(("tui", "run", "sweep"), DEFAULT_MAX_ROUNDS)
    assert RunConfig().max_rounds == DEFAULT_MAX_ROUNDS  # what make_app uses without options
    assert f"(default {DEFAULT_MAX_ROUNDS}" in " ".join(parser.format_help().split())


@pytest.mark.model
def test_run_says_when_tok_s_falls_far_below_the_models_stored_rate(default_model: Path,
                                                                   tmp_path: Path) -> None:
    # The default model: its rounds last long enough to time (the tiny GGUF's take a few ms).
    import dataclasses

    from mstui.store.sample import sample_round

    db = tmp_path / "t.db"
    # This model once ran at 90,000 tok/s on this machine (a stored round); another host's
    # faster round says nothing about this machine and is not the reference.
    with Store(db) as store:
        for tokens, host in ((9001, None), (90001, "elsewhere")):
            rid = store.start_run(question="q", max_rounds=1, model=default_model.name,
                                  backend="llama.cpp")
            store.add_round(rid, dataclasses.replace(sample_round(0), completion_tokens=tokens,
                                                     gen_seconds=0.1))
            store.finish_run(rid, "finished")
            if host is not None:
                store.db.execute("UPDATE runs SET writer_host = ? WHERE id = ?", [host, rid])
                store.db.conn.commit()
    args = ("run", "--question", QUESTION, "--max-rounds", "1", "--max-tokens", "24",
            "--temperature", "0", "--db", str(db))
    proc = mstui(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    *_, final = [json.loads(line) for line in proc.stdout.splitlines()]
    hint = final["rate_hint"]
    assert hint is not None and "90000.0 tok/s measured earlier" in hint and "--threads" in hint
    assert f"mstui: note: {hint}" in proc.stderr  # said beside the JSON lines, not in them
    text = mstui(*args)
    assert "mstui: note: generation fell to" in text.stdout and "thread(s)" in text.stdout


def _fit_for(db: Path, model: str) -> int:
    """A fit with data for `model`, as `mstui fit` would store it."""
    import numpy as np

    from mstui.core.fitting import fit_pool

    rng = np.random.default_rng(0)
    fit = fit_pool(rng.random((100, 4)) < 0.5)
    with Store(db) as store:
        return store.save_fit({"model": model, "problem_set": "gen", "strategy": "reanswer",
                               "level": None}, fit.to_dict())


def test_no_store_still_reads_the_fit_from_the_db(tiny_gguf: Path, tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    fit_id = _fit_for(db, tiny_gguf.name)
    before = db.read_bytes()
    base = ("run", "--question", "What is 2 + 3?", "--gold", "5", "--model", str(tiny_gguf),
            "--max-rounds", "2", "--max-tokens", "4", "--policy", "markov", "--no-store",
            "--db", str(db))
    proc = mstui(*base)
    assert proc.returncode == 0, proc.stderr
    assert f"fit #{fit_id} (gen," in proc.stdout and "no chain fit" not in proc.stderr
    assert db.read_bytes() == before  # read, not written: no run stored
    # A pinned id that does not exist is named, with or without --no-store.
    assert_one_line_error(mstui(*base, "--fit", "999"), "no fit 999")
    assert_one_line_error(mstui(*base[:-1], str(tmp_path / "none.db"), "--fit", "3"),
                          "no fit 3", "none.db does not exist")


def test_options_the_policy_does_not_use_are_named(tiny_gguf: Path, tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    fit_id = _fit_for(db, tiny_gguf.name)
    base = ("run", "--question", "What is 2 + 3?", "--model", str(tiny_gguf), "--max-rounds",
            "1", "--max-tokens", "4", "--no-store", "--db", str(db))
    proc = mstui(*base, "--policy", "fixed:0", "--fit", str(fit_id))
    assert proc.returncode == 0, proc.stderr
    assert f"--fit {fit_id} is not used: policy fixed:0 decides without a fit" in proc.stderr
    proc = mstui(*base, "--policy", "markov:0.01", "--price", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "--price 0.5 is not used: the policy markov:0.01 sets κ = 0.01" in proc.stderr
    assert_one_line_error(mstui(*base, "--policy", "mixture:abc"),
                          "mixture price κ must be a number")


def test_options_before_the_command_are_refused_not_ignored(tmp_path: Path) -> None:
    # argparse let the command's defaults overwrite them: `mstui --db x.db fit` refitted
    # ./traces.db. Now it is one line that says where the option goes, and nothing is written.
    db = tmp_path / "x.db"
    for argv, where in ((["--db", str(db), "fit"], "mstui fit --help"),
                        ([f"--db={db}", "traces", "list"], "mstui traces list --help"),
                        (["--model", "m.gguf", "run", "--question", "q"], "mstui run --help")):
        proc = mstui(*argv, cwd=tmp_path)
        assert_one_line_error(proc, "before the command is ignored", where)
    assert list(tmp_path.iterdir()) == []  # no ./traces.db, no x.db


@pytest.mark.model
def test_run_under_fixed_shows_the_shadow_markov_belief(default_model: Path,
                                                        tmp_path: Path) -> None:
    import shutil

    from mstui.core.policies import parse_policy
    from mstui.ui.view import fit_of_stored

    db = tmp_path / "t.db"
    shutil.copy(Path(__file__).resolve().parent.parent / "traces.db", db)
    args = ("run", "--question", QUESTION, "--policy", "fixed:1", "--max-rounds", "2",
            "--max-tokens", "16", "--temperature", "0", "--db", str(db))
    proc = mstui(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    *rounds, final = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "shadow: fit #" in proc.stderr
    with Store(db) as store:
        run = store.get_run(final["run_id"])
        fit, obs = fit_of_stored(store.get_fit(rounds[0]["shadow"]["fit_id"]))
    assert run["fit_id"] is None  # the policy used no fit, so the run records none
    markov = parse_policy("markov", fit, obs, allow_sparse=True)
    for i, line in enumerate(rounds):
        want = markov.decide(run["rounds"][: i + 1], 2)
        assert line["shadow"]["belief"] == pytest.approx(want.belief, abs=1e-9)
        assert line["shadow"]["action"] == want.action
    text = mstui(*args)
    assert "shadow (markov on fit #" in text.stdout and "would " in text.stdout
