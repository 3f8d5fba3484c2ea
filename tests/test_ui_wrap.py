"""WrappedText: incremental wrapping keeps the whole text, fits the width, and never rewraps."""

from __future__ import annotations

import random

from rich.cells import cell_len

from mstui.ui.wrap import CONTROLS, WrappedText

WORDS = ["the", "answer", "is", "42", "—", "数学", "résumé", "x" * 30, "", "  ", "\t", "\n", "\n\n"]


def random_text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def random_chunks(rng: random.Random, text: str) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, len(text) // 3)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def test_appending_in_pieces_gives_the_lines_of_one_append() -> None:
    rng = random.Random(7)
    for width in (1, 2, 7, 20, 71):
        for _ in range(20):
            text = random_text(rng, rng.randint(1, 120))
            whole = WrappedText(width)
            whole.append(text)
            pieces = WrappedText(width)
            for chunk in random_chunks(rng, text):
                pieces.append(chunk)
            # Greedy breaks are final: where the text was cut into tokens changes nothing.
            assert (pieces.lines, pieces.ends, pieces.tail) == (whole.lines, whole.ends, whole.tail)
            assert pieces.text == text and pieces.chars == len(text)


def test_lines_fit_the_width_and_break_at_spaces() -> None:
    rng = random.Random(8)
    for width in (3, 10, 40):
        w = WrappedText(width)
        w.append(random_text(rng, 300))
        for line, end in zip(w.lines, w.ends, strict=True):
            drawn = line.translate(CONTROLS)
            # Trailing spaces may run past the edge (they are cropped); nothing else does.
            assert cell_len(drawn.rstrip(" ")) <= width, (width, line)
            assert "\n" not in line
            if end == "" and not line.endswith(" "):
                assert cell_len(drawn) >= width - 1  # only a word wider than the line is cut


def test_words_move_whole_to_the_next_line() -> None:
    w = WrappedText(10)
    w.append("aaaa bbbb cccc dddd")
    assert w.lines == ["aaaa bbbb "] and w.tail == "cccc dddd"
    w.append("d eeee\nf")
    assert w.lines == ["aaaa bbbb ", "cccc ddddd ", "eeee"] and w.tail == "f"
    assert w.ends == ["", "", "\n"]


def test_set_width_rewraps_to_what_a_fresh_wrap_gives() -> None:
    rng = random.Random(9)
    text = random_text(rng, 400)
    w = WrappedText(30)
    w.append(text)
    assert w.set_width(55) and not w.set_width(55)
    fresh = WrappedText(55)
    fresh.append(text)
    assert (w.lines, w.tail, w.text) == (fresh.lines, fresh.tail, text)
