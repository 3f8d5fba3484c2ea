"""A misbehaving OpenAI-compatible server on 127.0.0.1 (cut-off stream, HTML page, SSE error
event, stall, refusals) through `mstui run`, `mstui sweep` and the TUI: nothing is stored as an
answer that did not arrive whole, Ctrl-C and Esc cancel at once, exit codes tell the truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mstui.store import Store
from tests.reasoning_server import ReasoningServer
from tests.test_cli_run import mstui

CONTENT = ["3 bags ", "of 4 is 12, ", "plus 2 is ", "14. The answer is 14."]
FAULTS = {
    "cut": "closed the stream after 4 piece(s) without finishing",
    "html": "answered text/html instead of an event stream",
    "sse_error": "error mid-stream: 400 the model crashed mid-stream",
}


def serve(tmp_path: Path, **play: object) -> ReasoningServer:
    return ReasoningServer({"model": "m", "rounds": [{"content": CONTENT, **play}],
                            "completions": [{"content": CONTENT, **play}]}, tmp_path)


def only_run(db: Path) -> tuple[dict, list]:  # type: ignore[type-arg]
    with Store(db) as store:
        runs = store.list_runs()
        assert len(runs) == 1
        return store.get_run(runs[0]["id"]), store.rounds_of(runs[0]["id"])  # type: ignore[return-value]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_run_stores_a_failed_round_with_what_arrived(fault: str, tmp_path: Path) -> None:
    server = serve(tmp_path, fault=fault)
    db = tmp_path / "t.db"
    try:
        proc = mstui("run", "--backend", "openai", "--base-url", server.url, "--question", "q?",
                     "--gold", "14", "--max-rounds", "2", "--json", "--db", str(db))
    finally:
        server.stop()
    assert proc.returncode == 2 and FAULTS[fault] in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    run, rounds = only_run(db)
    assert run["status"] == "failed" and run["final_answer"] is None
    assert [r.finish_reason for r in rounds] == ["error"] and FAULTS[fault] in rounds[0].error
    assert rounds[0].correct is None or rounds[0].correct is False
    if fault != "html":
        assert rounds[0].response == "".join(CONTENT)  # the partial text is kept


def test_sweep_exits_non_zero_when_runs_fail(tmp_path: Path) -> None:
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"question": f"What is {i}+1?", "answer": str(i + 1)})
                                + "\n" for i in range(3)), "utf-8")
    db = tmp_path / "t.db"
    for play in ({"status": 400}, {"fault": "cut"}):
        server = serve(tmp_path, **play)
        try:
            proc = mstui("sweep", "--backend", "openai", "--base-url", server.url,
                         "--problem-set", str(problems), "--max-rounds", "2", "--db", str(db))
        finally:
            server.stop()
        assert proc.returncode == 1, proc.stderr
        assert "3 run(s) failed, 0 finished, 0 skipped as done earlier" in proc.stderr
    with Store(db) as store:
        assert {r["status"] for r in store.list_runs()} == {"failed"}


def _wait_for_output(proc: subprocess.Popen[str], needle: str, timeout: float = 30) -> str:
    seen = ""
    end = time.monotonic() + timeout
    assert proc.stdout is not None
    while needle not in seen:
        assert time.monotonic() < end, seen
        seen += proc.stdout.read(1)
    return seen


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_sigint_cancels_a_stalled_stream_at_once(command: str, tmp_path: Path) -> None:
    server = serve(tmp_path, fault="stall")
    db = tmp_path / "t.db"
    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"question": "What is 13+1?", "answer": "14"}) + "\n", "utf-8")
    what = (["run", "--question", "q?"] if command == "run"
            else ["sweep", "--problem-set", str(problems)])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "mstui", *what, "--backend", "openai",
                             "--base-url", server.url, "--max-rounds", "2", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        if command == "run":
            _wait_for_output(proc, "14. The answer is 14.")  # streamed, then the server stalls
        else:
            deadline = time.monotonic() + 30
            while not server.requests():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=5)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert took < 3 and proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    run, rounds = only_run(db)
    assert run["status"] == "cancelled" and rounds[-1].finish_reason == "cancelled"
    if command == "run":
        assert rounds[-1].response == "".join(CONTENT)
        out = proc.stdout.read() if proc.stdout else ""
        # The cut round is counted, and the stream's line is ended before the verdict.
        assert "after 0 finished round(s) (+ round 0, cancelled)" in out
        assert out.startswith("\n\nfinal answer")  # the streamed line was ended first


async def test_tui_esc_cancels_a_stalled_stream(tmp_path: Path) -> None:
    from mstui.config import RunConfig
    from mstui.ui.app import make_app
    from tests.test_ui_live import SIZE, wait_for

    server = serve(tmp_path, fault="stall")
    try:
        config = RunConfig(backend="openai", base_url=server.url, max_rounds=2,
                           policy="fixed").validate()
        app = make_app(config, db_path=tmp_path / "t.db", auto_policy=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.worker.backend is not None, timeout=30)
            await pilot.press("slash", *"What is 13 + 1?", "enter")
            await wait_for(pilot, lambda: len(server.requests()) == 1, timeout=10)
            await pilot.pause(0.5)
            sent = time.monotonic()
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.worker.busy, timeout=5)
            took = time.monotonic() - sent
            records = app.live.records
    finally:
        server.stop()
    assert took < 2
    assert [r.finish_reason for r in records] == ["cancelled"]


@pytest.mark.parametrize(("play", "needle"), [
    ({"finish": "abort"}, "finish reason 'abort'"),
    ({"finish": "content_filter"}, "finish reason 'content_filter'"),
    ({"fault": "sse_error", "error_payload": {"detail": "overloaded", "status": 503}},
     "detail=overloaded"),
    ({"usage": {"prompt_tokens": 10**30, "completion_tokens": 4, "total_tokens": 5}},
     "usage prompt_tokens"),
    ({"usage": {"prompt_tokens": -5, "completion_tokens": -7, "total_tokens": 5}},
     "not a token count"),
])
def test_odd_server_values_fail_the_round_in_one_line(play: dict, needle: str,  # type: ignore[type-arg]
                                                       tmp_path: Path) -> None:
    server = serve(tmp_path, **play)
    db = tmp_path / "t.db"
    try:
        proc = mstui("run", "--backend", "openai", "--base-url", server.url, "--question", "q?",
                     "--gold", "14", "--max-rounds", "2", "--json", "--db", str(db))
    finally:
        server.stop()
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    run, rounds = only_run(db)
    assert run["status"] == "failed" and rounds[0].finish_reason == "error"
    assert rounds[0].answer is None and rounds[0].correct is None
