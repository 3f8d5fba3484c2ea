"""Is a run's writer process still alive? Decides whether a 'running' run was interrupted."""

from __future__ import annotations

import os
import socket
from functools import lru_cache


@lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc, or None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return ("X", "")  # no such process
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], fields[19]


def host() -> str:
    """This machine's name, stored with each run a process writes."""
    return socket.gethostname()


def process_token(pid: int | None = None) -> str:
    """Identity of a process that survives pid reuse: boot id + start time ('' where unknown)."""
    stat = _proc_stat(os.getpid() if pid is None else pid)
    if stat is None or not stat[1]:
        return ""
    return f"{_boot_id()}:{stat[1]}"


def writer_alive(writer_host: str | None, pid: int | None, token: str | None) -> bool:
    """True when the writer may still be running: we only declare a run dead when we are sure.

    A run written on another host cannot be checked from here, so it counts as alive.
    """
    if pid is None:
        return False  # rows without a writer (imports, old files) have no one to wait for
    if writer_host != host():
        return True
    stat = _proc_stat(pid)
    if stat is not None:
        state, _ = stat
        if state in ("X", "Z"):  # gone, or a zombie nobody reaped yet: it writes no more
            return False
        if token:
            return process_token(pid) == token
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
