"""The refinement loop's events, scoring, policies and review hook, on a scripted backend."""

import threading

import pytest

from mstui.core.backend import GenSettings, Piece
from mstui.core.loop import (
    DecisionMade,
    RoundFinished,
    RoundStarted,
    RunFinished,
    TokenStreamed,
    observe,
    run_refinement,
)
from mstui.core.policies import parse_policy
from mstui.core.prompts import Prompter, load_format
from mstui.engine.scripted import ScriptedBackend

ANSWERS = [" 3 + 4 = 8. The answer is 8.", " 3 + 4 = 7. The answer is 7.",
           " The answer is 7.", " Hmm. The answer is \\boxed{7}."]


def run(policy: str, max_rounds: int = 4, gold: str | None = "7", **kw):  # type: ignore[no-untyped-def]
    backend = ScriptedBackend(ANSWERS)
    prompter = Prompter(load_format("fewshot"), "reanswer", backend.render_chat)
    events = list(run_refinement("What is 3 + 4?", backend=backend, prompter=prompter,
                                 policy=parse_policy(policy, None), max_rounds=max_rounds,
                                 settings=GenSettings(), gold=gold, **kw))
    return events, backend


def test_event_order_tokens_and_scoring() -> None:
    events, backend = run("fixed:3")
    kinds = [type(e).__name__ for e in events if not isinstance(e, TokenStreamed)]
    assert kinds == ["RoundStarted", "RoundFinished", "DecisionMade"] * 4 + ["RunFinished"]
    finished = [e.record for e in events if isinstance(e, RoundFinished)]
    assert [r.answer for r in finished] == ["8", "7", "7", "7"]
    assert [r.correct for r in finished] == [False, True, True, True]
    assert finished[3].extraction_rule == "boxed"
    # The streamed tokens are exactly the response.
    tokens0 = "".join(e.text for e in events if isinstance(e, TokenStreamed) and e.index == 0)
    assert tokens0 == ANSWERS[0] == finished[0].response
    # Observations: round 1 changed from 8 to 7, round 2 repeated it and agrees with 1 of 2.
    assert finished[0].observation.changed is None
    assert finished[1].observation.changed is True
    assert finished[2].observation.changed is False
    assert finished[2].observation.agreement == pytest.approx(0.5)
    # reanswer prompts share the prefix up to the question: the scripted cache sees it.
    assert finished[1].cached_tokens > 0
    last = events[-1]
    assert isinstance(last, RunFinished) and last.final_answer == "7" and last.final_correct
    assert last.reason == "policy" and backend.calls == 4


def test_cap_and_simple_policies() -> None:
    events, _ = run("fixed:10", max_rounds=2)
    decisions = [e.decision for e in events if isinstance(e, DecisionMade)]
    assert [d.action for d in decisions] == ["continue", "stop"]
    assert decisions[-1].rule == "cap"
    events, _ = run("none")
    assert len([e for e in events if isinstance(e, RoundFinished)]) == 1
    events, _ = run("repeat")  # 8, 7, 7 -> stops when 7 repeats
    assert len([e for e in events if isinstance(e, RoundFinished)]) == 3
    events, _ = run("oracle")  # first correct round is round 1
    assert len([e for e in events if isinstance(e, RoundFinished)]) == 2


def test_review_hook_overrides_decision() -> None:
    from dataclasses import replace

    seen = []

    def force_stop(decision):  # type: ignore[no-untyped-def]
        seen.append(decision.action)
        return replace(decision, override="stop")

    events, _ = run("fixed:3", review=force_stop)
    decisions = [e.decision for e in events if isinstance(e, DecisionMade)]
    assert seen == ["continue"] and decisions[0].override == "stop"
    assert decisions[0].final_action == "stop"
    assert len([e for e in events if isinstance(e, RoundFinished)]) == 1


def test_cancel_ends_the_run_with_a_cancelled_round() -> None:
    cancel = threading.Event()
    backend = ScriptedBackend(["one two three four five six seven"])
    prompter = Prompter(load_format("fewshot"), "reanswer", backend.render_chat)
    gen = run_refinement("q", backend=backend, prompter=prompter,
                         policy=parse_policy("fixed:3", None), max_rounds=4,
                         settings=GenSettings(), cancel=cancel)
    seen_tokens = 0
    events = []
    for event in gen:
        events.append(event)
        if isinstance(event, TokenStreamed):
            seen_tokens += 1
            if seen_tokens == 2:
                cancel.set()
    record = next(e.record for e in events if isinstance(e, RoundFinished))
    assert record.finish_reason == "cancelled" and record.response == "one two"
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "cancelled"
    assert not any(isinstance(e, DecisionMade) for e in events)


def test_backend_failure_is_recorded_not_raised() -> None:
    class Broken(ScriptedBackend):
        def stream(self, prompt, settings, cancel, messages=None):  # type: ignore[no-untyped-def]
            yield Piece(" partial")
            raise ConnectionError("server went away")

    backend = Broken(["x"])
    prompter = Prompter(load_format("fewshot"), "reanswer", backend.render_chat)
    events = list(run_refinement("q", backend=backend, prompter=prompter,
                                 policy=parse_policy("none", None), max_rounds=1,
                                 settings=GenSettings()))
    record = next(e.record for e in events if isinstance(e, RoundFinished))
    assert record.finish_reason == "error" and "server went away" in (record.error or "")
    assert record.response == " partial" and record.completion_tokens == 1
    assert isinstance(events[-1], RunFinished) and events[-1].reason == "error"
    assert isinstance(events[0], RoundStarted)


def test_observe_features() -> None:
    obs = observe("7", ["8", None, "7"], -0.5)
    assert obs.found and obs.changed is False
    assert obs.agreement == pytest.approx(1 / 3) and obs.logprob == -0.5
    assert observe(None, [], None) == observe(None, [], None)
    assert observe(None, [], None).found is False


def test_max_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run("none", max_rounds=0)


def test_round_seeds_are_reproducible_and_differ_across_questions_and_rounds() -> None:
    from mstui.core.loop import round_seed

    assert round_seed(0, "What is 3 + 4?", 2) == round_seed(0, "What is 3 + 4?", 2)
    seeds = {round_seed(s, q, k) for s in (0, 1) for q in ("a?", "b?") for k in range(3)}
    assert len(seeds) == 12 and all(0 <= x < 2**31 for x in seeds)
