"""Pilot tests of reasoning rounds: the thinking folded to one line, the final part in full."""

from __future__ import annotations

import threading
from pathlib import Path

from mstui.config import RunConfig
from mstui.core.backend import GenSettings
from mstui.engine.scripted import ScriptedBackend, split_tokens
from mstui.store import Store
from mstui.ui.app import MstuiApp, make_app
from mstui.ui.replay import ReplayScreen
from mstui.ui.widgets import StreamView
from tests.test_ui_live import SIZE, text_of, wait_for

# DeepSeek-R1's template, cut to what a run uses: the generation prompt leaves <think> open.
R1_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)
SENTENCES = (
    "Okay, so I need to add 12 and 30.",
    "Let me check that again: 12 + 30 = 42.",
    "Hmm, wait, maybe I misread the question.",
    "No, the question asks for the sum, and 2 + 0 = 2 in the units column.",
)
FINAL = "The sum of 12 and 30 is 42.\n\nSo the answer is \\boxed{42}."


def thinking_text(tokens: int) -> str:
    """Reasoning-shaped thinking of about `tokens` scripted tokens (words), with paragraphs."""
    out: list[str] = []
    n = 0
    i = 0
    while n < tokens:
        sentence = SENTENCES[i % len(SENTENCES)]
        out.append(sentence + ("\n\n" if i % 5 == 4 else " "))
        n += len(split_tokens(sentence))
        i += 1
    return "".join(out)


class GatedBackend(ScriptedBackend):
    """The scripted model, holding its stream after `gate_at` pieces until `release` is set, so a
    test sees the screen mid-round however loaded the machine is."""

    def __init__(self, responses: list[str], gate_at: int, **kw: object) -> None:
        super().__init__(responses, **kw)  # type: ignore[arg-type]
        self.gate_at = gate_at
        self.release = threading.Event()

    def stream(self, prompt, settings, cancel, messages=None):  # type: ignore[no-untyped-def]
        for n, item in enumerate(super().stream(prompt, settings, cancel, messages)):
            if n == self.gate_at:
                self.release.wait(30)
            yield item


def reasoning_app(
    db: Path | None,
    responses: list[str],
    *,
    max_tokens: int = 30000,
    rounds: int = 1,
    tps: float | None = None,
    backend: ScriptedBackend | None = None,
) -> MstuiApp:
    """The app on a scripted R1-shaped model, run in the reasoning format."""
    config = RunConfig(
        max_rounds=rounds,
        policy="fixed",
        prompt_format="reasoning",
        gen=GenSettings(max_tokens=max_tokens, temperature=0.6),
        explicit=frozenset({"max_tokens", "prompt_format"}),
    )
    return make_app(
        config,
        db_path=db,
        auto_policy=False,
        show_timings=False,
        backend_factory=lambda c: backend
        or ScriptedBackend(responses, tokens_per_second=tps, chat_template=R1_TEMPLATE),
    )


def screen_rows(view: StreamView) -> list[str]:
    """The stream view's visible lines as drawn (the real line-API render)."""
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


async def ask(pilot, app: MstuiApp, question: str = "What is 12 + 30?") -> None:  # type: ignore[no-untyped-def]
    await wait_for(pilot, lambda: app.worker.backend is not None)
    await pilot.press("slash", *question, "enter")


async def test_20k_token_thinking_round_is_folded_and_its_final_text_is_the_stream(
    tmp_path: Path,
) -> None:
    thinking = thinking_text(20000)
    response = thinking + "\n</think>\n\n" + FINAL
    # The model pauses 2,000 tokens into its thinking until the mid-round checks are done.
    backend = GatedBackend([response], 2000, chat_template=R1_TEMPLATE)
    app = reasoning_app(tmp_path / "t.db", [response], backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app)
        view = app.live.query_one(StreamView)
        await wait_for(pilot, lambda: app.live.pieces_seen == 2000)
        await pilot.pause(0.3)  # the fold line's numbers are drawn a few times a second
        # While the thinking streams, one line stands for it and nothing else is drawn.
        assert view.reasoning and not view.final_doc.chars and len(view.thinking_doc) > 100
        rows = screen_rows(view)
        assert rows[0].startswith("▸ thinking · 2,000 tok") and not any(rows[1:])
        assert app.live.check_action("thinking", ())  # the fold key is offered
        await pilot.press("z")  # unfolded mid-stream: it follows the newest thinking
        await pilot.pause(0.05)
        assert view.expanded and view.is_vertical_scroll_end and view.scroll_offset.y > 0
        assert screen_rows(view)[-1] == view.thinking_doc.tail.rstrip()
        await pilot.press("z")
        backend.release.set()
        await wait_for(pilot, lambda: not app.worker.busy and app.live.records, timeout=60)
        await pilot.pause(0.05)
        r = app.live.records[-1]
        assert r.thinking_tokens > 20000 and not r.truncated and r.answer == "42"
        # Every token reached the view, and the parts it draws are the stream's parts.
        assert view.text == response == r.response
        assert view.final.rstrip() == FINAL == r.final
        assert view.thinking.strip() == thinking.strip() == r.thinking
        # On screen: the fold line with the core's count, then the final part in full.
        rows = screen_rows(view)
        assert rows[0] == f"▸ thinking · {r.thinking_tokens:,} tok  (z: unfold)"
        final_rows = [view.final_doc.line(i).rstrip() for i in range(len(view.final_doc))]
        assert rows[1 : 1 + len(final_rows)] == final_rows
        assert "".join(final_rows).replace(" ", "") == FINAL.replace("\n", "").replace(" ", "")

        await pilot.press("z")  # unfold: the thinking from its first line, the final after it
        rows = screen_rows(view)
        assert rows[0].startswith("▾ thinking") and rows[1] == view.thinking_doc.line(0).rstrip()
        assert rows[1].startswith(SENTENCES[0])
        view.scroll_end(animate=False, immediate=True)
        await pilot.pause(0.05)
        tail = screen_rows(view)
        assert "── final ──" in tail and tail[-len(final_rows) :] == final_rows
        await pilot.press("z")
        assert screen_rows(view)[0].startswith("▸ thinking")


