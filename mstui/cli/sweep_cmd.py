"""`mstui sweep`: run a problem set headless, every run stored round by round; resumable."""

from __future__ import annotations

import argparse
import dataclasses
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.core.problems import Problem
from mstui.store import Store


def register(sub: Any) -> None:
    """Add `mstui sweep` to the subcommands."""
    from mstui.cli.parser import add_run_options, ranged

    p = sub.add_parser(
        "sweep", help="run a problem set headless with a progress bar (resumable)",
        description="Run every problem of a set through the refinement loop, storing each round "
                    "as it finishes. Re-running the same command skips problems already "
                    "finished with the same model, strategy, policy and --max-rounds, and redoes "
                    "interrupted ones. Ctrl-C stops after cancelling the run in flight. A server "
                    "that stops answering ends the sweep with exit code 1, finished runs kept.")
    p.add_argument("--problem-set", required=True, metavar="NAME|FILE",
                   help="a built-in set (gen: levels 1–5 mixed; gen:L1 … gen:L5: one level) or a "
                        "JSONL file with question/answer (GSM8K '#### N' and MATH problem/answer "
                        "too)")
    p.add_argument("--limit", type=ranged(int, 1, 10**9), metavar="N",
                   help="use the first N problems (built-in sets: the set size, default 50)")
    p.add_argument("--problem-seed", type=ranged(int, 0, 2**63 - 1), default=0, metavar="S",
                   help="seed of the built-in problem generator (default 0; --seed is the "
                        "sampling seed)")
    p.add_argument("--on-bad-line", choices=("stop", "skip"), default="stop",
                   help="a malformed JSONL line stops the sweep (default) or is skipped")
    p.add_argument("--concurrency", type=ranged(int, 1, 256), default=1, metavar="N",
                   help="questions in flight at once, each on its own llama-server slot (start "
                        "it with -np N; more than its slots queue here); the in-process backend "
                        "runs one at a time")
    add_run_options(p)
    p.set_defaults(handler=cmd_sweep)


@dataclass
class SweepProgress:
    """What a progress display needs, updated as rounds stream and problems finish."""

    total: int  # problems in this sweep (skipped ones excluded)
    done: int = 0
    correct: int = 0
    scored: int = 0  # done runs with a known final correctness
    completion_tokens: int = 0  # of finished rounds, as the backend counted them
    live_tokens: int = 0  # pieces streamed by rounds still in flight
    in_flight: int = 0  # questions being answered right now
    most_in_flight: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def accuracy(self) -> float | None:
        """Final-answer accuracy so far."""
        return self.correct / self.scored if self.scored else None

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per wall-clock second so far, over every question in flight."""
        dt = time.perf_counter() - self.started
        return (self.completion_tokens + self.live_tokens) / dt if dt > 0 else 0.0


@dataclass
class SweepResult:
    """How a sweep went."""

    problem_set: str
    sweep_id: str
    total: int  # problems in the set
    skipped: int  # already finished earlier
    run_ids: list[int] = field(default_factory=list)
    correct: int = 0
    scored: int = 0
    completion_tokens: int = 0
    completed: int = 0  # runs that ended this time (not cancelled)
    cancelled: bool = False  # the whole sweep was stopped
    cancelled_runs: int = 0  # runs in flight when it was, stored as cancelled
    cancelled_questions: list[str] = field(default_factory=list)  # stopped one by one
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each, said before the bar
    server_gone: str | None = None  # why the sweep stopped early: the server stopped answering
    claimed_elsewhere: int = 0  # problems another live sweep on the same file was running


class SweepControl:
    """Stops the whole sweep (`stop`) or one question in flight, from any thread."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._questions: dict[str, _QuestionCancel] = {}

    def cancel_question(self, problem_id: str) -> bool:
        """Cancel one question at its next token (stored as cancelled; the others go on).
        False when it is not in flight."""
        with self._lock:
            event = self._questions.get(problem_id)
        if event is None:
            return False
        event.set()
        return True

    def in_flight(self) -> list[str]:
        """Problem ids being answered now."""
        with self._lock:
            return list(self._questions)

    def _open(self, problem_id: str) -> threading.Event:
        event = _QuestionCancel(self.stop)
        with self._lock:
            self._questions[problem_id] = event
        return event

    def _close(self, problem_id: str) -> bool:
        """Forget a question; whether it alone was cancelled."""
        with self._lock:
            event = self._questions.pop(problem_id, None)
        return event is not None and threading.Event.is_set(event) and not self.stop.is_set()


