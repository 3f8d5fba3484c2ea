"""`mstui` with no command: open the terminal UI with the run options given."""

from __future__ import annotations

import argparse

from mstui.cli.parser import config_from_args
from mstui.store import default_db_path


def cmd_tui(args: argparse.Namespace) -> int:
    """Open the TUI. `--policy fixed` (the parser's default) means auto: markov when a fit exists
    for the model and strategy, else fixed, which the status line says."""
    from mstui.ui.app import make_app

    config = config_from_args(args)
    auto = args.policy == "fixed"
    app = make_app(
        config,
        db_path=args.db or default_db_path(),
        problem_set=getattr(args, "problems", None) or "gen",
        level=getattr(args, "level", None),
        seed=getattr(args, "seed", 0) or 0,
        auto_policy=auto,
        question=getattr(args, "question", None),
    )
    app.run()
    return 0
