"""`mstui traces list|show|search|export|import` on a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mstui.cli import main
from mstui.config import RunConfig
from mstui.core.backend import GenSettings
from mstui.store import Store
from tests.test_cli_sweep import GoldBackend, problems

from mstui.cli.sweep_cmd import run_sweep  # isort: skip


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    config = RunConfig(max_rounds=2, gen=GenSettings(max_tokens=32, temperature=0.0))
    with Store(path, durable=False) as store:
        run_sweep(config, problems(3), store, problem_set="toy", backend=GoldBackend(["x"]))
        # One wrong run, with a distinctive word to search for.
        from mstui.engine.scripted import ScriptedBackend

        wrong = [problems(4)[3]]
        run_sweep(config, wrong, store, problem_set="toy",
                  backend=ScriptedBackend(["Perhaps zebra, so the answer is 99."]))
    return path


def out_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_list_filters_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json"))
    assert len(runs) == 4 and runs[0]["id"] > runs[-1]["id"]  # newest first
    wrong = json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json",
                              "--correct", "no"))
    assert [r["problem_id"] for r in wrong] == ["p3"]
    assert len(json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json",
                                 "--correct", "yes", "--limit", "2", "--offset", "1"))) == 2
    assert json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json",
                             "--since", "2999-01-01")) == []
    assert len(json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json",
                                 "--since", "2000-01-01", "--until", "2999-01-01"))) == 4
    assert len(json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json",
                                 "--search", "zebra"))) == 1
    assert json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json",
                             "--policy", "fixed:9")) == []
    table = out_of(capsys, "traces", "list", "--db", str(db))
    assert "toy/p3" in table and "✗" in table and "✓" in table and "showing 1–4 of 4" in table


def test_show_text_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rid = json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json",
                            "--correct", "no"))[0]["id"]
    text = out_of(capsys, "traces", "show", str(rid), "--db", str(db))
    assert "── round 0 ── answer 99 ✗" in text and "── round 1 ──" in text
    assert "zebra" in text and "→ continue [fixed]" in text and "→ stop [" in text
    assert "gold: 5" in text and "final answer: 99 ✗ after 2 round(s)" in text
    data = json.loads(out_of(capsys, "traces", "show", str(rid), "--db", str(db), "--json"))
    assert [r["index"] for r in data["rounds"]] == [0, 1]
    assert data["rounds"][0]["correct"] is False and data["rounds"][0]["tokens"] > 0
    assert [d["final_action"] for d in data["decisions"]] == ["continue", "stop"]


def test_search(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hits = json.loads(out_of(capsys, "traces", "search", "zebra", "--db", str(db), "--json"))
    assert len(hits) == 2 and {h["round"] for h in hits} == {0, 1}
    assert "[zebra]" in out_of(capsys, "traces", "search", "zebra", "--db", str(db))
    assert "no response contains" in out_of(capsys, "traces", "search", "okapi", "--db", str(db))


def test_export_import_round_trip(db: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "runs.jsonl"
    out_of(capsys, "traces", "export", "--db", str(db), "--format", "jsonl", "--out", str(dump))
    lines = dump.read_text().splitlines()
    assert len(lines) == 4 and all(len(json.loads(line)["rounds"]) == 2 for line in lines)
    other = tmp_path / "other.db"
    assert "imported 4 run(s)" in out_of(capsys, "traces", "import", str(dump), "--db", str(other))
    assert "imported 0 run(s)" in out_of(capsys, "traces", "import", str(dump), "--db", str(other))
    a = json.loads(out_of(capsys, "traces", "list", "--db", str(db), "--json"))
    b = json.loads(out_of(capsys, "traces", "list", "--db", str(other), "--json"))
    keys = ("uuid", "question", "final_answer", "final_correct", "n_rounds", "total_tokens")
    assert [{k: r[k] for k in keys} for r in a] == [{k: r[k] for k in keys} for r in b]
    # To stdout, filtered, as CSV: one row per round.
    text = out_of(capsys, "traces", "export", "--db", str(db), "--format", "csv",
                  "--correct", "no")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and rows[0]["run_problem_id"] == "p3"


def test_errors_are_one_line(db: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    def err(argv: list[str]) -> str:
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mstui: error: "), lines
        return lines[0]

    assert "no run 999" in err(["traces", "show", "999", "--db", str(db)])
    assert "no trace database" in err(["traces", "list", "--db", str(tmp_path / "nope.db")])
    assert "cannot read date" in err(["traces", "list", "--db", str(db), "--since", "May"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    assert "bad.jsonl:1: not a run" in err(["traces", "import", str(bad), "--db",
                                            str(tmp_path / "x.db")])
    bad.write_text("\n{not json\n")
    assert "bad.jsonl:2: not JSON" in err(["traces", "import", str(bad), "--db",
                                           str(tmp_path / "x.db")])
    assert "no such file" in err(["traces", "import", str(tmp_path / "gone.jsonl"),
                                  "--db", str(db)])
