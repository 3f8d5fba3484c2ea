"""Thinking/final split, the streaming classifier, profiles and reasoning rounds in the loop."""

from __future__ import annotations

import random
import threading

import pytest

from mstui.core.backend import GenSettings, GenStats, Piece
from mstui.core.loop import RoundFinished, RoundStarted, TokenStreamed, run_refinement, score_round
from mstui.core.policies import parse_policy
from mstui.core.profiles import detect_profile
from mstui.core.prompts import Prompter, load_format
from mstui.core.reasoning import (
    THINK_TAGS,
    ThinkingStream,
    ThinkTags,
    prompt_opens_thinking,
    split_reasoning,
)
from mstui.engine.scripted import ScriptedBackend, split_tokens
from tests import transcripts as tr

THINK = ThinkTags("<think>", "</think>")
T = ("<think>\nLet me compute. 3 bags of 4 is 12. I think the answer is 12... wait, he also "
     "finds 2 more, so 14.\n</think>\n\n")
R1_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<｜User｜>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<｜Assistant｜>{% set c = m['content'] %}"
    "{% if '</think>' in c %}{% set c = c.split('</think>')[-1] %}{% endif %}{{ c }}"
    "<｜end▁of▁sentence｜>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)


def score(prompt: str, response: str, gold: str | None = tr.GOLD, finish: str = "stop",
          tags: ThinkTags | None = THINK):  # type: ignore[no-untyped-def]
    pieces = [Piece(t) for t in split_tokens(response)]
    stats = GenStats(10, len(pieces), 0, finish, 0.1, 0.5)  # type: ignore[arg-type]
    return score_round(0, prompt, pieces, stats, [], gold, tags=tags)


# ---- the inputs that failed on main (issue 10) ------------------------------------------------

def test_closing_tag_only_answer_from_final_part() -> None:
    response = T.removeprefix("<think>\n") + "So Sam has 14 apples."
    r = score("<｜User｜>Q<｜Assistant｜><think>\n", response)
    assert r.answer == "14" and r.correct is True and not r.truncated
    assert r.thinking.startswith("Let me compute") and r.final == "So Sam has 14 apples."
    assert r.answer_text == "14" and response[r.response.index("14 apples")] == "1"


def test_boxed_draft_in_thinking_never_counts() -> None:
    response = ("<think>\nFirst guess: \\boxed{12}. Hmm, recheck.\n</think>\n\n"
                "Sam ends up with 14 apples.")
    r = score("Q", response)
    assert r.answer == "14" and r.extraction_rule == "last-number" and r.correct


def test_round_cut_inside_thinking_has_no_answer() -> None:
    response = ("<think>\nLet me compute. 3 bags of 4 is 12. I think the answer is 12... wait, "
                "actually he also finds")
    r = score("Q", response, finish="length")
    assert r.truncated and r.answer is None and r.answer_text is None
    assert r.extraction_rule == "none" and r.correct is False
    assert r.observation.truncated and not r.observation.found
    assert r.thinking.startswith("Let me compute") and r.final == ""


def test_r1_prompt_opens_thinking_so_untagged_cut_is_truncated() -> None:
    prompt = "<｜User｜>Q<｜Assistant｜><think>\n"
    assert prompt_opens_thinking(prompt, THINK)
    r = score(prompt, "I think the answer is 12", finish="length")
    assert r.truncated and r.answer is None


def test_plain_model_unchanged() -> None:
    r = score("Question: 2+2?\nAnswer:", " 2 + 2 = 4. The answer is 4.", gold="4", tags=None)
    assert r.answer == "4" and r.final is None and r.thinking == "" and not r.truncated
    assert r.observation.thinking_tokens is None


@pytest.mark.parametrize("make", [tr.r1_response, tr.qwq_response, tr.qwen3_response])
def test_long_transcripts(make) -> None:  # type: ignore[no-untyped-def]
    response = make(3000)
    assert len(split_tokens(response)) > 3000
    qwen3 = make is tr.qwen3_response
    prompt = "<|im_start|>assistant\n" if qwen3 else "<｜Assistant｜><think>\n"
    r = score(prompt, response)
    assert r.answer == "14" and r.correct and r.thinking_tokens > 3000
    assert "\\boxed{12}" in r.thinking and "</think>" not in r.final
    cut = score(prompt, tr.cut_in_thinking(response), finish="length")
    assert cut.truncated and cut.answer is None


# ---- the split and the streaming classifier agree ---------------------------------------------

