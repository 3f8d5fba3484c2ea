"""`mstui` with no command: open the terminal UI with the run options given."""

from __future__ import annotations

import argparse

from mstui.cli.common import writable_db_path
from mstui.cli.parser import config_from_args
from mstui.config import user_settings_path


def cmd_tui(args: argparse.Namespace) -> int:
    """Open the TUI. `--policy auto` (the default) picks markov when a fit exists for the model
    and strategy, else fixed, and the status line says which."""
    from mstui.ui.app import make_app

    config = config_from_args(args)
    # Checked here: the app opens the store later, on its worker thread, where a bad path
    # would only be a notification under a running TUI.
    db = writable_db_path(args.db)
    auto = args.policy == "auto"
    app = make_app(
        config,
        db_path=db,
        problem_set=args.problems or "gen",
        level=args.level,
        seed=args.seed,
        auto_policy=auto,
        question=args.question,
        settings_path=user_settings_path(),
    )
    app.run()
    return 0