class _QuestionCancel(threading.Event):
    """One question's cancel: set by itself, and read as set once the whole sweep stops."""

    def __init__(self, parent: threading.Event) -> None:
        super().__init__()
        self.parent = parent

    def is_set(self) -> bool:
        return super().is_set() or self.parent.is_set()


def problem_set_name(spec: str) -> str:
    """The name runs are stored under: a built-in set's name, or a JSONL file's stem."""
    if spec == "gen" or spec.startswith("gen:"):
        return spec
    return Path(spec).stem


def run_sweep(config: RunConfig, problems: Sequence[Problem], store: Store, *,
              problem_set: str, backend: Backend | None = None,
              cancel: threading.Event | None = None, concurrency: int = 1,
              control: SweepControl | None = None,
              on_start: Callable[[SweepProgress], None] | None = None,
              on_progress: Callable[[SweepProgress], None] | None = None,
              on_note: Callable[[str], None] | None = None) -> SweepResult:
    """Run `problems` with one loaded backend; every run is stored as it goes.

    Problems already finished in this configuration are skipped (resume); interrupted,
    cancelled and failed ones are run again. Setting `cancel` (or `control.stop`) stops the
    runs in flight at the next token (they are stored as cancelled) and ends the sweep;
    `control.cancel_question` stops one question and the sweep goes on. With a remote backend,
    `concurrency` questions are in flight at once (rounds within a question stay sequential),
    each pinned to its own llama-server slot so its later rounds reuse that slot's KV cache;
    this thread stays the only writer to the store. `on_progress` is called as rounds stream
    (a few times a second) and as problems finish; `on_note` gets one-line notes. A server that
    stops answering ends the sweep early (`server_gone`); finished runs are kept.
    """
    from mstui.runner import build_run, needs_fit
    from mstui.session import find_fit

    if not problems:
        raise ValueError(f"problem set {problem_set!r} is empty; nothing to sweep")
    from mstui.core.grading import default_grader

    control = control or SweepControl(cancel)
    cancel = control.stop
    default_grader().warm()  # Math-Verify's worker starts while the model loads
    store.upsert_problems(problems, problem_set=problem_set)
    # The model is loaded once, before the fit is looked up (its name keys the fit), so a policy
    # that needs a fit is built afterwards: loading with it would fail for want of the fit.
    probe = dataclasses.replace(config, policy="fixed") if needs_fit(config.policy_spec) else config
    run = build_run(probe, gold=problems[0].answer, backend=backend)
    config = dataclasses.replace(run.config, policy=config.policy)  # with the profile's defaults
    model = run.backend.info.model
    found = None
    if needs_fit(config.policy_spec):
        found = find_fit(store, model, config.strategy, problem_set, pin=config.fit_id)
        if found is None:
            from mstui.core.policies import NO_FIT

            raise ValueError(f"policy {config.policy_spec!r}: {NO_FIT}")
        print(f"mstui: {found.describe()}", file=sys.stderr)
        if found.stale:
            print(f"mstui: note: fit #{found.id} is stale ({found.stale}); `mstui fit` refits "
                  "it", file=sys.stderr)
        run = build_run(config, gold=problems[0].answer, backend=run.backend, fit=found.fit,
                        obs_model=found.obs_model)
    done = store.finished_problem_ids(problem_set, model, config.strategy, run.policy.spec,
                                      config.max_rounds)
    todo = [p for p in problems if p.id not in done]
    result = SweepResult(problem_set, uuid.uuid4().hex[:12], len(problems),
                         len(problems) - len(todo))
    progress = SweepProgress(total=len(todo))
    slots = getattr(run.backend, "slots", None)
    if run.backend.info.backend != "openai":
        concurrency = 1  # an in-process model answers from the one thread that loaded it
    else:
        concurrency, notes = fit_to_slots(concurrency, slots)
        result.notes.extend(notes)
    for note in result.notes:
        if on_note:
            on_note(note)
    if on_start:
        on_start(progress)
    sweep = _Sweep(config, run, store, result, progress, control, found.id if found else None,
                   on_progress)
    if concurrency > 1:
        sweep.parallel(todo, concurrency, pin=slots is not None)
    else:
        sweep.sequential(todo, pin=slots is not None)
    result.correct, result.scored = progress.correct, progress.scored
    result.completed = progress.done
    result.completion_tokens = progress.completion_tokens
    return result


