"""Reasoning rounds in the trace store: thinking and final stored apart, searchable, exported,
re-imported, and a database from before the migration upgraded in place."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

from mstui.core.backend import GenStats, Piece
from mstui.core.loop import score_round
from mstui.core.reasoning import ThinkTags
from mstui.engine.scripted import split_tokens
from mstui.store import Store, export_runs, import_jsonl
from mstui.store.sample import sample_decision
from tests import transcripts as tr

ROOT = Path(__file__).resolve().parent.parent


def reasoning_round(cut: bool = False):  # type: ignore[no-untyped-def]
    response = tr.r1_response(800)
    if cut:
        response = tr.cut_in_thinking(response)
    pieces = [Piece(t) for t in split_tokens(response)]
    stats = GenStats(30, len(pieces), 0, "length" if cut else "stop", 0.1, 2.0)
    return score_round(0, "<｜Assistant｜><think>\n", pieces, stats, [], tr.GOLD,
                       tags=ThinkTags("<think>", "</think>"))


def test_round_trip_search_and_export(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    rid = store.start_run(question=tr.QUESTION, gold=tr.GOLD, max_rounds=2)
    whole, cut = reasoning_round(), reasoning_round(cut=True)
    store.add_round(rid, whole, sample_decision(0))
    store.add_round(rid, replace(cut, index=1), sample_decision(1, stop=True))
    back = store.rounds_of(rid)
    assert back[0] == whole
    assert back[1].truncated and back[1].answer is None and back[1].final == ""
    assert back[0].observation.thinking_tokens == whole.thinking_tokens > 800
    # A word only in the thinking and one only in the final part are both found.
    assert store.search("fairly confident")  # only in the thinking
    assert any(h["round"] == 0 for h in store.search("Final Answer"))
    out = io.StringIO()
    export_runs(store, "jsonl", out)
    obj = json.loads(out.getvalue().splitlines()[0])
    assert obj["rounds"][0]["thinking"] == whole.thinking and obj["rounds"][1]["truncated"] is True
    csv_out = io.StringIO()
    export_runs(store, "csv", csv_out)
    rows = list(csv.DictReader(io.StringIO(csv_out.getvalue())))
    assert rows[0]["round_final"] == whole.final and rows[1]["round_truncated"] == "1"
    path = tmp_path / "runs.jsonl"
    path.write_text(out.getvalue(), "utf-8")
    dst = Store(tmp_path / "dst.db")
    assert import_jsonl(dst, path) == (1, 0)
    assert dst.rounds_of(dst.list_runs()[0]["id"]) == back


def test_shipped_database_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    shutil.copy(ROOT / "traces.db", db)
    with Store(db) as store:
        run = store.list_runs(limit=1)[0]
        r = store.rounds_of(run["id"])[0]
    # Rounds of a model that does not think: no thinking, the whole response is the final part.
    assert r.thinking == "" and r.final is None and not r.truncated and r.final_text == r.response
