"""The refinement loop: ask, re-ask, decide, as a generator of typed events for the UI and CLI."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from mstui.core.answers import extract_answer, span_logprob
from mstui.core.backend import Backend, GenSettings, GenStats, Piece, PromptTooLong
from mstui.core.grading import Grade, grade_answer
from mstui.core.prompts import Prompter
from mstui.core.types import Decision, Observation, Policy, RoundRecord


@dataclass(frozen=True)
class RoundStarted:
    """A round's prompt is about to be sent."""

    index: int
    prompt: str


@dataclass(frozen=True)
class TokenStreamed:
    """One piece of the round in flight."""

    index: int
    text: str


@dataclass(frozen=True)
class RoundFinished:
    """A round ended (normally, by cancel, or by error) and was scored."""

    record: RoundRecord


@dataclass(frozen=True)
class DecisionMade:
    """The policy's decision after a round, after any user review (step-through override)."""

    decision: Decision


@dataclass(frozen=True)
class RunFinished:
    """The run is over: `reason` is "policy", "cancelled" or "error"."""

    rounds: tuple[RoundRecord, ...]
    reason: str
    final_answer: str | None
    final_correct: bool | None
    error: str | None = None


Event = RoundStarted | TokenStreamed | RoundFinished | DecisionMade | RunFinished
Reviewer = Callable[[Decision], Decision]


def observe(
    answer: str | None, earlier: Sequence[str | None], logprob: float | None
) -> Observation:
    """The label-free features of a round, given the answers of the rounds before it."""
    if not earlier:
        return Observation(found=answer is not None, changed=None, agreement=None, logprob=logprob)
    same = sum(1 for prev in earlier if prev is not None and prev == answer)
    return Observation(
        found=answer is not None,
        changed=answer != earlier[-1],
        agreement=same / len(earlier),
        logprob=logprob,
    )


def round_seed(seed: int, question: str, index: int) -> int:
    """The sampling seed of one round: reproducible, and different for every question.

    Seeding round k with seed + k alone gave every question the same random draws in round k,
    which correlated the rounds across a sweep (one seed made many questions stop at once) and
    showed up as a fake round effect in the fit's time-homogeneity check.
    """
    return zlib.crc32(f"{seed}\x1f{index}\x1f{question}".encode()) & 0x7FFFFFFF


def score_round(
    index: int,
    prompt: str,
    pieces: Sequence[Piece],
    stats: GenStats,
    earlier: Sequence[RoundRecord],
    gold: str | None,
) -> RoundRecord:
    """Turn a generation into a RoundRecord: extract the answer, compare with gold, observe."""
    response = "".join(p.text for p in pieces)
    ext = extract_answer(response)
    logprob = None
    if ext.answer is not None and any(p.logprob is not None for p in pieces):
        logprob = span_logprob([(p.text, p.logprob) for p in pieces], ext.start, ext.end)
    # The extracted text as written, not its normalized form: the grader normalizes once. A
    # cancelled or failed round is never used as a label; it gets the instant exact check only,
    # so a cancel never waits on Math-Verify.
    partial = stats.finish_reason in ("cancelled", "error")
    grade = (Grade(None, "none") if gold is None
             else grade_answer(ext.text, gold, exact_only=partial))
    return RoundRecord(
        index=index,
        prompt=prompt,
        response=response,
        answer=ext.answer,
        answer_text=ext.text,
        extraction_rule=ext.rule,
        correct=grade.correct,
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        cached_tokens=stats.cached_tokens,
        finish_reason=stats.finish_reason,
        prompt_seconds=stats.prompt_seconds,
        gen_seconds=stats.gen_seconds,
        observation=observe(ext.answer, [r.answer for r in earlier], logprob),
        error=stats.error,
        judge=None if gold is None else grade.judge,
        grade_error=grade.note or None,
    )


def run_refinement(
    question: str,
    *,
    backend: Backend,
    prompter: Prompter,
    policy: Policy,
    max_rounds: int,
    settings: GenSettings,
    gold: str | None = None,
    cancel: threading.Event | None = None,
    review: Reviewer | None = None,
) -> Iterator[Event]:
    """Run rounds until the policy (or the user, through `review`) stops, the cap, or a cancel.

    `review` sees each decision before it takes effect and may return it with `override` set;
    it may block (the UI's step mode waits there for a key). The generator never raises for a
    failed round: the failure is recorded on the round and the run ends with reason "error".
    """
    if max_rounds < 1:
        raise ValueError("max_rounds must be at least 1")
    cancel = cancel or threading.Event()
    history: list[RoundRecord] = []
    stop = tuple(dict.fromkeys(settings.stop + prompter.stop))
    while True:
        index = len(history)
        prompt = prompter.prompt(question, history)
        messages = prompter.messages(question, history)
        yield RoundStarted(index, prompt)
        round_settings = replace(settings, seed=round_seed(settings.seed, question, index),
                                 stop=stop)
        pieces: list[Piece] = []
        stats: GenStats | None = None
        try:
            for item in backend.stream(prompt, round_settings, cancel, messages):
                if isinstance(item, Piece):
                    pieces.append(item)
                    yield TokenStreamed(index, item.text)
                else:
                    stats = item
        except PromptTooLong as exc:
            stats = _failed(0, str(exc))
        except Exception as exc:  # a backend failure ends the run, it must not kill the caller
            stats = _failed(len(pieces), f"{type(exc).__name__}: {exc}")
        if stats is None:
            stats = _failed(len(pieces), "backend ended without stats")
        record = score_round(index, prompt, pieces, stats, history, gold)
        yield RoundFinished(record)
        if record.finish_reason in ("cancelled", "error"):
            yield _finish(history, "cancelled" if record.finish_reason == "cancelled" else "error",
                          record.error)
            return
        history.append(record)
        decision = policy.decide(history, max_rounds)
        if review is not None:
            decision = review(decision)
        yield DecisionMade(decision)
        if decision.final_action == "stop" or len(history) >= max_rounds:
            yield _finish(history, "policy", None)
            return
        if cancel.is_set():
            yield _finish(history, "cancelled", None)
            return


def _failed(pieces: int, error: str) -> GenStats:
    """Stats of a round that failed after streaming `pieces` pieces (kept as partial text)."""
    return GenStats(0, pieces, 0, "error", 0.0, 0.0, error=error)


def _finish(history: Sequence[RoundRecord], reason: str, error: str | None) -> RunFinished:
    last = history[-1] if history else None
    return RunFinished(
        rounds=tuple(history),
        reason=reason,
        final_answer=last.answer if last else None,
        final_correct=last.correct if last else None,
        error=error,
    )