def fit_to_slots(concurrency: int, slots: int | None) -> tuple[int, list[str]]:
    """Questions to keep in flight on a server with `slots` slots (None: it does not say), and
    what to tell the user about it. More questions than slots wait here rather than at the
    server, so each question keeps one slot, and with it its prefix cache."""
    if concurrency <= 1:
        return 1, []
    if slots is None:
        return concurrency, [
            f"--concurrency {concurrency}: the server does not say how many requests it decodes "
            "at once (llama-server's /props does), so the questions are not pinned to slots; "
            "it batches or queues them itself"]
    if concurrency > slots:
        return slots, [
            f"--concurrency {concurrency} is above the server's {slots} slot(s): {slots} "
            f"question(s) run at once and the rest wait their turn (start llama-server with "
            f"-np {concurrency} to run them all)"]
    return concurrency, []


_DONE = object()  # a worker's last item for its problem
_PROGRESS_EVERY = 0.25  # seconds between progress callbacks while tokens stream


class _Sweep:
    """Runs problems and records them; all store writes happen on the calling thread."""

    def __init__(self, config: RunConfig, run: Any, store: Store, result: SweepResult,
                 progress: SweepProgress, control: SweepControl, fit_id: int | None,
                 on_progress: Callable[[SweepProgress], None] | None) -> None:
        self.config, self.run, self.store = config, run, store
        self.result, self.progress, self.control = result, progress, control
        self.cancel = control.stop
        self.fit_id, self.on_progress = fit_id, on_progress
        self._live: dict[int, int] = {}  # run id -> pieces streamed in its round in flight
        self._reported = 0.0

    def _events(self, problem: Problem, cancel: threading.Event, slot: int | None) -> Any:
        """The problem's events; its rounds go to llama-server slot `slot` when one is given."""
        from mstui.core.loop import run_refinement

        events = run_refinement(problem.question, backend=self.run.backend,
                                prompter=self.run.prompter, policy=self.run.policy,
                                max_rounds=self.config.max_rounds, settings=self.config.gen,
                                gold=problem.gold, cancel=cancel,
                                thinking_budget=self.config.thinking_budget)
        use_slot = getattr(self.run.backend, "use_slot", None)
        if slot is None or use_slot is None:
            yield from events
            return
        with use_slot(slot):  # a thread-local pin: set and read on this worker thread
            yield from events

    def _start(self, problem: Problem) -> Any:
        """The problem's recorder, or None when another sweep on this file has it (claimed)."""
        from mstui.session import RunRecorder
        from mstui.store import AlreadyClaimed

        try:
            recorder = RunRecorder(self.store, self.config, self.run.backend,
                                   question=problem.question, gold=problem.gold,
                                   problem_set=self.result.problem_set, problem_id=problem.id,
                                   level=problem.level, fit_id=self.fit_id,
                                   policy=self.run.policy.spec, sweep=self.result.sweep_id,
                                   claim=True)
        except AlreadyClaimed:
            self.result.claimed_elsewhere += 1
            self.progress.total -= 1  # not ours to run: the bar still ends at 100%
            self._report(force=True)
            return None
        self.result.run_ids.append(recorder.run_id)
        self._live[recorder.run_id] = 0
        self.progress.in_flight += 1
        self.progress.most_in_flight = max(self.progress.most_in_flight, self.progress.in_flight)
        return recorder

    def _record(self, recorder: Any, event: Any) -> Any:
        """Store one event; the RunFinished event when it is the last."""
        from mstui.core.loop import RoundFinished, RunFinished, TokenStreamed

        if isinstance(event, TokenStreamed):  # nothing to store: count it for the live rate
            self._live[recorder.run_id] += 1
            self.progress.live_tokens += 1
            self._report()
            return None
        recorder.handle(event)
        if isinstance(event, RoundFinished):
            self.progress.live_tokens -= self._live[recorder.run_id]
            self._live[recorder.run_id] = 0
            self.progress.completion_tokens += event.record.completion_tokens
            self._report(force=True)
        return event if isinstance(event, RunFinished) else None

    def _report(self, force: bool = False) -> None:
        """Call on_progress now (force), or at most every _PROGRESS_EVERY seconds."""
        now = time.perf_counter()
        if self.on_progress and (force or now - self._reported >= _PROGRESS_EVERY):
            self._reported = now
            self.on_progress(self.progress)

    def _finish(self, problem: Problem, recorder: Any, finished: Any, alone: bool) -> None:
        """Account for a problem that left the flight; `alone`: it was cancelled by itself."""
        self.progress.in_flight -= 1
        self.progress.live_tokens -= self._live.pop(recorder.run_id, 0)
        if finished is None:  # the loop always ends with RunFinished; stay safe
            self.store.finish_run(recorder.run_id, "interrupted", "the run ended without finishing")
            return
        if finished.reason == "cancelled":
            if alone:
                self.result.cancelled_questions.append(problem.id)
            else:
                self.result.cancelled = True
                self.result.cancelled_runs += 1
            self._report(force=True)
            return
        if finished.reason == "error":
            self.result.errors.append(f"{problem.id}: {finished.error}")
            self._check_server(finished.error)
        self.progress.done += 1
        # A failed run's earlier rounds may carry an answer, but it did not finish: it is not
        # part of the sweep's accuracy.
        if finished.reason != "error" and finished.final_correct is not None:
            self.progress.scored += 1
            self.progress.correct += int(finished.final_correct)
        self._report(force=True)

    def _check_server(self, error: str | None) -> None:
        """After a failed run: if the server no longer answers, start no more questions (they
        would fail the same way); the ones in flight end on their own."""
        alive = getattr(self.run.backend, "alive", None)
        if self.result.server_gone is None and alive is not None and not alive():
            self.result.server_gone = error or "the server stopped answering"

    def _stopping(self) -> bool:
        return self.cancel.is_set() or self.result.server_gone is not None

    def sequential(self, todo: Sequence[Problem], *, pin: bool = False) -> None:
        """One problem after another on this thread (the in-process model's thread)."""
        for problem in todo:
            if self.cancel.is_set():
                self.result.cancelled = True
                return
            if self._stopping():
                return
            recorder = self._start(problem)
            if recorder is None:
                continue
            own = self.control._open(problem.id)
            finished = None
            try:
                for event in self._events(problem, own, 0 if pin else None):
                    finished = self._record(recorder, event) or finished
            except BaseException:
                self.store.finish_run(recorder.run_id, "interrupted",
                                      "the sweep was stopped mid-run")
                raise
            finally:
                alone = self.control._close(problem.id)
            self._finish(problem, recorder, finished, alone)
            if self.result.cancelled:
                return

    def parallel(self, todo: Sequence[Problem], concurrency: int, *, pin: bool = False) -> None:
        """`concurrency` problems in flight on worker threads, which only generate; their events
        come back through a queue to this thread, which writes them in order per run. With
        `pin`, each problem in flight holds one llama-server slot for all its rounds."""
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        pending = iter(todo)
        in_flight: dict[str, tuple[Problem, Any, Any, int]] = {}
        free_slots = list(range(concurrency - 1, -1, -1))  # popped from the end: 0 first

        def work(problem: Problem, cancel: threading.Event, slot: int | None) -> None:
            try:
                for event in self._events(problem, cancel, slot):
                    events.put((problem.id, event))
            except BaseException as exc:  # reported on the writer thread
                events.put((problem.id, exc))
            finally:
                events.put((problem.id, _DONE))

        def launch(pool: ThreadPoolExecutor) -> None:
            for problem in pending:  # the next problem no other sweep has claimed
                if self._stopping():
                    return
                recorder = self._start(problem)
                if recorder is None:
                    continue
                slot = free_slots.pop()
                in_flight[problem.id] = (problem, recorder, None, slot)
                pool.submit(work, problem, self.control._open(problem.id), slot if pin else None)
                return

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sweep") as pool:
            try:
                for _ in range(concurrency):
                    launch(pool)
                while in_flight:
                    pid, item = events.get()
                    problem, recorder, finished, slot = in_flight[pid]
                    if item is _DONE:
                        del in_flight[pid]
                        free_slots.append(slot)
                        alone = self.control._close(pid)
                        self._finish(problem, recorder, finished, alone)
                        launch(pool)
                    elif isinstance(item, BaseException):
                        self.result.errors.append(f"{pid}: {type(item).__name__}: {item}")
                    else:
                        finished = self._record(recorder, item) or finished
                        in_flight[pid] = (problem, recorder, finished, slot)
            except BaseException:
                self.cancel.set()  # let the workers stop at their next token
                for _, recorder, _, _ in in_flight.values():
                    self.store.finish_run(recorder.run_id, "interrupted",
                                          "the sweep was stopped mid-run")
                raise
        if self.cancel.is_set():
            self.result.cancelled = True


