"""Command palette entries: model, strategy, policy, prompt format, level, κ, and the screens."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from mstui.core.prompts import FORMATS, STRATEGIES
from mstui.ui.picker import LEVEL_CHOICES

if TYPE_CHECKING:
    from mstui.ui.app import MstuiApp

# What the palette offers, with a line each (auto = markov when a fit exists, else fixed).
POLICY_CHOICES = ("auto", "markov", "mixture", "gate", "fixed", "none", "repeat", "oracle")
POLICY_HELP = {
    "auto": "markov when a fit exists, else fixed",
    "markov": "continue while the expected gain beats κ·T (a mixture when the fit has one)",
    "mixture": "markov's rule under the fit's mixture of chains (easy and hard questions)",
    "gate": "a round budget planned from p̂₀ before round 0",
    "fixed": "every round up to N_max",
    "none": "the first answer only",
    "repeat": "stop when the answer repeats",
    "oracle": "stop at the first correct round (needs a gold answer: press n for a problem)",
}
GROUPS = ("model", "strategy", "policy", "format", "level", "screens")

Entry = tuple[str, Callable[[], object], str]


def current_model(app: MstuiApp) -> Path | None:
    """The file the next run loads: --model resolved as the engine resolves it (a name, a stem
    or None for the default all name a file, often the one in models/); None when none does."""
    from mstui.engine.errors import ModelError
    from mstui.engine.models import resolve_model

    if app.config.backend != "llama":
        return None  # a server's model name is no file here
    try:
        return resolve_model(app.config.model, app.models_dir)
    except ModelError:
        return None


def model_entries(app: MstuiApp) -> list[Entry]:
    """The current model plus every other GGUF in the models folder (a reload on pick); the
    current one is listed once, however it was named."""
    from mstui.engine.models import list_model_files

    current = current_model(app)
    label = current.name if current is not None else (app.config.model or "default model")
    out: list[Entry] = [(f"Model: {Path(label).name} (current)", lambda: None, "keep it")]
    for path in list_model_files(app.models_dir):
        if current is not None and path.name == current.name:
            continue
        out.append(
            (f"Model: {path.name}", partial(app.choose_model, str(path)), "load it in the worker")
        )
    return out


def entries(app: MstuiApp, group: str) -> list[Entry]:
    """One group's palette entries; each callback changes the next run's settings."""
    cfg = app.config

    def now(flag: bool) -> str:
        return " (current)" if flag else ""

    if group == "model":
        return model_entries(app)
    if group == "strategy":
        return [
            (f"Strategy: {s}{now(s == cfg.strategy)}", partial(app.choose, "strategy", s), "")
            for s in STRATEGIES
        ]
    if group == "policy":
        return [
            (f"Policy: {p}{now(p == app.policy)}", partial(app.choose_policy, p), POLICY_HELP[p])
            for p in POLICY_CHOICES
        ]
    if group == "format":
        return [
            (
                f"Prompt format: {f}{now(f == cfg.prompt_format)}",
                partial(app.choose, "format", f),
                "",
            )
            for f in FORMATS
        ]
    if group == "level":
        picker = app.live.picker
        return [
            (
                f"Problem level: {'all' if lv is None else lv}{now(lv == picker.level)}",
                partial(app.choose_level, lv),
                "built-in generated problems",
            )
            for lv in LEVEL_CHOICES
        ]
    return [
        ("Price κ: set…", app.action_price, "markov's price per token, from the next run"),
        ("Open traces", app.action_traces, "browse, replay and compare stored runs"),
        ("Open fit", app.action_fit, "chain fits, checks and the accuracy plot"),
        ("Open help", app.action_help, "every key"),
    ]


class MstuiCommands(Provider):
    """Every settings choice and screen as palette commands (fuzzy matched)."""

    def _all(self) -> list[Entry]:
        app: MstuiApp = self.app  # type: ignore[assignment]
        return [e for g in GROUPS for e in entries(app, g)]

    async def discover(self) -> Hits:
        """Shown before anything is typed."""
        for name, callback, help_text in self._all():
            yield DiscoveryHit(name, callback, help=help_text or None)

    async def search(self, query: str) -> Hits:
        """Entries matching what is typed, best first."""
        matcher = self.matcher(query)
        for name, callback, help_text in self._all():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text or None)


class PriceScreen(ModalScreen[float | None]):
    """Ask for κ (price per token of the markov rule); Enter applies, Esc keeps the old one."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, current: float) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        """A title, the input and a line for errors."""
        with Vertical(id="price-box"):
            yield Static("κ: price per generated token for markov (0 = stop only when no gain)")
            yield Input(f"{self.current:g}", id="price-input", placeholder="e.g. 0.0005")
            yield Static("", id="price-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Validate: a number ≥ 0, else say why and stay open."""
        try:
            value = float(event.value.strip())
        except ValueError:
            value = -1.0
        if not value >= 0:  # also rejects NaN
            self.query_one("#price-error", Static).update("κ must be a number ≥ 0")
            return
        self.dismiss(value)
