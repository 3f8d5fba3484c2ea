"""The store's one exception type and the translation of sqlite3 errors into actionable messages."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


class StoreError(Exception):
    """A trace-store problem, with a one-line message that says what to do about it."""


class AlreadyClaimed(StoreError):
    """A problem is finished, or being run by a live process, in this configuration."""


def not_a_database(path: Path | str) -> StoreError:
    """The message for a file SQLite cannot read as a database."""
    return StoreError(
        f"{path} is not an SQLite database (file is not a database); "
        "point --db at a traces file or move it away"
    )


@contextlib.contextmanager
def translated(path: Path | str, busy_seconds: float) -> Iterator[None]:
    """Turn the sqlite3 errors a user can act on into StoreError; let programming errors through."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            raise StoreError(
                f"{path} is locked by another process (busy for more than {busy_seconds:g} s); "
                "wait for it to finish or close the other mstui"
            ) from exc
        if "readonly" in msg or "read-only" in msg:
            raise StoreError(
                f"{path} cannot be written (attempt to write a readonly database); "
                "make the file and its folder writable or point --db elsewhere"
            ) from exc
        if "unable to open" in msg:
            raise StoreError(
                f"{path} cannot be opened ({msg}); check the path and its folder's permissions"
            ) from exc
        if "disk I/O" in msg or "full" in msg:
            raise StoreError(f"{path}: {msg}; free disk space or point --db elsewhere") from exc
        raise
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise not_a_database(path) from exc
        raise
