"""Plotext charts of accuracy per round; they plot numbers the core computed, never their own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textual_plotext import PlotextPlot

from mstui.ui.view import ProbView

Series = dict[str, list[tuple[float, float]]]


class AccuracyChart(PlotextPlot):
    """Accuracy (0–1) against the round n; `series` keeps what is drawn, for tests and reading."""

    def __init__(self, title: str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self.title = title
        self.series: Series = {}

    def _draw(self, series: Series, empty: str) -> None:
        self.series = series
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title if any(series.values()) else f"{self.title} · {empty}")
        plt.ylim(0, 1)
        plt.yticks([0, 0.5, 1])
        xs = sorted({x for pts in series.values() for x, _ in pts})
        if xs:
            plt.xticks(xs, [str(int(x)) for x in xs])
            plt.xlim(min(xs) - 0.2, max(xs) + 0.2)
        for (name, pts), color in zip(series.items(), ("cyan", "green", "red"), strict=False):
            if not pts:
                continue
            x, y = [p[0] for p in pts], [p[1] for p in pts]
            if name.startswith("✓") or name.startswith("✗"):
                plt.scatter(x, y, label=name, color=color, marker="dot")
            else:
                plt.plot(x, y, label=name, color=color, marker="braille")
        self.refresh()

    def show_view(self, view: ProbView) -> None:
        """Live/replay: the predicted curve p_n from q_t, the beliefs seen, and ✓/✗ rounds."""
        seen = [(float(n), q) for n, q in enumerate(view.beliefs)]
        # Correct rounds sit at 1, wrong ones at 0: what happened, against what was predicted.
        marks = [(float(n), float(ok)) for n, ok in enumerate(view.marks) if ok is not None]
        self._draw(
            {
                "predicted p_n": [(float(n), p) for n, p in view.curve],
                "belief q_t": seen,
                "✓/✗ rounds": marks,
            },
            "no fit: no prediction",
        )

    def show_rounds(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Fit screen: observed vs predicted accuracy per round (the accuracy-by-round check)."""
        self._draw(
            {
                "predicted p_n": [(float(r["round"]), float(r["predicted"])) for r in rows],
                "observed": [(float(r["round"]), float(r["observed"])) for r in rows],
            },
            "no per-round accuracy",
        )
