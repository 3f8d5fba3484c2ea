"""Pilot tests of the live screen: runs stream and are stored, step-through, cancel, errors."""

from __future__ import annotations

import time
from pathlib import Path

from mstui.config import RunConfig
from mstui.core.backend import GenSettings
from mstui.engine.scripted import ScriptedBackend
from mstui.store import Store
from mstui.ui.app import MstuiApp, make_app
from mstui.ui.demo import SCRIPT, demo_store
from mstui.ui.widgets import DecisionPanel, ProbPanel, RoundStrip, StreamView

SIZE = (130, 42)


def scripted_app(
    db: Path | None,
    *,
    tps: float | None = None,
    rounds: int = 4,
    policy: str | None = None,
    responses: list[str] | None = None,
) -> MstuiApp:
    """The app on a scripted backend; policy None = auto (markov when a fit exists)."""
    config = RunConfig(max_rounds=rounds, policy=policy or "fixed")
    return make_app(
        config,
        db_path=db,
        problem_set="gen",
        level=2,
        auto_policy=policy is None,
        backend_factory=lambda c: ScriptedBackend(responses or SCRIPT, tokens_per_second=tps),
    )


async def wait_for(pilot, cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Let the app run until cond() holds (or fail after `timeout` seconds)."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out waiting for the app"
        await pilot.pause(0.02)


def text_of(widget) -> str:  # type: ignore[no-untyped-def]
    """The plain text a Static shows."""
    return str(widget.render())


def border_of(widget) -> str:  # type: ignore[no-untyped-def]
    """A widget's border title and subtitle as plain text."""
    from rich.text import Text

    return " | ".join(Text.from_markup(t or "").plain
                      for t in (widget.border_title, widget.border_subtitle))


async def test_scripted_run_streams_rounds_and_stores_them(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    app = scripted_app(db, rounds=4)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n")
        question = app.live.query_one("#question").value  # type: ignore[attr-defined]
        assert question and app.live.problem is not None
        await pilot.press("r")
        await wait_for(pilot, lambda: app.worker.busy is False and len(app.live.decisions) == 4)
        await pilot.pause(0.05)
        live = app.live
        assert [r.answer for r in live.records] == ["18", "17", "17", "17"]
        strip = text_of(live.query_one(RoundStrip))
        for i, ans in enumerate(["18", "17", "17", "17"]):
            assert f"#{i} {ans}" in strip
        # Every token reached the screen: the drawn text is the last round's whole response.
        view = live.query_one(StreamView)
        assert view.final == view.text == SCRIPT[3] and not view.reasoning
        assert "fixed:3" in text_of(live.query_one(DecisionPanel))
        run_id = live.run_id
    assert run_id is not None
    with Store(db) as store:
        run = store.get_run(run_id)
    assert run["status"] == "finished" and run["question"] == question
    assert [r.answer for r in run["rounds"]] == ["18", "17", "17", "17"]
    assert run["problem_set"] == "gen:L2" and run["gold"] == app.live.problem.answer  # type: ignore[union-attr]
    assert [d.action for d in run["decisions"]] == ["continue", "continue", "continue", "stop"]


async def test_auto_policy_uses_the_fit_and_shows_its_numbers(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    demo_store(db, questions=8)
    app = scripted_app(db, rounds=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 3)
        d = app.live.decisions[-1]
        assert d.policy == "markov" and d.belief is not None
        prob = text_of(app.live.query_one(ProbPanel))
        assert f"q_t {d.belief:.3f}" in prob and f"π {d.pi:.3f}" in prob
        assert "fit #1" in prob
        assert "auto→markov" in text_of(app.live.query_one("#status"))


async def test_tiny_gguf_runs_in_the_worker_thread(tmp_path: Path, tiny_gguf: Path) -> None:
    from mstui.engine.llama_backend import LlamaBackend

    db = tmp_path / "traces.db"
    config = RunConfig(
        model=str(tiny_gguf),
        max_rounds=2,
        policy="fixed",
        gen=GenSettings(max_tokens=12, temperature=0.0),
    )
    app = make_app(
        config,
        db_path=db,
        auto_policy=False,
        backend_factory=lambda c: LlamaBackend(tiny_gguf, n_ctx=2048, n_gpu_layers=0),
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: "CPU only" in text_of(app.live.query_one("#status")), timeout=30
        )
        await pilot.press("slash")
        await pilot.press(*"What is 2 + 2?")
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: not app.worker.busy and len(app.live.records) == 2, timeout=60
        )
        records = app.live.records
        assert [r.finish_reason for r in records] == ["length", "length"], records[-1].error
        assert app.live.query_one(StreamView).final == records[-1].response
        run_id = app.live.run_id
    with Store(db) as store:
        stored = store.get_run(run_id)  # type: ignore[arg-type]
    assert [r.response for r in stored["rounds"]] == [r.response for r in records]
    assert stored["model"] == tiny_gguf.name


async def test_step_mode_pauses_steps_and_force_stop_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    app = scripted_app(db, rounds=4, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("s", "n", "r")
        await wait_for(pilot, lambda: app.worker.paused)
        panel = app.live.query_one(DecisionPanel)
        assert len(app.live.records) == 1 and "PAUSED step mode" in border_of(panel)
        assert "space step" in border_of(panel) and panel.has_class("-paused")
        await pilot.press("space")  # accept the decision after round 0, pause after round 1
        await wait_for(pilot, lambda: app.worker.paused and len(app.live.records) == 2)
        await pilot.press("x")  # force stop
        await wait_for(pilot, lambda: not app.worker.busy)
        await pilot.pause(0.05)
        run_id = app.live.run_id
        assert len(app.live.records) == 2
        assert app.live.decisions[-1].override == "stop"
    with Store(db) as store:
        run = store.get_run(run_id)  # type: ignore[arg-type]
    assert run["n_rounds"] == 2 and run["status"] == "finished"
    assert [(d.action, d.override) for d in run["decisions"]] == [
        ("continue", None),
        ("continue", "stop"),
    ]


async def test_force_continue_and_answer_change_breakpoint(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    # repeat stops when the answer repeats: rounds 1 and 2 agree, so it would stop after 2.
    app = scripted_app(db, rounds=4, policy="repeat")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("2", "n", "r")  # breakpoint: the answer changes (18 → 17 at round 1)
        await wait_for(pilot, lambda: app.worker.paused)
        assert len(app.live.records) == 2
        assert "answer changed" in border_of(app.live.query_one(DecisionPanel))
        await pilot.press("e")  # run to end: round 2 repeats → repeat stops
        await wait_for(pilot, lambda: not app.worker.busy)
        run_id = app.live.run_id
    with Store(db) as store:
        run = store.get_run(run_id)  # type: ignore[arg-type]
    assert run["n_rounds"] == 3 and run["decisions"][-1].action == "stop"


async def test_escape_cancels_the_round_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    long = " ".join(["word"] * 400) + " The answer is 7."
    app = scripted_app(db, tps=50, rounds=3, policy="fixed", responses=[long])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: len(app.live.query_one(StreamView).text) > 20)
        produced = app.worker.tokens.produced  # the screen may be a frame behind the model
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.worker.busy, timeout=5)
        await pilot.pause(0.05)
        records = app.live.records
        run_id = app.live.run_id
        assert records[-1].finish_reason == "cancelled"
        assert "cancelled" in text_of(app.live.query_one(RoundStrip))
    with Store(db) as store:
        run = store.get_run(run_id)  # type: ignore[arg-type]
    assert run["status"] == "cancelled"
    assert run["rounds"][-1].finish_reason == "cancelled"
    # Stopped at the next token, not at the round's end: the 404-word response was cut within
    # a few words of what the model had produced when Esc was pressed.
    assert len(run["rounds"][-1].response.split()) <= produced + 10 < 404


async def test_missing_model_is_a_status_line_not_a_crash(tmp_path: Path) -> None:
    config = RunConfig(model=str(tmp_path / "nope.gguf"))
    app = make_app(config, db_path=tmp_path / "t.db")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "model failed" in text_of(app.live.query_one("#status")))
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy)
        assert any("no model" in n.message for n in app._notifications)
        assert app.is_running


async def test_unreadable_database_still_runs_without_recording(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    app = scripted_app(bad, rounds=2, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 2)
        assert app.live.run_id is None
        assert any("not recording" in n.message for n in app._notifications)


async def test_help_screen_lists_keys(tmp_path: Path) -> None:
    app = scripted_app(tmp_path / "t.db")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is app.live
