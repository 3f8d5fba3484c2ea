"""The remote backend against a real OpenAI-compatible server (llama_cpp.server) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mstui.cli import main
from mstui.config import RunConfig
from mstui.core.backend import GenSettings
from mstui.core.loop import RoundFinished, run_refinement
from mstui.core.policies import parse_policy
from mstui.core.problems import generate_problems
from mstui.core.prompts import Prompter, load_format
from mstui.engine.errors import ModelError
from mstui.engine.openai_backend import OpenAIBackend
from mstui.session import RunRecorder
from mstui.store import Store
from tests.servers import Server, free_port

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")


@pytest.fixture(scope="module")
def server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tiny_gguf, tmp_path_factory.mktemp("server") / "server.log")
    yield srv
    srv.stop()


def test_run_rounds_through_the_server_and_store_them(server: Server, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    code = main(["run", "--backend", "openai", "--base-url", server.url, "--question",
                 "What is 2 + 3?", "--gold", "5", "--max-rounds", "3", "--max-tokens", "6",
                 "--json", "--db", str(db)])
    assert code == 0
    *rows, final = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert final["rounds"] == 3 and final["final_answer"] == rows[-1]["answer"]
    assert all(1 <= r["completion_tokens"] <= 6 and r["finish_reason"] in ("stop", "length")
               for r in rows)
    with Store(db) as store:
        (run,) = store.list_runs()
        assert run["backend"] == "openai" and run["status"] == "finished"
        assert len(store.rounds_of(run["id"])) == 3


def test_chat_format_uses_the_chat_endpoint_and_logprobs(server: Server) -> None:
    backend = OpenAIBackend(server.url)
    prompter = Prompter(load_format("chat"), "reanswer", backend.render_chat)
    events = list(run_refinement("What is 1 + 1?", backend=backend, prompter=prompter,
                                 policy=parse_policy("fixed:1", None), max_rounds=2,
                                 settings=GenSettings(max_tokens=5)))
    rounds = [e.record for e in events if isinstance(e, RoundFinished)]
    assert len(rounds) == 2 and all(r.finish_reason in ("stop", "length") for r in rounds)
    assert rounds[0].prompt.startswith("<|im_start|>system")
    # Completions stream per-token log-probabilities from this server.
    stream = list(backend.stream("Q: 1+1?\nA:", GenSettings(max_tokens=4, logprobs=True),
                                 threading.Event()))
    assert all(p.logprob is not None for p in stream[:-1])


def test_cancel_closes_the_stream(server: Server) -> None:
    backend = OpenAIBackend(server.url)
    cancel = threading.Event()
    pieces = 0
    stats = None
    for item in backend.stream("Once upon a time", GenSettings(max_tokens=1000), cancel):
        if hasattr(item, "text"):
            pieces += 1
            if pieces == 3:
                cancel.set()
        else:
            stats = item
    assert stats is not None and stats.finish_reason == "cancelled" and pieces == 3


def test_parallel_sweep_keeps_every_run(server: Server, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "sweep.db"
    argv = ["sweep", "--backend", "openai", "--base-url", server.url, "--problem-set", "gen",
            "--limit", "6", "--max-rounds", "2", "--max-tokens", "5", "--concurrency", "3",
            "--db", str(db)]
    assert main(argv) == 0
    # This server has no slots to pin questions to: said once, and the sweep goes on.
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "does not say how many requests" in notes[0]
    with Store(db) as store:
        runs = store.list_runs(limit=-1)
        assert len(runs) == 6 and all(r["status"] == "finished" for r in runs)
        assert sorted(r["problem_id"] for r in runs) == sorted(
            p.id for p in generate_problems(6, seed=0))
        assert all(len(store.rounds_of(r["id"])) == 2 for r in runs)
        # It reports no usage, so nothing is known about its cache hits.
        rounds = [rd for r in runs for rd in store.get_run(r["id"])["rounds"]]
        assert all(rd.cached_source is None and rd.cached_tokens == 0 for rd in rounds)
    assert main(argv) == 0  # resumable: nothing left to do
    with Store(db) as store:
        assert store.count_runs() == 6


def test_bad_server_inputs(server: Server) -> None:
    with pytest.raises(ModelError, match="has no model 'nope'"):
        OpenAIBackend(server.url, model="nope")
    with pytest.raises(ModelError, match="cannot reach"):
        OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", retries=0, timeout=2)
    with pytest.raises(ModelError, match="HTTP 404"):
        OpenAIBackend(f"http://127.0.0.1:{server.port}/nothing-here", retries=0)


def test_server_killed_mid_stream_keeps_partial_round_and_resumes(
        tiny_gguf: Path, tmp_path: Path) -> None:
    srv = Server(tiny_gguf, tmp_path / "server.log")
    db = tmp_path / "t.db"
    try:
        config = RunConfig(backend="openai", base_url=srv.url, max_rounds=2)
        backend = OpenAIBackend(srv.url, retries=0)
        prompter = Prompter(load_format("fewshot"), "reanswer", backend.render_chat)
        problem = generate_problems(1, seed=0)[0]
        with Store(db) as store:
            store.upsert_problems([problem], problem_set="gen")
            recorder = RunRecorder(store, config, backend, question=problem.question,
                                   gold=problem.answer, problem_set="gen",
                                   problem_id=problem.id, policy="fixed:1")
            seen = ""
            for event in run_refinement(problem.question, backend=backend, prompter=prompter,
                                        policy=parse_policy("fixed:1", None), max_rounds=2,
                                        settings=GenSettings(max_tokens=1200),
                                        gold=problem.answer):
                if hasattr(event, "text") and not seen:
                    seen = event.text
                    srv.kill()  # the server dies while the round is streaming
                recorder.handle(event)
            run = store.get_run(recorder.run_id)
            (failed,) = run["rounds"]
            assert run["status"] == "failed"
            assert failed.finish_reason == "error" and failed.error
            assert failed.response.startswith(seen) and failed.completion_tokens >= 1
    finally:
        srv.stop()
    # A new server comes up; the sweep redoes the failed problem and finishes it.
    srv = Server(tiny_gguf, tmp_path / "server2.log")
    try:
        argv = ["sweep", "--backend", "openai", "--base-url", srv.url, "--problem-set", "gen",
                "--limit", "1", "--max-rounds", "2", "--max-tokens", "4", "--policy", "fixed:1",
                "--db", str(db)]
        assert main(argv) == 0
        with Store(db) as store:
            statuses = sorted(r["status"] for r in store.list_runs(limit=-1))
            assert statuses == ["failed", "finished"]
    finally:
        srv.stop()


def test_server_model_name_is_stored_per_backend(server: Server) -> None:
    backend = OpenAIBackend(server.url)
    assert backend.info.backend == "openai" and backend.info.model.endswith("tiny.gguf")
    assert os.path.basename(backend.info.model) == "tiny.gguf"


def test_chat_endpoint_without_logprobs_says_so(server: Server, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # This server streams no log-probabilities on the chat endpoint and reports no usage.
    code = main(["run", "--backend", "openai", "--base-url", server.url, "--format", "chat",
                 "--question", "What is 1 + 1? The answer is 2.", "--max-rounds", "1",
                 "--max-tokens", "40", "--logprobs", "--json", "--db", str(tmp_path / "t.db")])
    assert code == 0
    err = capsys.readouterr().err
    assert "reported no token usage" in err


def test_degrade_notes_name_what_the_backend_could_not_give() -> None:
    from mstui.cli.run_cmd import degrade_notes
    from mstui.core.backend import GenSettings as G
    from tests.helpers import make_record

    class NoUsage:
        usage_reported = False

    rounds = [make_record(0, "p", "The answer is 2.", "2")]
    asked = RunConfig(gen=G(logprobs=True))
    notes = degrade_notes(NoUsage(), asked, rounds)
    assert len(notes) == 2 and "no token usage" in notes[0] and "log-probability" in notes[1]
    assert degrade_notes(object(), RunConfig(), rounds) == []


async def test_tui_runs_against_the_server(server: Server, tmp_path: Path) -> None:
    from mstui.ui.app import make_app
    from mstui.ui.widgets import RoundStrip
    from tests.test_ui_live import SIZE, text_of, wait_for

    db = tmp_path / "ui.db"
    config = RunConfig(backend="openai", base_url=server.url, max_rounds=2,
                       gen=GenSettings(max_tokens=6))
    app = make_app(config, db_path=db, question="What is 2 + 2?", auto_policy=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.worker.backend is not None, timeout=30)
        assert app.worker.backend.info.backend == "openai"
        await pilot.press("r")
        await wait_for(pilot, lambda: app.worker.busy is False and len(app.live.decisions) == 2,
                       timeout=30)
        assert "#1" in text_of(app.live.query_one(RoundStrip))
        run_id = app.live.run_id
    with Store(db) as store:
        run = store.get_run(run_id)
    assert run["backend"] == "openai" and len(run["rounds"]) == 2
