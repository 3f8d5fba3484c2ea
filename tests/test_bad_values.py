"""Every user-supplied value is checked before use: one line that says what to do, never a
"TypeName: …" fallback, never a half-done write (issue: nothing silent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mstui.store import Store
from mstui.store.sample import sample_decision, sample_round
from tests.test_cli_run import assert_one_line_error, mstui

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(("args", "needle"), [
    (["run", "--question", "q", "--max-rounds", HUGE], "--max-rounds"),
    (["run", "--question", "q", "--max-tokens", HUGE], "--max-tokens"),
    (["run", "--question", "q", "--price", "nan"], "--price"),
    (["run", "--question", "q", "--temperature", "inf"], "--temperature"),
    (["run", "--question", "q", "--seed", "-1"], "--seed"),
    (["run", "--question", "q", "--ctx", HUGE], "--ctx"),
    (["sweep", "--problem-set", "gen", "--concurrency", "100000"], "--concurrency"),
    (["traces", "list", "--limit", HUGE], "--limit"),
    (["traces", "show", HUGE], "RUN"),
    (["eval", "--test-fraction", "1"], "--test-fraction"),
])
def test_numbers_out_of_range(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = mstui(*args, "--db", str(tmp_path / "t.db"))
    assert_one_line_error(proc, needle, "out of range")
    assert not (tmp_path / "t.db").exists()


def test_output_paths(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with Store(db) as store:
        rid = store.start_run(question="q", max_rounds=1)
        store.add_round(rid, sample_round(0), sample_decision(0, stop=True))
        store.finish_run(rid, "finished")
    for target, needle in ((tmp_path / "missing" / "x.jsonl", "does not exist"),
                           (tmp_path, "is a folder")):
        proc = mstui("traces", "export", "--out", str(target), "--db", str(db))
        assert_one_line_error(proc, "--out", needle)
    assert not (tmp_path / "missing").exists()
    proc = mstui("eval", "--plot", str(tmp_path / "nope" / "p.svg"), "--db", str(db))
    assert_one_line_error(proc, "--plot", "does not exist")


def test_db_in_a_missing_folder_is_an_error(tiny_gguf: Path, tmp_path: Path) -> None:
    proc = mstui("run", "--question", "q", "--model", str(tiny_gguf), "--max-tokens", "2",
                 "--db", str(tmp_path / "no" / "such" / "t.db"))
    assert_one_line_error(proc, "does not exist")
    assert not (tmp_path / "no").exists()
    # The TUI and sweep refuse it the same way, before a screen or a model is opened.
    missing = str(tmp_path / "no" / "such" / "t.db")
    for args in ([], ["sweep", "--problem-set", "gen", "--limit", "1"]):
        proc = mstui(*args, "--model", str(tiny_gguf), "--db", missing, timeout=60)
        assert_one_line_error(proc, "does not exist", "--db")
    assert_one_line_error(mstui("--db", str(tmp_path), timeout=60), "is a folder")
    assert not (tmp_path / "no").exists()


def test_import_with_wrong_types_imports_nothing(tmp_path: Path) -> None:
    src = Store(tmp_path / "src.db")
    rid = src.start_run(question="q", max_rounds=1)
    src.add_round(rid, sample_round(0), sample_decision(0, stop=True))
    src.finish_run(rid, "finished")
    out = tmp_path / "runs.jsonl"
    assert mstui("traces", "export", "--out", str(out), "--db", str(src.path)).returncode == 0
    good = json.loads(out.read_text("utf-8"))
    cases = [("rounds", 0, "idx", "zero", "'idx' is str"),
             ("rounds", 0, "surprise", 1, "a field 'surprise' no mstui writes"),
             ("rounds", 0, "finish_reason", "banana", "expected one of stop"),
             ("decisions", 0, "extra", "notadict", "expected an object"),
             (None, None, "started_at", None, "missing started_at"),
             (None, None, "level", 10**30, "out of SQLite's integer range"),
             ("rounds", 0, "prompt_tokens", 1.5, "'prompt_tokens' is float"),
             ("decisions", 0, "belief", "high", "'belief' is str"),
             (None, None, "max_rounds", "4", "'max_rounds' is str")]
    for table, i, key, value, needle in cases:
        obj = json.loads(json.dumps(good))
        obj["uuid"] = f"other-{key}"
        (obj if table is None else obj[table][i])[key] = value
        bad = tmp_path / f"bad-{key}.jsonl"
        bad.write_text(json.dumps(good | {"uuid": "fine"}) + "\n" + json.dumps(obj) + "\n",
                       "utf-8")
        dst = tmp_path / f"dst-{key}.db"
        Store(dst).close()
        proc = mstui("traces", "import", str(bad), "--db", str(dst))
        assert_one_line_error(proc, ":2:", needle, "nothing imported")
        with Store(dst) as store:
            assert store.list_runs() == []


def test_a_prompt_longer_than_the_context_stores_nothing(tmp_path: Path) -> None:
    from tests.conftest import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        pytest.skip("default model not installed (make model)")
    db = tmp_path / "t.db"
    proc = mstui("run", "--question", " ".join(["word"] * 100), "--ctx", "64",
                 "--max-tokens", "4", "--db", str(db))
    assert_one_line_error(proc, "the prompt is", "context window is 64", "raise --ctx")
    with Store(db) as store:
        assert store.list_runs() == []
