"""Compare two stored runs side by side: per round answer ✓/✗, belief q_t and action; totals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from mstui.ui.view import prob_view
from mstui.ui.widgets import mark, num
from mstui.ui.worker import one_line

if TYPE_CHECKING:
    from mstui.ui.app import MstuiApp


@dataclass(frozen=True)
class RunColumn:
    """One run's side of the comparison, as stored (beliefs from the core where not stored)."""

    run_id: int
    title: str
    answers: tuple[tuple[str, bool | None], ...]  # (answer text, correct) per round
    beliefs: tuple[float | None, ...]  # q_t per round
    actions: tuple[str, ...]  # 'continue', 'stop', 'stop!' (forced), '' (no decision)
    tokens: int
    final_answer: str | None
    final_correct: bool | None

    @property
    def rounds(self) -> int:
        """Rounds run (cancelled and failed ones included: they cost tokens too)."""
        return len(self.answers)


def run_column(run: dict[str, Any]) -> RunColumn:
    """A TraceService.run() dict as a comparison column.

    q_t is the stored decision's belief; a policy that keeps none (fixed, repeat) gets the
    core's belief trajectory under the run's fit, when it had one, else '—'.
    """
    rounds = list(run["rounds"])
    decisions = {d.round: d for d in run["decisions"]}
    usable = [r for r in rounds if r.finish_reason not in ("cancelled", "error")]
    traj: tuple[float, ...] = ()
    if run.get("fit") is not None and usable:
        view = prob_view(run["fit"], run.get("obs_model"), usable, None, len(usable))
        traj = view.beliefs
    by_index = {r.index: i for i, r in enumerate(usable)}
    beliefs: list[float | None] = []
    actions: list[str] = []
    for r in rounds:
        d = decisions.get(r.index)
        q = d.belief if d is not None else None
        if q is None and r.index in by_index and by_index[r.index] < len(traj):
            q = traj[by_index[r.index]]
        beliefs.append(q)
        actions.append("" if d is None else d.final_action + ("!" if d.override else ""))
    answers = tuple(
        (r.answer_text if r.answer_text is not None else r.finish_reason, r.correct) for r in rounds
    )
    return RunColumn(
        int(run["id"]),
        f"run {run['id']} · {run.get('model')} · {run.get('policy')} · {run.get('strategy')}",
        answers,
        tuple(beliefs),
        tuple(actions),
        sum(r.tokens for r in rounds),
        run.get("final_answer_text") or run.get("final_answer"),
        run.get("final_correct"),
    )


def compare_rows(a: RunColumn, b: RunColumn) -> list[tuple[str, ...]]:
    """Table rows: round, then answer, q_t, action of run A and of run B ('' past its end)."""

    def side(c: RunColumn, t: int) -> tuple[str, str, str]:
        if t >= c.rounds:
            return "", "", ""
        answer, ok = c.answers[t]
        return f"{answer[:14]} {mark(ok)}".rstrip(), num(c.beliefs[t]), c.actions[t]

    return [(str(t), *side(a, t), *side(b, t)) for t in range(max(a.rounds, b.rounds))]


def totals_line(c: RunColumn) -> str:
    """Rounds, tokens and the final answer with its correctness."""
    ok = mark(c.final_correct) or "(no gold)"
    return f"run {c.run_id}: {c.rounds} round(s) · {c.tokens} tokens · final {c.final_answer} {ok}"


class CompareScreen(Screen[None]):
    """Two runs side by side, loaded in a thread."""

    AUTO_FOCUS = "#compare-table"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self, run_a: int, run_b: int) -> None:
        super().__init__()
        self.ids = (run_a, run_b)
        self.columns: tuple[RunColumn, RunColumn] | None = None

    @property
    def mstui(self) -> MstuiApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Titles, the per-round table, the totals."""
        yield Static("loading…", id="compare-head")
        yield DataTable(id="compare-table", zebra_stripes=True, cursor_type="row")
        yield Static("", id="compare-totals")
        yield Footer()

    def on_mount(self) -> None:
        """Fetch both runs off the UI thread."""
        self.run_worker(self._fetch, thread=True, exclusive=True, group="compare")

    def _fetch(self) -> None:
        try:
            a, b = (run_column(self.mstui.traces.run(i)) for i in self.ids)
        except Exception as exc:  # a deleted run or a locked database: a line, not a crash
            self.app.call_from_thread(
                self.query_one("#compare-head", Static).update, Text(one_line(exc), style="red")
            )
            return
        self.app.call_from_thread(self.show, a, b)

    def show(self, a: RunColumn, b: RunColumn) -> None:
        """Fill the table and the totals."""
        self.columns = (a, b)
        self.query_one("#compare-head", Static).update(Text(f"A: {a.title}\nB: {b.title}"))
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns("n", "A answer", "A q_t", "A action", "B answer", "B q_t", "B action")
        for row in compare_rows(a, b):
            table.add_row(*row)
        self.query_one("#compare-totals", Static).update(
            Text(f"A {totals_line(a)}\nB {totals_line(b)}")
        )

    def action_back(self) -> None:
        """Back to the runs."""
        self.app.pop_screen()
