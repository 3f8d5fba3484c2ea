"""Pilot tests of the traces, replay (with what-if) and fit screens on deterministic demo traces."""

from __future__ import annotations

import io
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


def test_parse_query_splits_filters_from_search_words() -> None:
    assert parse_query("model:m set:gen:L2 correct:no farmer sold") == (
        {"model": "m", "problem_set": "gen:L2", "correct": False},
        "farmer sold",
    )
    with pytest.raises(ValueError, match="correct"):
        parse_query("correct:maybe")


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
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TracesScreen")


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
