"""The why-view: a round's prior, evidence, posterior and decision inequality (core.explain),
drawn by StreamView.show_overlay in place of the round text."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from mstui.core.explain import Explanation
from mstui.core.types import Decision

WHY_SUBTITLE = "y or Esc: back to the round text"
LABEL = 10  # width of the left column ("posterior ")


class WhyView:
    """Labelled rows, each wrapped under its label (a hanging indent) at the width it is drawn
    at. Plain wrapped lines, not a Rich table: a table measures every cell twice, which made
    opening the view slow."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, Text]] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - LABEL, 10)
        for label, text in self.rows:
            for i, line in enumerate(text.wrap(console, width)):
                head = Text(f"{label if i == 0 else '':<{LABEL}}", style="bold")
                yield Text.assemble(head, line)


def _row(out: WhyView, label: str, *parts: str | tuple[str, str]) -> None:
    out.rows.append((label, Text.assemble(*parts)))


def why_renderable(e: Explanation, decision: Decision | None = None,
                   fit_label: str = "", note: str = "") -> WhyView:
    """The why-view (numbers from the core, formatted only).

    `decision` is the policy's own decision after the round, when there is one: a policy that
    does not read the belief (fixed, none, …) is shown next to what markov would do."""
    out = WhyView()
    _row(out, "round", f"{e.round}  ·  {fit_label}" if fit_label else str(e.round))
    if note:
        _row(out, "", (note, "yellow"))
    _row(out, "prior", f"{e.prior:.3f}  ", (e.prior_source, "dim"))
    if e.evidence:
        # Ratio first: the numbers line up whatever the width, and the feature reads after it.
        _row(out, "evidence", ("ratio C/W  feature: value", "dim"))
        for x in e.evidence:
            style = "green" if x.ratio > 1.0 + 1e-9 else ("red" if x.ratio < 1.0 - 1e-9 else "")
            _row(out, "", (f"×{x.ratio:<9.3g}", style), f" {x.name}: {x.value}",
                 (f" ({x.note})" if x.note else "", "dim"))
        w = f"tempered by w = {e.temper:.2f}; " if e.temper is not None else ""
        _row(out, "", (f"{w}posterior odds = prior odds × every ratio", "dim"))
    else:
        _row(out, "evidence", ("none: no observation model in this fit, so the belief is the "
                               "chain's prediction (predict-only)", "dim"))
    _row(out, "posterior", (f"q_{e.round} = {e.posterior:.3f}", "bold"))
    if e.classes:
        moves = " · ".join(f"class {k}: {before:.2f} → {after:.2f}"
                           for k, (before, after) in enumerate(e.classes))
        _row(out, "classes", (f"mixture of {len(e.classes)} chains, P(class) {moves}", "dim"))
        for k, (a, b, pc) in enumerate(e.class_rates):
            pk = e.classes[k][1]
            _row(out, "", (f"class {k}: a {a:.3f} · b {b:.3f} · P(k,C) {pc:.3f} · P(k,W) "
                           f"{pk - pc:.3f}", "dim"))
    pi = "—" if e.pi is None else f"{e.pi:.3f}"
    _row(out, "chain", f"π {pi} · λ {e.lam:.3f}")
    verdict = "CONTINUE" if e.continues else "STOP"
    cap = ("   (the cap forbids another round)", "yellow") if e.capped and e.continues else ""
    _row(out, "decision", (f"markov:{e.price:g} → {verdict}",
                           "bold green" if e.continues else "bold red"), "   ", e.inequality(),
         cap)
    _row(out, "what if", e.counterfactual())
    if decision is not None:
        act = decision.final_action.upper()
        forced = f" (forced; policy said {decision.action})" if decision.override else ""
        _row(out, "policy", f"{decision.policy}: {act}{forced} — {decision.reason}")
    if e.fit_note:
        _row(out, "fit", (e.fit_note, "yellow"))
    return out
