"""Compare two stored runs side by side: per round answer ✓/✗, belief q_t and action; totals;
and the highlighted round's two responses as a word diff."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
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
    responses: tuple[str, ...] = ()  # each round's response text, for the diff

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
        tuple(r.response or "" for r in rounds),
    )


MAX_DIFF_WORDS = 4000  # per side: difflib is quadratic at worst; a round is rarely longer
_TOKEN = re.compile(r"\S+|\s+")


@dataclass(frozen=True)
class ResponseDiff:
    """Two responses as runs of kept ('='), A-only ('-') and B-only ('+') text."""

    parts: tuple[tuple[str, str], ...]
    similarity: float  # difflib's ratio over words: 1.0 when identical
    cut: bool  # a side was longer than MAX_DIFF_WORDS words and only its start is compared


def response_diff(a: str, b: str) -> ResponseDiff:
    """A word-level diff of two responses (difflib.SequenceMatcher over words and spaces, so
    a changed word shows as itself, not as a changed line of a one-line response)."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    cut = max(len(ta), len(tb)) > 2 * MAX_DIFF_WORDS  # words and the spaces between them
    ta, tb = ta[: 2 * MAX_DIFF_WORDS], tb[: 2 * MAX_DIFF_WORDS]
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    parts: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(("=", "".join(ta[i1:i2])))
            continue
        if i2 > i1:
            parts.append(("-", "".join(ta[i1:i2])))
        if j2 > j1:
            parts.append(("+", "".join(tb[j1:j2])))
    return ResponseDiff(tuple(parts), matcher.ratio(), cut)


DIFF_STYLES = {"=": "", "-": "red strike", "+": "green bold"}
# git's --word-diff brackets, so a replaced word reads apart from its replacement, in colour or
# not: "[-checked-]{+baskets+}".
DIFF_BRACKETS = {"=": ("", ""), "-": ("[-", "-]"), "+": ("{+", "+}")}


def diff_text(c_a: RunColumn, c_b: RunColumn, t: int) -> Text:
    """Round t's responses of A and B as one text: [-A only-] struck in red, {+B only+} green."""
    have = [t < len(c.responses) for c in (c_a, c_b)]
    if not all(have):
        who = " and ".join(name for name, h in zip("AB", have, strict=True) if not h)
        return Text(f"round {t}: run {who} has no round {t}; nothing to compare", style="dim")
    d = response_diff(c_a.responses[t], c_b.responses[t])
    head = Text(f"round {t}: ", style="bold")
    if d.similarity == 1.0:
        head.append("the two responses are identical\n", style="bold")
    else:
        head.append(f"{d.similarity:.0%} alike · ")
        head.append("[-A only-]", style=DIFF_STYLES["-"])
        head.append(" ")
        head.append("{+B only+}", style=DIFF_STYLES["+"])
        head.append("\n")
    for op, text in d.parts:
        left, right = DIFF_BRACKETS[op]
        head.append(f"{left}{text}{right}", style=DIFF_STYLES[op])
    if d.cut:
        head.append(f"\n(only the first {MAX_DIFF_WORDS} words of each are compared)",
                    style="dim")
    return head


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
    # The diff's own box (app.tcss lays out the table and totals).
    DEFAULT_CSS = """
    #compare-diff-box { height: 1fr; border: round $secondary; padding: 0 1; }
    #compare-diff { height: auto; }
    """

    def __init__(self, run_a: int, run_b: int) -> None:
        super().__init__()
        self.ids = (run_a, run_b)
        self.columns: tuple[RunColumn, RunColumn] | None = None
        self.diff_round: int | None = None  # the round whose responses the diff shows

    @property
    def mstui(self) -> MstuiApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Titles, the per-round table, the totals."""
        yield Static("loading…", id="compare-head")
        yield DataTable(id="compare-table", zebra_stripes=True, cursor_type="row")
        yield Static("", id="compare-totals")
        with VerticalScroll(id="compare-diff-box"):
            yield Static("", id="compare-diff")
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
        self.query_one("#compare-diff-box").border_title = "responses: ↑ ↓ choose the round"
        self.show_diff(0)

    def show_diff(self, t: int) -> None:
        """Round t's two responses as a word diff."""
        if self.columns is not None:
            self.diff_round = t
            self.query_one("#compare-diff", Static).update(diff_text(*self.columns, t))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The diff follows the highlighted round."""
        self.show_diff(event.cursor_row)

    def action_back(self) -> None:
        """Back to the runs."""
        self.app.pop_screen()
