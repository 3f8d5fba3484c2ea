"""Plots of `mstui eval`: a terminal scatter and an SVG (or PNG through matplotlib) file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _points(results: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    return [(r["mean_tokens"], r["accuracy"], r["policy"]) for r in results]


def terminal_plot(results: list[dict[str, Any]], width: int = 60, height: int = 12) -> str:
    """Accuracy (up) against mean tokens (right), one letter per policy family."""
    pts = _points(results)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 0.01)
    grid = [[" "] * width for _ in range(height)]
    for x, y, name in pts:
        c = int((x - x0) / (x1 - x0) * (width - 1))
        r = height - 1 - int((y - y0) / (y1 - y0) * (height - 1))
        grid[r][c] = name[0]
    lines = [f"  {y1:6.3f} ┤" + "".join(grid[0])]
    lines += ["         │" + "".join(row) for row in grid[1:-1]]
    lines.append(f"  {y0:6.3f} ┤" + "".join(grid[-1]))
    lines.append("         └" + "─" * width)
    lines.append(f"          {x0:<10.0f}{'mean tokens per question':^{width - 20}}{x1:>10.0f}")
    lines.append("          n none · f fixed · r repeat · g gate · m markov · o oracle")
    return "\n".join(lines)


def write_plot(rep: dict[str, Any], path: Path) -> None:
    """Accuracy vs tokens: SVG written by hand; PNG through matplotlib when installed."""
    results = rep["results"]
    if path.suffix.lower() == ".png":
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ValueError("a PNG plot needs matplotlib (pip install matplotlib); "
                             "or ask for an .svg file") from None
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for x, y, name in _points(results):
            ax.plot(x, y, "o")
            ax.annotate(name, (x, y), fontsize=7)
        ax.set_xlabel("mean tokens per question")
        ax.set_ylabel("accuracy")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return
    path.write_text(svg_plot(rep), encoding="utf-8")


def svg_plot(rep: dict[str, Any], w: int = 720, h: int = 460) -> str:
    """A self-contained SVG scatter with interval bars and labels."""
    from html import escape

    results = rep["results"]
    left, right, top, bottom = 70, 30, 40, 60
    xs = [r["tok_lo"] for r in results] + [r["tok_hi"] for r in results]
    ys = [r["acc_lo"] for r in results] + [r["acc_hi"] for r in results]
    x0, x1 = min(xs), max(xs)
    y0, y1 = max(0.0, min(ys) - 0.02), min(1.0, max(ys) + 0.02)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 0.01)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def py(y: float) -> float:
        return h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)

    colors = {"n": "#555", "f": "#1f77b4", "r": "#9467bd", "g": "#2ca02c", "m": "#d62728",
              "o": "#ff7f0e"}
    s = rep["scope"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="13">'
           f'{escape(str(s["model"]))} · {escape(str(s["problem_set"]))} — accuracy vs tokens '
           f'(held-out questions)</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" '
           f'stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{(left + w - right) / 2}" y="{h - 20}" text-anchor="middle">mean tokens '
           f'per question</text>',
           f'<text x="18" y="{(top + h - bottom) / 2}" text-anchor="middle" '
           f'transform="rotate(-90 18 {(top + h - bottom) / 2})">accuracy</text>']
    for i in range(5):
        xv, yv = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        out.append(f'<text x="{px(xv):.1f}" y="{h - bottom + 16}" text-anchor="middle">'
                   f'{xv:.0f}</text>')
        out.append(f'<text x="{left - 6}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.2f}</text>')
    for r in results:
        c = colors.get(r["policy"][0], "#000")
        x, y = px(r["mean_tokens"]), py(r["accuracy"])
        out.append(f'<line x1="{x:.1f}" y1="{py(r["acc_lo"]):.1f}" x2="{x:.1f}" '
                   f'y2="{py(r["acc_hi"]):.1f}" stroke="{c}" stroke-opacity="0.4"/>')
        out.append(f'<line x1="{px(r["tok_lo"]):.1f}" y1="{y:.1f}" x2="{px(r["tok_hi"]):.1f}" '
                   f'y2="{y:.1f}" stroke="{c}" stroke-opacity="0.4"/>')
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{c}"/>')
        out.append(f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" fill="{c}">'
                   f'{escape(r["policy"])}</text>')
    out.append("</svg>")
    return "\n".join(out)
