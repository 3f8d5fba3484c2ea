"""Export to JSONL/CSV and JSONL re-import: streaming, filters, and an exact round trip."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from mstui.core.types import Decision
from mstui.store import Store, export_runs, import_jsonl
from mstui.store.sample import sample_decision, sample_round


def populate(store: Store) -> list[int]:
    ids = []
    for i in range(5):
        rid = store.start_run(question=f"What is {i}+{i}? «unicode»", max_rounds=4,
                              model="a" if i < 3 else "b", problem_set="ps", problem_id=f"p{i}",
                              gold=str(2 * i) if i != 4 else None, strategy="reanswer",
                              policy="markov", fit_id=7, settings={"price": 0.001, "seed": i},
                              sweep="s1")
        n = i % 3 + 1
        for k in range(n):
            rec = sample_round(k, answer=str(k), correct=None if i == 4 else k == 1,
                               previous=str(k - 1) if k else None)
            dec = Decision(round=k, action="stop" if k == n - 1 else "continue", rule="r",
                           reason="why", policy="markov", belief=0.25, pi=None,
                           extra={"x": 1.5} if k else {})
            store.add_round(rid, rec, dec)
        if i == 2:
            store.set_override(rid, 0, "stop")
            store.add_round(rid, replace(sample_round(n, answer=None, correct=None),
                                         finish_reason="cancelled"))  # type: ignore[arg-type]
        if i != 3:  # run 3 stays running: exported as a snapshot
            store.finish_run(rid, "finished" if i != 2 else "cancelled")
        ids.append(rid)
    return ids


def test_jsonl_round_trip(tmp_path: Path) -> None:
    src = Store(tmp_path / "src.db")
    ids = populate(src)
    out = tmp_path / "runs.jsonl"
    with out.open("w", encoding="utf-8") as f:
        assert export_runs(src, "jsonl", f) == 5
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [o["id"] for o in lines] == ids
    assert lines[2]["rounds"][-1]["finish_reason"] == "cancelled"
    assert lines[1]["decisions"][1]["extra"] == {"x": 1.5}

    dst = Store(tmp_path / "dst.db")
    assert import_jsonl(dst, out) == (5, 0)
    assert import_jsonl(dst, out) == (0, 5)  # same uuids: nothing added twice
    by_uuid = {r["uuid"]: r["id"] for r in dst.list_runs()}
    for run in src.list_runs():
        new_id = by_uuid[run["uuid"]]
        assert dst.rounds_of(new_id) == src.rounds_of(run["id"])
        assert dst.decisions_of(new_id) == src.decisions_of(run["id"])
        copied = dst.get_run(new_id)
        for key in ("question", "gold", "settings", "final_answer", "final_correct",
                    "total_tokens", "n_rounds", "fit_id", "sweep", "started_at"):
            assert copied[key] == run[key], key
        expected = "interrupted" if run["status"] == "running" else run["status"]
        assert copied["status"] == expected
    # the copy exports to the same lines (ids equal: it was empty; only the snapshot's status moved)
    again = io.StringIO()
    export_runs(dst, "jsonl", again)
    relines = [json.loads(line) for line in again.getvalue().splitlines()]
    lines[3]["status"] = "interrupted"
    assert relines == lines
    assert dst.search("apples") != []  # imported rounds are in the full-text index


def test_csv_one_row_per_round_with_run_and_decision_columns(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    populate(store)
    buf = io.StringIO()
    n = export_runs(store, "csv", buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert n == len(rows) == 1 + 2 + 4 + 1 + 2
    first = rows[0]
    assert (first["run_id"], first["round"], first["run_model"], first["decision_action"]) == (
        "1", "0", "a", "stop")
    assert first["run_question"] == "What is 0+0? «unicode»"
    cancelled = [r for r in rows if r["round_finish_reason"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["decision_action"] == ""  # no decision
    assert rows[0]["round_response"] == sample_round(0, answer="0").response


def test_export_filters_and_streams(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    populate(store)
    buf = io.StringIO()
    assert export_runs(store, "jsonl", buf, model="b") == 2
    assert {json.loads(x)["problem_id"] for x in buf.getvalue().splitlines()} == {"p3", "p4"}
    buf = io.StringIO()
    assert export_runs(store, "jsonl", buf, correct=True) == 1  # only run 1 ends on a right answer
    buf = io.StringIO()
    assert export_runs(store, "csv", buf, search="nothing-matches-this") == 0
    assert buf.getvalue().startswith("run_id,")


def test_decision_defaults_survive(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    rid = store.start_run(question="q", max_rounds=1)
    store.add_round(rid, sample_round(0), sample_decision(0, stop=True))
    store.finish_run(rid, "finished")
    buf = io.StringIO()
    export_runs(store, "jsonl", buf)
    path = tmp_path / "x.jsonl"
    path.write_text(buf.getvalue())
    other = Store(tmp_path / "o.db")
    import_jsonl(other, path)
    assert other.decisions_of(1) == [sample_decision(0, stop=True)]


def test_import_checks_the_whole_file_before_writing(tmp_path: Path) -> None:
    src = Store(tmp_path / "s.db")
    rid = src.start_run(question="q", max_rounds=1)
    src.add_round(rid, sample_round(0), sample_decision(0, stop=True))
    src.finish_run(rid, "finished")
    buf = io.StringIO()
    export_runs(src, "jsonl", buf)
    path = tmp_path / "x.jsonl"
    path.write_text(buf.getvalue() + "{not json\n")
    dst = Store(tmp_path / "d.db")
    with pytest.raises(ValueError, match=r"x\.jsonl:2: not JSON .*nothing imported"):
        import_jsonl(dst, path)
    assert dst.count_runs() == 0  # the good first line was not imported either


@pytest.mark.parametrize(("edit", "message"), [
    (lambda run: run["rounds"][0].update(judge="bogus"),
     "round field 'judge' is 'bogus', expected one of exact, math-verify, none, timeout, error"),
    (lambda run: run["rounds"][0].update(obs_agreement=float("nan")),
     "round field 'obs_agreement' is nan, expected a finite number"),
    (lambda run: run["decisions"][0].update(belief=float("inf")),
     "decision field 'belief' is inf, expected a finite number"),
])
def test_import_refuses_values_no_mstui_writes(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    from tests.test_cli_run import assert_one_line_error, mstui

    with Store(tmp_path / "s.db") as src:
        rid = src.start_run(question="q", max_rounds=1, gold="4")
        src.add_round(rid, replace(sample_round(0), judge="exact"),
                      sample_decision(0, stop=True))
        src.finish_run(rid, "finished")
        buf = io.StringIO()
        export_runs(src, "jsonl", buf)
    run = json.loads(buf.getvalue())
    edit(run)
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(run) + "\n")  # Python writes NaN and Infinity as bare words
    dst = tmp_path / "d.db"
    assert_one_line_error(mstui("traces", "import", "--db", str(dst), str(path)),
                          f"x.jsonl:1: {message}; nothing imported")
    with Store(dst) as store:
        assert store.count_runs() == 0
