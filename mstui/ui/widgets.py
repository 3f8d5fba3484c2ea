"""Panels shared by the live view and the replay: stream, round strip, probabilities, decision."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip
from textual.widgets import Static

from mstui.core.reasoning import Segment as Part
from mstui.core.types import Decision, RoundRecord
from mstui.ui.view import ProbView
from mstui.ui.wrap import CONTROLS, WrappedText

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


def thinking_numbers(r: RoundRecord, timings: bool = True) -> str:
    """The fold line's numbers for a finished round, from its record: thinking tokens, and the
    round's generation speed when timings are shown ("" for a round that did not think)."""
    if r.final is None:
        return ""
    speed = f" · {r.tokens_per_second:.0f} tok/s" if timings and r.tokens_per_second else ""
    return f"{r.thinking_tokens:,} tok{speed}"


def answer_label(r: RoundRecord) -> str:
    """The extracted answer for a stats line, or why there is none."""
    if r.answer_text is not None:
        return r.answer_text
    return "none (ended inside its thinking)" if r.truncated else "(no answer found)"


# The screens' keys for scrolling the round text (the view is not focused: ← → are theirs).
SCROLL_BINDINGS = [
    Binding(key, f"scroll_text('{key}')", "Scroll", show=False)
    for key in ("up", "down", "pageup", "pagedown", "home", "end")
]


