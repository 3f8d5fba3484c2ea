"""The base of the live and replay screens: the round text's scroll keys and the compact layout."""

from __future__ import annotations

from textual.screen import Screen

from mstui.ui.widgets import ProbPanel, StreamView

# Below either size the screen is compact: the chart goes, the probability panel keeps its
# first lines, and the decision panel keeps the room it needs (80×24 must show a decision).
COMPACT_WIDTH, COMPACT_HEIGHT = 120, 34


class RoundScreen(Screen[None]):
    """A screen showing one round's text (a StreamView) beside a ProbPanel.

    ↑ ↓ PgUp PgDn Home End (SCROLL_BINDINGS, in the subclass's bindings) scroll the round text,
    or the why-view drawn over it; below COMPACT_WIDTH × COMPACT_HEIGHT the screen takes the
    `compact` class and `compact_changed` redraws what depends on it.
    """

    def action_scroll_text(self, where: str) -> None:
        """↑ ↓ PgUp PgDn Home End scroll the round text (or the why-view over it)."""
        self.query_one(StreamView).scroll_text(where)

    def on_resize(self) -> None:
        compact = self.size.width < COMPACT_WIDTH or self.size.height < COMPACT_HEIGHT
        if compact != self.has_class("compact"):
            self.set_class(compact, "compact")
            self.query_one(ProbPanel).compact = compact
            self.compact_changed(compact)

    def compact_changed(self, compact: bool) -> None:
        """Redraw what the layout change affects; the subclass says what."""
