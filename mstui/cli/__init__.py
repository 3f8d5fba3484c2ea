"""Command-line entry point: `mstui` opens the TUI; subcommands do the same work headless."""

from __future__ import annotations

import os
import sys

from mstui.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and dispatch; every expected failure is one line on stderr, exit code 2."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    for name, value in vars(args).items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
                print(f"mstui: error: the value of {name.replace('_', '-')} is not UTF-8 text; "
                      "retype it (check the terminal's encoding)", file=sys.stderr)
                return 2
    from mstui.core.grading import env_timeout

    try:
        # Checked at start, for every command that may grade: a bad value must not surface
        # mid-run after the model has answered.
        env_timeout()
    except ValueError as exc:
        print(f"mstui: error: {exc}", file=sys.stderr)
        return 2
    handler = getattr(args, "handler", None)
    misplaced, command = options_before_command(sys.argv[1:] if argv is None else argv, parser)
    if handler is not None and misplaced:
        # argparse lets the command's own defaults overwrite options given before it, so
        # `mstui --db x.db fit` would silently use ./traces.db: refuse, and say where they go.
        print(f"mstui: error: {', '.join(misplaced)} before the command is ignored by it; "
              f"options go after the command (see mstui {command} --help)", file=sys.stderr)
        return 2
    if handler is None:
        from mstui.cli.tui_cmd import cmd_tui

        handler = cmd_tui
    try:
        code: int = handler(args)
        return code
    except KeyboardInterrupt:
        print("mstui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("MSTUI_DEBUG"):
            raise
        print(f"mstui: error: {one_line(exc)}", file=sys.stderr)
        return 2


def options_before_command(argv: list[str], parser: object) -> tuple[list[str], str]:
    """Options (`--db`, `--model`, …) written before a subcommand's name, and that name."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    commands: set[str] = set()
    for action in parser._actions:  # the subcommand names, as argparse knows them
        if isinstance(action, argparse._SubParsersAction):
            commands = set(action.choices)
    before: list[str] = []
    for i, token in enumerate(argv):
        if token in commands:
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            # `traces` has its own commands (list, show, …): name the whole path.
            return before, f"{token} {nxt}" if token == "traces" and nxt[:1].isalpha() else token
        if token.startswith("-"):
            before.append(token.split("=", 1)[0])
    return [], ""


def one_line(exc: BaseException) -> str:
    """The message of an error, on one line (the type name when it has no message)."""
    text = " ".join(str(exc).split())
    known = ("ModelError", "StoreError", "ProblemSetError", "ValueError", "PromptTooLong",
             "TemplateError")
    if type(exc).__name__ in known and text:
        return text
    hint = " (set MSTUI_DEBUG=1 to see the traceback)"
    return f"{type(exc).__name__}: {text}{hint}" if text else f"{type(exc).__name__}{hint}"


if __name__ == "__main__":
    sys.exit(main())
