"""The live screen: ask a question, watch rounds stream, see q_t and each decision, step through."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from mstui.core.problems import Problem
from mstui.core.types import Decision, RoundRecord, cache_text, finish_text
from mstui.ui import messages as m
from mstui.ui.ask import OFF, NumberScreen
from mstui.ui.charts import AccuracyChart
from mstui.ui.help import glossary
from mstui.ui.picker import ProblemPicker
from mstui.ui.round_screen import RoundScreen
from mstui.ui.tokens import RoundTracker
from mstui.ui.view import EMPTY_VIEW, ProbView
from mstui.ui.why import WHY_SUBTITLE
from mstui.ui.widgets import (
    SCROLL_BINDINGS,
    DecisionPanel,
    ProbPanel,
    RoundStrip,
    StreamView,
    answer_label,
    mark,
    thinking_numbers,
)
from mstui.ui.worker import RunRequest, one_line

if TYPE_CHECKING:
    from mstui.ui.app import MstuiApp

DRAIN_SECONDS = 1 / 30  # how often the drain timer ticks while a run streams
# The share of one core that drawing streamed tokens may take. The model's threads and this one
# share the cores, so every frame is time taken from generation: a frame that redraws the stream
# costs ~3 ms of Textual compositing (whatever the round's length), one that only counts
# folded thinking ~0.2 ms. After each frame the next waits cost / DRAW_SHARE: a cheap frame
# streams at 30 a second, an expensive one at ~15, and never fewer than 1 / MAX_WAIT.
DRAW_SHARE = 0.05
MAX_WAIT = 0.25
# How often the streaming counts (tokens, tok/s) are redrawn: a number that changes 30 times a
# second cannot be read, and each redraw of the stats line repaints the screen between it and
# the stream, CPU time taken from the model's threads.
STATS_SECONDS = 1 / 4


class LiveScreen(RoundScreen):
    """The default screen. It talks to the model only through the app's ModelWorker."""

    AUTO_FOCUS = ""  # keys drive the screen; `/` focuses the question box
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "run", "Run"),
        Binding("n", "next_problem", "Next problem"),
        Binding("l", "level", "Level"),
        Binding("m", "choices('model')", "Model"),
        Binding("g", "choices('strategy')", "Strategy"),
        Binding("p", "choices('policy')", "Policy"),
        Binding("k", "app.price", "κ"),
        Binding("s", "step_mode", "Step mode"),
        Binding("space", "step", "Step"),
        Binding("c", "force('continue')", "Force cont."),
        Binding("x", "force('stop')", "Force stop"),
        Binding("e", "run_to_end", "To end (past bp)"),
        Binding("escape", "cancel", "Cancel"),
        Binding("z", "thinking", "Thinking"),
        Binding("y", "why", "Why"),
        *SCROLL_BINDINGS,
        Binding("left", "browse(-1)", "Round −", show=False),
        Binding("right", "browse(1)", "Round +", show=False),
        Binding("left_square_bracket", "rounds(-1)", "N_max −", show=False),
        Binding("right_square_bracket", "rounds(1)", "N_max +", show=False),
        Binding("1", "breakpoint('flip')", "BP flip", show=False),
        Binding("2", "breakpoint('answer')", "BP answer", show=False),
        Binding("3", "breakpoint('threshold')", "BP belief", show=False),
        Binding("slash", "focus_question", "Type question", show=False),
    ]
    # Shown in the footer (and active) only while a run is in progress: the footer stays short.
    RUN_ONLY = frozenset({"step", "force", "run_to_end"})

    def __init__(self, picker: ProblemPicker, question: str | None = None) -> None:
        super().__init__()
        self.picker = picker
        self.problem: Problem | None = None
        self.initial_question = question or ""
        self.records: list[RoundRecord] = []
        self.decisions: list[Decision] = []
        self.run_id: int | None = None
        self.streaming: int | None = None
        self.model_text = "starting…"
        self.pieces_seen = 0
        self._tracker: RoundTracker | None = None  # the round whose tokens are being drained
        self._folded = -1
        self._stats_at = 0.0  # when the streaming counts were last drawn
        self._stats_tokens = 0  # the round's token count they showed
        self._keys: tuple[bool, bool] | None = None  # what the footer's keys were built for
        self._next_drain = 0.0  # the drain timer's next tick drains from then on
        self._timer: Timer | None = None
        self._shown: tuple[Decision | None, str] = (None, "")  # decision panel content
        # From submit to RunDone; the worker's `busy` flag clears only after RunDone is posted.
        self.running = False
        self.view: ProbView = EMPTY_VIEW  # the probability panel's (and the chart's) numbers
        self.views: dict[int, ProbView] = {}  # each decided round's view (browsing, why-view)
        self.cursor: int | None = None  # a browsed earlier round (← →); None follows the run
        self.run_price = 0.0  # κ of the run on screen (the config's may change mid-run)
        self.run_max_rounds = 0
        self.pause_why: str | None = None  # the pause on screen, if any

    @property
    def mstui(self) -> MstuiApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Question on top, stream and panels in the middle, rounds strip and status below."""
        yield Input(
            self.initial_question,
            id="question",
            placeholder="type a question and press Enter · or press n for a problem",
        )
        yield Static("", id="problem-info")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield StreamView(id="stream")
                yield AccuracyChart("accuracy per round", id="live-chart")
                yield Static("", id="round-stats")
            with Vertical(id="right"):
                yield ProbPanel(id="prob")
                yield DecisionPanel(id="decision")
        yield RoundStrip(id="strip")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        """Empty panels and a paused drain timer (it runs only while a run streams)."""
        self.query_one("#stream", StreamView).border_title = "round text"
        self.query_one("#prob", ProbPanel).border_title = "probability"
        self.query_one("#decision", DecisionPanel).border_title = "decision"
        self.query_one(ProbPanel).tooltip = glossary("q_t", "π", "λ", "regime", "p̂", "p̂₀",
                                                     "a", "b", "flags", "shadow")
        self.query_one(DecisionPanel).tooltip = glossary("gain", "κ", "T", "N_max", "κ*")
        self.show_decision(None)
        self.query_one(RoundStrip).show([], [])
        self.query_one(AccuracyChart).show_view(EMPTY_VIEW)
        self.problem_info()
        self._timer = self.set_interval(DRAIN_SECONDS, self._tick, pause=True)
        self.refresh_status()

    # ---- status --------------------------------------------------------------------------------

    def refresh_status(self) -> None:
        """Model, policy, N_max, step mode and breakpoints on one line."""
        app = self.mstui
        w = app.worker
        step = "STEP" if w.step_mode else "run"
        policy = app.policy
        if app.policy_label != app.policy:
            policy += f"→{app.policy_label}"
        cfg = app.config if w.profile is None else app.config.with_profile(w.profile)  # as run
        line = (
            f"{self.model_text} │ {cfg.strategy}/{cfg.prompt_format} · policy {policy} · "
            f"N_max {cfg.max_rounds} · κ {cfg.price:g} │ {step} · bp {w.breakpoints.describe()}"
        )
        if w.paused:
            line += " │ ⏸ paused (see the decision panel)"
        elif self.pause_why is None:
            # What will pause the run, where the user looks: the decision panel's border.
            armed = w.breakpoints.describe()
            parts = (["STEP mode"] if w.step_mode else []) + (
                [f"bp {armed}"] if armed != "none" else [])
            self.query_one(DecisionPanel).border_subtitle = " · ".join(parts)
        self.query_one("#status", Static).update(Text(line), layout=False)
        self.refresh_keys()

    def compact_changed(self, compact: bool) -> None:
        """Compact: no chart, a short probability panel (see RoundScreen)."""
        self.query_one(ProbPanel).show(self.view)

    def refresh_keys(self) -> None:
        """Rebuild the footer when the keys it offers change (running, a round that thinks):
        a rebuild costs tens of milliseconds, too much for every worker message."""
        state = (self.running, self.query_one(StreamView).reasoning)
        if state != self._keys:
            self._keys = state
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Step-through keys only while a run is in progress (hidden from the footer otherwise)."""
        if action in self.RUN_ONLY:
            return self.running
        if action == "thinking":  # shown only for a round that has a thinking part
            return self.query_one(StreamView).reasoning
        return True

    def show_decision(
        self, decision: Decision | None = None, note: str = "", *, keep: bool = True
    ) -> None:
        """The decision panel, with the next run's κ under it (it applies from the next run)."""
        if keep and decision is None and not note:
            decision, note = self._shown
        self._shown = (decision, note)
        cfg = self.mstui.config
        self.query_one(DecisionPanel).show(
            decision, note=note, extra=f"next run: κ {cfg.price:g} (markov's price per token)",
            shadow=self.view.shadow,
        )

    def _probabilities(self, view: ProbView) -> None:
        self.view = view
        self.query_one(ProbPanel).show(view)
        self.query_one(AccuracyChart).show_view(view)

    def problem_info(self) -> None:
        p = self.problem
        if p is None:
            text = f"problems: {self.picker.set_name} ({self.picker.level_label}; l to change)"
        else:
            text = f"{self.picker.set_name} #{p.id} · level {p.level or '—'} · gold {p.answer}"
        self.query_one("#problem-info", Static).update(Text(text, style="dim"))

    # ---- worker messages (forwarded by the app) ------------------------------------------------

    def apply(self, msg: Message) -> None:
        """Update the panels from one worker message."""
        if isinstance(msg, m.ModelLoading):
            self.model_text = f"loading model {msg.model}…"
        elif isinstance(msg, m.ModelReady):
            self.model_text = f"{msg.model} · {msg.backend} · {msg.offload}"
        elif isinstance(msg, m.ModelFailed):
            self.model_text = f"model failed: {msg.error}"
            self.app.notify(msg.error, title="model", severity="error", timeout=10)
        elif isinstance(msg, m.RunBegan):
            self._run_began(msg)
        elif isinstance(msg, m.RoundBegan):
            self.drain()
            self._start_round(msg.index)
        elif isinstance(msg, m.RoundDone):
            self.drain()
            if self._tracker is not None:
                self.query_one(StreamView).add(self._tracker.flush())
            self._round_done(msg.record)
        elif isinstance(msg, m.FitShown):
            if not self.decisions:  # the prediction before round 0
                self._probabilities(msg.view)
        elif isinstance(msg, m.DecisionReady | m.Paused):
            self.drain()
            self.cursor = None  # a decision brings the screen back to the run
            self.views[msg.decision.round] = msg.view
            self._probabilities(msg.view)
            if isinstance(msg, m.DecisionReady):
                self._paused(None)
                self.decisions.append(msg.decision)
                self.show_decision(msg.decision)
            else:
                self._paused(msg.why)
                self.show_decision(msg.decision)
            self._strip()
        elif isinstance(msg, m.RunDone):
            self.drain()
            self._paused(None)
            self._run_done(msg)
        self.refresh_status()

    def _paused(self, why: str | None) -> None:
        """The pause in the decision panel's border, in colour, with its keys (or no pause)."""
        self.pause_why = why
        self.query_one(DecisionPanel).paused(why)

    def _run_began(self, msg: m.RunBegan) -> None:
        self.records, self.decisions, self.run_id = [], [], msg.run_id
        self.views, self.cursor = {}, None
        self.run_price, self.run_max_rounds = self.mstui.config.price, msg.max_rounds
        self._tracker = None  # round indices start again at 0
        self.mstui.policy_label = msg.policy
        self.show_decision(None, keep=False)
        self._probabilities(EMPTY_VIEW)
        self._strip()
        if self._timer is not None:
            self._timer.resume()

    def _start_round(self, index: int) -> None:
        """Show round `index` (once: its tokens can be drained before its RoundBegan arrives)."""
        if self._tracker is not None and self._tracker.index == index:
            return
        self.streaming = index
        self._tracker = RoundTracker(index, self.mstui.worker.tokens.info(index))
        self._folded = -1  # the thinking count the fold line shows
        self._stats_at, self._stats_tokens = 0.0, 0  # counts drawn on the round's first drain
        self.query_one(StreamView).close_overlay()  # a new round: its text, not an old explanation
        self.query_one(StreamView).reset(index)
        self._strip()
        self.refresh_keys()

    def _tick(self) -> None:
        """Drain when the last frame's share of this thread's time is paid off."""
        now = time.perf_counter()
        if now < self._next_drain:
            return
        cpu = time.thread_time()
        if self.drain():
            self.call_after_refresh(self._drawn, now, cpu)
            return
        tracker = self._tracker
        # The model paused (or the round is long): draw the counts the last frame skipped.
        stale = (
            self.streaming is not None
            and tracker is not None
            and tracker.tokens != self._stats_tokens
        )
        if stale and now - self._stats_at >= STATS_SECONDS:
            self._stats(now)

    def _drawn(self, started: float, cpu: float) -> None:
        """The frame is on screen: it cost this thread's CPU time since `cpu` (drain + paint)."""
        cost = time.thread_time() - cpu
        self._next_drain = started + min(MAX_WAIT, cost / DRAW_SHARE)

    def drain(self) -> bool:
        """Move streamed tokens to the screen: every piece, in order; False when there was none.

        The work is per drained batch, never per token already shown: the stream view appends
        and redraws its visible lines only, and the stats line keeps its size (no layout pass).
        """
        pieces = self.mstui.worker.tokens.drain()
        if not pieces:
            return False
        now = time.perf_counter()
        batch: list[str] = []
        for index, text in pieces:
            if self._tracker is None or index != self._tracker.index:
                self._feed(batch, now)
                batch = []
                self._start_round(index)
            batch.append(text)
        self._feed(batch, now)
        self.pieces_seen += len(pieces)
        if now - self._stats_at >= STATS_SECONDS:
            self._stats(now)
        return True

    def _stats(self, now: float) -> None:
        """The streaming counts: the stats line, and the fold line while the thinking grows."""
        tracker = self._tracker
        assert tracker is not None
        self._stats_at, self._stats_tokens = now, tracker.tokens
        rate = tracker.rate(now) if self.mstui.show_timings else None
        speed = f" · {rate:.0f} tok/s" if rate else ""
        view = self.query_one(StreamView)
        if view.reasoning and tracker.thinking_tokens != self._folded:
            # After the thinking closes the line keeps its last numbers (then the record's).
            self._folded = tracker.thinking_tokens
            view.set_fold(f"{tracker.thinking_tokens:,} tok{speed}")
        self.query_one("#round-stats", Static).update(
            f"round {tracker.index} streaming · {tracker.tokens} tok{speed}", layout=False
        )

    def _feed(self, batch: list[str], now: float) -> None:
        if not batch or self._tracker is None:
            return
        view = self.query_one(StreamView)
        was_reasoning = view.reasoning
        view.add(self._tracker.feed(batch, now), batch)
        if view.reasoning and not was_reasoning:
            self.refresh_keys()  # the fold key appears in the footer

    def _round_done(self, r: RoundRecord) -> None:
        self.records.append(r)
        self.streaming = None
        view = self.query_one(StreamView)
        timings = self.mstui.show_timings
        numbers = thinking_numbers(r, timings)
        if view.index != r.index or not view.shows(r):
            view.show_record(r, numbers=numbers)  # e.g. a round with no tokens at all
        else:  # the streamed text is the record's: only the fold line takes the core's numbers
            view.set_fold(numbers, view.TRUNCATED if r.truncated else "")
        speed = f" · {r.tokens_per_second:.0f} tok/s" if timings else ""
        answer = answer_label(r)
        self.query_one("#round-stats", Static).update(
            Text(
                f"round {r.index}: answer {answer} {mark(r.correct)} [{r.extraction_rule}] · "
                f"{r.completion_tokens} tok{speed} · prompt {r.prompt_tokens} tok "
                f"({cache_text(r)}) · {finish_text(r.finish_reason)}"
            )
        )
        if r.finish_reason == "cancelled":
            self.app.notify(f"round {r.index} cancelled", severity="warning")
        elif r.finish_reason == "error":
            self.app.notify(r.error or "the round failed", title="round", severity="error")
        self._strip()

    def _run_done(self, msg: m.RunDone) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.pause()
        if msg.reason == "error" and not self.records:
            return
        where = f" · stored as run {msg.run_id}" if msg.run_id is not None else ""
        ok = f" {mark(msg.final_correct)}" if msg.final_correct is not None else ""
        self.app.notify(
            f"final answer {msg.final_answer}{ok} after {msg.rounds} finished round(s)"
            + (f" (+ round {self.records[-1].index}, {self.records[-1].finish_reason})"
               if self.records and self.records[-1].finish_reason in ("cancelled", "error")
               else "") + where,
            title=f"run {msg.reason}",
        )
        self._strip()

    def _strip(self) -> None:
        self.query_one(RoundStrip).show(self.records, self.decisions, cursor=self.cursor,
                                        live=self.streaming)

    # ---- actions -------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the question box runs it."""
        self.set_focus(None)
        self.action_run()

    def action_focus_question(self) -> None:
        """Focus the question box."""
        self.query_one("#question", Input).focus()

    def action_run(self) -> None:
        """Run the question in the box (with its gold when it is the loaded problem)."""
        q = self.query_one("#question", Input).value.strip()
        if not q:
            self.app.notify("type a question (/) or press n for a generated problem")
            return
        p = self.problem if self.problem and self.problem.question == q else None
        app = self.mstui
        req = RunRequest(
            q,
            gold=p.gold if p else None,  # as given: rounds are graded against it
            problem_set=self.picker.set_name if p else None,
            problem_id=p.id if p else None,
            level=p.level if p else None,
            config=app.run_config(),
            auto_policy=app.policy == "auto",
        )
        if not app.worker.submit(req):
            self.app.notify("a run is in progress; Esc cancels it", severity="warning")
            return
        self.running = True
        self.refresh_keys()

    def action_next_problem(self) -> None:
        """Load the next problem of the set into the question box."""
        try:
            self.problem = self.picker.next()
        except Exception as exc:  # a bad problem file: say so, keep going
            self.app.notify(one_line(exc), severity="error")
            return
        self.query_one("#question", Input).value = self.problem.question
        self.problem_info()

    def action_level(self) -> None:
        """Cycle the built-in generator's level."""
        if not self.picker.builtin:
            self.app.notify("levels apply to the built-in generated problems only")
            return
        self.picker.cycle_level()
        self.problem = None
        self.problem_info()

    def action_choices(self, group: str) -> None:
        """A list of the model / strategy / policy choices (the palette, filtered)."""
        self.mstui.open_choices(group)

    def action_rounds(self, delta: int) -> None:
        """Change N_max, the cap on total rounds."""
        app = self.mstui
        app.config = dataclasses.replace(
            app.config, max_rounds=max(1, app.config.max_rounds + delta)
        )
        self.refresh_status()

    def action_step_mode(self) -> None:
        """Toggle pausing before every decision."""
        w = self.mstui.worker
        w.step_mode = not w.step_mode
        self.refresh_status()

    def action_step(self) -> None:
        """Let the paused decision take effect and pause at the next one."""
        if not self.mstui.worker.command("step"):
            self.app.notify("not paused (s turns step mode on)")

    def action_force(self, action: str) -> None:
        """Force continue/stop: now when paused, else on the next decision."""
        if not self.mstui.worker.command(action):
            self.app.notify("no run in progress")
        elif not self.mstui.worker.paused:
            self.app.notify(f"will force {action} at the next decision")

    def action_run_to_end(self) -> None:
        """Leave step mode and let the run finish on its own."""
        w = self.mstui.worker
        w.step_mode = False
        w.command("run")
        self.refresh_status()

    def action_breakpoint(self, kind: str) -> None:
        """Toggle a breakpoint: 1 decision flips, 2 answer changes, 3 asks for a belief θ."""
        bp = self.mstui.worker.breakpoints
        if kind == "flip":
            bp.flip = not bp.flip
        elif kind == "answer":
            bp.answer_change = not bp.answer_change
        else:
            now = "off" if bp.threshold is None else f"θ = {bp.threshold:g}"
            title = ("breakpoint: pause when the belief q_t crosses θ (under every policy: "
                     f"the fit's belief). Now {now}; Enter keeps it, empty turns it off.")
            self.app.push_screen(
                NumberScreen(title, bp.threshold, 0.0, 1.0, "e.g. 0.8"), self.set_threshold)
            return
        self.refresh_status()

    def set_threshold(self, value: float | None) -> None:
        """The θ dialog's answer: None cancelled, OFF clears, else the threshold."""
        if value is None:
            return
        self.mstui.worker.breakpoints.threshold = None if value == OFF else value
        self.refresh_status()

    def action_browse(self, delta: int) -> None:
        """← →: show an earlier round of this run (text, belief, decision), between rounds."""
        if not self.records:
            return
        if self.streaming is not None:
            self.app.notify("a round is streaming: browse when it ends (or at a pause)")
            return
        why = self.query_one(StreamView).close_overlay()  # reopened below for the browsed round
        last = self.records[-1].index
        now = last if self.cursor is None else self.cursor
        t = min(max(now + delta, self.records[0].index), last)
        self.cursor = None if t == last else t
        r = next(r for r in self.records if r.index == t)
        title = f"round {t}" + ("" if self.cursor is None else f" of {last} (→ back to the latest)")
        self.query_one(StreamView).show_record(r, title=title,
                                               numbers=thinking_numbers(r, self.mstui.show_timings))
        view = self.views.get(t)
        if view is not None:
            self._probabilities(view)
        decision = next((d for d in self.decisions if d.round == t), None)
        if decision is not None or self.cursor is not None:
            self.show_decision(decision, keep=False)
        self._strip()
        if why:
            self.action_why()

    def action_why(self) -> None:
        """y: why the belief after the shown round is what it is (core.explain)."""
        from mstui.core.explain import explain_round
        from mstui.ui.why import why_renderable

        panel = self.query_one(StreamView)
        if panel.close_overlay():  # y again: back to the round text
            return
        history = [r for r in self.records if r.finish_reason not in ("cancelled", "error")]
        t = self.cursor if self.cursor is not None else (self.decisions[-1].round if
                                                         self.decisions else None)
        if self.cursor is None and self.pause_why is not None and history:
            t = history[-1].index  # paused: the round whose decision waits, not the one before
        if t is None or not history:
            self.app.notify("no finished round yet: the why-view explains a round's belief")
            return
        view = self.views.get(t, self.view)
        if view.fit is None:
            self.app.notify("no fit for this model/strategy, so no belief to explain: run "
                            "`mstui sweep`, then `mstui fit`", severity="warning")
            return
        pos = next(i for i, r in enumerate(history) if r.index == t)
        decision = next((d for d in self.decisions if d.round == t), None)
        if decision is None and self.pause_why is not None:
            decision = self._shown[0]
        e = explain_round(view.fit, view.obs_model, history, pos, price=self.run_price,
                          max_rounds=self.run_max_rounds or self.mstui.config.max_rounds,
                          fit_label=view.fit_label)
        panel.show_overlay(why_renderable(e, decision, view.fit_label, view.fit_note),
                           f"why: round {t}", WHY_SUBTITLE)

    def action_thinking(self) -> None:
        """Fold / unfold the round's thinking."""
        self.query_one(StreamView).toggle_thinking(live=self.streaming is not None)

    def action_cancel(self) -> None:
        """Esc: cancel the round in flight at once (or leave the question box)."""
        w = self.mstui.worker
        if self.query_one(StreamView).close_overlay():  # Esc leaves the why-view first
            return
        if isinstance(self.focused, Input):
            self.set_focus(None)
        if w.busy:
            w.cancel()
            self.app.notify("cancelling…", severity="warning", timeout=2)
