"""A small dialog that asks for one number in a range (the belief breakpoint's θ)."""

from __future__ import annotations

import math
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

OFF = -1.0  # the dialog's answer for "empty": turn the setting off


class NumberScreen(ModalScreen[float | None]):
    """Ask for a number in (lo, hi); Enter applies, an empty box answers OFF, Esc None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, current: float | None, lo: float, hi: float,
                 placeholder: str = "") -> None:
        super().__init__()
        self.title_text, self.current, self.lo, self.hi = title, current, lo, hi
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        """A title, the input and a line for errors."""
        with Vertical(id="price-box"):
            yield Static(self.title_text)
            yield Input("" if self.current is None else f"{self.current:g}", id="number-input",
                        placeholder=self.placeholder)
            yield Static("", id="price-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Validate: empty turns it off, else a number strictly inside (lo, hi)."""
        text = event.value.strip()
        if not text:
            self.dismiss(OFF)
            return
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not self.lo < value < self.hi:  # also rejects NaN
            self.query_one("#price-error", Static).update(
                f"a number between {self.lo:g} and {self.hi:g} (exclusive), or empty for off")
            return
        self.dismiss(value)
