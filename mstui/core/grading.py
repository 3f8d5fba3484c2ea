"""Grading a round against gold: mstui's exact match first, then Math-Verify, bounded in time.

mstui keeps what is its own: which text is the answer (`answers.extract_answer`, shown to the user
and used for log-probabilities) and a fast exact comparison of normalized forms. Whether two
different-looking answers are *equivalent* is Math-Verify's call (huggingface/Math-Verify, the
grader of open-r1 and lighteval): `parse` both sides, then `verify(gold, answer)`.

Math-Verify's own timeouts use `signal.alarm`, which only works on a main thread, while mstui
grades on worker threads (the TUI's model thread, sweep workers); and some inputs
(`9^{9^{9^{9}}}`) spend minutes inside C code that no signal interrupts. So Math-Verify runs in a
small pool of separate processes, each judgement with a hard wall-clock limit: a worker that
overruns is killed and replaced, and the round is stored as ungraded (`correct=None`, judge
"timeout"), never as wrong. Workers are fresh interpreters (`python -m mstui.core.grading`),
never forks of this process, which may hold llama.cpp's threads, and they do not re-import the
caller's main module as multiprocessing's spawn would. `math_verify` is imported in the workers
only: importing this module costs the caller nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mstui.core.answers import normalize_answer

# The process machinery (subprocess, multiprocessing's pipes) loads when a first worker starts:
# importing the loop stays cheap for a caller that never grades against a non-exact gold.
if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = [
    "DEFAULT_TIMEOUT",
    "JUDGES",
    "MAX_TIMEOUT",
    "Grade",
    "Grader",
    "check_timeout",
    "default_grader",
    "env_timeout",
    "grade_answer",
    "mathverify_input",
]

Judge = Literal["exact", "math-verify", "none", "timeout", "error"]
# exact: mstui's own comparison decided (equal normalized forms, or two different integers, or
# exact match only); math-verify: Math-Verify decided; none: no answer
# was extracted, so the round is wrong without asking anyone; timeout / error: ungraded.
JUDGES: tuple[Judge, ...] = ("exact", "math-verify", "none", "timeout", "error")

# The hard limit on one Math-Verify judgement (both parses and the comparison), seconds. Real
# answers take milliseconds, a few hundred for long words or sets on a machine busy with
# llama.cpp; the limit only bounds pathological ones. MSTUI_GRADE_TIMEOUT overrides it.
DEFAULT_TIMEOUT = 5.0
# Starting a worker (a fresh interpreter importing sympy and Math-Verify: one or two seconds)
# does not count against a judgement's limit; this bounds it separately.
START_TIMEOUT = 60.0


def _inner_timeout(hard: float) -> int:
    """Math-Verify's own limit inside a worker, per step (each parse, the comparison), in whole
    seconds (signal.alarm): 2 s under the default hard limit, at least 1 s. Most slow inputs
    then end with a clean "timeout", and only computations that no signal interrupts get the
    worker killed."""
    return max(1, int(hard / 2.5))


@dataclass(frozen=True)
class Grade:
    """The verdict on one answer: right (True), wrong (False) or ungraded (None), and who said so.

    `note` says why when it is not obvious: the reason a round is ungraded, or which side
    Math-Verify could not read.
    """

    correct: bool | None
    judge: Judge
    note: str = ""


MAX_TIMEOUT = 3600.0  # an hour per answer: beyond it a stuck grader only looks like a hang
TIMEOUT_ENV = "MSTUI_GRADE_TIMEOUT"


def check_timeout(value: float, what: str = "the grading time limit") -> float:
    """A time limit in seconds, checked: finite, > 0 and at most MAX_TIMEOUT (pipes and alarms
    overflow on huge values), else a one-line ValueError saying the valid range."""
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise ValueError(f"{what} must be a number of seconds in (0, {MAX_TIMEOUT:g}], got "
                         f"{value!r}")
    return value


def env_timeout() -> float:
    """The grading time limit: MSTUI_GRADE_TIMEOUT when set, else DEFAULT_TIMEOUT. A value that
    is not a number in (0, MAX_TIMEOUT] is a ValueError naming the variable (the CLI checks it
    at start), never a silent fallback or a crash mid-run."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    problem = ValueError(f"{TIMEOUT_ENV} must be a number of seconds in (0, {MAX_TIMEOUT:g}], "
                         f"got {raw.strip()!r}; unset it for the default {DEFAULT_TIMEOUT:g} s")
    try:
        value = float(raw)
    except ValueError:
        raise problem from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise problem
    return value


