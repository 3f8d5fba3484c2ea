"""Reasoning streams from a real OpenAI-compatible server on 127.0.0.1 (thinking in
`reasoning_content` or `reasoning`), through the remote backend, the loop and `mstui run`."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mstui.core.backend import GenSettings
from mstui.core.loop import RoundFinished, TokenStreamed, run_refinement
from mstui.core.policies import parse_policy
from mstui.core.prompts import Prompter, load_format
from mstui.core.reasoning import ThinkTags
from mstui.engine.openai_backend import OpenAIBackend
from mstui.engine.scripted import split_tokens
from mstui.store import Store
from tests import transcripts as tr
from tests.reasoning_server import ReasoningServer
from tests.templates import TEMPLATES
from tests.test_cli_run import assert_one_line_error, mstui

THINK = ThinkTags("<think>", "</think>")
SIXTEEN = [f"step {i}: 3*4=12, plus 2 is 14. " for i in range(16)]


def play(backend: OpenAIBackend, rounds: int = 1, strategy: str = "reanswer",
         fmt: str = "reasoning"):  # type: ignore[no-untyped-def]
    prompter = Prompter(load_format(fmt), strategy, backend.render_chat, tags=THINK,
                        use_system=False)
    return list(run_refinement(tr.QUESTION, backend=backend, prompter=prompter,
                               policy=parse_policy("fixed:9", None), max_rounds=rounds,
                               settings=GenSettings(max_tokens=8000), gold=tr.GOLD))


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_field_is_shown_stored_and_not_scored(field: str, tmp_path: Path) -> None:
    server = ReasoningServer({"model": "r1", "rounds": [
        {"field": field, "reasoning": ["I think \\boxed{12}... ", *SIXTEEN],
         "content": ["\n\nThe answer is ", "\\boxed{14}"]}]}, tmp_path)
    try:
        events = play(OpenAIBackend(server.url))
    finally:
        server.stop()
    record = next(e.record for e in events if isinstance(e, RoundFinished))
    streamed = "".join(e.text for e in events if isinstance(e, TokenStreamed))
    assert streamed == record.response  # the thinking was streamed to the screen too
    assert record.thinking.startswith("I think \\boxed{12}") and "step 15" in record.thinking
    assert record.final == "The answer is \\boxed{14}"
    assert record.answer == "14" and record.correct and record.thinking_tokens == 17
    assert record.response.startswith("<think>") and "</think>" in record.response


def test_length_while_thinking_is_stored_truncated_with_its_thinking(tmp_path: Path) -> None:
    server = ReasoningServer({"model": "r1", "rounds": [
        {"reasoning": SIXTEEN, "content": [], "finish": "length"}]}, tmp_path)
    db = tmp_path / "t.db"
    try:
        proc = mstui("run", "--backend", "openai", "--base-url", server.url, "--question",
                     tr.QUESTION, "--gold", "14", "--max-rounds", "1", "--format", "reasoning",
                     "--profile", "deepseek-r1", "--json", db=db)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.splitlines()[0])
    assert row["answer"] is None and row["truncated"] is True and row["correct"] is False
    with Store(db) as store:
        run = store.list_runs(limit=1)[0]
        stored = store.rounds_of(run["id"])[0]
    assert stored.truncated and stored.answer is None and stored.final == ""
    assert stored.thinking.startswith("step 0") and "step 15" in stored.thinking
    assert stored.finish_reason == "length" and stored.thinking_tokens == 16
    # `traces show` says it as `run` does (QA #12), and does not call unreported hits 0 (#16).
    shown = mstui("traces", "show", str(run["id"]), "--db", str(db), "--no-responses")
    assert shown.returncode == 0, shown.stderr
    assert "answer (none: the round ended inside its thinking)" in shown.stdout
    assert "(16 thinking)" in shown.stdout
    assert "(cache hits not reported)" in shown.stdout and "0 cached" not in shown.stdout


def test_reasoning_without_a_final_part_is_never_scored_from_thinking(tmp_path: Path) -> None:
    server = ReasoningServer({"model": "r1", "rounds": [
        {"reasoning": ["The answer is \\boxed{14}."], "content": [], "finish": "stop"}]},
        tmp_path)
    try:
        events = play(OpenAIBackend(server.url))
    finally:
        server.stop()
    record = next(e.record for e in events if isinstance(e, RoundFinished))
    assert record.truncated and record.answer is None and record.finish_reason == "stop"


@pytest.mark.parametrize("script", [
    # QA #9: thinking in the reasoning field, then more think tags in the content.
    {"reasoning": ["thinking 12 "], "content": ["<think>inner 13</think>\n\n"]},
    # QA #1: nested and repeated closing tags in the content.
    {"content": ["<think>\nouter 12 <think>inner 13</think> still thinking, maybe 15\n",
                 "</think>\n\n"]},
    {"content": ["<think>\nfirst 11\n</th", "ink>\nhmm wait, maybe 12\n</think>\n\n"]},
])
def test_no_answer_from_text_before_the_last_closing_tag(script: dict[str, object],
                                                          tmp_path: Path) -> None:
    server = ReasoningServer({"model": "qa-model", "rounds": [script]}, tmp_path)
    try:
        events = play(OpenAIBackend(server.url), fmt="chat")
    finally:
        server.stop()
    record = next(e.record for e in events if isinstance(e, RoundFinished))
    assert record.answer is None and record.final == "" and record.correct is False
    assert "</think>" not in (record.final or "")


def test_long_r1_transcript_through_the_server(tmp_path: Path) -> None:
    response = tr.r1_response(2500)
    thinking, final = response.split("</think>")
    server = ReasoningServer({"model": "r1", "rounds": [
        {"reasoning": split_tokens(thinking), "content": split_tokens(final)}]}, tmp_path)
    try:
        events = play(OpenAIBackend(server.url))
    finally:
        server.stop()
    record = next(e.record for e in events if isinstance(e, RoundFinished))
    assert record.answer == "14" and record.correct and record.thinking_tokens > 2500
    assert record.thinking == thinking.strip()
    # Prompt time ends at the first streamed token, thinking included.
    assert record.prompt_seconds < record.gen_seconds


def test_wait_uses_the_served_template(tmp_path: Path) -> None:
    llama3 = TEMPLATES["llama3"]
    server = ReasoningServer({
        "model": "llama3", "template": llama3.text(), "bos": llama3.bos, "eos": llama3.eos,
        "rounds": [{"content": ["3*4+2 = 14. The answer is 14."]}],
        "completions": [{"content": [" yes, 14. The answer is 14."]}]}, tmp_path)
    try:
        proc = mstui("run", "--backend", "openai", "--base-url", server.url, "--question",
                     tr.QUESTION, "--gold", "14", "--max-rounds", "2", "--format", "chat",
                     "--strategy", "wait", "--json", "--no-store")
        requests = server.requests()
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    completion = next(r for r in requests if r["path"].endswith("/v1/completions"))
    prompt = completion["body"]["prompt"]
    assert "<|start_header_id|>user<|end_header_id|>" in prompt and "<|im_start|>" not in prompt
    assert not prompt.startswith(llama3.bos)  # the server adds its BOS itself
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n"
                           "3*4+2 = 14. The answer is 14. Wait,")


def test_wait_without_a_served_template_is_refused(tmp_path: Path) -> None:
    server = ReasoningServer({"model": "plain", "rounds": [{"content": ["14"]}]}, tmp_path)
    try:
        proc = mstui("run", "--backend", "openai", "--base-url", server.url, "--question", "q",
                     "--max-rounds", "2", "--format", "chat", "--strategy", "wait", "--no-store")
    finally:
        server.stop()
    assert_one_line_error(proc, "served chat template", "--format fewshot")


def test_cancel_while_thinking_streams(tmp_path: Path) -> None:
    server = ReasoningServer({"model": "r1", "rounds": [
        {"reasoning": SIXTEEN * 20, "content": ["14"], "delay": 0.01}]}, tmp_path)
    cancel = threading.Event()
    try:
        backend = OpenAIBackend(server.url)
        prompter = Prompter(load_format("reasoning"), "reanswer", backend.render_chat, tags=THINK)
        record = None
        for event in run_refinement(tr.QUESTION, backend=backend, prompter=prompter,
                                    policy=parse_policy("fixed:1", None), max_rounds=2,
                                    settings=GenSettings(), cancel=cancel):
            if isinstance(event, TokenStreamed) and not cancel.is_set():
                cancel.set()
            if isinstance(event, RoundFinished):
                record = event.record
    finally:
        server.stop()
    assert record is not None and record.finish_reason == "cancelled" and record.truncated
    assert record.answer is None and record.thinking


# ---- a server that streams reasoning under a generic name (QA #3) ----------------------------

GENERIC = {"model": "served-model", "rounds": [
    {"reasoning": ["thinking 12 "] * 3, "content": ["\n\nThe answer is \\boxed{14}."]}]}


def test_run_says_a_generic_server_is_a_reasoning_model(tmp_path: Path) -> None:
    server = ReasoningServer(GENERIC, tmp_path)
    try:
        proc = mstui("run", "--backend", "openai", "--base-url", server.url, "--question",
                     tr.QUESTION, "--gold", "14", "--max-rounds", "1", "--format", "chat",
                     "--no-store")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert "profile: plain" in proc.stdout  # nothing told it before the first round
    note = next(line for line in proc.stderr.splitlines() if "reasoning model" in line)
    assert "served-model is a reasoning model (the server streamed its thinking in a reasoning " \
           "field), but this run used the plain profile" in note
    assert "pass --profile reasoning" in note and "4096 tok/round" in note
    assert "answer 14" in proc.stdout  # the thinking was split off all the same


async def test_tui_runs_after_the_one_that_revealed_reasoning_use_its_profile(
    tmp_path: Path,
) -> None:
    from mstui.config import RunConfig
    from mstui.ui.app import make_app
    from tests.test_ui_live import SIZE, text_of, wait_for

    server = ReasoningServer(GENERIC, tmp_path)
    try:
        config = RunConfig(backend="openai", base_url=server.url, max_rounds=1, policy="fixed",
                           prompt_format="chat",
                           explicit=frozenset({"prompt_format"})).validate()
        app = make_app(config, db_path=None, auto_policy=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.worker.backend is not None, timeout=30)
            for n in (1, 2):
                await pilot.press("slash", *"What is 13 + 1?", "enter")
                await wait_for(pilot, lambda n=n: len(app.live.records) == 1 and
                               not app.worker.busy and len(server.requests()) == n, timeout=20)
                await pilot.pause(0.1)
            status = text_of(app.live.query_one("#status"))
            profile = app.worker.profile
        requests = server.requests()
    finally:
        server.stop()
    first, second = (r["body"] for r in requests)
    assert first["max_tokens"] == 256 and first["temperature"] == 0.7
    assert second["max_tokens"] == 4096 and second["temperature"] == 0.6  # the reasoning profile
    assert profile is not None and profile.name == "reasoning"
    assert "reanswer/chat" in status  # the format the user chose is kept


def test_budget_without_a_served_template_does_not_suggest_fewshot(tmp_path: Path) -> None:
    # QA #7: following "use --format fewshot" ran with no budget at all.
    server = ReasoningServer({"model": "DeepSeek-R1-Distill-Qwen-7B", "rounds": [
        {"reasoning": ["t0 "], "content": ["14"]}]}, tmp_path)
    try:
        proc = mstui("run", "--backend", "openai", "--base-url", server.url, "--question", "q",
                     "--max-rounds", "1", "--thinking-budget", "10", "--no-store")
    finally:
        server.stop()
    assert_one_line_error(proc, "--thinking-budget with a chat format", "drop --thinking-budget")
    assert "fewshot" not in proc.stderr