class StreamView(ScrollView, can_focus=True):
    """The round in flight (or a stored round): the thinking folded to one line (`z` unfolds it),
    then the final part in full.

    A line-API view over two WrappedTexts: an append wraps only the last line, a refresh redraws
    only the lines that changed (the growing last line, unless lines were added or it scrolled),
    and finished lines are drawn once and cached. So showing one more token costs the same at
    1k tokens as at 32k. `thinking` and `final` are rebuilt from the drawn lines, so checks
    compare what is on screen.
    """

    DEFAULT_CSS = """
    StreamView { scrollbar-gutter: stable; overflow-x: hidden; }
    """
    ALLOW_SELECT = True
    TRUNCATED = "no answer: the round ended inside its thinking"

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.index = -1
        self.expanded = False  # the thinking is shown in full (kept across rounds)
        self._width = 80  # the wrap width: the content width once the view has a size
        self._strips: LRUCache[tuple[str, int], Strip] = LRUCache(1024)  # finished lines, drawn
        self._base = Style()  # the widget's style, looked up once per render pass
        self._height = 0  # rows in the document when the view was last fully refreshed
        # A renderable drawn over the round text (the why-view): no layout change, no screen.
        self.overlay_body: RenderableType | None = None
        self._overlay: list[Strip] | None = None
        self._titles: tuple[object, object] = ("", "")
        self._clear()

    def _clear(self) -> None:
        self.reasoning = False  # the round has a thinking part: the fold line is shown
        self.thinking_doc = WrappedText(self._width)
        self.final_doc = WrappedText(self._width)
        self._raw: list[str] = []
        # Leading whitespace of the thinking, and of a final part after one, is not shown.
        self._skip = {"thinking": True, "final": False}
        self.fold_numbers = ""  # "12,345 tok · 38 tok/s", from the caller
        self.note = ""  # a plain line where the final part would be (a truncated round)
        self._strips.clear()

    # ---- content --------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The round's raw text as it was handed in, tags included (the stream, for checks)."""
        if len(self._raw) > 1:
            self._raw[:] = ["".join(self._raw)]
        return self._raw[0] if self._raw else ""

    @property
    def thinking(self) -> str:
        """The thinking part as drawn when unfolded (rebuilt from its lines)."""
        return self.thinking_doc.text

    @property
    def final(self) -> str:
        """The final part as drawn (rebuilt from its lines); the whole text of a plain round."""
        return self.final_doc.text

    @property
    def fold_line(self) -> str:
        """The one line that stands for the thinking: its length and speed."""
        arrow, hint = ("▾", "z: fold") if self.expanded else ("▸", "z: unfold")
        numbers = f" · {self.fold_numbers}" if self.fold_numbers else ""
        return f"{arrow} thinking{numbers}  ({hint})"

    def reset(self, index: int, title: str = "") -> None:
        """Start showing round `index` (plain until a thinking part arrives)."""
        self.index = index
        self._clear()
        self.overlay_body, self._overlay = None, None  # another round: its text, not the why
        self.border_title = title or f"round {index}"
        self._changed(follow=False)
        self.scroll_home(animate=False, immediate=True)

    def add(self, parts: Sequence[Part], raw: Sequence[str] = ()) -> None:
        """Add streamed parts (the core's ThinkingStream segments) and keep the end in view
        when it was in view; `raw` is the streamed text they came from."""
        if raw:
            self._raw.append("".join(raw))
        follow = self.is_vertical_scroll_end
        was_reasoning = self.reasoning
        grown = {kind for part in parts if (kind := self._add(part.kind, part.text))}
        if self.reasoning != was_reasoning:
            self._changed(follow=follow)
        else:
            self._changed(follow=follow, rows=[self._last_row(kind) for kind in grown])

    def _add(self, kind: str, text: str) -> str | None:
        if kind == "thinking" and not self.reasoning:
            self.reasoning = True
            self._skip["final"] = not self.final_doc.chars
        if self._skip[kind]:
            text = text.lstrip()
            if not text:
                return None
            self._skip[kind] = False
        (self.thinking_doc if kind == "thinking" else self.final_doc).append(text)
        return kind

    def set_fold(self, numbers: str, note: str = "") -> None:
        """The fold line's numbers (given, never computed here) and a note below it."""
        was = (self.reasoning, self.note)
        self.fold_numbers, self.note = numbers, note
        self.reasoning = self.reasoning or bool(numbers)
        follow = self.is_vertical_scroll_end
        self._changed(follow=follow, rows=[0] if was == (self.reasoning, note) else None)

    def show(self, index: int, text: str, title: str = "") -> None:
        """Replace the content with a whole plain text."""
        self.reset(index, title)
        self._raw = [text]
        self.final_doc.append(text)
        self._changed(follow=False)

    def show_record(self, r: RoundRecord, title: str = "", numbers: str = "") -> None:
        """A finished round from its record: thinking folded under `numbers`, final in full,
        and a plain line when it ended inside its thinking."""
        self.reset(r.index, title)
        self._raw = [r.response]
        if r.final is None:  # a model that does not think: the whole response is the answer
            self.final_doc.append(r.response)
        else:
            self.reasoning = True
            self.thinking_doc.append(r.thinking)
            self.final_doc.append(r.final)
        self.set_fold(numbers, self.TRUNCATED if r.truncated else "")
        self._changed(follow=False)

    def shows(self, r: RoundRecord) -> bool:
        """Whether the drawn parts are the record's (O(length): once per round, not per frame)."""
        if r.final is None:
            return not self.reasoning and self.final == r.response
        return (
            self.reasoning
            and self.thinking.strip() == r.thinking
            and self.final.strip() == r.final.strip()
        )

    def toggle_thinking(self, *, live: bool = False) -> bool:
        """Fold / unfold the thinking; False when the round has none. Unfolded, a stored round
        shows the thinking from its start, a `live` one keeps following the newest text."""
        if not self.reasoning:
            return False
        self.expanded = not self.expanded
        if self.expanded and self.thinking_doc.set_width(self._width):
            self._strips.clear()  # it is not rewrapped while folded
        self._changed(follow=live or (self.is_vertical_scroll_end and not self.expanded))
        return True

    # ---- the document's rows --------------------------------------------------------------------

    def _sections(self) -> list[tuple[str, int]]:
        """The document's sections in order: (kind, rows)."""
        out: list[tuple[str, int]] = []
        if self.reasoning:
            out.append(("fold", 1))
            if self.expanded:
                out.append(("thinking", len(self.thinking_doc)))
        if self.note:
            out.append(("note", 1))
        if not self.reasoning:
            out.append(("final", len(self.final_doc)))
        elif self.final_doc.chars:
            if self.expanded:
                out.append(("rule", 1))
            out.append(("final", len(self.final_doc)))
        return out

    def _row(self, y: int) -> tuple[str, int, str] | None:
        """(kind, line index within its part, text) of document row y."""
        for kind, n in self._sections():
            if y < n:
                if kind in ("thinking", "final"):
                    doc = self.thinking_doc if kind == "thinking" else self.final_doc
                    return kind, y, doc.line(y)
                text = {"fold": self.fold_line, "note": self.note}.get(kind, "── final ──")
                return kind, -1, text
            y -= n
        return None

    def _last_row(self, kind: str) -> int | None:
        """The document row of a part's growing last line (None while it is folded away)."""
        top = 0
        for section, n in self._sections():
            if section == kind:
                return top + n - 1
            top += n
        return None

    # ---- the overlay (the why-view) -------------------------------------------------------------

    def show_overlay(self, body: RenderableType, title: str, subtitle: str = "") -> None:
        """Draw `body` (a Rich renderable) in place of the round text until close_overlay.
        Only this widget's lines change, so it opens as fast as a scroll."""
        if self.overlay_body is None:
            self._titles = (self.border_title, self.border_subtitle)
        self.overlay_body = body
        self.border_title, self.border_subtitle = title, subtitle
        self._render_overlay()
        self.scroll_home(animate=False, immediate=True)

    def scroll_text(self, where: str) -> None:
        """Keyboard scrolling for the screens (the view is not focused: ← → belong to them)."""
        {"up": self.scroll_up, "down": self.scroll_down, "pageup": self.scroll_page_up,
         "pagedown": self.scroll_page_down, "home": self.scroll_home,
         "end": self.scroll_end}[where](animate=False)

    def close_overlay(self) -> bool:
        """Back to the round text; False when no overlay was shown."""
        if self.overlay_body is None:
            return False
        self.overlay_body, self._overlay = None, None
        self.border_title, self.border_subtitle = self._titles  # type: ignore[assignment]
        self._changed(follow=False)
        return True

    def _render_overlay(self) -> None:
        if self.overlay_body is None:
            return
        console = self.app.console
        lines = console.render_lines(self.overlay_body, console.options.update_width(self._width))
        self._overlay = [Strip(line) for line in lines]
        self._changed(follow=False)

    def _changed(self, *, follow: bool, rows: Sequence[int | None] | None = None) -> None:
        """Redraw after a change: only `rows` when no row was added or removed, else all of it."""
        if self._overlay is not None:
            height = len(self._overlay)
            rows = None if height != self._height else []
        else:
            height = sum(n for _, n in self._sections())
        if rows is not None and height == self._height:
            for row in rows:
                if row is not None:
                    self.refresh_line(row)
            return
        self._height = height
        size = Size(self._width, height)
        if size != self.virtual_size:
            # The view's own size is fixed by the layout (CSS), so a longer document needs new
            # scrollbars, not the screen-wide layout pass that setting virtual_size would start.
            self.set_reactive(ScrollView.virtual_size, size)
            self._scroll_update(size)
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def on_resize(self) -> None:
        """Rewrap for the new width (the folded thinking waits until it is unfolded)."""
        width = max(1, self.scrollable_content_region.width)
        if width == self._width:
            return
        self._width = width
        self._strips.clear()
        self.final_doc.set_width(width)
        if self.expanded:
            self.thinking_doc.set_width(width)
        if self._overlay is not None:
            self._render_overlay()
            return
        self._changed(follow=self.is_vertical_scroll_end)

    # ---- the line API -------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        """Look the widget's style up once per pass (it walks the DOM), then draw the lines."""
        base = self.rich_style
        if base != self._base:
            self._base = base
            self._strips.clear()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """One visible line: only these are drawn on a refresh."""
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        base = self._base
        if self._overlay is not None:
            over = self._overlay
            drawn = over[scroll_y + y] if scroll_y + y < len(over) else Strip.blank(width, base)
            return drawn.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(
                scroll_x, scroll_y + y)
        row = self._row(scroll_y + y)
        if row is None:
            return Strip.blank(width, base)
        kind, index, line = row
        selection = self.text_selection
        span = selection.get_span(scroll_y + y) if selection is not None else None
        # A finished line never changes: it is drawn once (the growing last line every time).
        key = (kind, index)
        final_line = index >= 0 and index < len(
            (self.thinking_doc if kind == "thinking" else self.final_doc).lines
        )
        strip = self._strips.get(key) if final_line and span is None else None
        if strip is None:
            text = line.translate(CONTROLS)
            style = base + _STYLES[kind]
            if span is None:
                strip = Strip([Segment(text, style)], cell_len(text))
                if final_line:
                    self._strips[key] = strip
            else:
                start, end = span
                rich = Text(text, style=style, no_wrap=True)
                rich.stylize(
                    self.screen.get_component_rich_style("screen--selection"),
                    start,
                    len(rich) if end == -1 else end,
                )
                strip = Strip(rich.render(self.app.console), rich.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(
            scroll_x, scroll_y + y
        )

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The selected text, from the drawn lines (O(length): only on a copy)."""
        lines = [row[2] for y in range(self._height) if (row := self._row(y))]
        return selection.extract("\n".join(lines)), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        """Redraw the selection highlight."""
        self.refresh()


_STYLES = {
    "fold": Style(bold=True),
    "thinking": Style(dim=True, italic=True),
    "note": Style(bold=True, color="yellow"),
    "rule": Style(dim=True),
    "final": Style(),
}


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

    compact = False  # a small terminal: the numbers and the fit's caveat, no table

    def show(self, view: ProbView) -> None:
        """Render a ProbView (numbers come from the core; nothing is computed here)."""
        t = Text()
        q = "p̂₀" if view.round < 0 and view.belief is not None else "q_t"
        t.append(f"{q} {num(view.belief)}  π {num(view.pi)}  λ {num(view.lam)}\n", style="bold")
        t.append(f"regime: {view.regime or '—'}", style=_regime_style(view.regime))
        if view.mode:
            mode = view.mode.split(":")[0] if self.compact else view.mode
            t.append(f"  ({mode})", style="dim")
        t.append("\n")
        if self.compact:
            # The caveat first: on a small screen it is the line that must not be cut.
            if view.fit_note:
                t.append(f"⚠ {view.fit_note}\n", style="yellow")
            t.append(view.fit_label, style="italic")
            if view.classes > 1:
                t.append(f" · mixture of {view.classes} (π, λ weighted)", style="italic")
            if view.fit is not None:  # its size and flags: what the numbers rest on
                f = view.fit
                t.append(f" · {f.n_questions} q · {f.n_transitions} transitions · flags "
                         f"{', '.join(f.flags) or 'none'}", style="dim")
            self.update(t)
            return
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
        if view.fit_note:
            t.append(f"⚠ {view.fit_note}\n", style="yellow")
        for line in view.fit_lines:
            t.append(line + "\n", style="dim")
        self.update(t)


def _regime_style(regime: str | None) -> str:
    # A regime read from a sparse fit's prior is not coloured as if it were a finding.
    if regime and "(" in regime:
        return "yellow"
    return {"beneficial": "green", "detrimental": "red"}.get(regime or "", "yellow")


class DecisionPanel(Static):
    """The decision: continue / stop, the rule that fired, its reason and numbers. A pause
    is shown in its border, in colour, with the keys that answer it."""

    def paused(self, why: str | None) -> None:
        """Show (or clear) a pause: `why` is the step mode or the breakpoint that fired."""
        self.set_class(why is not None, "-paused")
        if why is None:
            self.border_title, self.border_subtitle = "decision", ""
            return
        self.border_title = Text.assemble(("⏸ PAUSED", "bold reverse yellow"), " ",
                                          (why.removeprefix("breakpoint: "), "bold yellow"))
        # Short enough for the compact panel (42 columns inside the border at 80×24).
        self.border_subtitle = Text("space step·c cont·x stop·e end", style="yellow")

    def show(self, decision: Decision | None, note: str = "", extra: str = "",
             shadow: Decision | None = None) -> None:
        """Render a decision (or a waiting line); `note` is a line above it, `extra` a last
        line (the live screen's κ for the next run), `shadow` what markov would decide."""
        t = Text()
        if note:
            t.append(f"⏸ {note}\n", style="bold yellow")
        if decision is None:
            t.append("no decision yet", style="dim")
        else:
            self._decision(t, decision)
            if shadow is not None and shadow.round == decision.round:
                t.append(f"\nmarkov would {shadow.action.upper()}: {shadow.reason}",
                         style="cyan")
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
