"""Pilot tests: what-if under another stored fit in replay, and two runs compared side by side."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Select

from mstui.core.evaluation import replay_decide
from mstui.core.fitting import ChainFit, fit_chain
from mstui.core.policies import parse_policy
from mstui.store import Store
from mstui.ui.compare import MAX_DIFF_WORDS, RunColumn, diff_text, response_diff
from mstui.ui.demo import demo_history, demo_store
from tests.test_ui_live import SIZE, text_of, wait_for
from tests.test_ui_traces import app_for, open_traces


@pytest.fixture()
def two_fits(tmp_path: Path) -> tuple[Path, dict, int, ChainFit]:  # type: ignore[type-arg]
    """The demo traces plus a second, detrimental fit for the same model × strategy."""
    db = tmp_path / "traces.db"
    info = demo_store(db, questions=12)
    hs = [demo_history(i, a=0.6, b=0.05) for i in range(30)]
    fit2 = fit_chain(
        [f"q{i}" for i, h in enumerate(hs) for _ in h],
        [r.index for h in hs for r in h],
        [bool(r.correct) for h in hs for r in h],
        scope="scripted × gen:L3 × reanswer",
    )
    with Store(db) as store:
        fit2_id = store.save_fit(
            {"model": "scripted", "problem_set": "gen:L3", "strategy": "reanswer"},
            fit2.to_dict(),
        )
    return db, info, fit2_id, fit2


async def open_replay(pilot, app, run_id: int):  # type: ignore[no-untyped-def]
    screen = await open_traces(pilot, app)
    table = screen.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(str(run_id)))
    await pilot.press("enter")
    await wait_for(pilot, lambda: getattr(app.screen, "run", None) is not None)
    return app.screen


async def test_what_if_with_another_stored_fit_matches_the_core(two_fits) -> None:  # type: ignore[no-untyped-def]
    db, info, fit2_id, fit2 = two_fits
    run_id = info["markov"][0]
    with Store(db) as store:
        rounds = store.get_run(run_id)["rounds"]
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        replay = await open_replay(pilot, app, run_id)
        chooser = replay.query_one("#wi-fit", Select)
        assert [f.fit_id for f in replay.fits] == [fit2_id, info["fit_id"]]  # newest first
        assert chooser.value == info["fit_id"]  # the run's own fit is chosen at first
        replay.query_one("#wi-policy", Input).value = "markov"
        replay.query_one("#wi-price", Input).value = "0"
        await pilot.press("w")
        await pilot.pause(0.05)
        own = int(replay_decide([rounds], parse_policy("markov", info["fit"]), 4)[0])
        assert replay.last_what_if.stop_round == own == 3
        # v cycles to the other fit; the what-if is recomputed at once under it.
        await pilot.press("v")
        await wait_for(pilot, lambda: chooser.value == fit2_id)
        await wait_for(pilot, lambda: f"fit #{fit2_id}" in text_of(replay.query_one("#whatif")))
        other = int(replay_decide([rounds], parse_policy("markov", fit2), 4)[0])
        assert other == 0 != own  # a detrimental chain stops at once
        wi = replay.last_what_if
        assert wi.stop_round == other and wi.answer == rounds[other].answer
        assert wi.tokens == rounds[0].tokens
        assert f"would stop after round {other}" in text_of(replay.query_one("#whatif"))
        # The set-wide what-if uses the chosen fit too: made from gen:L3 runs, it has seen
        # none of these gen:L2 runs, and the report says so.
        await pilot.press("W")
        await wait_for(pilot, lambda: replay.last_set is not None)
        assert replay.last_in_sample == 0
        assert f"out-of-sample: fit #{fit2_id} was made from none of these runs" in text_of(
            replay.query_one("#whatif"))
        assert replay.last_set.same + replay.last_set.earlier == replay.last_set.runs == 16
        assert replay.last_set.earlier == 16 - sum(
            len(Store(db).get_run(i)["rounds"]) == 1 for i in info["pool"] + info["markov"]
        )


async def test_compare_two_marked_runs_side_by_side(two_fits) -> None:  # type: ignore[no-untyped-def]
    db, info, _, _ = two_fits
    a_id, b_id = info["pool"][0], info["markov"][1]
    with Store(db) as store:
        a, b = store.get_run(a_id), store.get_run(b_id)
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_traces(pilot, app)
        table = screen.query_one(DataTable)
        await pilot.press("c")  # nothing marked: a warning, no screen
        assert type(app.screen).__name__ == "TracesScreen"
        for run_id in (a_id, b_id):
            table.move_cursor(row=table.get_row_index(str(run_id)))
            await pilot.press("space")
        assert screen.marked == [a_id, b_id]
        assert str(table.get_row(str(a_id))[0]) == f"● {a_id}"
        await pilot.press("c")
        await wait_for(pilot, lambda: getattr(app.screen, "columns", None) is not None)
        cmp = app.screen
        ca, cb = cmp.columns
        assert (ca.run_id, cb.run_id) == (a_id, b_id)
        assert ca.rounds == len(a["rounds"]) and cb.rounds == len(b["rounds"])
        assert ca.tokens == sum(r.tokens for r in a["rounds"]) == a["total_tokens"]
        assert cb.final_correct == b["final_correct"]
        # B is a markov run: q_t and actions are the stored decisions'.
        assert list(cb.beliefs) == [d.belief for d in b["decisions"]]
        assert list(cb.actions) == [d.final_action for d in b["decisions"]]
        # A is fixed:3 without a fit: no belief to show, but every action and answer.
        assert ca.beliefs == (None,) * len(a["rounds"]) and ca.actions[-1] == "stop"
        grid = cmp.query_one(DataTable)
        assert grid.row_count == max(ca.rounds, cb.rounds)
        r0 = [str(x) for x in grid.get_row_at(0)]
        ok = "✓" if b["rounds"][0].correct else "✗"
        assert r0[4] == f"{b['rounds'][0].answer_text} {ok}"
        assert r0[5] == f"{b['decisions'][0].belief:.3f}" and r0[6] == "continue"
        totals = text_of(cmp.query_one("#compare-totals"))
        assert f"{len(a['rounds'])} round(s) · {a['total_tokens']} tokens" in totals
        assert f"final {b['final_answer_text']}" in totals
        # The responses of the highlighted round, as a word diff (difflib), follow the cursor.
        diff = cmp.query_one("#compare-diff")
        assert cmp.diff_round == 0 and text_of(diff).startswith("round 0: ")
        await pilot.press("down")
        await wait_for(pilot, lambda: cmp.diff_round == 1)
        expected = response_diff(a["rounds"][1].response, b["rounds"][1].response)
        shown = text_of(diff)
        assert f"{expected.similarity:.0%} alike" in shown
        kept_b = "".join(t for op, t in expected.parts if op != "-")
        assert kept_b == b["rounds"][1].response
        for op, part in expected.parts:
            wrapped = {"=": part, "-": f"[-{part}-]", "+": f"{{+{part}+}}"}[op]
            assert wrapped in shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TracesScreen")


def test_response_diff_marks_words_only_in_one_side() -> None:
    same = response_diff("The answer is 7.", "The answer is 7.")
    assert same.similarity == 1.0 and same.parts == (("=", "The answer is 7."),)
    d = response_diff("so 3 + 4 = 8. The answer is 8.", "so 3 + 4 = 7. The answer is 7.")
    assert ("-", "8.") in d.parts and ("+", "7.") in d.parts and 0.5 < d.similarity < 1.0
    assert "".join(t for op, t in d.parts if op != "+") == "so 3 + 4 = 8. The answer is 8."
    long = "word " * (MAX_DIFF_WORDS + 10)
    assert response_diff(long, long + "more").cut
    # A run without that round: said, not a crash.
    col = RunColumn(1, "a", (("7", True),), (None,), ("stop",), 5, "7", True, ("The answer is 7.",))
    short = dataclasses.replace(col, run_id=2, answers=(), responses=())
    assert "run B has no round 0" in str(diff_text(col, short, 0))
