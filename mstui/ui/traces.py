"""The traces screen: stored runs paged from SQL, with filters and full-text search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from mstui.ui.services import SNIPPET_MARK, parse_query
from mstui.ui.widgets import mark
from mstui.ui.worker import one_line

if TYPE_CHECKING:
    from mstui.ui.app import MstuiApp

PAGE = 50  # rows fetched per page: only these are ever loaded, however big the database
COLUMNS = (
    "run",
    "started",
    "model",
    "set",
    "problem",
    "policy",
    "rounds",
    "answer",
    "ok",
    "tokens",
    "status",
    "question",  # last: the widest, clipped to what is left of the screen
)
MATCH_COLUMN = "match (round: text)"  # before the question while a search is on
LEAD = 14  # characters of a search snippet kept before its first hit
MARK = "●"  # a marked run (for compare); unmarked ids carry a blank of the same width


def clip(text: str, width: int) -> str:
    """Fit `text` in `width` cells keeping its end: problem ids differ in their last part."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def head(text: str, width: int) -> str:
    """`text` on one line, cut to `width` cells keeping its start (questions start with what
    they ask)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def id_cell(run_id: int, marked: bool) -> str:
    """The run cell: a gutter for the mark, then the id. The mark never takes the id's place
    (a cell was once "● 3" for run 304: the column kept the width of the bare ids)."""
    return f"{MARK if marked else ' '} {run_id}"


def match_cell(match: tuple[int, int, str] | None, width: int = 40) -> Text:
    """'r2 (+1): …the farmer sold…' with the matched words bold: where a search hit a run
    (its first matching round, and how many more rounds matched)."""
    if match is None:
        return Text("—", style="dim")
    first, count, snippet = match
    out = Text(f"r{first}" + (f" (+{count - 1})" if count > 1 else "") + ": ", style="cyan")
    flat = " ".join(snippet.split())
    hit = flat.find(SNIPPET_MARK[0])
    if hit > LEAD:  # keep a few words before the first hit, so the hit itself is in the cell
        flat = "…" + flat[hit - LEAD:].lstrip("…")
    budget = max(width - len(out), 8)
    bold = False
    for part in flat.replace(SNIPPET_MARK[1], SNIPPET_MARK[0]).split(SNIPPET_MARK[0]):
        if budget <= 0:
            break
        piece = part if len(part) <= budget else part[: budget - 1] + "…"
        out.append(piece, style="bold reverse" if bold else "")
        budget -= len(piece)
        bold = not bold
    return out


def row_cells(r: dict[str, Any], *, marked: bool = False,
              search: bool = False) -> tuple[str | Text, ...]:
    """One runs row as table cells (with the match column when a search is on)."""
    started = (r.get("started_at") or "")[:16].replace("T", " ")
    answer = r.get("final_answer_text") or r.get("final_answer") or "—"
    cells: tuple[str | Text, ...] = (
        id_cell(int(r["id"]), marked),
        started,
        str(r.get("model") or "—")[:20],
        str(r.get("problem_set") or "—")[:12],
        clip(str(r.get("problem_id") or "—"), 12),
        str(r.get("policy") or "—"),
        str(r.get("n_rounds") or 0),
        str(answer)[:12],
        mark(r.get("final_correct")),
        str(r.get("total_tokens") or 0),
        str(r.get("status") or ""),
    )
    if search:
        cells += (match_cell(r.get("match")),)
    return (*cells, head(str(r.get("question") or "—"), 60))


class TracesScreen(Screen[None]):
    """Browse runs; Enter replays one."""

    AUTO_FOCUS = "#traces-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "focus_query", "Filter/search"),
        Binding("left_square_bracket", "page(-1)", "Prev page"),
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("r", "reload", "Reload"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare marked"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_text = ""
        self.page_offset = 0
        self.total = 0
        self.marked: list[int] = []  # run ids marked for comparison, oldest mark first
        self.searching = False  # the table has the match column

    @property
    def mstui(self) -> MstuiApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Query box, table, page line."""
        yield Input(
            id="traces-query",
            placeholder="filter: model:(part of the name) set:… policy:… status:… "
            "correct:yes since:2025-01-01 · other words search the responses",
        )
        yield DataTable(id="traces-table", cursor_type="row", zebra_stripes=True)
        yield Static("loading…", id="traces-info")
        yield Footer()

    def on_mount(self) -> None:
        """Columns, then the first page (in a thread: a big database never blocks the UI)."""
        self._columns(search=False)
        self.load()

    def _columns(self, *, search: bool) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        names = (*COLUMNS[:-1], MATCH_COLUMN, COLUMNS[-1]) if search else COLUMNS
        self.run_column = table.add_columns(*names)[0]
        self.searching = search

    def load(self) -> None:
        """Fetch the current page in a thread worker."""
        query, offset = self.query_text, self.page_offset
        self.run_worker(
            lambda: self._fetch(query, offset), thread=True, exclusive=True, group="traces"
        )

    def _fetch(self, query: str, offset: int) -> None:
        try:
            rows, total = self.mstui.traces.page(query, PAGE, offset)
        except Exception as exc:  # a locked or missing database: a line, not a traceback
            self.app.call_from_thread(self._failed, one_line(exc))
            return
        self.app.call_from_thread(self._show, rows, total, offset)

    def _failed(self, error: str) -> None:
        self.query_one("#traces-info", Static).update(Text(error, style="red"))
        self.app.notify(error, title="traces", severity="error")

    def _show(self, rows: list[dict[str, Any]], total: int, offset: int) -> None:
        search = bool(rows) and "match" in rows[0]
        if search != self.searching:
            self._columns(search=search)
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            cells = row_cells(r, marked=r["id"] in self.marked, search=search)
            table.add_row(*cells, key=str(r["id"]))
        self.total = total
        last = offset + len(rows)
        what = f" matching {self.query_text!r}" if self.query_text else ""
        self.query_one("#traces-info", Static).update(
            f"runs {offset + 1 if rows else 0}–{last} of {total}{what} · Enter replays · "
            f"[ ] pages · / filters · space marks, c compares{self._marked_text()}"
        )

    def _marked_text(self) -> str:
        return f" (marked: {', '.join(map(str, self.marked))})" if self.marked else ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Apply a new filter/search query from the first page; a filter that cannot work (a
        bad date) is said in one line and the box keeps the focus, to fix it."""
        try:
            parse_query(event.value)
        except ValueError as exc:
            self._failed(one_line(exc))
            return
        self.query_text = event.value.strip()
        self.page_offset = 0
        self.query_one(DataTable).focus()
        self.load()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Replay the selected run."""
        from mstui.ui.replay import ReplayScreen

        if event.row_key.value is not None:
            self.app.push_screen(ReplayScreen(int(event.row_key.value)))

    def action_page(self, delta: int) -> None:
        """Previous / next page."""
        new = self.page_offset + delta * PAGE
        if 0 <= new < max(self.total, 1):
            self.page_offset = new
            self.load()

    def action_mark(self) -> None:
        """Mark / unmark the run under the cursor; marking a third drops the oldest mark."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        run_id = int(str(key.value))
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
            if len(self.marked) > 2:
                dropped = self.marked.pop(0)
                self._mark_cell(dropped, False)
        self._mark_cell(run_id, run_id in self.marked)
        self.app.notify(f"marked: {', '.join(map(str, self.marked)) or 'none'}", timeout=2)

    def _mark_cell(self, run_id: int, on: bool) -> None:
        table = self.query_one(DataTable)
        if str(run_id) in table.rows:  # the run may be on another page
            table.update_cell(str(run_id), self.run_column, id_cell(run_id, on))

    def action_compare(self) -> None:
        """Open the two marked runs side by side."""
        from mstui.ui.compare import CompareScreen

        if len(self.marked) != 2:
            self.app.notify("mark two runs with space first", severity="warning")
            return
        self.app.push_screen(CompareScreen(*self.marked))

    def action_reload(self) -> None:
        """Fetch the page again (new runs appear)."""
        self.load()

    def action_focus_query(self) -> None:
        """Focus the filter/search box."""
        self.query_one("#traces-query", Input).focus()

    def action_back(self) -> None:
        """Leave the query box, else go back to the live screen."""
        if isinstance(self.focused, Input):
            self.query_one(DataTable).focus()
        else:
            self.app.pop_screen()
