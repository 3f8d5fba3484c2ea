"""Unit tests of the UI's pure parts: breakpoints, the token buffer, the problem picker, views."""

from __future__ import annotations

import threading

import pytest

from mstui.core.fitting import ChainFit
from mstui.store.sample import sample_decision, sample_round
from mstui.ui.breakpoints import Breakpoints, hit
from mstui.ui.demo import demo_history
from mstui.ui.picker import ProblemPicker
from mstui.ui.tokens import TokenBuffer
from mstui.ui.view import prob_view, what_if


def test_breakpoints_fire_on_flip_answer_change_and_threshold() -> None:
    go, stop = sample_decision(1), sample_decision(1, stop=True)
    same = sample_round(1, answer="42", previous="42")
    changed = sample_round(1, answer="41", previous="42")
    assert hit(Breakpoints(), stop, go, changed, 0.4, 0.6) is None
    assert "flipped" in (hit(Breakpoints(flip=True), stop, go, same, None, None) or "")
    assert hit(Breakpoints(flip=True), go, go, same, None, None) is None
    assert "answer changed" in (hit(Breakpoints(answer_change=True), go, None, changed, 0, 0) or "")
    assert hit(Breakpoints(answer_change=True), go, None, same, None, None) is None
    th = Breakpoints(threshold=0.5)
    assert "crossed 0.50" in (hit(th, go, go, same, 0.45, 0.55) or "")
    assert "crossed" in (hit(th, go, go, same, 0.55, 0.45) or "")
    assert hit(th, go, go, same, 0.55, 0.6) is None
    assert th.describe() == "q↔0.50"


def test_token_buffer_keeps_every_piece_in_order_across_threads() -> None:
    buf = TokenBuffer()
    seen: list[tuple[int, str]] = []

    def produce() -> None:
        for i in range(5000):
            buf.append(i // 1000, str(i))

    t = threading.Thread(target=produce)
    t.start()
    while t.is_alive():
        seen += buf.drain()
    seen += buf.drain()
    assert [int(x) for _, x in seen] == list(range(5000)) and buf.produced == 5000


def test_picker_cycles_levels_and_serves_problems_in_order() -> None:
    p = ProblemPicker("gen", seed=3)
    assert p.set_name == "gen" and p.cycle_level() == "level 1" and p.set_name == "gen:L1"
    first, second = p.next(), p.next()
    assert first.level == second.level == 1 and first.id != second.id
    again = ProblemPicker("gen", level=1, seed=3)
    assert again.next() == first


def fit() -> ChainFit:
    from mstui.core.fitting import fit_pool

    return fit_pool([[r.correct for r in demo_history(i)] for i in range(20)], scope="t")


def test_prob_view_curve_is_the_chain_prediction_from_the_belief() -> None:
    f = fit()
    history = demo_history(0)[:2]
    view = prob_view(f, None, history, None, 5)
    assert view.round == 1 and view.belief == pytest.approx(f.chain.accuracy(f.p0, 1))
    assert [n for n, _ in view.curve] == [1, 2, 3, 4]
    for n, p in view.curve:
        assert p == pytest.approx(f.chain.accuracy(view.belief, n - 1))
    assert view.regime == f.chain.regime(view.belief)


def test_what_if_reports_beyond_stored_rounds_and_bad_inputs() -> None:
    rounds = demo_history(1)[:2]
    wi = what_if(rounds, "fixed:3", 0.0, 4, None, None)
    assert wi.stop_round == 1 and wi.beyond and "only 2 round(s)" in wi.note
    assert what_if(rounds, "none", 0.0, 4, None, None).stop_round == 0
    with pytest.raises(ValueError, match="fit"):
        what_if(rounds, "markov", 0.0, 4, None, None)
    with pytest.raises(ValueError, match="N_max"):
        what_if(rounds, "fixed:1", 0.0, 0, None, None)
