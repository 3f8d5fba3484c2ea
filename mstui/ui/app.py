"""The Textual app and `make_app`, the one factory the CLI, the tests and the snapshots share."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.theme import Theme

from mstui.config import RunConfig, load_user_settings, save_user_setting
from mstui.engine.models import DEFAULT_MODELS_DIR
from mstui.ui import messages as m
from mstui.ui.commands import GROUPS, MstuiCommands, PriceScreen, entries
from mstui.ui.help import HelpScreen
from mstui.ui.live import LiveScreen
from mstui.ui.picker import ProblemPicker
from mstui.ui.services import TraceService
from mstui.ui.worker import BackendFactory, ModelWorker


class MstuiApp(App[None]):
    """Live runs, step-through, traces with replay and what-if, and fits."""

    CSS_PATH = "app.tcss"
    TITLE = "mstui"
    COMMANDS = App.COMMANDS | {MstuiCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "traces", "Traces"),
        Binding("f", "fit", "Fit"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        # Hidden from the footer (listed in help): how each ✓/✗ was decided, on the live,
        # replay and traces screens.
        Binding("a", "grading", "Grading", show=False),
    ]

    def __init__(
        self,
        config: RunConfig,
        *,
        db_path: str | Path | None,
        backend_factory: BackendFactory | None = None,
        question: str | None = None,
        problem_set: str = "gen",
        level: int | None = None,
        seed: int = 0,
        auto_policy: bool = True,
        show_timings: bool = True,
        models_dir: Path = DEFAULT_MODELS_DIR,
        settings_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.models_dir = models_dir  # where the palette looks for GGUFs
        # The user's remembered choices (the theme); None (tests, snapshots): nothing is read
        # or written, so a developer's own theme never changes what a test sees.
        self.settings_path = settings_path
        if settings_path is not None:
            theme = load_user_settings(settings_path).get("theme")
            if isinstance(theme, str) and theme in self.available_themes:
                self.theme = theme  # an unknown name (a theme since removed) is ignored
        self.config = config
        self.db_path = db_path
        self.policy = "auto" if auto_policy else config.policy
        self.policy_label = self.policy
        self.show_timings = show_timings  # snapshots turn timings off: they vary run to run
        self.worker = ModelWorker(
            self.post_message, config, db_path=db_path, backend_factory=backend_factory
        )
        self.traces = TraceService(db_path)
        self.live = LiveScreen(ProblemPicker(problem_set, level=level, seed=seed), question)
        self.worker.auto_policy = auto_policy
        self.worker.problem_set = self.live.picker.set_name

    def on_mount(self) -> None:
        """Show the live screen first, then start loading the model in the background."""
        self.push_screen(self.live)
        self.worker.start()
        if self.settings_path is not None:
            self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, theme: Theme) -> None:
        """Save a theme picked in the palette, for the next launch."""
        assert self.settings_path is not None
        try:
            save_user_setting(self.settings_path, "theme", theme.name)
        except OSError as exc:  # a read-only home: the theme still applies, for this session
            self.notify(f"the theme is not remembered: cannot write {self.settings_path} "
                        f"({exc.strerror or exc})", severity="warning")

    def on_unmount(self) -> None:
        """Stop the worker thread (it frees the model on its own thread)."""
        self.worker.shutdown(timeout=2.0)

    def run_config(self) -> RunConfig:
        """The config of the next run: the chosen policy (auto is resolved by the worker)."""
        policy = self.config.policy if self.policy == "auto" else self.policy
        return dataclasses.replace(self.config, policy=policy)

    # ---- settings of the next run (palette, keys) ---------------------------------------------

    def open_choices(self, group: str) -> None:
        """A palette listing one group's choices (m: model, g: strategy, p: policy, ...)."""
        assert group in GROUPS
        self.search_commands(entries(self, group), placeholder=f"choose the {group}…")

    def _changed(self, what: str) -> None:
        self.live.refresh_status()
        self.notify(what, timeout=3)
        if not self.worker.busy:  # the probability panel shows the fit the next run uses
            self.worker.auto_policy = self.policy == "auto"
            self.worker.refresh_fit(self.run_config())

    def choose_model(self, path: str) -> None:
        """Load another model in the worker thread (after a run in progress ends)."""
        self.config = dataclasses.replace(self.config, model=path)
        self.worker.reload(self.config)
        self._changed(f"loading {Path(path).name}…")

    def choose(self, field: str, value: str) -> None:
        """Set the strategy or the prompt format of the next run."""
        if field == "strategy":
            self.config = dataclasses.replace(self.config, strategy=value)
        else:
            # Chosen by the user: a model profile no longer picks the format.
            self.config = dataclasses.replace(self.config, prompt_format=value,
                                              explicit=self.config.choosing("prompt_format"))
        self._changed(f"{field} {value} from the next run")

    def choose_policy(self, policy: str) -> None:
        """Set the policy of the next run (auto = markov when a fit exists, else fixed)."""
        self.policy = self.policy_label = policy
        self._changed(f"policy {policy} from the next run")

    def choose_level(self, level: int | None) -> None:
        """Pick the built-in generator's level (all levels = None)."""
        if not self.live.picker.builtin:
            self.notify("levels apply to the built-in generated problems only")
            return
        self.live.picker.set_level(level)
        self.live.problem = None
        self.live.problem_info()
        self._changed(f"problems: {self.live.picker.level_label}")

    def set_price(self, price: float | None) -> None:
        """κ for markov from the next run (None: the dialog was cancelled)."""
        if price is None:
            return
        self.config = dataclasses.replace(self.config, price=price)
        self.live.show_decision()
        self._changed(f"κ {price:g} from the next run")

    def action_price(self) -> None:
        """Ask for κ."""
        self.push_screen(PriceScreen(self.config.price), self.set_price)

    # Worker messages go to the live screen, whichever screen is on top.
    def _forward(self, message: Message) -> None:
        self.live.apply(message)

    on_model_loading = on_model_ready = on_model_failed = _forward
    on_run_began = on_round_began = on_round_done = _forward
    on_decision_ready = on_paused = on_run_done = on_fit_shown = _forward

    def on_notice(self, message: m.Notice) -> None:
        """A worker notice becomes a notification (store trouble, policy fallback)."""
        self.notify(
            message.text,
            severity=message.severity,  # type: ignore[arg-type]
            timeout=8 if message.severity == "error" else 5,
        )

    def _to_base(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_traces(self) -> None:
        """Open the traces screen over the live one."""
        from mstui.ui.traces import TracesScreen

        self._to_base()
        self.push_screen(TracesScreen())

    def action_fit(self) -> None:
        """Open the fit screen over the live one."""
        from mstui.ui.fit import FitScreen

        self._to_base()
        self.push_screen(FitScreen())

    def action_grading(self) -> None:
        """Each round's extracted text, the gold and the judge, for the run on screen."""
        from mstui.ui.grading import open_grading

        open_grading(self)

    def action_help(self) -> None:
        """Show every key."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Cancel any run, stop the worker and leave."""
        self.worker.shutdown(timeout=1.0)
        self.exit()


def make_app(
    config: RunConfig | None = None,
    *,
    db_path: str | Path | None = "traces.db",
    backend_factory: BackendFactory | None = None,
    question: str | None = None,
    problem_set: str = "gen",
    level: int | None = None,
    seed: int = 0,
    auto_policy: bool = True,
    show_timings: bool = True,
    models_dir: Path = DEFAULT_MODELS_DIR,
    settings_path: Path | None = None,
) -> MstuiApp:
    """The app for the CLI, tests and snapshots; `backend_factory(config)` runs on the worker
    thread (tests pass a ScriptedBackend or a tiny GGUF; None loads config.model with llama.cpp).
    `settings_path` is where the theme is remembered (the CLI passes the user's config file).
    """
    return MstuiApp(
        config or RunConfig(),
        db_path=db_path,
        backend_factory=backend_factory,
        question=question,
        problem_set=problem_set,
        level=level,
        seed=seed,
        auto_policy=auto_policy,
        show_timings=show_timings,
        models_dir=models_dir,
        settings_path=settings_path,
    )
