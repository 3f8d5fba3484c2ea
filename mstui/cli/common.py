"""Small helpers shared by the headless commands (sweep, fit, traces, eval)."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from mstui.store import Store, StoreError, default_db_path
from mstui.store.base import check_writable_path


def db_path(db: str | None) -> Path:
    """--db, else $MSTUI_DB, else ./traces.db."""
    return Path(db) if db else default_db_path()


def writable_db_path(db: str | None) -> Path:
    """The trace database a command will write, checked before any work: its folder must exist
    (a typo in --db must not leave a new folder behind) and it must not be a folder itself."""
    path = db_path(db)
    check_writable_path(path)  # the store's own check, made before the app starts
    return path


def open_existing_store(db: str | None, *, readonly: bool = True) -> Store:
    """Open a trace database that must already exist. Reading commands open it read-only: they
    never create, migrate or switch a file to WAL (a foreign file is refused unchanged)."""
    path = db_path(db)
    if not path.exists():
        raise StoreError(f"no trace database at {path}; run `mstui sweep` or `mstui run` first, "
                         "or point --db (or $MSTUI_DB) at one")
    if path.is_dir():
        raise StoreError(f"{path} is a folder; point --db at a traces file")
    return Store(path, readonly=readonly)


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A number for a table, "—" for missing or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def fmt_interval(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """`mean [lo, hi]`."""
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def dumps(obj: Any) -> str:
    """JSON with numpy values and NaN made plain (NaN → null)."""
    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        if hasattr(o, "item") and not hasattr(o, "__len__"):
            return clean(o.item())
        return o

    return json.dumps(clean(json.loads(json.dumps(obj, default=_jsonable))), ensure_ascii=False,
                      indent=None)


def add_scope_filters(p: Any) -> None:
    """--model/--problem-set/--strategy: which fit scopes a command works on."""
    p.add_argument("--model", metavar="NAME", help="only scopes of this model (file name)")
    p.add_argument("--problem-set", metavar="NAME", help="only scopes of this problem set")
    p.add_argument("--strategy", metavar="S", help="only scopes of this refinement strategy")


def install_sigint(cancel: threading.Event, doing: str) -> Any:
    """First Ctrl-C sets `cancel` (the round in flight stops at its next token, or its HTTP
    stream is closed, and is stored as cancelled); a second one aborts at once. Returns the
    previous handler, to restore; None off the main thread (signals go to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print(f"\nmstui: {doing} (Ctrl-C again to abort)", file=sys.stderr)

    return signal.signal(signal.SIGINT, handler)


def output_file(text: str, option: str, *, protect: Path | None = None) -> Path:
    """A file a command will write (`--out`, `--plot`), checked before any work: not empty, not
    a folder, in a folder that exists, and not `protect` (the trace database, or its -wal/-shm
    side files: opening it for writing would empty it). A ValueError with one line otherwise."""
    if not text:
        raise ValueError(f"{option} is empty; give a file name")
    path = Path(text)
    if protect is not None and path.exists():
        for kept in (protect, Path(f"{protect}-wal"), Path(f"{protect}-shm")):
            if kept.exists() and path.samefile(kept):
                raise ValueError(f"{option} {text} is the trace database itself; writing there "
                                 "would destroy it: give another file name")
    if path.is_dir():
        raise ValueError(f"{option} {text} is a folder; give a file name inside it")
    if not path.parent.is_dir():
        raise ValueError(f"{option} {text}: the folder {path.parent} does not exist; create it "
                         "first")
    return path
