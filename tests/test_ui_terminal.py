"""`mstui` in a real 80×24 terminal (tmux) on the default model: one round, its decision on
screen, then a clean quit."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tmux(*args: str) -> subprocess.CompletedProcess[str]:
    # A private server socket: never touches anybody's own tmux sessions.
    return subprocess.run(
        ["tmux", "-L", f"mstui-test-{os.getpid()}", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", "mstui").stdout


def wait_screen(predicate, timeout: float) -> str:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = screen()
        if predicate(text):
            return text
        time.sleep(0.25)
    raise AssertionError(f"screen never matched; last screen:\n{text}")


@pytest.mark.slow
@pytest.mark.model
def test_mstui_runs_one_round_in_a_real_terminal(tmp_path: Path, default_model: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed; the real-terminal test needs it")
    rc_file = tmp_path / "rc"
    cmd = (
        f"cd {shlex.quote(str(ROOT))} && MSTUI_DB={shlex.quote(str(tmp_path / 't.db'))} "
        f"{shlex.quote(sys.executable)} -m mstui --max-rounds 1 --max-tokens 64 "
        f"--temperature 0; echo $? > {shlex.quote(str(rc_file))}; sleep 5"
    )
    # 80×24, the smallest common terminal: the decision must still be on screen.
    started = tmux("new-session", "-d", "-s", "mstui", "-x", "80", "-y", "24", cmd)
    assert started.returncode == 0, started.stderr
    try:
        wait_screen(lambda s: "llama.cpp" in s, timeout=60)  # model loaded in the background
        tmux("send-keys", "-t", "mstui", "n")
        wait_screen(lambda s: "gold" in s, timeout=10)
        tmux("send-keys", "-t", "mstui", "r")
        text = wait_screen(lambda s: "after round 0:" in s, timeout=120)
        # Notifications sit over the round text and the strip, never over the decision; the
        # strip shows the round once they time out.
        wait_screen(lambda s: "#0 " in s, timeout=15)
        assert "STOP" in text and "cap" in text  # --max-rounds 1: the cap stops it
        tmux("send-keys", "-t", "mstui", "q")
        end = time.monotonic() + 20
        while not rc_file.exists() and time.monotonic() < end:
            time.sleep(0.2)
        assert rc_file.read_text().strip() == "0"
        time.sleep(0.5)  # Textual draws on stderr: a traceback would be in the pane now
        assert "Traceback" not in screen()
    finally:
        tmux("kill-server")