async def test_a_round_that_ends_inside_its_thinking_says_so(tmp_path: Path) -> None:
    thinking = thinking_text(300)
    app = reasoning_app(tmp_path / "t.db", [thinking + "\n</think>\n\n" + FINAL], max_tokens=200)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app)
        await wait_for(pilot, lambda: not app.worker.busy and app.live.records)
        await pilot.pause(0.05)
        r = app.live.records[-1]
        assert r.truncated and r.finish_reason == "length" and r.answer is None
        view = app.live.query_one(StreamView)
        rows = screen_rows(view)
        assert rows[0] == f"▸ thinking · {r.thinking_tokens:,} tok  (z: unfold)"
        assert rows[1] == "no answer: the round ended inside its thinking"
        assert view.final == "" and view.thinking.strip() == r.thinking
        assert "none (ended inside its thinking)" in text_of(app.live.query_one("#round-stats"))


async def test_a_second_closing_tag_moves_the_text_before_it_into_the_thinking(
    tmp_path: Path,
) -> None:
    # Live, the text after the first </think> streams as final (the stream cannot know another
    # will come); at the round's end the view is redrawn from the record, which splits at the
    # last one, so "maybe 41" is thinking and the final part is the answer alone.
    response = thinking_text(50) + "\n</think>\nhmm, wait, maybe 41\n</think>\n\n" + FINAL
    app = reasoning_app(tmp_path / "t.db", [response])
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app)
        await wait_for(pilot, lambda: not app.worker.busy and app.live.records)
        await pilot.pause(0.05)
        r = app.live.records[-1]
        assert r.answer == "42" and r.final == FINAL and "maybe 41" in r.thinking
        view = app.live.query_one(StreamView)
        assert view.final.strip() == FINAL and view.thinking.strip() == r.thinking
        assert "maybe 41" not in "\n".join(screen_rows(view))  # folded away with the thinking


async def test_a_plain_round_has_no_fold_line(tmp_path: Path) -> None:
    app = make_app(
        RunConfig(max_rounds=1, policy="fixed"),
        db_path=None,
        auto_policy=False,
        backend_factory=lambda c: ScriptedBackend([" 12 + 30 = 42. The answer is 42."]),
    )
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app)
        await wait_for(pilot, lambda: not app.worker.busy and app.live.records)
        await pilot.pause(0.05)
        view = app.live.query_one(StreamView)
        assert not view.reasoning and view.final == " 12 + 30 = 42. The answer is 42."
        assert screen_rows(view)[0] == " 12 + 30 = 42. The answer is 42."
        await pilot.press("z")
        assert not view.expanded  # nothing to unfold


async def test_replay_shows_a_stored_reasoning_round_folded(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    first = thinking_text(400) + "\n</think>\n\nThe answer is \\boxed{41}."
    second = thinking_text(800) + "\n</think>\n\n" + FINAL
    app = reasoning_app(db, [first, second], rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app)
        await wait_for(pilot, lambda: not app.worker.busy and len(app.live.records) == 2)
        with Store(db) as store:
            run = store.get_run(app.live.run_id)  # type: ignore[arg-type]
        # The rounds as the live screen got them from the core (the store keeps the response;
        # the thinking/final parts are the core's split of it).
        run["rounds"] = list(app.live.records)
        screen = ReplayScreen(run["id"])
        screen._fetch = lambda: None  # type: ignore[method-assign]  # fed below, not from the db
        await app.push_screen(screen)
        screen.loaded(run)
        await pilot.pause(0.05)
        view = screen.query_one(StreamView)
        r0, r1 = app.live.records
        assert screen_rows(view)[:2] == [
            f"▸ thinking · {r0.thinking_tokens:,} tok  (z: unfold)",
            "The answer is \\boxed{41}.",
        ]
        await pilot.press("right")
        assert view.final.rstrip() == FINAL and view.thinking.strip() == r1.thinking
        assert screen_rows(view)[0] == f"▸ thinking · {r1.thinking_tokens:,} tok  (z: unfold)"
        await pilot.press("z")
        assert screen_rows(view)[1].startswith(SENTENCES[0])


async def test_status_bar_shows_the_format_the_profile_picked(tmp_path: Path) -> None:
    # QA #6: the app's own config still says fewshot (the profile is applied on the worker
    # thread after load); the status bar shows what runs use.
    app = make_app(RunConfig(max_rounds=1, policy="fixed"), db_path=None, auto_policy=False,
                   backend_factory=lambda c: ScriptedBackend([FINAL], chat_template=R1_TEMPLATE))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None)
        await pilot.pause(0.05)
        assert app.config.prompt_format == "fewshot"
        assert "reanswer/reasoning" in text_of(app.live.query_one("#status"))
        await ask(pilot, app)
        await wait_for(pilot, lambda: not app.worker.busy and app.live.records)
        assert app.live.records[-1].prompt.endswith("<｜Assistant｜><think>\n")
        assert "reanswer/reasoning" in text_of(app.live.query_one("#status"))
