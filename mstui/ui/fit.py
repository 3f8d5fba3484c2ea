"""The fit screen: scopes with a, b, π, λ, p̂0 and intervals, fit checks, refit on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from mstui.ui.charts import AccuracyChart
from mstui.ui.services import ScopeFit
from mstui.ui.widgets import num
from mstui.ui.worker import one_line

if TYPE_CHECKING:
    from mstui.ui.app import MstuiApp

COLUMNS = ("model", "set", "strategy", "runs", "questions", "rounds", "fit")


def accuracy_rows(sf: ScopeFit) -> list[dict[str, Any]]:
    """Observed vs predicted accuracy per round, as the core's accuracy-by-round check gave it."""
    for c in sf.checks:
        if c["name"] == "accuracy-by-round":
            return list(c.get("details", {}).get("rounds", []))
    return []


def detail(sf: ScopeFit) -> Table | Text:
    """A fit's numbers, its checks and observed vs predicted accuracy per round."""
    fit = sf.fit
    if fit is None:
        return Text("no fit for this scope yet: press r to fit it from its labelled rounds")
    grid = Table.grid(padding=(0, 2))
    grid.add_column()
    grid.add_row(Text(f"fit #{sf.fit_id} · {fit.scope} · {fit.created}", style="bold"))
    from mstui.analysis.pools import derived_intervals

    (pi_lo, pi_hi), (lam_lo, lam_hi) = derived_intervals(fit)  # as `mstui fit` shows them
    grid.add_row(
        f"a = {fit.a:.4f} [{fit.a_lo:.4f}, {fit.a_hi:.4f}]   "
        f"b = {fit.b:.4f} [{fit.b_lo:.4f}, {fit.b_hi:.4f}]   (95% intervals)"
    )
    grid.add_row(
        f"π = {fit.pi:.4f} [{pi_lo:.4f}, {pi_hi:.4f}]   λ = {fit.lam:.4f} [{lam_lo:.4f}, "
        f"{lam_hi:.4f}]"
    )
    grid.add_row(
        f"p̂0 = {fit.p0:.4f} [{fit.p0_lo:.4f}, {fit.p0_hi:.4f}]   "
        f"regime at p̂0: {fit.chain.regime(fit.p0)}   half-life "
        f"{fit.chain.half_life:.2f} rounds"
    )
    grid.add_row(
        f"transitions CC {fit.n_cc} · CW {fit.n_cw} · WC {fit.n_wc} · WW {fit.n_ww} · "
        f"{fit.n_questions} chains, {fit.n_rounds} rounds"
        + (f" · flags: {', '.join(fit.flags)}" if fit.flags else "")
    )
    sparse = fit.sparse_reason()  # the core's one rule: markov and gate refuse such a fit
    if sparse:
        grid.add_row(Text(f"⚠ {sparse}: markov and gate refuse it", style="bold red"))
    checks = Table(title="fit checks", title_justify="left", box=None)
    for col in ("check", "statistic", "df", "p", "verdict"):
        checks.add_column(col)
    from mstui.core.fitting import check_reading

    for c in sf.checks:
        # Read again from the numbers, so fits stored before the reading existed show the same.
        reading = check_reading(c)
        if not reading["testable"]:
            verdict = Text(reading["verdict"], style="yellow")
        elif reading["verdict"] == "ok":
            verdict = Text("fits", style="green")
        else:
            verdict = Text("rejected", style="red")
        checks.add_row(c["name"], f"{c['statistic']:.2f}", str(c["df"]),
                       reading["p_text"].removeprefix("p "), verdict)
    grid.add_row(checks)
    rows = accuracy_rows(sf)
    acc = Table(
        title="per round: observed (95% CI) vs p_n",
        title_justify="left",
        box=None,
    )
    for col in ("n", "rounds", "observed", "interval", "predicted"):
        acc.add_column(col)
    for r in rows:
        acc.add_row(
            str(r["round"]),
            str(r["n"]),
            num(r["observed"]),
            f"[{num(r['lo'])}, {num(r['hi'])}]",
            num(r["predicted"]),
        )
    grid.add_row(acc if rows else Text("no per-round accuracy for this fit", style="dim"))
    return grid