@pytest.mark.parametrize("tags", THINK_TAGS)
def test_stream_classifier_matches_split_under_any_chunking(tags: ThinkTags) -> None:
    rng = random.Random(0)
    body = tr.thinking_text(300)
    o, c = tags.open, tags.close
    # (text, the prompt opened the thinking, the text closes it at most once)
    cases = [(f"{o}\n{body}\n{c}\n\nFinal 14", False, True),
             (f"{body}\n{c}\nFinal 14", True, True),
             (f"{o}{body}", False, True), ("No thinking at all, 14", False, True),
             (f"  {o}\n{c}\n\n14", False, True),
             # Nested and repeated closing tags: thinking runs to the last one.
             (f"{o}\nouter 12 {o}inner 13{c} still thinking, maybe 15\n{c}\n\n", False, False),
             (f"{o}\nfirst 11\n{c}\nhmm wait, maybe 12\n{c}\n\nSo 14.", False, False),
             (f"{body}{c}draft 12{c}{c}\n14", True, False),
             (f"no opening tag, draft 12{c}\nfinal 14", False, False)]
    for text, opened, once in cases:
        want = split_reasoning(text, tags, starts_in_thinking=opened)
        for n in range(21):
            cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 40))))
            chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            if n == 20:
                chunks = list(text)  # one character at a time: every tag split
            stream = ThinkingStream(tags, starts_in_thinking=opened)
            segs = stream.feed_all(chunks)
            # The settled classification is the stored split, whatever the chunking.
            assert stream.settle() == want
            assert stream.closed == want.closed
            if once:  # live segments agree too when nothing later re-closes the thinking
                thinking = "".join(s.text for s in segs if s.kind == "thinking")
                final = "".join(s.text for s in segs if s.kind == "final")
                assert thinking.strip() == want.thinking
                assert final.strip() == want.final.strip()
            # Live, the text streams whole: nothing is lost or doubled, tags aside.
            shown = "".join(s.text for s in segs).replace(c, "").replace(o, "")
            assert shown.lstrip() == text.replace(c, "").replace(o, "").lstrip()


def test_split_at_the_last_closing_tag() -> None:
    nested = split_reasoning("<think>\nouter 12 <think>inner 13</think> still thinking, "
                             "maybe 15\n</think>\n\n")
    assert nested.final == "" and nested.closed and "maybe 15" in nested.thinking
    twice = split_reasoning("first 11\n</think>\nhmm wait, maybe 12\n</think>\n\nSo 14.",
                            THINK, starts_in_thinking=True)
    assert twice.thinking == "first 11\n</think>\nhmm wait, maybe 12" and twice.final == "So 14."


@pytest.mark.parametrize("response", [
    "<think>\nouter 12 <think>inner 13</think> still thinking, maybe 15\n</think>\n\n",
    "<think>\nfirst 11\n</think>\nhmm wait, maybe 12\n</think>\n\n",
    "<think>thinking 12 </think><think>inner 13</think>\n\n",  # reasoning field, then tags
])
def test_no_answer_read_from_before_a_closing_tag(response: str) -> None:
    r = score("Q", response)
    assert r.answer is None and r.final == "" and "</think>" not in r.final
    assert r.correct is False and not r.truncated


def test_answer_after_the_last_closing_tag() -> None:
    r = score("<｜Assistant｜><think>\n", "draft 12\n</think>\nno, 13\n</think>\n\nSo 14.")
    assert r.answer == "14" and r.correct and r.final == "So 14."


def test_other_families_tags() -> None:
    s = split_reasoning("[THINK]draft 3[/THINK]The answer is 5.")
    assert s.thinking == "draft 3" and s.final == "The answer is 5." and s.closed


# ---- profiles ---------------------------------------------------------------------------------

def test_profile_detection() -> None:
    r1 = detect_profile(R1_TEMPLATE, "x.gguf")
    assert r1.name == "deepseek-r1" and r1.reasoning and not r1.use_system
    assert r1.prompt_format == "reasoning" and r1.max_tokens >= 2048 and r1.temperature == 0.6
    assert "<｜Assistant｜>" in r1.why
    plain = detect_profile("{{ messages }}<|im_start|>", "SmolLM2.gguf")
    assert plain.name == "plain" and not plain.reasoning and "no think tags" in plain.why
    assert detect_profile(None, "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf").name == "deepseek-r1"
    assert detect_profile(None, "m", streams_reasoning=True).reasoning


# ---- strategies for thinking models -----------------------------------------------------------

def _backend(responses: list[str]) -> ScriptedBackend:
    return ScriptedBackend(responses, chat_template=R1_TEMPLATE)


def _prompter(strategy: str, backend: ScriptedBackend) -> Prompter:
    return Prompter(load_format("reasoning"), strategy, backend.render_chat, tags=THINK,
                    use_system=False)


def _run(strategy: str, responses: list[str], rounds: int = 2, **kw):  # type: ignore[no-untyped-def]
    backend = _backend(responses)
    events = list(run_refinement(tr.QUESTION, backend=backend,
                                 prompter=_prompter(strategy, backend),
                                 policy=parse_policy("fixed:9", None), max_rounds=rounds,
                                 settings=GenSettings(max_tokens=20000), gold=tr.GOLD, **kw))
    return events, backend


