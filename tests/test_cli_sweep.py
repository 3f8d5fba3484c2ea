"""`mstui sweep`: a problem set run headless, stored, resumable; errors on one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mstui.cli import main
from mstui.cli.sweep_cmd import SweepControl, SweepProgress, problem_set_name, run_sweep
from mstui.config import RunConfig
from mstui.core.backend import GenSettings, GenStats, Piece
from mstui.core.problems import Problem, load_problem_set
from mstui.engine.scripted import ScriptedBackend
from mstui.store import Store


def problems(n: int) -> list[Problem]:
    return [Problem(f"p{i}", f"What is {i} + 2?", str(i + 2), 1 + i % 3, "toy") for i in range(n)]


class GoldBackend(ScriptedBackend):
    """Answers each question's gold on every round (reads it off the question text)."""

    def stream(self, prompt: str, settings: GenSettings, cancel: threading.Event,
               messages: Any = None) -> Iterator[Piece | GenStats]:
        import re

        n = int(re.findall(r"What is (\d+) \+ 2\?", prompt)[-1])
        self.responses = [f"So the answer is {n + 2}."]
        self.calls = 0
        yield from super().stream(prompt, settings, cancel, messages)


CONFIG = RunConfig(max_rounds=3, gen=GenSettings(max_tokens=32, temperature=0.0))


