"""Replay a stored run round by round with the live panels, and ask what-if of other policies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Select, Static

from mstui.core.types import Decision, RoundRecord, cache_text, finish_text
from mstui.ui.round_screen import RoundScreen
from mstui.ui.services import StoredFit, sample_line
from mstui.ui.view import SetWhatIf, WhatIf, prob_view, set_what_if, what_if
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
from mstui.ui.worker import one_line

if TYPE_CHECKING:
    from mstui.core.belief import ObservationModel
    from mstui.core.fitting import ChainFit
    from mstui.ui.app import MstuiApp


# Each what-if input's name sits in its border, so it stays visible once a value is typed.
WHAT_IF_LABELS = {
    "#wi-policy": "policy",
    "#wi-price": "κ (price per token)",
    "#wi-rounds": "N_max (round cap)",
    "#wi-fit": "fit",
}
WHAT_IF_HINT = "Tab: edit the inputs · w: what-if with them · W: over every stored run of this set"


class ReplayScreen(RoundScreen):
    """The panels of the live view fed from stored rows; ← → move between rounds."""

    AUTO_FOCUS = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("left", "move(-1)", "Prev round"),
        Binding("right", "move(1)", "Next round"),
        Binding("w", "what_if", "What-if"),
        Binding("W", "what_if_set", "What-if (set)"),
        Binding("v", "next_fit", "Fit ▸"),
        Binding("z", "thinking", "Thinking"),
        Binding("y", "why", "Why"),
        *SCROLL_BINDINGS,
        # One Tab reaches the what-if inputs (the stream comes first in the focus chain).
        Binding("tab", "tab", "What-if inputs", show=False),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.run: dict[str, Any] | None = None
        self.rounds: list[RoundRecord] = []
        self.decisions: dict[int, Decision] = {}
        self.cursor = 0
        self.last_what_if: WhatIf | None = None
        self.last_set: SetWhatIf | None = None
        self.last_in_sample: int | None = None  # runs of the last set what-if the fit saw
        self.fits: list[StoredFit] = []  # stored fits of this run's model × strategy

    @property
    def mstui(self) -> MstuiApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Question, stream/panels, strip, what-if inputs and result."""
        yield Static("loading…", id="replay-question")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield StreamView(id="stream")
                yield Static("", id="round-stats")
            with Vertical(id="right"):
                yield ProbPanel(id="prob")
                yield DecisionPanel(id="decision")
        yield RoundStrip(id="strip")
        with Horizontal(id="whatif-row"):
            yield Input(id="wi-policy", placeholder="e.g. markov, fixed:2, repeat")
            yield Input(id="wi-price", placeholder="accuracy per token, e.g. 0.0005")
            yield Input(id="wi-rounds", placeholder="cap on total rounds")
            yield Select[int]([], id="wi-fit", prompt="the run's own", allow_blank=True)
        yield Static(WHAT_IF_HINT, id="whatif")
        yield Footer()

    def compact_changed(self, compact: bool) -> None:
        """Compact: short panels, the decision kept in view (see RoundScreen)."""
        if self.run is not None:
            self.show_round(self.cursor)

    def on_mount(self) -> None:
        """Load the run in a thread (never block the UI on the database)."""
        self.query_one("#prob", ProbPanel).border_title = "probability (as stored)"
        self.query_one("#decision", DecisionPanel).border_title = "decision (as stored)"
        self.query_one("#whatif", Static).border_title = "what-if"
        for selector, label in WHAT_IF_LABELS.items():
            widget = self.query_one(selector)
            # A Select draws its border on the box inside it (SelectCurrent): the title goes
            # there; queried by name, the class is not public.
            target = widget.query_one("SelectCurrent") if isinstance(widget, Select) else widget
            target.border_title = label
        self.run_worker(self._fetch, thread=True, exclusive=True, group="replay")

    def _fetch(self) -> None:
        try:
            run = self.mstui.traces.run(self.run_id)
            fits = self.mstui.traces.fits_for(run)
        except Exception as exc:
            self.app.call_from_thread(self.app.notify, one_line(exc), severity="error")
            return
        self.app.call_from_thread(self.loaded, run, fits)

    def loaded(self, run: dict[str, Any], fits: list[StoredFit] | None = None) -> None:
        """Show a run fetched by TraceService.run, and offer the fits for what-if."""
        self.run = run
        self.fits = list(fits or [])
        chooser = self.query_one("#wi-fit", Select)
        chooser.set_options([(f.label, f.fit_id) for f in self.fits])
        if any(f.fit_id == run.get("fit_id") for f in self.fits):
            chooser.value = int(run["fit_id"])
        self.rounds = list(run["rounds"])
        self.decisions = {d.round: d for d in run["decisions"]}
        gold = f" · gold {run['gold']}" if run.get("gold") is not None else ""
        self.query_one("#replay-question", Static).update(
            Text(
                f"run {run['id']} · {run.get('model')} · {run.get('problem_set')} "
                f"{run.get('problem_id') or ''} · policy {run.get('policy')} · {run.get('status')}"
                f"{gold}\n{run['question']}"
            )
        )
        self.query_one("#wi-policy", Input).value = str(run.get("policy") or "fixed:1")
        price = (run.get("settings") or {}).get("price", 0.0)
        self.query_one("#wi-price", Input).value = f"{float(price or 0.0):g}"
        self.query_one("#wi-rounds", Input).value = str(run.get("max_rounds") or len(self.rounds))
        self.show_round(0)

    def show_round(self, t: int) -> None:
        """Panels as they were after round t."""
        if not self.rounds or self.run is None:
            self.query_one(StreamView).show(0, "(this run has no stored rounds)")
            return
        self.cursor = t = max(0, min(t, len(self.rounds) - 1))
        r = self.rounds[t]
        d = self.decisions.get(t)
        run = self.run
        history = [x for x in self.rounds[: t + 1] if x.finish_reason not in ("cancelled", "error")]
        fit, obs, label, note = self.belief_fit()
        price = float((run.get("settings") or {}).get("price") or 0.0)
        view = prob_view(fit, obs, history, d, int(run.get("max_rounds") or len(self.rounds)),
                         label, note, price)
        self.query_one(StreamView).show_record(
            r, f"round {t} of {len(self.rounds)}", thinking_numbers(r, self.mstui.show_timings)
        )
        self.refresh_bindings()  # the fold key shows for a round that thought
        answer = answer_label(r)
        self.query_one("#round-stats", Static).update(
            Text(
                f"round {t}: answer {answer} {mark(r.correct)} [{r.extraction_rule}] · "
                f"{r.completion_tokens} tok · prompt {r.prompt_tokens} tok ({cache_text(r)}) · "
                f"{finish_text(r.finish_reason)}"
            )
        )
        self.query_one(ProbPanel).show(view)
        self.query_one(DecisionPanel).show(d, shadow=view.shadow)
        self.query_one(RoundStrip).show(self.rounds, list(self.decisions.values()), cursor=t)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The fold key only for a round that has a thinking part."""
        if action == "thinking":
            return self.query_one(StreamView).reasoning
        return True

    def action_thinking(self) -> None:
        """Fold / unfold the round's thinking."""
        self.query_one(StreamView).toggle_thinking()

    def action_tab(self) -> None:
        """From outside the what-if row, to its first input; inside it, to the next one."""
        row = self.query_one("#whatif-row")
        if self.focused is None or row not in self.focused.ancestors:
            self.query_one("#wi-policy", Input).focus()
        else:
            self.focus_next()

    def action_move(self, delta: int) -> None:
        """Previous / next round (the why-view, when open, follows)."""
        why = self.query_one(StreamView).close_overlay()
        self.show_round(self.cursor + delta)
        if why:
            self.action_why()

    def _inputs(self) -> tuple[str, float, int]:
        spec = self.query_one("#wi-policy", Input).value.strip() or "fixed:1"
        try:
            price = float(self.query_one("#wi-price", Input).value.strip() or 0.0)
            nmax = int(self.query_one("#wi-rounds", Input).value.strip() or 1)
        except ValueError:
            raise ValueError("κ must be a number and N_max a whole number") from None
        return spec, price, nmax

    def chosen_fit(self) -> tuple[ChainFit | None, ObservationModel | None, str]:
        """(fit, obs model, label) for what-if: the chosen stored fit, else the run's own."""
        assert self.run is not None
        value = self.query_one("#wi-fit", Select).value
        for f in self.fits:
            if f.fit_id == value:
                return f.fit, f.obs_model, f"fit #{f.fit_id}"
        if self.run.get("fit") is not None:
            return self.run["fit"], self.run.get("obs_model"), f"fit #{self.run['fit_id']}"
        if self.fits:  # the run used none (fixed, …): the scope's newest, as the belief shows
            f = self.fits[0]
            return f.fit, f.obs_model, f"fit #{f.fit_id}"
        return None, None, "no fit"

    def belief_fit(self) -> tuple[ChainFit | None, ObservationModel | None, str, str]:
        """(fit, obs model, label, caveat) behind the shown belief: the run's own fit, else
        the chosen stored fit of this model × strategy as a shadow (a fixed run has none)."""
        assert self.run is not None
        if self.run.get("fit") is not None:
            return self.run["fit"], self.run.get("obs_model"), f"fit #{self.run['fit_id']}", ""
        fit, obs, label = self.chosen_fit()
        if fit is None:
            return None, None, "no fit with this run", ""
        return fit, obs, label, f"shadow belief: policy {self.run.get('policy')} used no fit"

    def action_why(self) -> None:
        """y: why the belief after this round is what it is (core.explain)."""
        from mstui.core.explain import explain_round
        from mstui.ui.why import why_renderable

        panel = self.query_one(StreamView)
        if panel.close_overlay() or self.run is None or not self.rounds:
            return
        fit, obs, label, note = self.belief_fit()
        if fit is None:
            self.app.notify("no fit for this run's model/strategy, so no belief to explain",
                            severity="warning")
            return
        r = self.rounds[self.cursor]
        history = [x for x in self.rounds if x.finish_reason not in ("cancelled", "error")]
        if r not in history:
            self.app.notify(f"round {r.index} was {r.finish_reason}: it has no belief")
            return
        price = float((self.run.get("settings") or {}).get("price") or 0.0)
        e = explain_round(fit, obs, history, history.index(r), price=price,
                          max_rounds=int(self.run.get("max_rounds") or len(self.rounds)),
                          fit_label=label)
        panel.show_overlay(why_renderable(e, self.decisions.get(r.index), label, note),
                           f"why: run {self.run['id']} round {r.index}", WHY_SUBTITLE)
    def chosen_fit_id(self) -> int | None:
        """The stored id of the what-if's fit (None: the run had none)."""
        assert self.run is not None
        value = self.query_one("#wi-fit", Select).value
        if any(f.fit_id == value for f in self.fits):
            return int(value)  # type: ignore[arg-type]
        if self.run.get("fit") is not None:
            return int(self.run["fit_id"])
        return self.fits[0].fit_id if self.fits else None

    def action_next_fit(self) -> None:
        """Cycle the what-if fit through the stored fits of this model × strategy."""
        chooser = self.query_one("#wi-fit", Select)
        ids = [f.fit_id for f in self.fits]
        if not ids:
            self.app.notify("no stored fit for this model and strategy")
            return
        # Blank (the run's own fit) stays reachable in the chooser itself.
        chooser.value = ids[
            (ids.index(chooser.value) + 1) % len(ids) if chooser.value in ids else 0
        ]

    def on_select_changed(self, event: Select.Changed) -> None:
        """A new fit recomputes the what-if at once."""
        if self.run is not None and self.last_what_if is not None:
            self.action_what_if()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a what-if box recomputes at once."""
        self.set_focus(None)
        self.action_what_if()

    def action_what_if(self) -> None:
        """Where another policy / κ / N_max would have stopped on this run (core replay)."""
        if self.run is None:
            return
        out = self.query_one("#whatif", Static)
        try:
            spec, price, nmax = self._inputs()
            fit, obs, fit_label = self.chosen_fit()
            wi = what_if(self.rounds, spec, price, nmax, fit, obs)
        except ValueError as exc:
            out.update(Text(one_line(exc), style="red"))
            return
        self.last_what_if = wi
        stored = [r for r in self.rounds if r.finish_reason not in ("cancelled", "error")]
        old = stored[-1] if stored else None
        text = Text()
        text.append(
            f"{wi.policy} (N_max {nmax}, {fit_label}) would stop after round {wi.stop_round}: ",
            style="bold",
        )
        text.append(f"answer {wi.answer} {mark(wi.correct)} · {wi.tokens} tokens\n")
        text.append(f"rule {wi.decision.rule}: {wi.decision.reason}\n")
        if old is not None:
            text.append(
                f"stored run: stopped after round {old.index}, answer {old.answer} "
                f"{mark(old.correct)} · {sum(r.tokens for r in stored)} tokens",
                style="dim",
            )
        if wi.note:
            text.append(f"\n{wi.note}", style="yellow")
        out.update(text)
        self.show_round(wi.stop_round)

    def action_what_if_set(self) -> None:
        """The same what-if over every finished run of this model × set × strategy."""
        if self.run is None:
            return
        try:
            spec, price, nmax = self._inputs()
        except ValueError as exc:
            self.query_one("#whatif", Static).update(Text(one_line(exc), style="red"))
            return
        self.query_one("#whatif", Static).update("computing over the stored runs…")
        run = self.run
        fit, obs, _ = self.chosen_fit()
        fit_id = self.chosen_fit_id()
        self.run_worker(
            lambda: self._set_what_if(run, spec, price, nmax, fit, obs, fit_id),
            thread=True,
            exclusive=True,
            group="whatif",
        )

    def _set_what_if(
        self,
        run: dict[str, Any],
        spec: str,
        price: float,
        nmax: int,
        fit: ChainFit | None,
        obs: ObservationModel | None,
        fit_id: int | None,
    ) -> None:
        try:
            runs = self.mstui.traces.sibling_runs(run)
            result = set_what_if(runs, spec, price, nmax, fit, obs)
            used = self.mstui.traces.in_sample(fit_id, runs) if fit is not None else 0
        except Exception as exc:
            self.app.call_from_thread(
                self.query_one("#whatif", Static).update, Text(one_line(exc), style="red")
            )
            return
        self.last_set = result
        self.last_in_sample = used
        text = Text("\n".join(result.lines()) + "\n")
        text.append(sample_line(fit_id if fit is not None else None, used, len(runs)),
                    style="bold yellow" if used else "dim")
        self.app.call_from_thread(self.query_one("#whatif", Static).update, text)

    def action_back(self) -> None:
        """Leave a what-if box or the why-view, else go back to the runs."""
        if self.query_one(StreamView).close_overlay():
            return
        if isinstance(self.focused, Input):
            self.set_focus(None)
        else:
            self.app.pop_screen()
