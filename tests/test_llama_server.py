"""Sweeps against the real llama.cpp `llama-server` (built by `make server`) on 127.0.0.1."""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from mstui.cli import main
from mstui.cli.sweep_cmd import SweepControl, SweepProgress, fit_to_slots, run_sweep
from mstui.config import RunConfig
from mstui.core.backend import GenSettings, GenStats, Piece
from mstui.core.problems import generate_problems
from mstui.engine.openai_backend import OpenAIBackend, _cache_hits
from mstui.store import Store
from tests.gguf_factory import write_tiny_llama
from tests.servers import LlamaServer, free_port, llama_server_binary

SLOTS = 4
CTX = 4096 * SLOTS  # each slot gets 4096 tokens: the tiny model's vocabulary is byte-level


@pytest.fixture(scope="module")
def binary() -> Path:
    found = llama_server_binary()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("llama-server is not built; CI builds it with `make server`")
        pytest.skip("llama-server is not built: run `make server`")
    return found


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random GGUF with a context large enough to split between slots."""
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny.gguf", n_ctx=CTX)


@pytest.fixture(scope="module")
def server(binary: Path, tiny: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[LlamaServer]:
    srv = LlamaServer(binary, tiny, tmp_path_factory.mktemp("llama-server") / "server.log",
                      slots=SLOTS, ctx=CTX)
    yield srv
    srv.stop()


def config(url: str, **gen: int) -> RunConfig:
    return RunConfig(backend="openai", base_url=url, max_rounds=3,
                     gen=GenSettings(max_tokens=gen.get("max_tokens", 8)))


def slots_chosen(server: LlamaServer) -> set[int]:
    """Slots the server says it gave to requests that asked for one by id_slot."""
    text = server.log_path.read_text(errors="replace")
    return {int(m) for m in re.findall(r"selected slot by id \((\d+)\)", text)}


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# --- the pieces that need no server ------------------------------------------------------------

def test_concurrency_fits_the_slots_with_one_note() -> None:
    assert fit_to_slots(1, None) == (1, [])
    assert fit_to_slots(4, 4) == (4, [])
    n, notes = fit_to_slots(8, 4)
    assert n == 4 and len(notes) == 1 and "above the server's 4 slot(s)" in notes[0]
    assert "-np 8" in notes[0]
    n, notes = fit_to_slots(3, None)
    assert n == 3 and len(notes) == 1 and "not pinned to slots" in notes[0]


def test_cache_hits_are_read_from_usage_or_timings() -> None:
    usage = SimpleNamespace(prompt_tokens=90, completion_tokens=5,
                            prompt_tokens_details=SimpleNamespace(cached_tokens=80))
    assert _cache_hits(usage, None) == (80, "reported")  # llama-server, vLLM, SGLang
    bare = SimpleNamespace(prompt_tokens=90, completion_tokens=5, prompt_tokens_details=None)
    assert _cache_hits(bare, {"cache_n": 70, "prompt_n": 20}) == (70, "reported")
    assert _cache_hits(bare, None) == (0, None)  # vLLM without --enable-prompt-tokens-details
    assert _cache_hits(None, None) == (0, None)  # no usage at all (llama_cpp.server)


# --- against the real server -------------------------------------------------------------------

def test_server_features_are_read_from_props(server: LlamaServer) -> None:
    backend = OpenAIBackend(server.url)
    assert backend.slots == SLOTS and backend.chat_template
    assert backend.info.details["slots"] == str(SLOTS)
    # Completions stream log-probabilities in the chat shape on llama-server; they are read.
    with backend.use_slot(2):
        items = list(backend.stream("Q: 1+1?\nA:", GenSettings(max_tokens=4, logprobs=True),
                                    threading.Event()))
    pieces = [i for i in items if isinstance(i, Piece)]
    stats = items[-1]
    assert pieces and all(p.logprob is not None and p.logprob <= 0 for p in pieces)
    assert isinstance(stats, GenStats) and stats.cached_source == "reported"
    assert stats.completion_tokens == len(pieces) and not stats.counted_locally
    assert 2 in slots_chosen(server)


def test_parallel_sweep_keeps_each_question_on_its_slot(server: LlamaServer,
                                                        tmp_path: Path) -> None:
    seen: list[SweepProgress] = []
    with Store(tmp_path / "t.db") as store:
        result = run_sweep(config(server.url), generate_problems(8, seed=0), store,
                           problem_set="gen", concurrency=SLOTS, on_start=seen.append)
        assert result.completed == 8 and not result.errors and not result.notes
        assert seen[0].most_in_flight == SLOTS  # four questions were in flight at once
        runs = [store.get_run(i) for i in result.run_ids]
    assert slots_chosen(server) >= set(range(SLOTS))
    for run in runs:
        assert run["status"] == "finished"
        rounds = run["rounds"]
        assert [r.index for r in rounds] == [0, 1, 2]
        assert all(r.cached_source == "reported" for r in rounds)
        for prev, cur in itertools.pairwise(rounds):
            # The slot still holds the previous round's prompt (no other question came between),
            # so all it shares with this one is reused, by the server's own count: up to the
            # re-answer line. A prompt held whole still has its last token evaluated (logits).
            tokens = server.tokenize(cur.prompt)
            shared = min(common_prefix(server.tokenize(prev.prompt), tokens), len(tokens) - 1)
            assert cur.cached_tokens == shared > prev.prompt_tokens // 2


def test_more_questions_than_slots_queue_with_one_note(server: LlamaServer, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    argv = ["sweep", "--backend", "openai", "--base-url", server.url, "--problem-set", "gen",
            "--limit", "6", "--max-rounds", "2", "--max-tokens", "4", "--concurrency", "6",
            "--db", str(db)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("mstui: note:")]
    assert len(notes) == 1 and "above the server's 4 slot(s)" in notes[0]
    assert "Traceback" not in err
    with Store(db) as store:
        runs = store.list_runs(limit=-1)
        assert len(runs) == 6 and all(r["status"] == "finished" for r in runs)
    assert main(argv) == 0  # resumable: nothing left
    assert "6 already done earlier" in capsys.readouterr().out


def test_cancel_one_question_while_the_others_go_on(server: LlamaServer, tmp_path: Path) -> None:
    control = SweepControl()
    cancelled: list[str] = []

    def watch(p: SweepProgress) -> None:
        # Once every slot is busy and tokens flow, cancel one question in flight.
        if not cancelled and p.in_flight == SLOTS and p.live_tokens > 0:
            target = control.in_flight()[0]
            assert control.cancel_question(target)
            cancelled.append(target)

    problems = generate_problems(6, seed=1)
    with Store(tmp_path / "t.db") as store:
        result = run_sweep(config(server.url, max_tokens=120), problems, store,
                           problem_set="gen", concurrency=SLOTS, control=control,
                           on_progress=watch)
        assert len(cancelled) == 1 and result.cancelled_questions == cancelled
        assert not result.cancelled and result.completed == 5 and not result.errors
        runs = {r["problem_id"]: r for r in store.list_runs(limit=-1)}
        stopped = store.get_run(runs[cancelled[0]]["id"])
        assert stopped["status"] == "cancelled"
        assert stopped["rounds"][-1].finish_reason == "cancelled"
        assert stopped["rounds"][-1].completion_tokens < 120
        others = [store.get_run(r["id"]) for pid, r in runs.items() if pid != cancelled[0]]
        assert all(r["status"] == "finished" and len(r["rounds"]) == 3 for r in others)
        # The same sweep again redoes only the cancelled question.
        again = run_sweep(config(server.url, max_tokens=120), problems, store,
                          problem_set="gen", concurrency=SLOTS)
        assert again.skipped == 5 and again.completed == 1


def test_server_killed_mid_sweep_stops_with_one_line_and_resumes(
        binary: Path, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    srv = LlamaServer(binary, tiny, tmp_path / "server.log", slots=2, ctx=2 * 4096,
                      port=free_port())
    db = tmp_path / "t.db"
    argv = ["sweep", "--backend", "openai", "--base-url", srv.url, "--problem-set", "gen",
            "--limit", "6", "--max-rounds", "2", "--max-tokens", "200", "--concurrency", "2",
            "--db", str(db)]

    def kill_after_two_runs() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    done = conn.execute(
                        "SELECT count(*) FROM runs WHERE status = 'finished'").fetchone()[0]
            except sqlite3.Error:
                done = 0
            if done >= 2:
                srv.kill()
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_two_runs)
    try:
        killer.start()
        code = main(argv)
        killer.join()
        captured = capsys.readouterr()
        assert code == 1
        errors = [line for line in captured.err.splitlines() if line.startswith("mstui:")]
        assert len(errors) == 1 and "stopped answering mid-sweep" in errors[0]
        assert "Traceback" not in captured.err
        with Store(db) as store:
            runs = store.list_runs(limit=-1)
            finished = [r for r in runs if r["status"] == "finished"]
            assert len(finished) >= 2 and len(runs) < 6
            assert all(store.get_run(r["id"])["n_rounds"] == 2 for r in finished)
            scored = sum(r["final_correct"] is not None for r in finished)
        # The summary's accuracy is over the runs that finished, never the failed ones.
        counted = re.search(r"(\d+)/(\d+) correct", captured.out)
        assert (int(counted[2]) if counted else 0) == scored, captured.out
        srv.restart()  # the same port, as after a restart
        assert main(argv) == 0
        assert f"{len(finished)} already done earlier" in capsys.readouterr().out
        with Store(db) as store:
            done = {r["problem_id"] for r in store.list_runs(limit=-1)
                    if r["status"] == "finished"}
            assert len(done) == 6
    finally:
        srv.stop()


def test_default_model_sweeps_in_parallel_with_cache_hits(
        binary: Path, default_model: Path, tmp_path: Path) -> None:
    srv = LlamaServer(binary, default_model, tmp_path / "server.log", slots=2, ctx=2 * 2048)
    try:
        with Store(tmp_path / "t.db") as store:
            result = run_sweep(RunConfig(backend="openai", base_url=srv.url, max_rounds=2,
                                         gen=GenSettings(max_tokens=32)),
                               generate_problems(4, seed=0), store, problem_set="gen",
                               concurrency=2)
            assert result.completed == 4 and not result.errors
            rounds = [r for i in result.run_ids for r in store.get_run(i)["rounds"]]
    finally:
        srv.stop()
    assert sum(r.answer is not None for r in rounds) >= len(rounds) // 2
    later = [r for r in rounds if r.index > 0]
    assert later and all(r.cached_source == "reported" for r in rounds)
    evaluated = sum(r.prompt_tokens - r.cached_tokens for r in later)
    assert evaluated < 0.2 * sum(r.prompt_tokens for r in later)


def test_the_prompt_mstui_renders_is_the_servers_own_for_the_default_model(
        binary: Path, default_model: Path, tmp_path: Path) -> None:
    # SmolLM2's BOS text opens its first turn and the server adds no BOS: mstui's rendering of
    # the served template must be the server's own (/apply-template), first marker included,
    # or a text continuation (`wait`) re-reads its whole prompt instead of hitting the cache.
    import json
    import urllib.request

    srv = LlamaServer(binary, default_model, tmp_path / "server.log", slots=1, ctx=2048)
    try:
        backend = OpenAIBackend(srv.url)
        turns = [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "What is 2 + 2?"}]
        request = urllib.request.Request(
            f"{srv.root}/apply-template", method="POST",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"messages": turns}).encode())
        with urllib.request.urlopen(request, timeout=10) as r:
            served = json.loads(r.read())["prompt"]
        assert served.startswith("<|im_start|>system")
        assert backend.render_chat(turns) == served  # type: ignore[arg-type]
        with Store(tmp_path / "w.db") as store:
            result = run_sweep(RunConfig(backend="openai", base_url=srv.url, max_rounds=2,
                                         strategy="wait", prompt_format="chat",
                                         gen=GenSettings(max_tokens=24, temperature=0.0)),
                               generate_problems(1, seed=0), store, problem_set="gen")
            rounds = store.get_run(result.run_ids[0])["rounds"]
    finally:
        srv.stop()
    assert len(rounds) == 2 and rounds[1].cached_source == "reported"
    # The continuation shares the first round's prompt and answer: most of it is cached.
    assert rounds[1].cached_tokens > rounds[0].prompt_tokens // 2, rounds[1]


def test_llama_servers_root_as_base_url_is_one_line_and_stores_nothing(
        server: LlamaServer, tmp_path: Path) -> None:
    # llama-server answers its own API at the root too; every round then failed mid-stream.
    from mstui.engine.errors import ModelError
    from tests.test_cli_run import assert_one_line_error, mstui

    with pytest.raises(ModelError, match=r"under /v1: use --base-url http://127\.0\.0\.1:\d+/v1"):
        OpenAIBackend(server.root)
    db = tmp_path / "t.db"
    proc = mstui("sweep", "--problem-set", "gen", "--limit", "2", "--max-rounds", "1",
                 "--backend", "openai", "--base-url", server.root + "/", "--db", str(db))
    assert_one_line_error(proc, "/v1")
    if db.exists():  # the store may have been created; no run may be in it
        with sqlite3.connect(db) as c:
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
            assert "runs" not in tables or c.execute("SELECT count(*) FROM runs").fetchone() == (0,)