def cmd_sweep(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Load the set and the model, sweep with a progress bar; exit 130 when stopped by Ctrl-C."""
    out = out or sys.stdout
    from mstui.cli.common import install_sigint
    from mstui.cli.parser import config_from_args
    from mstui.cli.run_cmd import open_store
    from mstui.core.problems import load_problem_set

    config = config_from_args(args)
    err = sys.stderr
    if args.concurrency > 1 and config.backend == "llama":
        print(f"mstui: note: --concurrency {args.concurrency} ignored: the in-process llama.cpp "
              "model answers one question at a time (use --backend openai to fan out)", file=err)
    problems, warnings = load_problem_set(args.problem_set, args.limit, args.problem_seed,
                                          on_error=args.on_bad_line)
    for w in warnings:
        print(f"mstui: warning: {w}", file=err)
    name = problem_set_name(args.problem_set)
    if not problems:
        raise ValueError(f"problem set {args.problem_set!r} is empty; nothing to sweep")
    store = open_store(args.db)
    cancel = threading.Event()
    previous = install_sigint(cancel, "stopping after cancelling the run in flight")
    try:
        result = _sweep_with_bar(config, problems, store, name, cancel, err, args.concurrency)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        store.close()
    ran = result.completed
    acc = _accuracy_text(result)
    elsewhere = (f" · {result.claimed_elsewhere} run by another sweep on this file"
                 if result.claimed_elsewhere else "")
    print(f"sweep {result.sweep_id}: {name} · {ran} run(s) this time, {result.skipped} already "
          f"done earlier{elsewhere} · {acc} · {result.completion_tokens} tokens generated · "
          f"stored in {store.path}", file=out)
    if result.server_gone is not None:
        failed = len(result.errors)
        print(f"mstui: error: the server stopped answering mid-sweep ({result.server_gone}); "
              f"{ran - failed} run(s) finished and kept, {failed} stored as failed: start it "
              "again and run the same command to resume", file=err)
        return 1
    for e in result.errors[:5]:
        print(f"mstui: warning: run failed: {e}", file=err)
    if result.cancelled_questions:
        print(f"mstui: {len(result.cancelled_questions)} question(s) cancelled one by one "
              f"({', '.join(result.cancelled_questions[:5])}); run the same command again to "
              "redo them", file=err)
    if result.cancelled:
        n = result.cancelled_runs
        print(f"mstui: sweep stopped; {n} run(s) in flight stored as cancelled. Run the same "
              "command again to resume.", file=err)
        return 130
    if result.errors:
        failed = len(result.errors)
        print(f"mstui: error: {failed} run(s) failed, {max(ran - failed, 0)} finished, "
              f"{result.skipped} skipped as done earlier; run the same command again to retry "
              "the failed ones", file=err)
        return 1
    return 0


def _accuracy_text(result: SweepResult) -> str:
    """The summary's word on accuracy: right/scored over the runs that finished, else why
    there is none."""
    if result.scored:
        return f"{result.correct}/{result.scored} correct"
    if result.completed == 0:
        left = result.total - result.skipped
        return "nothing left to run" if left <= 0 else f"{left} question(s) not run yet"
    if len(result.errors) >= result.completed:
        return "none finished"
    return "no gold answers"


def _sweep_with_bar(config: RunConfig, problems: Sequence[Problem], store: Store, name: str,
                    cancel: threading.Event, err: TextIO, concurrency: int) -> SweepResult:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=err)
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[flight]} in flight"),
                   TextColumn("acc {task.fields[acc]}"), TextColumn("{task.fields[tps]} tok/s"),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   console=console, transient=False, disable=not console.is_terminal)
    task = bar.add_task(name, total=None, acc="—", tps="—", flight=0)

    def start(p: SweepProgress) -> None:
        bar.update(task, total=p.total)
        skipped = len(problems) - p.total
        if skipped:
            console.print(f"resuming: {skipped} of {len(problems)} problems already finished")

    def step(p: SweepProgress) -> None:
        acc = f"{p.accuracy:.0%}" if p.accuracy is not None else "—"
        bar.update(task, total=p.total, completed=p.done, acc=acc,
                   tps=f"{p.tokens_per_second:.0f}", flight=p.in_flight)

    def note(text: str) -> None:
        # Through the console, so the line lands above a live bar instead of through it.
        console.print(f"mstui: note: {text}", markup=False, highlight=False, soft_wrap=True)

    with bar:
        return run_sweep(config, problems, store, problem_set=name, cancel=cancel,
                         concurrency=concurrency, on_start=start, on_progress=step,
                         on_note=note)
