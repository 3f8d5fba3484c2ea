"""A small OpenAI-compatible server that streams scripted rounds, run as its own process.

Like llama-server and vLLM, it streams a reasoning model's thinking in a separate delta field
(`reasoning_content`, or `reasoning` as newer vLLM names it) and the answer in `content`; it
serves /v1/models, /props (llama-server's, with the chat template) when given a template, and
/v1/completions for text continuations. Every request body is appended to a JSON-lines log so
a test can check what mstui sent. Start it with `ReasoningServer(script, tmp_path)`.

A scripted round can also misbehave, one fault per `fault` key: "cut" (the connection closes
after the content, with no finish reason and no [DONE]), "html" (a 200 text/html page instead of
an event stream), "sse_error" (an `event: error` with `{"code": 400, …}` after the content),
"stall" (the content, then nothing for minutes), and `status` answers every request with that
HTTP status.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers import free_port


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        script = self.server.script
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": script["model"],
                                                        "object": "model"}]})
        elif self.path == "/props" and script.get("template"):
            self._json(200, {"chat_template": script["template"],
                             "bos_token": script.get("bos", ""),
                             "eos_token": script.get("eos", ""),
                             "default_generation_settings": {"n_ctx": script.get("n_ctx", 8192)}})
        else:
            self._json(404, {"error": {"message": "not found", "code": 404}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            with open(self.server.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"path": self.path, "body": body}) + "\n")
            chat = self.path.endswith("/chat/completions")
            key = "rounds" if chat else "completions"
            plays = self.server.script.get(key, [])
            if not plays:
                self._json(400, {"error": {"message": f"no scripted {key}", "code": 400}})
                return
            n = self.server.counts.get(key, 0)
            self.server.counts[key] = n + 1
            play = plays[min(n, len(plays) - 1)]
        if play.get("status"):
            self._json(int(play["status"]), {"error": {"message": "scripted refusal",
                                                        "code": int(play["status"])}})
            return
        fault = play.get("fault")
        if fault == "html":
            page = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        field = play.get("field", "reasoning_content")
        created = int(time.time())

        def send(choice: dict[str, Any] | None, usage: dict[str, int] | None = None) -> None:
            chunk: dict[str, Any] = {"id": "x", "created": created, "model": body.get("model"),
                                     "object": "chat.completion.chunk" if chat
                                     else "text_completion",
                                     "choices": [choice] if choice else []}
            if usage:
                chunk["usage"] = usage
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            if play.get("delay"):
                time.sleep(play["delay"])

        sent = 0
        for piece in play.get("reasoning", []):
            send({"index": 0, "delta": {field: piece}, "finish_reason": None})
            sent += 1
        for piece in play.get("content", []):
            if chat:
                send({"index": 0, "delta": {"content": piece}, "finish_reason": None})
            else:
                send({"index": 0, "text": piece, "finish_reason": None, "logprobs": None})
            sent += 1
        if fault == "cut":
            self.close_connection = True
            return
        if fault == "sse_error":
            error = play.get("error_payload") or {"code": 400, "message":
                                                  "the model crashed mid-stream", "type": "server"}
            self.wfile.write(f"event: error\ndata: {json.dumps(error)}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True
            return
        if fault == "stall":
            time.sleep(600)
            return
        last = {"index": 0, "finish_reason": play.get("finish", "stop")}
        last.update({"delta": {}} if chat else {"text": ""})
        send(last)
        send(None, play.get("usage") or {"prompt_tokens": 40, "completion_tokens": sent,
                                          "total_tokens": 40 + sent})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    script: dict[str, Any]
    log: Path
    lock: threading.Lock
    counts: dict[str, int]


def serve(port: int, script_path: Path, log: Path) -> None:
    """Serve `script_path`'s rounds on 127.0.0.1:`port` until killed."""
    server = _Server(("127.0.0.1", port), _Handler)
    server.script = json.loads(script_path.read_text("utf-8"))
    server.log, server.lock, server.counts = log, threading.Lock(), {}
    server.serve_forever()


class ReasoningServer:
    """The server above in a subprocess on a free loopback port; `requests()` reads its log."""

    def __init__(self, script: dict[str, Any], tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        path = tmp / f"script-{self.port}.json"
        path.write_text(json.dumps(script), "utf-8")
        self.log = tmp / f"requests-{self.port}.jsonl"
        self.log.touch()
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.reasoning_server",
                                      str(self.port), str(path), str(self.log)], cwd=root)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the reasoning server did not start")

    def requests(self) -> list[dict[str, Any]]:
        """Every request body received so far, in order."""
        lines = self.log.read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
