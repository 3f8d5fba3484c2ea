"""The why-view: a round's prior, evidence, posterior and decision inequality (core.explain),
drawn by StreamView.show_overlay in place of the round text."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from mstui.core.explain import Explanation
from mstui.core.types import Decision


def why_renderable(e: Explanation, decision: Decision | None = None,
                   fit_label: str = "", note: str = "") -> Table:
    """The why-view as one Rich table (numbers from the core, formatted only).

    `decision` is the policy's own decision after the round, when there is one: a policy that
    does not read the belief (fixed, none, …) is shown next to what markov would do."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column()
    grid.add_row("round", f"{e.round}  ·  {fit_label}" if fit_label else str(e.round))
    if note:
        grid.add_row("", Text(note, style="yellow"))
    grid.add_row("prior", Text.assemble(f"{e.prior:.3f}  ", (e.prior_source, "dim")))
    ev = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
    ev.add_column("feature")
    ev.add_column("value")
    ev.add_column("ratio C/W", justify="right")
    ev.add_column("", style="dim")
    for x in e.evidence:
        style = "green" if x.ratio > 1.0 + 1e-9 else ("red" if x.ratio < 1.0 - 1e-9 else "")
        ev.add_row(x.name, x.value, Text(f"×{x.ratio:.3g}", style=style), x.note)
    if e.evidence:
        grid.add_row("evidence", ev)
        w = f"tempered by w = {e.temper:.2f}; " if e.temper is not None else ""
        grid.add_row("", Text(f"{w}posterior odds = prior odds × every ratio", style="dim"))
    else:
        grid.add_row("evidence", Text("none: no observation model in this fit, so the belief "
                                      "is the chain's prediction (predict-only)", style="dim"))
    grid.add_row("posterior", Text(f"q_{e.round} = {e.posterior:.3f}", style="bold"))
    if e.classes:
        moves = " · ".join(f"class {k}: {before:.2f} → {after:.2f}"
                           for k, (before, after) in enumerate(e.classes))
        grid.add_row("classes", Text(f"mixture of {len(e.classes)} chains, P(class) {moves}",
                                     style="dim"))
    pi = "—" if e.pi is None else f"{e.pi:.3f}"
    grid.add_row("chain", f"π {pi} · λ {e.lam:.3f}")
    verdict = "CONTINUE" if e.continues else "STOP"
    rule = Text.assemble((f"markov:{e.price:g} → {verdict}", "bold green" if e.continues
                          else "bold red"), "   ", e.inequality())
    if e.capped and e.continues:
        rule.append("   (the cap forbids another round)", style="yellow")
    grid.add_row("decision", rule)
    grid.add_row("what if", e.counterfactual())
    if decision is not None:
        act = decision.final_action.upper()
        forced = f" (forced; policy said {decision.action})" if decision.override else ""
        grid.add_row("policy", f"{decision.policy}: {act}{forced} — {decision.reason}")
    if e.fit_note:
        grid.add_row("fit", Text(e.fit_note, style="yellow"))
    return grid


WHY_SUBTITLE = "y or Esc: back to the round text"
