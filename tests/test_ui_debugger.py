"""The stopping debugger (issue 13): the why-view, shadow beliefs, pauses and run-to-end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Input

from mstui.core.belief import belief_trajectory
from mstui.core.explain import explain_round
from mstui.core.policies import MarkovPolicy, parse_policy
from mstui.store import Store
from mstui.ui.demo import demo_store
from mstui.ui.replay import ReplayScreen
from mstui.ui.widgets import DecisionPanel, ProbPanel, RoundStrip, StreamView
from tests.test_ui_live import SIZE, border_of, scripted_app, text_of, wait_for

ROOT = Path(__file__).resolve().parent.parent


def console_text(renderable) -> str:  # type: ignore[no-untyped-def]
    """A Rich renderable (a table, …) as plain text."""
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def why_text(app) -> str:  # type: ignore[no-untyped-def]
    """The open why-view of the screen on top, as plain text."""
    view = app.screen.query_one(StreamView)
    assert view.overlay_body is not None
    assert "why:" in str(view.border_title)
    return console_text(view.overlay_body)


async def test_fit_is_shown_at_start_up_and_shadowed_under_fixed(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    fit = demo_store(db, questions=8)["fit"]
    app = scripted_app(db, rounds=3, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        prob = app.live.query_one(ProbPanel)
        # Before any run: the fit as loaded, its p̂₀, and that fixed does not read it.
        await wait_for(pilot, lambda: "fit #1" in text_of(prob))
        assert f"p̂₀ {fit.p0:.3f}" in text_of(prob)
        assert "shadow belief: policy fixed:2 does not read it" in text_of(prob)
        assert "no fit" not in text_of(prob)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 3)
        d = app.live.decisions[-1]
        assert d.policy == "fixed:2" and d.belief is None  # fixed decides without a belief
        q = belief_trajectory(fit.chain, fit.p0, [r.observation for r in app.live.records], None)
        assert f"q_t {q[-1]:.3f}" in text_of(prob) and "shadow" in text_of(prob)
        # What markov would have done, beside the policy's own decision.
        shadow = MarkovPolicy(fit, None, price=0.0).decide(app.live.records, 3)
        panel = text_of(app.live.query_one(DecisionPanel))
        assert f"markov would {shadow.action.upper()}: {shadow.reason}" in " ".join(panel.split())


async def test_belief_threshold_breakpoint_fires_under_fixed(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    fit = demo_store(db, questions=8)["fit"]
    q0, q1 = fit.p0, fit.chain.accuracy(fit.p0, 1)  # predict-only beliefs of rounds 0 and 1
    theta = round((q0 + q1) / 2, 4)
    app = scripted_app(db, rounds=3, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("3")
        await pilot.press(*str(theta), "enter")
        assert app.worker.breakpoints.threshold == pytest.approx(theta)
        assert f"q↔{theta:.2f}" in text_of(app.live.query_one("#status"))
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: app.worker.paused)
        assert len(app.live.records) == 2
        assert f"belief crossed {theta:.2f}" in border_of(app.live.query_one(DecisionPanel))
        await pilot.press("space")
        await wait_for(pilot, lambda: not app.worker.busy)
        # A bad θ keeps the dialog open with a one-line reason; empty turns it off.
        await pilot.press("3")
        box = app.screen.query_one("#number-input", Input)
        assert box.value == f"{theta:g}"  # the dialog starts from the armed θ
        box.value = ""
        await pilot.press(*"1.5", "enter")
        assert "between 0 and 1" in str(app.screen.query_one("#price-error").render())
        box.value = ""
        await pilot.press("enter")
        assert app.worker.breakpoints.threshold is None


async def test_e_runs_to_the_end_past_armed_breakpoints(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    app = scripted_app(db, rounds=4, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        # Step mode and the answer breakpoint: every decision would pause.
        await pilot.press("s", "2", "n", "r")
        await wait_for(pilot, lambda: app.worker.paused)
        assert len(app.live.records) == 1
        await pilot.press("e")
        # A pause after `e` would block the run forever; it must finish on its own.
        await wait_for(pilot, lambda: not app.worker.busy)
        assert len(app.live.records) == 4 and not app.worker.paused
        panel = app.live.query_one(DecisionPanel)
        assert not panel.has_class("-paused") and "PAUSED" not in border_of(panel)
        # `e` left step mode; the armed breakpoint stays armed, and `e` lasts one run only.
        assert not app.worker.step_mode and app.worker.breakpoints.answer_change
        await pilot.press("s", "r")
        await wait_for(pilot, lambda: app.worker.paused)
        assert app.worker.to_end is False
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.worker.busy)


async def test_live_browse_and_why_under_fixed(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    fit = demo_store(db, questions=8)["fit"]
    app = scripted_app(db, rounds=3, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 3)
        records = list(app.live.records)
        await pilot.press("left")
        assert app.live.cursor == 1
        assert app.live.query_one(StreamView).text.strip() == records[1].response.strip()
        assert "round 1 of 2" in str(app.live.query_one(StreamView).border_title)
        assert "after round 1" in text_of(app.live.query_one(DecisionPanel))
        assert "reverse" in str(app.live.query_one(RoundStrip).render().spans)  # the cursor
        await pilot.press("y")
        text = why_text(app)  # in place of the round text
        e = explain_round(fit, None, records, 1)
        assert f"q_1 = {e.posterior:.3f}" in text and "predict-only" in text
        assert f"{e.prior:.3f}" in text and "chain prediction" in text
        assert "fixed:2: CONTINUE" in text  # the policy's own decision beside markov's rule
        await pilot.press("right")  # the why-view follows the browsed round
        assert "q_2 = " in why_text(app)
        await pilot.press("escape")
        assert app.live.query_one(StreamView).overlay_body is None
        assert app.live.cursor is None  # back on the latest round
        assert app.live.query_one(StreamView).text.strip() == records[2].response.strip()


async def test_why_view_of_a_stored_run_shows_features_ratios_and_the_cores_posterior(
    tmp_path: Path,
) -> None:
    db = tmp_path / "traces.db"
    shutil.copy(ROOT / "traces.db", db)  # the shipped pool: fixed runs and a fit with features
    with Store(db) as store:
        run = store.get_run(int(store.list_runs(limit=1)[0]["id"]))
    app = scripted_app(db, rounds=3, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        screen = ReplayScreen(run["id"])
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.run is not None)
        fits = app.traces.fits_for(run)
        assert fits and fits[0].obs_model is not None
        fit, om = fits[0].fit, fits[0].obs_model
        rounds = [r for r in run["rounds"] if r.finish_reason not in ("cancelled", "error")]
        t = min(2, len(rounds) - 1)
        await pilot.press(*["right"] * t)
        assert "shadow belief" in text_of(screen.query_one(ProbPanel))
        await pilot.press("y")
        text = why_text(app)
        assert fit is not None
        e = explain_round(fit, om, rounds, t)
        # The core's belief is the one markov decides from (here a mixture of chains).
        d = parse_policy("markov", fit, om).decide(rounds[: t + 1], 10)
        assert e.posterior == pytest.approx(d.belief, abs=1e-12)
        assert f"q_t {d.belief:.3f}" in text_of(screen.query_one(ProbPanel))
        if fit.mixture:
            assert "mixture of 2 chains" in text
        assert f"q_{t} = {e.posterior:.3f}" in text
        for ev in e.evidence:
            assert ev.name in text and f"×{ev.ratio:.3g}" in text
        assert "κ*" in text or "stops at every κ" in text
        assert f"{e.prior:.3f}" in text


async def test_why_without_a_fit_says_what_to_do(tmp_path: Path) -> None:
    app = scripted_app(tmp_path / "traces.db", rounds=2, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("y")  # nothing run yet
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 2)
        await pilot.press("y")
        assert app.live.query_one(StreamView).overlay_body is None
        texts = [str(n.message) for n in app._notifications]
        assert any("no finished round yet" in t for t in texts)
        assert any("run `mstui sweep`, then `mstui fit`" in t for t in texts)


async def test_fit_screen_shows_pi_and_lambda_with_the_clis_intervals(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    db = tmp_path / "traces.db"
    shutil.copy(ROOT / "traces.db", db)
    out = subprocess.run([sys.executable, "-m", "mstui", "fit", "--db", str(db), "--json"],
                         capture_output=True, text=True, check=True).stdout
    fit = json.loads(out)["fits"][0]  # `mstui fit` stores the refit: the screen shows it
    pi, lam = fit["pi"], fit["lam"]
    app = scripted_app(db, rounds=2, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("f")
        detail = app.screen.query_one("#fit-body")
        await wait_for(pilot, lambda: "π = " in console_text(detail.content), timeout=20)
        text = console_text(detail.content)
        assert f"π = {pi['mean']:.4f} [{pi['lo']:.4f}, {pi['hi']:.4f}]" in text
        assert f"λ = {lam['mean']:.4f} [{lam['lo']:.4f}, {lam['hi']:.4f}]" in text


async def test_sparse_fit_is_shown_flagged_and_not_recorded_as_used(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    fit = demo_store(db, questions=2)["fit"]  # 2 questions: a rate rests on < 5 transitions
    assert fit.sparse_reason() is not None
    app = scripted_app(db, rounds=3)  # auto: markov would refuse the sparse fit
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        prob = app.live.query_one(ProbPanel)
        await wait_for(pilot, lambda: "fit #1" in text_of(prob))
        assert "the fit is sparse" in text_of(prob) and "drives no decision" in text_of(prob)
        assert "(from the prior: sparse fit)" in text_of(prob)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.decisions) == 3)
        assert app.live.decisions[-1].policy.startswith("fixed")  # auto fell back
        run_id = app.live.run_id
    with Store(db) as store:
        run = store.get_run(run_id)  # type: ignore[arg-type]
    assert run["fit_id"] is None  # the run used no fit, so it records none


async def test_paused_why_explains_the_round_that_waits_and_c_at_the_cap_is_refused(
    tmp_path: Path,
) -> None:
    db = tmp_path / "traces.db"
    demo_store(db, questions=8)
    app = scripted_app(db, rounds=2, policy="fixed")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("s", "n", "r")
        await wait_for(pilot, lambda: app.worker.paused)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.worker.paused and len(app.live.records) == 2)
        await pilot.press("y")  # paused after round 1: its decision waits, so explain round 1
        assert "q_1 = " in why_text(app)
        await pilot.press("pagedown", "home")  # the why-view scrolls from the keyboard
        await pilot.press("escape")
        # Round 1 is the last one the cap allows: `c` cannot continue, the pause stays.
        await pilot.press("c")
        await pilot.pause(0.3)
        assert app.worker.paused
        assert any("cannot continue" in str(n.message) for n in app._notifications)
        await pilot.press("x")
        await wait_for(pilot, lambda: not app.worker.busy)
        last = app.live.decisions[-1]
        # x agrees with the policy (the cap stops it): that is no override.
        assert last.action == "stop" and last.override is None


async def test_gate_shows_the_filtered_belief_as_a_shadow(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    fit = demo_store(db, questions=8)["fit"]
    app = scripted_app(db, rounds=3, policy="gate")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.press("n", "r")
        await wait_for(pilot, lambda: not app.worker.busy and app.live.decisions)
        prob = text_of(app.live.query_one(ProbPanel))
        q = belief_trajectory(fit.chain, fit.p0, [r.observation for r in app.live.records],
                              None)[-1]
        # gate plans from p̂₀; the panel shows the filter's belief and says it is a shadow.
        assert f"q_t {q:.3f}" in prob and "plans from p̂₀" in prob
