"""The help screen (`?`): every key of every screen, in one place."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "everywhere",
        (
            ("t", "traces: browse, search and replay stored runs"),
            ("f", "fit: chain fits per scope, checks, refit"),
            ("a", "grading: each round's extracted answer, the gold and who judged ✓/✗ "
                  "(live, replay, traces)"),
            ("?", "this help"),
            ("q", "quit"),
            (
                "ctrl+p",
                "command palette: model, strategy, policy, prompt format, level, κ, screens",
            ),
        ),
    ),
    (
        "live",
        (
            ("/", "type a question (Enter runs it)"),
            ("n", "next problem of the set"),
            ("l", "cycle the generated problems' level"),
            ("r", "run the question"),
            ("m", "pick the model (GGUFs in models/; reloads in the background)"),
            ("g", "pick the strategy: reanswer, refine, wait"),
            ("p", "pick the policy (auto = markov when a fit exists, else fixed)"),
            ("k", "set κ, markov's price per token (from the next run)"),
            ("[ ]", "N_max − / +"),
            ("z", "fold / unfold a reasoning round's thinking (live and replay)"),
            ("Esc", "cancel the round in flight"),
        ),
    ),
    (
        "step-through",
        (
            (
                "s",
                "step mode on/off: pause before every decision (next keys: while running)",
            ),
            ("space", "step: accept the decision, pause at the next"),
            ("c", "force continue (stored as your override)"),
            ("x", "force stop (stored as your override)"),
            ("e", "run to end (leave step mode)"),
            ("1", "breakpoint: the decision flips"),
            ("2", "breakpoint: the answer changes"),
            ("3", "breakpoint: belief q_t crosses 0.5 / 0.7 / 0.9 / off"),
        ),
    ),
    (
        "traces",
        (
            (
                "/",
                "filter and search: words search responses (the match column shows the "
                "round); model: (part of the name), set:, policy:, status:, correct:yes|no, "
                "since:DATE, until:DATE",
            ),
            ("Enter", "replay the selected run"),
            ("space", "mark / unmark a run (two at most)"),
            ("c", "compare the two marked runs side by side"),
            ("[ ]", "previous / next page"),
            ("Esc", "back"),
        ),
    ),
    (
        "replay",
        (
            ("← →", "previous / next round"),
            ("Tab", "to the what-if inputs: policy, κ, N_max, fit"),
            ("w", "what-if with the inputs below"),
            ("W", "the same what-if over every stored run of this problem set (says when "
                  "the fit was made from those runs: in-sample)"),
            ("v", "what-if under the next stored fit of this model × strategy"),
            ("Esc", "back"),
        ),
    ),
    ("compare", (("↑ ↓", "the round whose two responses are diffed below"),
                 ("Esc", "back to the runs"))),
    (
        "fit",
        (
            ("Enter", "show a scope's fit, checks and accuracy per round"),
            ("r", "refit the selected scope from stored rounds"),
            ("", "the plot: observed (green) vs predicted p_n (cyan) accuracy per round"),
            ("Esc", "back"),
        ),
    ),
)


class HelpScreen(ModalScreen[None]):
    """A scrollable list of keys; any of Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        """One table per screen."""
        with VerticalScroll(id="help"):
            for title, keys in KEYS:
                table = Table(
                    title=title,
                    show_header=False,
                    box=None,
                    title_justify="left",
                    title_style="bold",
                )
                table.add_column(style="bold cyan", width=8)
                table.add_column()
                for key, what in keys:
                    table.add_row(key, what)
                yield Static(table)
