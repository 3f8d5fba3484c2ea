"""Start real OpenAI-compatible servers (llama_cpp.server, llama-server) on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m llama_cpp.server` on a free loopback port, stopped by the test."""

    def __init__(self, model: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
             "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048",
             # Queue concurrent requests; by default this server cuts the running stream short.
             "--interrupt_requests", "False", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not start; see {log}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def llama_server_binary() -> Path | None:
    """The llama-server that `make server` built (build/llama-server), or $MSTUI_LLAMA_SERVER."""
    given = os.environ.get("MSTUI_LLAMA_SERVER")
    path = Path(given) if given else ROOT / "build" / "llama-server"
    return path if path.is_file() and os.access(path, os.X_OK) else None


class LlamaServer:
    """llama.cpp's own `llama-server` with `slots` parallel slots on a loopback port.

    `-c` is the whole KV cache, split evenly between the slots; `restart()` brings it back on
    the same port after `kill()`, as a restarted server would be. One thread by default: on a
    busy machine llama.cpp's threads wait for each other at every step (a 135M model fell to
    under 1 tok/s with 2 threads under load), and tests need the paths, not the speed;
    benchmarks pass the core count.
    """

    def __init__(self, binary: Path, model: Path, log: Path, *, slots: int = 4,
                 ctx: int = 8192, threads: int = 1, port: int | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.binary, self.model, self.log_path = binary, model, log
        self.slots, self.ctx, self.extra = slots, ctx, extra
        self.threads = threads
        self.port = port or free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None
        self.start()

    def start(self) -> None:
        self.log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1", "--port",
             str(self.port), "-np", str(self.slots), "-c", str(self.ctx), "-t",
             str(self.threads), *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:  # /health answers 503 while the model loads, 200 once it serves
                with urllib.request.urlopen(f"{self.root}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server did not start; see {self.log_path}")

    def get(self, path: str) -> Any:
        """GET a JSON endpoint of the server (/props, /slots)."""
        with urllib.request.urlopen(f"{self.root}{path}", timeout=10) as r:
            return json.loads(r.read())

    def tokenize(self, text: str) -> list[int]:
        """The server's own tokens for a prompt, as a completion request tokenizes it."""
        request = urllib.request.Request(
            f"{self.root}/tokenize", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"content": text, "add_special": True}).encode())
        with urllib.request.urlopen(request, timeout=10) as r:
            return list(json.loads(r.read())["tokens"])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def restart(self) -> None:
        """Start again on the same port (after kill or stop)."""
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.log is not None and not self.log.closed:
            self.log.close()
