"""Panels shared by the live view and the replay: stream, round strip, probabilities, decision."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from mstui.core.types import Decision, RoundRecord
from mstui.ui.view import ProbView

BAR_WIDTH = 16


def num(x: float | None, digits: int = 3) -> str:
    """A number for a panel, '—' when it does not apply to the policy."""
    return "—" if x is None else f"{x:.{digits}f}"


def mark(correct: bool | None) -> str:
    """✓ / ✗ where gold is known, blank otherwise."""
    return "" if correct is None else ("✓" if correct else "✗")


def bar(p: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of p in [0, 1] with eighth-block resolution."""
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


class StreamView(VerticalScroll):
    """The round in flight (or a replayed round): plain text appended as tokens arrive."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.index = -1
        self._parts: list[str] = []
        self.body = Static("", id="stream-body", markup=False)

    def compose(self):  # type: ignore[no-untyped-def]
        yield self.body

    @property
    def text(self) -> str:
        """Everything shown for the current round (the benchmark checks it equals the stream)."""
        return "".join(self._parts)

    def reset(self, index: int, title: str = "") -> None:
        """Start showing round `index`."""
        self.index = index
        self._parts = []
        self.border_title = title or f"round {index}"
        self.body.update("")

    def append(self, pieces: Sequence[str]) -> None:
        """Add streamed pieces and keep the newest text in view."""
        if not pieces:
            return
        self._parts.append("".join(pieces))
        self.body.update(Text(self.text))
        self.scroll_end(animate=False, immediate=False)

    def show(self, index: int, text: str, title: str = "") -> None:
        """Replace the content with a whole stored round."""
        self.reset(index, title)
        self._parts = [text]
        self.body.update(Text(text))
        self.scroll_home(animate=False)


class RoundStrip(Static):
    """One cell per round: index, extracted answer, ✓/✗, the decision after it."""

    def show(
        self,
        records: Sequence[RoundRecord],
        decisions: Sequence[Decision],
        cursor: int | None = None,
        live: int | None = None,
    ) -> None:
        """Render rounds; `cursor` highlights a replayed round, `live` marks one streaming."""
        out = Text()
        by_round = {d.round: d for d in decisions}
        for r in records:
            style = "reverse" if cursor == r.index else ""
            ans = r.answer_text if r.answer_text is not None else "∅"
            if r.finish_reason in ("cancelled", "error"):
                ans = r.finish_reason
            cell = Text(f" #{r.index} {ans[:14]} ", style=style)
            ok = mark(r.correct)
            if ok:
                cell.append(ok + " ", style=("green" if r.correct else "red") + " " + style)
            d = by_round.get(r.index)
            if d is not None:
                arrow = "→" if d.final_action == "continue" else "■"
                cell.append(arrow + ("!" if d.override else "") + " ", style=style)
            out.append_text(cell)
            out.append("│", style="dim")
        if live is not None and all(r.index != live for r in records):
            out.append(f" #{live} … ", style="italic")
        self.update(out if out.plain else Text("no rounds yet", style="dim"))


class ProbPanel(Static):
    """q_t, π, λ, the regime and the predicted accuracy curve against the rounds seen."""

    def show(self, view: ProbView) -> None:
        """Render a ProbView (numbers come from the core; nothing is computed here)."""
        t = Text()
        t.append(f"q_t {num(view.belief)}  π {num(view.pi)}  λ {num(view.lam)}\n", style="bold")
        t.append(f"regime: {view.regime or '—'}", style=_regime_style(view.regime))
        if view.mode:
            t.append(f"  ({view.mode})", style="dim")
        t.append("\n")
        seen = {i: q for i, q in enumerate(view.beliefs)}
        rows = sorted({*seen, *(n for n, _ in view.curve)})
        if rows:
            t.append(" n  value  " + " " * BAR_WIDTH + " seen\n", style="dim")
        predicted = dict(view.curve)
        for n in rows:
            if n < view.round or (n == view.round and n in seen and not predicted):
                value, kind = seen[n], "q"
            elif n == view.round:
                value, kind = view.belief if view.belief is not None else seen.get(n, 0.0), "now"
            else:
                value, kind = predicted[n], "p̂"
            ok = mark(view.marks[n]) if n < len(view.marks) else ""
            t.append(f"{n:>2}{'→' if n == view.round else ' '}{value:6.3f} ")
            t.append(bar(value), style="cyan" if kind == "p̂" else "green")
            t.append(f" {ok:1} {kind if kind != 'q' else ''}\n")
        t.append(view.fit_label + "\n", style="italic")
        for line in view.fit_lines:
            t.append(line + "\n", style="dim")
        self.update(t)


def _regime_style(regime: str | None) -> str:
    return {"beneficial": "green", "detrimental": "red"}.get(regime or "", "yellow")


class DecisionPanel(Static):
    """The decision: continue / stop, the rule that fired, its reason and numbers."""

    def show(self, decision: Decision | None, note: str = "", extra: str = "") -> None:
        """Render a decision (or a waiting line); `note` says why the run is paused, `extra`
        is a last line (the live screen's κ for the next run)."""
        t = Text()
        if note:
            t.append(f"⏸ {note}\n", style="bold yellow")
        if decision is None:
            t.append("no decision yet", style="dim")
        else:
            self._decision(t, decision)
        if extra:
            t.append(f"\n{extra}", style="italic")
        self.update(t)

    @staticmethod
    def _decision(t: Text, decision: Decision) -> None:
        act = decision.final_action
        t.append(f"after round {decision.round}: ", style="bold")
        t.append(act.upper(), style="bold green" if act == "continue" else "bold red")
        if decision.override:
            t.append(f"  (forced; policy said {decision.action})", style="yellow")
        t.append(f"\nrule {decision.rule} · policy {decision.policy}\n")
        t.append(decision.reason + "\n")
        t.append(
            f"gain {num(decision.expected_gain, 4)}  κ {num(decision.price, 5)}  "
            f"T {num(decision.round_cost, 0)}  cap {decision.cap or '—'}",
            style="dim",
        )
