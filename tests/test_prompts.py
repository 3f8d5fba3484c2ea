"""Prompts per strategy: data-file templates, and later rounds extend the first prompt's prefix."""

import pytest

from mstui.core.prompts import Prompter, check_strategy, load_format
from tests.helpers import make_record


def chatml(messages):  # type: ignore[no-untyped-def]
    return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


def test_formats_load_from_data_files() -> None:
    fmt = load_format("fewshot")
    assert fmt.kind == "completion" and "The answer is" in fmt.preamble
    assert "\nQuestion:" in fmt.stop
    assert load_format("chat").kind == "chat"
    with pytest.raises(ValueError, match="unknown prompt format 'xml'"):
        load_format("xml")
    with pytest.raises(ValueError, match="choose one of: reanswer, refine, wait"):
        check_strategy("think")


def test_reanswer_gives_previous_final_answer_only_and_shares_prefix() -> None:
    p = Prompter(load_format("fewshot"), "reanswer", chatml)
    first = p.prompt("What is 2 + 2?", [])
    assert first.endswith("Question: What is 2 + 2?\nAnswer:")
    r0 = make_record(0, first, " 2 + 2 = 5, so lots of work. The answer is 5.", "5")
    second = p.prompt("What is 2 + 2?", [r0])
    assert "final answer 5." in second
    assert "lots of work" not in second  # only the final answer travels: the chain stays Markov
    shared = first[: first.index("Answer:", len(load_format("fewshot").preamble))]
    assert second.startswith(shared)


def test_refine_shows_full_response_and_wait_extends_previous_round() -> None:
    refine = Prompter(load_format("fewshot"), "refine", chatml)
    first = refine.prompt("Q?", [])
    r0 = make_record(0, first, " some working. The answer is 3.", "3")
    assert refine.prompt("Q?", [r0]).startswith(first + r0.response)
    wait = Prompter(load_format("fewshot"), "wait", chatml)
    second = wait.prompt("Q?", [r0])
    assert second == first + r0.response + " Wait,"
    r1 = make_record(1, second, " it is 4. The answer is 4.", "4")
    assert wait.prompt("Q?", [r0, r1]) == second + r1.response + " Wait,"


def test_chat_format_uses_the_renderer() -> None:
    p = Prompter(load_format("chat"), "refine", chatml)
    first = p.prompt("What is 1 + 1?", [])
    assert first.startswith("<system>") and first.endswith("<user>What is 1 + 1?</user><assistant>")
    r0 = make_record(0, first, "The answer is 2.", "2")
    second = p.prompt("What is 1 + 1?", [r0])
    assert "<assistant>The answer is 2.</assistant><user>Check your working" in second


def test_chat_messages_match_the_rendered_text() -> None:
    for strategy in ("reanswer", "refine", "wait"):
        p = Prompter(load_format("chat"), strategy, chatml)
        first = p.messages("Q?", [])
        assert first is not None and chatml(first) == p.prompt("Q?", [])
        r0 = make_record(0, p.prompt("Q?", []), "The answer is 2.", "2")
        later = p.messages("Q?", [r0])
        if strategy == "wait":
            assert later is None  # continues the assistant's text: only a completion can do it
        else:
            assert later is not None and chatml(later) == p.prompt("Q?", [r0])
    assert Prompter(load_format("fewshot"), "reanswer", chatml).messages("Q?", []) is None
