"""The Textual app and `make_app`, the one factory the CLI, the tests and the snapshots share."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message

from mstui.config import RunConfig
from mstui.ui import messages as m
from mstui.ui.help import HelpScreen
from mstui.ui.live import LiveScreen
from mstui.ui.picker import ProblemPicker
from mstui.ui.services import TraceService
from mstui.ui.worker import BackendFactory, ModelWorker


class MstuiApp(App[None]):
    """Live runs, step-through, traces with replay and what-if, and fits."""

    CSS_PATH = "app.tcss"
    TITLE = "mstui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "traces", "Traces"),
        Binding("f", "fit", "Fit"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
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
    ) -> None:
        super().__init__()
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

    def on_mount(self) -> None:
        """Show the live screen first, then start loading the model in the background."""
        self.push_screen(self.live)
        self.worker.start()

    def on_unmount(self) -> None:
        """Stop the worker thread (it frees the model on its own thread)."""
        self.worker.shutdown(timeout=2.0)

    def run_config(self) -> RunConfig:
        """The config of the next run: the chosen policy (auto is resolved by the worker)."""
        policy = self.config.policy if self.policy == "auto" else self.policy
        return dataclasses.replace(self.config, policy=policy)

    # Worker messages go to the live screen, whichever screen is on top.
    def _forward(self, message: Message) -> None:
        self.live.apply(message)

    on_model_loading = on_model_ready = on_model_failed = _forward
    on_run_began = on_round_began = on_round_done = _forward
    on_decision_ready = on_paused = on_run_done = _forward

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
) -> MstuiApp:
    """The app for the CLI, tests and snapshots; `backend_factory(config)` runs on the worker
    thread (tests pass a ScriptedBackend or a tiny GGUF; None loads config.model with llama.cpp).
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
    )