def mathverify_input(text: str) -> str:
    """What Math-Verify is given for one side: an exact number when mstui reads one, else LaTeX.

    mstui's number reading (thousands separators, currency, units, `{,}`) is exact and its own;
    Math-Verify then compares numbers with its tolerance. Anything else goes as LaTeX in `$…$`,
    which Math-Verify's LaTeX extraction needs to see it as one expression. A percent sign keeps
    the raw text, so Math-Verify's own percentage rule (28% = 0.28) applies.
    """
    raw = text.strip()
    if "%" not in raw and "percent" not in raw.lower():
        norm = normalize_answer(raw)
        if norm is not None and _is_number(norm):
            return norm
    if any(mark in raw for mark in ("$", "\\(", "\\[")):
        return raw
    return f"${raw}$"


def _integer(text: str) -> int | None:
    """The integer an answer is, as Math-Verify would be given it (`mathverify_input`), or None
    for anything else (decimals, fractions, percentages, expressions)."""
    value = mathverify_input(text)
    body = value.removeprefix("-")
    return int(value) if body.isdigit() and body.isascii() else None


def _different_integers(pred: str, gold: str) -> bool:
    """Both sides are integers, and different ones: wrong, without asking Math-Verify."""
    a, b = _integer(pred), _integer(gold)
    return a is not None and b is not None and a != b


def _is_number(norm: str) -> bool:
    body = norm.removeprefix("-")
    num, _, den = body.partition("/")
    return num.replace(".", "", 1).isdigit() and (not den or den.isdigit())


# ---- the worker process --------------------------------------------------------------------


def _serve(inbox: Connection, outbox: Connection) -> None:
    """A grading process: import Math-Verify, say so, then judge (answer, gold) pairs until EOF."""
    import signal

    # Ctrl-C in the terminal reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except Exception as exc:  # not installed, or broken: the parent falls back to exact only
        outbox.send(("ready", None, f"{type(exc).__name__}: {exc}"))
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        mv_version = version("math-verify")
    except PackageNotFoundError:
        mv_version = "unknown"
    outbox.send(("ready", mv_version, None))
    # Boxed first: a side given as `\\boxed{…}` is read from its box.
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    while True:
        try:
            pred, gold, inner = inbox.recv()
            outbox.send(_judge(parse, verify, configs, pred, gold, inner))
        except (EOFError, OSError):  # the parent closed the pipe or died
            return


