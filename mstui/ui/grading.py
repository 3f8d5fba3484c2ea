"""How each round of a run was graded, one key (`a`) away: extracted text, gold, judge, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from mstui.core.types import RoundRecord
from mstui.ui.widgets import mark
from mstui.ui.worker import one_line

if TYPE_CHECKING:
    from mstui.ui.app import MstuiApp

# What each judge means, in the words shown under the table.
JUDGE_TEXT = {
    "exact": "mstui's normalized answer equals the gold's",
    "math-verify": "Math-Verify parsed both and compared them",
    "none": "no answer was found: wrong without a judge",
    "timeout": "grading ran out of time: ungraded, not wrong",
    "error": "the grader failed: ungraded, not wrong",
}


def verdict(r: RoundRecord) -> Text:
    """✓ / ✗ / ? (ungraded) / blank (no gold), coloured."""
    if r.correct is None:
        return Text("?" if r.judge in ("timeout", "error") else "", style="yellow")
    return Text(mark(r.correct), style="green" if r.correct else "red")


def grading_table(rounds: Sequence[RoundRecord], cursor: int | None = None) -> Table:
    """One row per round: verdict, the extracted text, the rule, its normalized form, the judge."""
    table = Table(expand=True, show_lines=False)
    table.add_column("#", justify="right", width=3)
    table.add_column("", width=1)
    table.add_column("extracted text (as written)", ratio=3, overflow="fold")
    table.add_column("rule", width=11)
    table.add_column("normalized", ratio=2, overflow="fold")
    table.add_column("judge", width=11)
    table.add_column("note", ratio=3, overflow="fold")
    for r in rounds:
        text = r.answer_text if r.answer_text is not None else "(no answer found)"
        if r.finish_reason in ("cancelled", "error"):
            text = f"{text} [{r.finish_reason}]"
        table.add_row(
            str(r.index), verdict(r), text, r.extraction_rule, r.answer or "—",
            r.judge or "—", r.grade_error or "",
            style="reverse" if cursor == r.index else "",
        )
    return table


def gold_lines(gold: str | None, gold_raw: str | None) -> Text:
    """The gold as given and, when it differs, as normalized."""
    t = Text()
    if gold is None and gold_raw is None:
        t.append("no gold answer: rounds are not graded", style="dim")
        return t
    given = gold_raw if gold_raw is not None else gold
    t.append("gold (as given): ", style="bold")
    t.append(str(given))
    if gold is not None and gold != given:
        t.append("   normalized: ", style="bold")
        t.append(gold)
    return t


class GradingScreen(ModalScreen[None]):
    """A run's rounds as graded; Esc (or `a` again) closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,a,q", "dismiss", "Close")]

    def __init__(self, rounds: Sequence[RoundRecord], gold: str | None, gold_raw: str | None,
                 *, title: str = "grading", cursor: int | None = None) -> None:
        super().__init__()
        self.rounds = list(rounds)
        self.gold, self.gold_raw = gold, gold_raw
        self.heading = title
        self.cursor = cursor

    def compose(self) -> ComposeResult:
        """Gold, the table, and what the judges mean."""
        judges = sorted({r.judge for r in self.rounds if r.judge})
        legend = Text()
        for j in judges:
            legend.append(f"{j}: ", style="bold")
            legend.append(JUDGE_TEXT.get(j, "") + "\n")
        if any(r.judge is None and r.correct is not None for r in self.rounds):
            legend.append("—: graded before judges were recorded "
                          "(`mstui traces regrade` re-scores it)\n", style="dim")
        with VerticalScroll(id="grading"):
            yield Static(Text(self.heading, style="bold"))
            yield Static(gold_lines(self.gold, self.gold_raw))
            yield Static(grading_table(self.rounds, self.cursor) if self.rounds
                         else Text("no finished rounds yet", style="dim"))
            yield Static(legend)


def open_grading(app: MstuiApp) -> None:
    """Show the grading of what the current screen shows: the live run, a replayed run, or the
    run under the cursor in the traces table."""
    from mstui.ui.live import LiveScreen
    from mstui.ui.replay import ReplayScreen
    from mstui.ui.traces import TracesScreen

    screen = app.screen
    if isinstance(screen, ReplayScreen):
        if screen.run is None:
            return
        run = screen.run
        app.push_screen(GradingScreen(screen.rounds, run.get("gold"), run.get("gold_raw"),
                                      title=f"run {run['id']}: grading",
                                      cursor=screen.cursor))
    elif isinstance(screen, TracesScreen):
        table = screen.query_one(DataTable)
        if table.row_count == 0:
            app.notify("no run selected")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        _from_store(app, int(str(key)))
    elif isinstance(screen, LiveScreen):
        if screen.run_id is not None:
            _from_store(app, screen.run_id)  # the store has the run's gold and every round
        elif screen.records:
            p = screen.problem
            gold = p.answer if p is not None else None
            app.push_screen(GradingScreen(screen.records, gold, p.gold if p else None,
                                          title="this run (not recorded): grading"))
        else:
            app.notify("no rounds yet: run a question first")


def _from_store(app: MstuiApp, run_id: int) -> None:
    """Load a run in a thread (never on the UI thread), then show its grading."""

    def fetch() -> None:
        try:
            run: dict[str, Any] = app.traces.store.get_run(run_id)
        except Exception as exc:  # a locked or missing database: one line
            app.call_from_thread(app.notify, one_line(exc), severity="error")
            return
        app.call_from_thread(app.push_screen, GradingScreen(
            run["rounds"], run.get("gold"), run.get("gold_raw"),
            title=f"run {run_id}: grading"))

    app.run_worker(fetch, thread=True, exclusive=True, group="grading")