def test_wait_is_budget_forcing_inside_the_thinking() -> None:
    first = tr.r1_response(400)
    events, backend = _run("wait", [first, " no, it is 14.\n</think>\n\n\\boxed{14}"])
    records = [e.record for e in events if isinstance(e, RoundFinished)]
    p1 = backend.prompts[1]
    thinking_raw = first[: first.index("</think>")].rstrip()
    assert p1 == backend.prompts[0] + thinking_raw + "\nWait,"
    assert "</think>" not in p1.removeprefix(backend.prompts[0])  # the tag and final are dropped
    assert tr.FINAL_R1 not in p1
    started = [e for e in events if isinstance(e, RoundStarted)]
    assert started[1].starts_in_thinking
    assert records[1].answer == "14" and records[1].thinking.startswith("no, it is 14")


def _wait_prompt(prompt: str, response: str, fmt: str = "reasoning") -> str:
    r0 = score(prompt, response)
    prompter = Prompter(load_format(fmt), "wait", lambda m: "", tags=THINK, use_system=False)
    return prompter.prompt(tr.QUESTION, [r0])


def test_wait_continuation_text() -> None:  # QA #11
    opened = "<｜User｜>Q<｜Assistant｜><think>\n"
    # (a) the model opened <think> again after the prompt did: one tag in the continuation.
    assert _wait_prompt(opened, "<think>\nfirst 12 \n</think>\n\n12") == \
        opened + "first 12\nWait,"
    # (b) the cue goes on its own line, whatever the format's own (chat's is " Wait,").
    assert _wait_prompt(opened, "first 12 </think>12", fmt="chat") == opened + "first 12\nWait,"
    # (c) after a budget-forced round, the thinking continues from before the budget cue.
    cue = load_format("reasoning").budget_cue.format(close="</think>")
    forced = "first 12, then" + cue + "The answer is 12."
    assert _wait_prompt(opened, forced) == opened + "first 12, then\nWait,"


def test_refine_shows_the_working_the_template_would_strip() -> None:
    first = tr.r1_response(200)
    _, backend = _run("refine", [first, "ok\n</think>\n\\boxed{14}"])
    p1 = backend.prompts[1]
    # R1's template deletes thinking from assistant turns, so the working is in the user turn.
    assert "fairly confident now: 12 from the bags" in p1 and "<attempt>" in p1
    assert "\\boxed{14}" in p1 and p1.endswith("<｜Assistant｜><think>\n")
    assert "You are" not in p1  # no system prompt for R1


def test_thinking_budget_closes_the_thinking_and_forces_an_answer() -> None:
    endless = tr.thinking_text(2000)  # never closes its thinking
    events, backend = _run("reanswer", [endless, "The answer is \\boxed{14}."], rounds=1,
                           thinking_budget=100)
    record = next(e.record for e in events if isinstance(e, RoundFinished))
    assert backend.calls == 2
    assert not record.truncated and record.answer == "14" and record.correct
    assert 100 <= record.thinking_tokens <= 102
    assert "out of thinking time" in record.thinking
    # The forced continuation extends the same text: its prompt is prompt + thinking + cue.
    assert backend.prompts[1].startswith(backend.prompts[0])
    assert backend.prompts[1].endswith("</think>\n\n")
    streamed = "".join(e.text for e in events if isinstance(e, TokenStreamed))
    assert streamed == record.response


def test_budget_without_reasoning_model_is_refused_in_one_line() -> None:
    from mstui.config import RunConfig
    from mstui.runner import build_run

    backend = ScriptedBackend(["The answer is 4."])
    with pytest.raises(ValueError, match="needs a reasoning model"):
        build_run(RunConfig(thinking_budget=50).validate(), backend=backend)


def test_budget_larger_than_context_is_refused() -> None:
    from mstui.config import RunConfig
    from mstui.runner import build_run

    backend = _backend(["x"])
    backend.info = type(backend.info)(backend="scripted", model="m", context_length=512)
    with pytest.raises(ValueError, match="does not fit the 512-token context"):
        build_run(RunConfig(thinking_budget=4096).validate(), backend=backend)


def test_user_cancel_during_thinking_is_cancelled_not_forced() -> None:
    backend = ScriptedBackend([tr.thinking_text(3000)], tokens_per_second=4000,
                              chat_template=R1_TEMPLATE)
    cancel = threading.Event()
    gen = run_refinement(tr.QUESTION, backend=backend, prompter=_prompter("reanswer", backend),
                         policy=parse_policy("fixed:3", None), max_rounds=2,
                         settings=GenSettings(max_tokens=20000), gold=tr.GOLD, cancel=cancel,
                         thinking_budget=5000)
    seen = 0
    record = None
    for event in gen:
        if isinstance(event, TokenStreamed):
            seen += 1
            if seen == 50:
                cancel.set()
        if isinstance(event, RoundFinished):
            record = event.record
    assert record is not None and record.finish_reason == "cancelled" and record.truncated
    assert record.answer is None and backend.calls == 1


def test_empty_thinking_in_one_chunk_counts_no_thinking_tokens() -> None:  # QA #15
    pieces = [Piece("<think>\n\n</think>\n\nThe answer is 14.")]
    r = score_round(0, "Q", pieces, GenStats(10, 1, 0, "stop", 0.1, 0.5), [], tr.GOLD, tags=THINK)
    assert r.thinking == "" and r.thinking_tokens == 0 and r.answer == "14"
