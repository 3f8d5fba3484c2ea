"""A growing text kept as lines wrapped to a width; appending never rewraps what came before."""

from __future__ import annotations

from rich.cells import get_character_cell_size

# Control characters take one cell and are drawn as a space (a raw ESC or CR from a model must
# not reach the terminal); the wrapping counts them the same way.
CONTROLS = {c: " " for c in (*range(32), 127)}


def char_cells(ch: str) -> int:
    """Terminal cells of one character as this module draws it."""
    o = ord(ch)
    if o < 32 or o == 127:
        return 1
    return get_character_cell_size(ch)


class WrappedText:
    """Text that only grows, held as visual lines wrapped (greedily, at spaces) to `width`.

    Every finished line is an exact slice of the text, and `ends[i]` says what followed it
    ("\\n" or "" for a soft wrap), so `text` is rebuilt from the lines alone: what is drawn is
    what was streamed. Greedy wrapping never moves a break once a later character exists, so
    `append` only wraps the unfinished last line: its cost is O(appended + width), whatever the
    length so far. Only `set_width` (a resize) rewraps everything.
    """

    def __init__(self, width: int = 80) -> None:
        self.width = max(1, width)
        self.lines: list[str] = []  # finished visual lines
        self.ends: list[str] = []  # "\n" after a line that ended the paragraph, "" after a wrap
        self.tail = ""  # the last line, still growing (never holds a newline)
        self.chars = 0

    def __len__(self) -> int:
        """Visual lines, the growing one included (an empty text is one empty line)."""
        return len(self.lines) + 1

    def line(self, i: int) -> str:
        """Visual line i (0-based; the last one is the growing tail)."""
        return self.lines[i] if i < len(self.lines) else self.tail

    @property
    def text(self) -> str:
        """The whole text, rebuilt from the visual lines (O(length): for checks, not per frame)."""
        return "".join(line + end for line, end in zip(self.lines, self.ends, strict=True)) + (
            self.tail
        )

    def append(self, text: str) -> None:
        """Add text at the end, wrapping only the last line."""
        if not text:
            return
        self.chars += len(text)
        first, *rest = text.split("\n")
        self.tail += first
        for paragraph in rest:
            self._settle()
            # The paragraph ended: its last line is final, whatever trailing spaces it holds.
            self.lines.append(self.tail)
            self.ends.append("\n")
            self.tail = paragraph
        self._settle()

    def set_width(self, width: int) -> bool:
        """Rewrap everything for a new width (O(length)); False when the width is unchanged."""
        width = max(1, width)
        if width == self.width:
            return False
        text = self.text
        self.width, self.lines, self.ends, self.tail, self.chars = width, [], [], "", 0
        self.append(text)
        return True

    def _settle(self) -> None:
        """Move every final line off the front of the tail."""
        tail, width = self.tail, self.width
        fast = tail.isascii()
        start = 0
        while True:
            # At least one character per line: one wider than the line still moves on.
            cut = max(start + width if fast else _cut(tail, start, width), start + 1)
            if cut >= len(tail):
                break  # the rest fits on one line
            if tail[cut] == " ":
                # The line fits up to a space: the run of spaces stays on it (drawn, or cropped
                # at the edge), and it is final only once something follows the run.
                end = _spaces_end(tail, cut)
                if end >= len(tail):
                    break
            else:
                space = tail.rfind(" ", start, cut)
                # Break after the last space before the edge; a word wider than the line is cut.
                end = space + 1 if space >= start and tail[start:space].strip(" ") else cut
                if end <= start:
                    end = cut
            self.lines.append(tail[start:end])
            self.ends.append("")
            start = end
        if start:
            self.tail = tail[start:]


def _cut(text: str, start: int, width: int) -> int:
    """Index of the first character from `start` that no longer fits in `width` cells."""
    used = 0
    for i in range(start, len(text)):
        used += char_cells(text[i])
        if used > width:
            return i
    return len(text)


def _spaces_end(text: str, i: int) -> int:
    """Index just past the run of spaces starting at i."""
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    return i
