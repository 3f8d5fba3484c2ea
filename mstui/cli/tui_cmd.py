"""`mstui` with no command: open the terminal UI with the run options given."""

from __future__ import annotations

import argparse

from mstui.cli.parser import config_from_args
from mstui.store import default_db_path


def cmd_tui(args: argparse.Namespace) -> int:
    """Open the TUI. `--policy auto` (the default) picks markov when a fit exists for the model
    and strategy, else fixed, and the status line says which."""
    from mstui.ui.app import make_app

    config = config_from_args(args)
    auto = args.policy == "auto"
    app = make_app(
        config,
        db_path=args.db or default_db_path(),
        problem_set=args.problems or "gen",
        level=args.level,
        seed=args.seed,
        auto_policy=auto,
        question=args.question,
    )
    app.run()
    return 0
