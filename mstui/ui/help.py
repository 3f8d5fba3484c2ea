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
            ("← →", "browse earlier rounds of this run (between rounds)"),
            ("y", "why: the round's prior, each feature's likelihood ratio, the posterior, "
                  "the decision inequality and the κ that flips it (live and replay)"),
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
            ("e", "run to the end past every breakpoint (this run; leaves step mode)"),
            ("1", "breakpoint: the decision flips"),
            ("2", "breakpoint: the answer changes"),
            ("3", "breakpoint: belief q_t crosses a threshold θ you type (empty = off); "
                  "works under every policy (the fit's shadow belief)"),
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
            ("y", "why: the round's evidence and decision inequality"),
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


# Every symbol the panels show, with units: the help screen lists them and the panels carry
# them as hover tooltips.
GLOSSARY: tuple[tuple[str, str], ...] = (
    ("q_t", "belief after round t: P(the current answer is correct | rounds seen), 0–1. The "
            "chain's prediction updated by the round's features (why-view: y)"),
    ("p̂₀", "first-round accuracy of the fit: the belief before round 0"),
    ("a", "P(correct → wrong) per round, fitted (95% interval)"),
    ("b", "P(wrong → correct) per round, fitted (95% interval)"),
    ("π", "b / (a + b): the accuracy refinement converges to, 0–1"),
    ("λ", "1 − a − b: how much of the gap to π remains after a round"),
    ("p̂", "predicted accuracy of a later round, from q_t along the chain"),
    ("regime", "beneficial (q_t < π: another round is expected to help), detrimental "
               "(q_t > π: expected to hurt) or neutral"),
    ("gain", "b − (a + b)·q_t: accuracy points one more round is expected to add "
             "(0.01 = one point)"),
    ("T", "expected tokens of the next round: the mean of this run's rounds (prompt tokens "
          "evaluated + generated)"),
    ("κ", "price: accuracy you would trade for one token; markov continues iff gain > κ·T"),
    ("κ*", "the price at which the decision flips: gain / T"),
    ("N_max", "the cap on total rounds"),
    ("ratio", "likelihood ratio P(feature | correct) / P(feature | wrong); > 1 raises q_t"),
    ("flags", "no-transitions / few-from-correct / few-from-wrong: a and/or b are the prior, "
              "not data; such a fit is shown but drives no decision unless allowed "
              "(--allow-sparse-fit); p0-spread-unidentified: one round-0 sample per question"),
    ("shadow", "a belief shown under a policy that does not read it (fixed, none, repeat, "
               "oracle): what markov would see"),
)


def glossary(*names: str) -> str:
    """Tooltip text: the named symbols (all when none), one per line."""
    want = set(names)
    return "\n".join(f"{k}: {v}" for k, v in GLOSSARY if not want or k in want)


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
            symbols = Table(title="symbols", show_header=False, box=None,
                            title_justify="left", title_style="bold")
            symbols.add_column(style="bold cyan", width=8)
            symbols.add_column()
            for name, what in GLOSSARY:
                symbols.add_row(name, what)
            yield Static(symbols)
