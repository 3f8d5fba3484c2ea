"""The grading is one key away (`a`) wherever ✓/✗ is shown: live strip, replay, traces."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from textual.widgets import DataTable, Static

from mstui.store import Store
from mstui.ui.demo import demo_store
from mstui.ui.grading import GradingScreen, grading_table
from tests.test_ui_live import SIZE, scripted_app, wait_for
from tests.test_ui_traces import app_for, open_traces


def shown(screen: GradingScreen) -> str:
    """Everything the modal shows, as plain text."""
    console = Console(file=io.StringIO(), width=160)
    for static in screen.query(Static):
        console.print(static.content)
    return console.file.getvalue()  # type: ignore[attr-defined]


async def test_live_run_grading_shows_extracted_text_gold_and_judge(tmp_path: Path) -> None:
    app = scripted_app(tmp_path / "traces.db", rounds=4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "r")  # a generated problem has gold: its rounds are graded
        await wait_for(pilot, lambda: not app.live.running and len(app.live.records) == 4,
                       timeout=30)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, GradingScreen))
        screen = app.screen
        assert isinstance(screen, GradingScreen) and len(screen.rounds) == 4
        text = shown(screen)
        assert "gold (as given): " + str(screen.gold) in text
        first = screen.rounds[0]
        assert first.answer_text is not None and first.answer_text in text
        assert first.judge in ("exact", "math-verify") and first.judge in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, GradingScreen))


async def test_replay_and_traces_open_the_same_grading(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    info = demo_store(db, questions=4)
    run_id = info["markov"][0]
    with Store(db) as store:
        stored = store.get_run(run_id)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_traces(pilot, app)
        table = screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(str(run_id)))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, GradingScreen))
        grading = app.screen
        assert isinstance(grading, GradingScreen)
        assert [r.index for r in grading.rounds] == [r.index for r in stored["rounds"]]
        assert f"gold (as given): {stored['gold']}" in shown(grading)
        await pilot.press("a")  # the same key closes it
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ReplayScreen")
        replay = app.screen
        await wait_for(pilot, lambda: replay.run is not None)  # type: ignore[attr-defined]
        await pilot.press("right", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, GradingScreen))
        assert app.screen.cursor == 1  # type: ignore[attr-defined]


def test_table_marks_ungraded_rounds() -> None:
    import dataclasses

    from mstui.store.sample import sample_round

    rounds = [sample_round(0, answer="7", correct=True),
              dataclasses.replace(sample_round(1, answer="9^{9^{9^{9}}}", correct=None),
                                  judge="timeout", grade_error="took longer than 3 s")]
    rounds[0] = dataclasses.replace(rounds[0], judge="exact")
    console = Console(file=io.StringIO(), width=160)
    console.print(grading_table(rounds, cursor=1))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "✓" in out and "?" in out and "timeout" in out and "took longer than 3 s" in out