def test_sweep_stores_every_run_with_its_problem(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        result = run_sweep(CONFIG, problems(4), store, problem_set="toy",
                           backend=GoldBackend(["x"]))
        assert len(result.run_ids) == 4 and result.skipped == 0
        assert (result.correct, result.scored) == (4, 4)
        runs = store.list_runs(limit=10)
        assert {r["problem_id"] for r in runs} == {"p0", "p1", "p2", "p3"}
        assert all(r["status"] == "finished" and r["n_rounds"] == 3 for r in runs)
        assert all(r["policy"] == "fixed:2" and r["problem_set"] == "toy" for r in runs)
        assert {r["level"] for r in runs} == {1, 2, 3}
        assert len({r["sweep"] for r in runs}) == 1
        assert len(store.problems("toy")) == 4


def test_resume_skips_finished_and_redoes_interrupted(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        backend = GoldBackend(["x"])
        first = run_sweep(CONFIG, problems(3), store, problem_set="toy", backend=backend)
        assert len(first.run_ids) == 3
        second = run_sweep(CONFIG, problems(5), store, problem_set="toy", backend=backend)
        assert second.skipped == 3 and len(second.run_ids) == 2
        assert store.count_runs() == 5
        # A run of p1 killed mid-way: finished rounds kept, marked interrupted.
        rid = store.start_run(question="What is 5 + 2?", max_rounds=3, model="scripted",
                              problem_set="toy", problem_id="p5", strategy="reanswer",
                              policy="fixed:2")
        store.finish_run(rid, "interrupted")
        third = run_sweep(CONFIG, problems(6), store, problem_set="toy", backend=backend)
        assert third.skipped == 5 and len(third.run_ids) == 1
        redo = store.get_run(third.run_ids[0])
        assert redo["problem_id"] == "p5" and redo["status"] == "finished"
        # A different cap is a different configuration: nothing skipped.
        other = RunConfig(max_rounds=2, gen=CONFIG.gen)
        assert run_sweep(other, problems(2), store, problem_set="toy",
                         backend=backend).skipped == 0


class CancellingBackend(GoldBackend):
    """Sets the sweep's cancel event in the middle of its `at`-th generation (like Ctrl-C)."""

    def __init__(self, at: int, sweep_cancel: threading.Event) -> None:
        super().__init__(["x"])
        self.at, self.n, self.sweep_cancel = at, 0, sweep_cancel

    def stream(self, prompt: str, settings: GenSettings, cancel: threading.Event,
               messages: Any = None) -> Iterator[Piece | GenStats]:
        self.n += 1
        for i, item in enumerate(super().stream(prompt, settings, cancel, messages)):
            if self.n == self.at and i == 1:
                self.sweep_cancel.set()
            yield item


def test_cancel_marks_run_in_flight_and_rerun_resumes(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store:
        cancel = threading.Event()
        # 3 rounds a problem: generation 5 is round 1 of the second problem.
        result = run_sweep(CONFIG, problems(3), store, problem_set="toy",
                           backend=CancellingBackend(at=5, sweep_cancel=cancel), cancel=cancel)
        assert result.cancelled and result.completed == 1
        flight = store.get_run(result.run_ids[-1])
        assert flight["status"] == "cancelled" and flight["problem_id"] == "p1"
        assert len(flight["rounds"]) == 2  # round 0 kept, the cancelled round 1 recorded
        again = run_sweep(CONFIG, problems(3), store, problem_set="toy",
                          backend=GoldBackend(["x"]))
        assert again.skipped == 1 and len(again.run_ids) == 2 and not again.cancelled
        assert store.finished_problem_ids("toy", "scripted", "reanswer", "fixed:2", 3) == {
            "p0", "p1", "p2"}


def test_one_question_cancelled_alone_the_sweep_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mstui.cli import sweep_cmd

    monkeypatch.setattr(sweep_cmd, "_PROGRESS_EVERY", 0.0)  # report every streamed token
    control = SweepControl()
    seen: list[tuple[int, int]] = []

    def watch(p: SweepProgress) -> None:
        seen.append((p.in_flight, p.live_tokens))
        if p.live_tokens and control.in_flight() == ["p1"]:
            control.cancel_question("p1")

    with Store(tmp_path / "t.db") as store:
        result = run_sweep(CONFIG, problems(3), store, problem_set="toy",
                           backend=GoldBackend(["x"]), control=control,
                           on_progress=watch)
        assert result.cancelled_questions == ["p1"] and not result.cancelled
        assert result.completed == 2 and not control.in_flight()
        status = {r["problem_id"]: r["status"] for r in store.list_runs(limit=-1)}
        assert status == {"p0": "finished", "p1": "cancelled", "p2": "finished"}
        # The live count follows the tokens streamed and drops back as rounds finish.
        assert max(live for _, live in seen) > 0 and seen[-1] == (0, 0)
        assert {flight for flight, _ in seen} == {0, 1}
        assert not control.cancel_question("p1")  # no longer in flight
        again = run_sweep(CONFIG, problems(3), store, problem_set="toy",
                          backend=GoldBackend(["x"]))
        assert again.skipped == 2 and again.completed == 1


def test_empty_problem_list_is_an_error(tmp_path: Path) -> None:
    with Store(tmp_path / "t.db") as store, pytest.raises(ValueError, match="empty"):
        run_sweep(CONFIG, [], store, problem_set="toy", backend=GoldBackend(["x"]))


def test_markov_policy_without_fit_says_so(tmp_path: Path) -> None:
    config = RunConfig(policy="markov", max_rounds=3)
    with Store(tmp_path / "t.db") as store, pytest.raises(ValueError, match="mstui fit"):
        run_sweep(config, problems(2), store, problem_set="toy", backend=GoldBackend(["x"]))


def test_problem_set_name() -> None:
    assert problem_set_name("gen:L3") == "gen:L3"
    assert problem_set_name("/data/my-set.jsonl") == "my-set"


def test_builtin_limit_extends_the_same_set() -> None:
    small, _ = load_problem_set("gen", 3, 0)
    big, _ = load_problem_set("gen", 5, 0)
    assert [p.id for p in big[:3]] == [p.id for p in small]


# ---- the real command line ------------------------------------------------------------------


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mstui: error: "), err
    return err[0]


def test_cli_empty_jsonl_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["sweep", "--problem-set", str(empty), "--db", str(tmp_path / "t.db")]) == 2
    assert "no problems" in one_error_line(capsys)


def test_cli_malformed_jsonl_names_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n{oops\n")
    assert main(["sweep", "--problem-set", str(bad), "--db", str(tmp_path / "t.db")]) == 2
    assert "bad.jsonl line 2" in one_error_line(capsys)


def test_cli_unknown_set_and_bad_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--problem-set", "nosuch", "--db", str(tmp_path / "t.db")]) == 2
    assert "unknown problem set" in one_error_line(capsys)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    assert main(["sweep", "--problem-set", "gen", "--limit", "2", "--db", str(junk)]) == 2
    one_error_line(capsys)


def test_cli_sweep_end_to_end_on_tiny_gguf(tmp_path: Path, tiny_gguf: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    argv = ["sweep", "--problem-set", "gen", "--model", str(tiny_gguf), "--max-tokens", "8",
            "--limit", "3", "--max-rounds", "2", "--db", str(db), "--concurrency", "4",
            "--gpu-layers", "0"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "3 run(s) this time, 0 already done" in captured.out
    assert "--concurrency 4 ignored" in captured.err
    with Store(db) as store:
        runs = store.list_runs()
        assert len(runs) == 3 and all(r["status"] == "finished" for r in runs)
        assert all(r["model"] == "tiny.gguf" and r["problem_set"] == "gen" for r in runs)
        assert all(len(store.rounds_of(r["id"])) == 2 for r in runs)
    assert main(argv) == 0  # resumed: nothing left to do
    assert "0 run(s) this time, 3 already done" in capsys.readouterr().out


def test_sweep_grades_against_the_gold_as_given(tmp_path: Path) -> None:
    # Normalized at import, `\boxed{14{,}916}` once became `14{,}916`, which nothing matched;
    # the run keeps the gold as given and grades against it.
    raw = Problem("w", "How many ways?", "14916", None, "toy", raw_answer=r"\boxed{14{,}916}")
    with Store(tmp_path / "t.db") as store:
        result = run_sweep(RunConfig(max_rounds=1), [raw], store, problem_set="toy",
                           backend=ScriptedBackend([r"There are $14,916$ ways."]))
        assert (result.correct, result.scored) == (1, 1)
        run = store.get_run(result.run_ids[0])
        assert (run["gold"], run["gold_raw"]) == ("14916", r"\boxed{14{,}916}")
        assert run["rounds"][0].judge == "exact" and run["rounds"][0].answer_text == "14,916"
        assert store.problems("toy")[0]["gold_raw"] == r"\boxed{14{,}916}"