class FitScreen(Screen[None]):
    """Scopes from the store; Enter shows a fit, r refits in a thread worker."""

    AUTO_FOCUS = "#fit-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "refit", "Refit scope"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[dict[str, Any]] = []
        self.shown: ScopeFit | None = None

    @property
    def mstui(self) -> MstuiApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        """Scopes table over the selected fit's detail."""
        yield DataTable(id="fit-table", cursor_type="row")
        with VerticalScroll(id="fit-detail"):
            yield Static("loading scopes…", id="fit-body")
            yield AccuracyChart("accuracy per round: observed vs predicted p_n", id="fit-chart")
        yield Footer()

    def on_mount(self) -> None:
        """Columns, then the scopes (in a thread)."""
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.query_one("#fit-detail").border_title = "fit"
        self.run_worker(self._fetch_scopes, thread=True, group="fit")

    def _fetch_scopes(self) -> None:
        try:
            scopes = self.mstui.traces.scopes()
        except Exception as exc:
            self.app.call_from_thread(self._say, one_line(exc))
            return
        self.app.call_from_thread(self._show_scopes, scopes)

    def _say(self, text: str) -> None:
        self.query_one("#fit-body", Static).update(Text(text, style="red"))

    def _show_scopes(self, scopes: list[dict[str, Any]]) -> None:
        self.scopes = scopes
        table = self.query_one(DataTable)
        table.clear()
        for i, s in enumerate(scopes):
            fit = f"#{s['latest_fit_id']}" if s.get("latest_fit_id") else "—"
            table.add_row(
                str(s["model"]),
                str(s["problem_set"]),
                str(s["strategy"]),
                str(s["n_runs"]),
                str(s["n_questions"]),
                str(s["n_rounds"]),
                fit,
                key=str(i),
            )
        if not scopes:
            self._say(
                "no labelled rounds yet: run problems with gold answers (n, r on the live "
                "screen, or `mstui sweep`)"
            )
        else:
            self.select(0)

    def select(self, i: int) -> None:
        """Show scope i's newest fit and checks (computed in a thread)."""
        scope = self.scopes[i]
        self.query_one("#fit-body", Static).update("loading fit…")
        self.run_worker(
            lambda: self._fetch_fit(scope, refit=False),
            thread=True,
            exclusive=True,
            group="fit-detail",
        )

    def _fetch_fit(self, scope: dict[str, Any], refit: bool) -> None:
        try:
            sf = self.mstui.traces.refit(scope) if refit else self.mstui.traces.scope_fit(scope)
        except Exception as exc:
            self.app.call_from_thread(self._say, one_line(exc))
            return
        self.app.call_from_thread(self._show_fit, sf, refit)

    def _show_fit(self, sf: ScopeFit, refit: bool) -> None:
        self.shown = sf
        self.query_one("#fit-body", Static).update(detail(sf))
        self.query_one(AccuracyChart).show_rounds(accuracy_rows(sf))
        if refit:
            sparse = sf.fit.sparse_reason() if sf.fit else None
            self.app.notify(f"saved fit #{sf.fit_id}" + (f"; {sparse}: markov and gate refuse "
                                                         "it" if sparse else ""),
                            title="refit", severity="warning" if sparse else "information")
            self.run_worker(self._fetch_scopes, thread=True, group="fit")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Moving the cursor shows that scope's fit."""
        if event.row_key.value is not None and self.scopes:
            self.select(int(event.row_key.value))

    def action_refit(self) -> None:
        """Refit the selected scope from its labelled rounds and save it."""
        if not self.scopes:
            return
        row = self.query_one(DataTable).cursor_row
        scope = self.scopes[max(0, min(row, len(self.scopes) - 1))]
        self.query_one("#fit-body", Static).update("refitting…")
        self.run_worker(
            lambda: self._fetch_fit(scope, refit=True),
            thread=True,
            exclusive=True,
            group="fit-detail",
        )

    def action_back(self) -> None:
        """Back to the live screen."""
        self.app.pop_screen()
