"""Pilot tests of the traces, replay (with what-if) and fit screens on deterministic demo traces."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input

from mstui.config import RunConfig
from mstui.core.evaluation import replay_decide
from mstui.core.fitting import ChainFit
from mstui.core.policies import parse_policy
from mstui.engine.scripted import ScriptedBackend
from mstui.store import Store
from mstui.ui.app import MstuiApp, make_app
from mstui.ui.charts import AccuracyChart
from mstui.ui.demo import SCOPE, SCRIPT, demo_store
from mstui.ui.fit import accuracy_rows, detail
from mstui.ui.services import parse_query
from mstui.ui.widgets import DecisionPanel, ProbPanel
from tests.test_ui_live import SIZE, text_of, wait_for


@pytest.fixture()
def demo(tmp_path: Path) -> tuple[Path, dict]:  # type: ignore[type-arg]
    db = tmp_path / "traces.db"
    return db, demo_store(db, questions=12)


def app_for(db: Path) -> MstuiApp:
    return make_app(RunConfig(), db_path=db, backend_factory=lambda c: ScriptedBackend(SCRIPT))


def screen_text(app: MstuiApp) -> str:
    """What the terminal shows, as plain lines (the rendered screen, not widget state)."""
    return "\n".join("".join(seg.text for seg in strip)
                     for strip in app.screen._compositor.render_strips())


def test_parse_query_splits_filters_from_search_words() -> None:
    assert parse_query("model:m set:gen:L2 correct:no farmer sold") == (
        {"model_like": "m", "problem_set": "gen:L2", "correct": False},
        "farmer sold",
    )
    with pytest.raises(ValueError, match="correct"):
        parse_query("correct:maybe")
    since, _ = parse_query("since:2025-01-31T14:00 until:2025-02-01")
    assert since["since"] == datetime(2025, 1, 31, 14, 0, tzinfo=UTC)
    assert since["until"] == datetime(2025, 2, 2, tzinfo=UTC)  # a bare date: that whole day
    for bad, needle in (("since:yesterday", "since: takes a date"),
                        ("until:2025-13-01", "until: takes a date"),
                        ("status:done", "status: takes one of")):
        with pytest.raises(ValueError, match=needle):
            parse_query(bad)


def test_fit_overlap_counts_the_runs_a_fit_was_made_from() -> None:
    from mstui.ui.services import fit_overlap, sample_line
    from tests.helpers import make_record

    fit = {"id": 7, "model": "m", "problem_set": "gen", "strategy": "reanswer", "level": None,
           "created_at": "2025-06-01T00:00:00.000+00:00"}
    labelled = [make_record(0, "p", "r", "5", correct=True)]
    unlabelled = [make_record(0, "p", "r", "5", correct=None)]

    def run(started: str, rounds=labelled, **kw):  # type: ignore[no-untyped-def]
        return {"model": "m", "problem_set": "gen", "strategy": "reanswer", "level": 2,
                "started_at": started, "rounds": rounds, "fit_id": None} | kw

    before, after = "2025-05-01T00:00:00.000+00:00", "2025-07-01T00:00:00.000+00:00"
    runs = [run(before), run(before), run(after), run(before, problem_set="other"),
            run(before, rounds=unlabelled), run(before, fit_id=7)]
    # In: the two labelled runs of its scope from before it; out: a later run, another set,
    # a run with no label to learn from, and a run that used the fit (so came after it).
    assert fit_overlap(fit, runs) == 2
    assert fit_overlap(fit | {"problem_set": None}, runs) == 3  # a scope over every set
    assert fit_overlap(fit | {"level": 3}, runs) == 0
    assert sample_line(7, 2, 6).startswith("IN-SAMPLE: fit #7 was made from 2 of these 6 runs")
    assert sample_line(7, 0, 6) == "out-of-sample: fit #7 was made from none of these runs"


def test_model_filter_matches_part_of_the_name_literally(tmp_path: Path) -> None:
    from mstui.store.sample import sample_round

    with Store(tmp_path / "t.db") as store:
        for model in ("SmolLM2-135M-Instruct.Q4_1.gguf", "qwen_50%.gguf", "qwenX50.gguf"):
            rid = store.start_run(question="q", max_rounds=1, model=model)
            store.add_round(rid, sample_round(0))
            store.finish_run(rid, "finished")
        assert store.count_runs(model_like="smollm2") == 1  # any case, any part
        assert store.count_runs(model_like="gguf") == 3
        assert store.count_runs(model_like="_50%") == 1  # LIKE's wildcards taken literally
        assert store.count_runs(model="smollm2") == 0  # scopes and fits still match exactly


async def open_traces(pilot, app: MstuiApp):  # type: ignore[no-untyped-def]
    await pilot.press("t")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "TracesScreen")
    screen = app.screen
    await wait_for(pilot, lambda: screen.query_one(DataTable).row_count > 0)
    return screen


async def test_traces_lists_filters_and_searches(demo) -> None:  # type: ignore[no-untyped-def]
    db, _ = demo
    with Store(db) as store:
        total = store.count_runs()
        hits = store.count_runs(search="farmer")
        wrong = store.count_runs(correct=False)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_traces(pilot, app)
        table = screen.query_one(DataTable)
        assert table.row_count == total == 16
        assert f"of {total}" in text_of(screen.query_one("#traces-info"))
        await pilot.press("slash", *"farmer", "enter")
        await wait_for(pilot, lambda: f"of {hits} " in text_of(screen.query_one("#traces-info")))
        assert table.row_count == hits
        screen.query_one(Input).value = "correct:no"
        await pilot.press("slash", "enter")
        await wait_for(pilot, lambda: f"of {wrong} " in text_of(screen.query_one("#traces-info")))
        assert table.row_count == wrong


async def test_traces_model_since_search_question_and_mark(demo) -> None:  # type: ignore[no-untyped-def]
    db, _ = demo
    with Store(db) as store:
        runs = {r["id"]: store.get_run(r["id"]) for r in store.list_runs(limit=-1)}
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_traces(pilot, app)
        table = screen.query_one(DataTable)
        info = screen.query_one("#traces-info")
        # The question is a column; the run id cell has a gutter for the mark.
        newest = max(runs)
        row = [str(c) for c in table.get_row(str(newest))]
        assert row[0] == f"  {newest}" and row[-1] == runs[newest]["question"][:60]
        # model: takes part of the name, in any case.
        screen.query_one(Input).value = "model:SCRIP"
        await pilot.press("slash", "enter")
        await wait_for(pilot, lambda: "matching 'model:SCRIP'" in text_of(info))
        assert table.row_count == 16
        screen.query_one(Input).value = "model:llama"
        await pilot.press("slash", "enter")
        await wait_for(pilot, lambda: "of 0 " in text_of(info))
        # A date that is no date is said in one line; the rows stay, the box keeps the focus.
        screen.query_one(Input).value = ""
        await pilot.press("slash", "enter")
        await wait_for(pilot, lambda: table.row_count == 16)
        screen.query_one(Input).value = "since:last-week"
        await pilot.press("slash", "enter")
        await wait_for(pilot, lambda: "since: takes a date" in text_of(info))
        assert "last-week" in text_of(info) and table.row_count == 16
        assert isinstance(screen.focused, Input) and screen.query_text == ""
        # A search shows, per run, the round it matched first and a snippet from it.
        screen.query_one(Input).value = "farmer"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "matching 'farmer'" in text_of(info))
        assert [str(c.label) for c in table.columns.values()][-2] == "match (round: text)"
        for key in table.rows:
            run = runs[int(str(key.value))]
            hits = [r.index for r in run["rounds"] if "farmer" in r.response.lower()]
            cell = str(table.get_row(key)[-2])
            extra = f" (+{len(hits) - 1})" if len(hits) > 1 else ""
            assert cell.startswith(f"r{hits[0]}{extra}: ") and "farmer" in cell.lower(), cell
        # A marked run shows the mark and its whole id on screen ("● 16", never "● 1").
        table.move_cursor(row=table.get_row_index(str(newest)))
        await pilot.press("space")
        await pilot.pause(0.05)
        assert f"● {newest} " in screen_text(app)
        assert str(table.get_row(str(newest))[0]) == f"● {newest}"
        await pilot.press("space")  # unmarked: the gutter is blank again
        await pilot.pause(0.05)
        assert str(table.get_row(str(newest))[0]) == f"  {newest}"


async def test_traces_pages_in_sql(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    demo_store(db, questions=60)  # 64 runs: two pages of 50
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_traces(pilot, app)
        assert screen.query_one(DataTable).row_count == 50
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: screen.query_one(DataTable).row_count == 14)
        assert "runs 51–64 of 64" in text_of(screen.query_one("#traces-info"))


async def test_replay_shows_stored_numbers_and_what_if_matches_core(demo) -> None:  # type: ignore[no-untyped-def]
    db, info = demo
    run_id = info["markov"][0]
    with Store(db) as store:
        stored = store.get_run(run_id)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_traces(pilot, app)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(str(run_id)))
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ReplayScreen")
        replay = app.screen
        await wait_for(pilot, lambda: replay.run is not None)
        await pilot.pause(0.05)
        d0 = stored["decisions"][0]
        prob = text_of(replay.query_one(ProbPanel))
        assert f"q_t {d0.belief:.3f}" in prob and f"π {d0.pi:.3f}" in prob
        assert f"λ {d0.lam:.3f}" in prob and f"fit #{info['fit_id']}" in prob
        assert d0.reason in text_of(replay.query_one(DecisionPanel))
        await pilot.press("right")
        d1 = stored["decisions"][1]
        assert f"q_t {d1.belief:.3f}" in text_of(replay.query_one(ProbPanel))
        # What-if: a price κ high enough to stop early; the stop round must be the core's.
        kappa = 0.002
        replay.query_one("#wi-price", Input).value = str(kappa)
        await pilot.press("w")
        await pilot.pause(0.05)
        fit: ChainFit = info["fit"]
        expected = int(
            replay_decide([stored["rounds"]], parse_policy("markov", fit, price=kappa), 4)[0]
        )
        assert expected < 3  # κ makes markov stop before the cap
        wi = replay.last_what_if
        assert wi is not None and wi.stop_round == expected
        assert wi.answer == stored["rounds"][expected].answer
        assert wi.tokens == sum(r.tokens for r in stored["rounds"][: expected + 1])
        assert f"stop after round {expected}" in text_of(replay.query_one("#whatif"))
        assert replay.cursor == expected
        # The same what-if over the whole set, one key away.
        await pilot.press("W")
        await wait_for(pilot, lambda: replay.last_set is not None)
        result = replay.last_set
        assert result.runs == 16  # every finished run of gen:L2 × scripted × reanswer
        assert result.earlier + result.later + result.same == result.runs
        # The run's own fit was made from the 12 pool runs (the 4 markov runs came after it
        # and used it): the report says the number is in-sample.
        assert replay.last_in_sample == len(info["pool"]) == 12
        assert f"IN-SAMPLE: fit #{info['fit_id']} was made from 12 of these 16 runs" in (
            text_of(replay.query_one("#whatif")))
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TracesScreen")


async def test_what_if_inputs_are_labelled_and_one_tab_away(demo) -> None:  # type: ignore[no-untyped-def]
    db, _ = demo
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_traces(pilot, app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "run", None) is not None)
        replay = app.screen
        await pilot.pause(0.05)
        # Each input is named on screen, also once it holds a value (placeholders vanish then).
        assert replay.query_one("#wi-policy", Input).value and replay.query_one("#wi-price",
                                                                              Input).value
        shown = screen_text(app)
        for label in ("policy", "κ (price per token)", "N_max (round cap)", "fit"):
            assert f"▔ {label} ▔" in shown, label
        assert "Tab: edit the inputs" in text_of(replay.query_one("#whatif"))
        # One Tab from the replay reaches the first input; more Tabs walk the row in order.
        assert replay.focused is None
        order = []
        for _ in range(4):
            await pilot.press("tab")
            order.append(replay.focused.id if replay.focused else None)
        assert order == ["wi-policy", "wi-price", "wi-rounds", "wi-fit"]
        assert screen is not replay


async def test_fit_screen_shows_scope_and_refits(demo) -> None:  # type: ignore[no-untyped-def]
    db, info = demo
    fit: ChainFit = info["fit"]
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "FitScreen")
        screen = app.screen
        await wait_for(pilot, lambda: screen.shown is not None)
        assert screen.shown.fit_id == info["fit_id"]
        assert screen.shown.fit.a == pytest.approx(fit.a)
        names = [c["name"] for c in screen.shown.checks]
        assert names == ["accuracy-by-round", "time-homogeneity", "first-order-markov",
                         "question-heterogeneity"]
        # The plot draws the core's check rows: observed vs p_n = chain.accuracy(p̂0, n).
        rows = accuracy_rows(screen.shown)
        assert [r["round"] for r in rows] == [0, 1, 2, 3]
        chart = screen.query_one(AccuracyChart)
        assert chart.series["observed"] == [(float(r["round"]), r["observed"]) for r in rows]
        assert chart.series["predicted p_n"] == [
            (float(n), pytest.approx(fit.chain.accuracy(fit.p0, n))) for n in range(4)
        ]
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(detail(screen.shown))  # the text table stays next to the plot
        table_text = console.export_text()
        assert all(f"{r['observed']:.3f}" in table_text for r in rows)
        await pilot.press("r")
        await wait_for(
            pilot,
            lambda: screen.shown is not None and screen.shown.fit_id != info["fit_id"],
            timeout=20,
        )
        new = screen.shown.fit
        assert new is not None
    with Store(db) as store:
        assert len(store.fits()) == 2
        saved = store.latest_fit(SCOPE)
        # Refit from the UI saves what `mstui fit` saves: checks keyed by name and the
        # observation model the live markov policy filters with.
        assert saved is not None and "obs_model" in saved[1]
        assert set(saved[1]["checks"]) == {"accuracy-by-round", "time-homogeneity",
                                           "first-order-markov", "question-heterogeneity"}
    # The refit counts every stored round of the scope: the pool plus the markov runs.
    assert new.n_rounds == sum(
        len(Store(db).get_run(i)["rounds"]) for i in info["pool"] + info["markov"]
    )