def _serve_stdio() -> None:
    """Entry point of `python -m mstui.core.grading`: the channel is the process's stdin/stdout.

    Library output must never land in the channel, so stdout is moved aside first and fd 1 then
    points at stderr.
    """
    from multiprocessing.connection import Connection

    outbox = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    inbox = Connection(os.dup(0), writable=False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    _serve(inbox, outbox)


def _serve_pipe(conn: Connection) -> None:
    """Entry point under multiprocessing (platforms without pipe file descriptors: Windows)."""
    _serve(conn, conn)


def _is_timeout(exc: BaseException) -> bool:
    """Math-Verify's TimeoutException (a BaseException, so generic handlers let it through)."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    return type(exc).__name__ == "TimeoutException"


def _judge(parse: Any, verify: Any, configs: list[Any], pred: str, gold: str,
           inner: int) -> tuple[bool | None, str, str]:
    """(correct, judge, note) for one pair, inside the worker."""
    parsed = []
    for side in (gold, pred):
        try:
            parsed.append(parse(mathverify_input(side), configs, parsing_timeout=inner,
                                raise_on_error=True))
        except BaseException as exc:
            if _is_timeout(exc):
                return None, "timeout", "Math-Verify timed out parsing"
            parsed.append([])
    gold_parsed, pred_parsed = parsed
    if not gold_parsed:
        # Nothing to compare with: the exact comparison, which already failed, stands.
        return False, "exact", "Math-Verify could not read the gold; exact match only"
    if not pred_parsed:
        return False, "math-verify", "Math-Verify could not read the answer"
    try:
        ok = verify(gold_parsed, pred_parsed, timeout_seconds=inner,
                    raise_on_error=True)
    except BaseException as exc:
        if _is_timeout(exc):
            return None, "timeout", "Math-Verify timed out comparing"
        return False, "math-verify", f"Math-Verify failed comparing ({type(exc).__name__})"
    return bool(ok), "math-verify", ""


# ---- the pool ------------------------------------------------------------------------------

# The directory holding the `mstui` package, put first on the worker's path so it runs this very
# code (a worktree, an editable install) and not another installed copy.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(eq=False)  # compared and hashed by identity: kept in a set
class _Worker:
    """One grading process and its two ends of the channel (one object where it is duplex)."""

    process: Any  # subprocess.Popen, or multiprocessing's Process on Windows
    inbox: Connection  # answers come from here
    outbox: Connection  # jobs go here

    def stop(self) -> None:
        """Kill and reap (a stuck worker cannot be asked nicely)."""
        import subprocess

        for conn in {id(self.inbox): self.inbox, id(self.outbox): self.outbox}.values():
            with contextlib.suppress(OSError):
                conn.close()
        if isinstance(self.process, subprocess.Popen):
            if self.process.poll() is None:
                self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        else:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5)


def _launch() -> _Worker:
    """Start a grading process (it imports Math-Verify while the caller waits for "ready")."""
    import subprocess
    from multiprocessing.connection import Connection

    if os.name != "posix":  # no fd-backed Connection on Windows: multiprocessing's own pipe
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        spawned = ctx.Process(target=_serve_pipe, args=(child,), daemon=True,
                              name="mstui-grader")
        spawned.start()
        child.close()
        return _Worker(spawned, parent, parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    # posix_spawn/vfork + exec: safe from a process with llama.cpp's threads, unlike fork().
    # A new session keeps the terminal's Ctrl-C away from it.
    process = subprocess.Popen(
        [sys.executable, "-m", "mstui.core.grading"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None
    inbox = Connection(os.dup(process.stdout.fileno()), writable=False)
    outbox = Connection(os.dup(process.stdin.fileno()), readable=False)
    process.stdout.close()
    process.stdin.close()
    return _Worker(process, inbox, outbox)


class Grader:
    """Grades answers: exact match in this process, else Math-Verify in a bounded worker pool.

    Thread-safe: any thread may call `grade`; at most `workers` Math-Verify judgements run at
    once, the rest wait for a free worker. Workers are started on first need (or by `warm`) and
    kept for later rounds.
    """

    def __init__(self, *, workers: int = 2, timeout: float | None = None,
                 start_timeout: float = START_TIMEOUT) -> None:
        if workers < 1:
            raise ValueError("a grader needs at least one worker")
        self.workers = workers
        self.timeout = env_timeout() if timeout is None else check_timeout(timeout)
        self.start_timeout = start_timeout
        self.mathverify_version: str | None = None  # known once a worker has started
        self.unavailable: str | None = None  # why Math-Verify cannot be used, once known
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()  # idle and busy, so close() can stop them all
        self._live = 0  # workers started or starting
        self._cond = threading.Condition()
        self._closed = False

    # ---- public ----------------------------------------------------------------------------

    def grade(self, pred: str | None, gold: str | None, *, exact_only: bool = False) -> Grade:
        """Grade the extracted answer text `pred` against the gold as given.

        No gold: ungraded, judge "none". No answer: wrong, judge "none". Equal normalized forms:
        right, judge "exact"; two different integers: wrong, judge "exact". Otherwise Math-Verify
        decides, within `timeout` seconds, unless
        `exact_only` (then the exact comparison's "wrong" stands).
        """
        if gold is None:
            return Grade(None, "none", "no gold answer")
        gold_norm = normalize_answer(gold)
        if gold_norm is None:
            return Grade(None, "none", "the gold answer is empty")
        pred_norm = normalize_answer(pred)
        if pred is None or pred_norm is None:
            return Grade(False, "none", "no answer found")
        if pred_norm == gold_norm:
            return Grade(True, "exact")
        if exact_only:
            return Grade(False, "exact", "exact match only")
        if _different_integers(pred, gold):
            # Math-Verify would say the same (no tolerance makes two integers equal); asking it
            # costs a worker round trip while, at one question in flight, the model waits.
            return Grade(False, "exact", "different integers")
        return self.judge(pred, gold)

    def judge(self, pred: str, gold: str) -> Grade:
        """Math-Verify's verdict on `pred` against `gold`, within the hard time limit."""
        if self.unavailable is not None:
            return Grade(False, "exact", f"Math-Verify unavailable ({self.unavailable}); "
                                         "exact match only")
        worker = self._acquire()
        if isinstance(worker, Grade):
            return worker
        try:
            worker.outbox.send((pred, gold, _inner_timeout(self.timeout)))
            if not worker.inbox.poll(self.timeout):
                self._discard(worker)
                return Grade(None, "timeout",
                             f"Math-Verify took longer than {self.timeout:g} s; left ungraded")
            correct, judge, note = worker.inbox.recv()
        except (EOFError, OSError) as exc:
            self._discard(worker)
            return Grade(None, "error", f"the grading process died ({type(exc).__name__})")
        except Exception as exc:  # never lose the round over grading: it is left ungraded
            self._discard(worker)
            return Grade(None, "error", f"grading failed ({type(exc).__name__}: {exc})")
        self._release(worker)
        return Grade(correct, judge, note)

    def warm(self) -> None:
        """Start a worker in the background, so the first judgement does not wait for it."""
        def start() -> None:
            worker = self._acquire()
            if isinstance(worker, _Worker):
                self._release(worker)

        with self._cond:
            if self._idle or self._live or self._closed or self.unavailable:
                return
        threading.Thread(target=start, name="mstui-grader-warm", daemon=True).start()

    def close(self) -> None:
        """Stop every worker. A busy one is killed too: left alone, a computation that no signal
        interrupts would outlive mstui (its judgement then ends as "error")."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = self._all.difference(idle)
            self._all.clear()
            self._live -= len(idle)
            self._cond.notify_all()
        for w in busy:
            with contextlib.suppress(OSError):
                w.process.kill()
        for w in idle:
            w.stop()

    # ---- internals -------------------------------------------------------------------------

    def _acquire(self) -> _Worker | Grade:
        """An idle worker, a new one when fewer than `workers` exist, else wait for one."""
        deadline = time.monotonic() + self.start_timeout
        with self._cond:
            while True:
                if self._closed:
                    return Grade(None, "error", "the grader was closed")
                if self._idle:
                    return self._idle.pop()
                if self._live < self.workers:
                    self._live += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    return Grade(None, "timeout", "no grading process was free in "
                                                  f"{self.start_timeout:g} s; left ungraded")
        try:
            return self._start()
        except Exception as exc:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            if isinstance(exc, _Unavailable):
                return Grade(False, "exact", f"Math-Verify unavailable ({exc}); exact match only")
            return Grade(None, "error", f"could not start a grading process: {exc}")

    def _start(self) -> _Worker:
        worker = _launch()
        try:
            if not worker.inbox.poll(self.start_timeout):
                raise RuntimeError(f"it did not start within {self.start_timeout:g} s")
            _, mv_version, error = worker.inbox.recv()
        except BaseException:
            worker.stop()
            raise
        if error is not None:
            worker.stop()
            self.unavailable = error
            raise _Unavailable(error)
        self.mathverify_version = mv_version
        with self._cond:
            self._all.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._live -= 1
            self._all.discard(worker)
        worker.stop()

    def _discard(self, worker: _Worker) -> None:
        """Kill a stuck or broken worker now; reap it in the background, so the verdict is not
        held up by the process exiting (freeing a huge computation's memory can take a while)."""
        with contextlib.suppress(OSError):
            worker.process.kill()
        threading.Thread(target=worker.stop, name="mstui-grader-reap", daemon=True).start()
        with self._cond:
            self._live -= 1
            self._all.discard(worker)
            self._cond.notify()


class _Unavailable(RuntimeError):
    """Math-Verify cannot be imported in a worker."""


_default: Grader | None = None
_default_lock = threading.Lock()


def default_grader() -> Grader:
    """The process-wide grader, created on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Grader()
            atexit.register(_default.close)
        return _default


def grade_answer(pred: str | None, gold: str | None, *, exact_only: bool = False,
                 grader: Grader | None = None) -> Grade:
    """Grade extracted answer text against gold with `grader` (default: the shared one)."""
    return (grader or default_grader()).grade(pred, gold, exact_only=exact_only)


if __name__ == "__main__":
    _serve_stdio()
