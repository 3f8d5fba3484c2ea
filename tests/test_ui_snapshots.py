"""Snapshots of the live, traces, replay, compare and fit screens (fixed size, scripted data)."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from mstui.config import RunConfig
from mstui.engine.scripted import ScriptedBackend
from mstui.ui.app import MstuiApp, make_app
from mstui.ui.demo import SCRIPT, demo_store
from tests.test_ui_live import wait_for

SIZE = (130, 42)


def demo_app(tmp_path: Path) -> MstuiApp:
    db = tmp_path / "traces.db"
    demo_store(db, questions=12)
    # Timings vary from run to run, so snapshots hide them.
    return make_app(
        RunConfig(max_rounds=4),
        db_path=db,
        level=2,
        show_timings=False,
        backend_factory=lambda c: ScriptedBackend(SCRIPT),
    )


async def settle(pilot, app: MstuiApp) -> None:  # type: ignore[no-untyped-def]
    await pilot.pause(0.2)
    app.clear_notifications()
    await pilot.pause(0.1)


def test_live_screen_after_a_run(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = demo_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 4)
        await settle(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_traces_screen(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = demo_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("t")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TracesScreen")
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 16)
        await settle(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_replay_screen_with_what_if(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = demo_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("t")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TracesScreen")
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 16)
        await pilot.press("enter")  # newest first: a markov run
        await wait_for(pilot, lambda: getattr(app.screen, "run", None) is not None)
        app.screen.query_one("#wi-price").value = "0.002"  # type: ignore[attr-defined]
        await pilot.press("w")
        await settle(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_fit_screen(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = demo_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("f")
        await wait_for(pilot, lambda: getattr(app.screen, "shown", None) is not None)
        await settle(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_compare_screen(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = demo_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await pilot.press("t")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TracesScreen")
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 16)
        await pilot.press("space", "down", "down", "down", "down", "space", "c")  # runs 16, 12
        await wait_for(pilot, lambda: getattr(app.screen, "columns", None) is not None)
        await settle(pilot, app)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def paused_app(tmp_path: Path, size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """The live screen paused by a breakpoint after round 1, in step mode, at `size`."""
    app = demo_app(tmp_path)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("2", "n", "r")  # breakpoint: the answer changes (at round 1)
        await wait_for(pilot, lambda: app.worker.paused)
        await settle(pilot, app)

    return app, run_before


def test_breakpoint_pause_at_80x24(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, run_before = paused_app(tmp_path, (80, 24))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_breakpoint_pause_at_160x48(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, run_before = paused_app(tmp_path, (160, 48))
    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)
