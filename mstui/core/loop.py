"""The refinement loop: ask, re-ask, decide, as a generator of typed events for the UI and CLI."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from mstui.core.answers import extract_answer, span_logprob
from mstui.core.backend import (
    Backend,
    BackendError,
    ChatMessage,
    GenSettings,
    GenStats,
    Piece,
    PromptTooLong,
)
from mstui.core.grading import Grade, grade_answer
from mstui.core.prompts import Prompter
from mstui.core.reasoning import (
    THINK_TAGS,
    ThinkingStream,
    ThinkTags,
    prompt_opens_thinking,
    split_reasoning,
)
from mstui.core.types import Decision, Observation, Policy, RoundRecord


@dataclass(frozen=True)
class RoundStarted:
    """A round's prompt is about to be sent.

    `starts_in_thinking` says the prompt left a thinking block open (R1's template, a `wait`
    continuation), so the stream starts as thinking; `tags` are the model's think tags.
    """

    index: int
    prompt: str
    tags: ThinkTags | None = None
    starts_in_thinking: bool = False


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
    answer: str | None,
    earlier: Sequence[str | None],
    logprob: float | None,
    *,
    truncated: bool = False,
    thinking_tokens: int | None = None,
) -> Observation:
    """The label-free features of a round, given the answers of the rounds before it."""
    if not earlier:
        return Observation(found=answer is not None, changed=None, agreement=None,
                           logprob=logprob, truncated=truncated, thinking_tokens=thinking_tokens)
    same = sum(1 for prev in earlier if prev is not None and prev == answer)
    return Observation(
        found=answer is not None,
        changed=answer != earlier[-1],
        agreement=same / len(earlier),
        logprob=logprob,
        truncated=truncated,
        thinking_tokens=thinking_tokens,
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
    *,
    tags: ThinkTags | None = None,
) -> RoundRecord:
    """Turn a generation into a RoundRecord: split off the thinking, extract the answer from the
    final part only, compare with gold, observe.

    A round that ends inside its thinking (cut by the token budget, cancelled, or a server that
    never sent a final part) is `truncated`: it has no answer, whatever drafts the thinking holds.
    A round that did not arrive as a finished completion (cancelled, or failed) keeps its text but
    is not scored: no answer, correctness unknown.
    """
    response = "".join(p.text for p in pieces)
    split = split_reasoning(response, tags, starts_in_thinking=prompt_opens_thinking(prompt, tags))
    truncated = not split.closed
    unfinished = stats.finish_reason in ("cancelled", "error")
    if truncated or unfinished:
        ext = extract_answer("")
    else:
        found = extract_answer(response[split.final_start:])
        # Offsets into the whole response, so the UI highlights and logprobs line up.
        ext = replace(found, start=found.start + split.final_start,
                      end=found.end + split.final_start) if found.start >= 0 else found
    logprob = None
    if ext.answer is not None and any(p.logprob is not None for p in pieces):
        logprob = span_logprob([(p.text, p.logprob) for p in pieces], ext.start, ext.end)
    # Pieces that start inside the thinking; an empty thinking (Qwen3's no-think, a server that
    # sent "<think></think>answer" in one chunk) has none, whatever chunk carried its tags.
    thinking_tokens = (_pieces_before(pieces, split.thinking_end)
                       if split.has_thinking and split.thinking else 0)
    # The extracted text as written, not its normalized form: the grader normalizes once. A
    # cancelled or failed round is never a label (it has no answer), so it is never graded and
    # a cancel never waits on Math-Verify.
    if gold is None:
        grade = Grade(None, "none")
    elif unfinished:
        grade = Grade(None, "none", f"not graded: the round was {stats.finish_reason}")
    else:
        try:
            grade = grade_answer(ext.text, gold)
        except Exception as exc:  # a grading failure must not cost the round: it is ungraded
            grade = Grade(None, "error", f"grading failed ({type(exc).__name__}: {exc})")
    return RoundRecord(
        index=index,
        prompt=prompt,
        response=response,
        thinking=split.thinking,
        final=split.final if split.has_thinking else None,
        truncated=truncated,
        thinking_tokens=thinking_tokens,
        answer=ext.answer,
        answer_text=ext.text,
        extraction_rule=ext.rule,
        correct=grade.correct,
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        cached_tokens=stats.cached_tokens,
        cached_source=stats.cached_source,
        finish_reason=stats.finish_reason,
        prompt_seconds=stats.prompt_seconds,
        gen_seconds=stats.gen_seconds,
        observation=observe(ext.answer, [r.answer for r in earlier], logprob,
                            truncated=truncated,
                            thinking_tokens=thinking_tokens if split.has_thinking else None),
        error=stats.error,
        judge=None if gold is None else grade.judge,
        grade_error=grade.note or None,
    )


def _pieces_before(pieces: Sequence[Piece], end: int) -> int:
    """How many generated pieces (tokens) start before character `end` of the joined text."""
    count, offset = 0, 0
    for p in pieces:
        if offset >= end:
            break
        count += not p.synthetic
        offset += len(p.text)
    return count


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
    thinking_budget: int | None = None,
) -> Iterator[Event]:
    """Run rounds until the policy (or the user, through `review`) stops, the cap, or a cancel.

    `review` sees each decision before it takes effect and may return it with `override` set;
    it may block (the UI's step mode waits there for a key). `thinking_budget` caps each round's
    thinking tokens: past it the thinking is closed with the format's cue and the model gives its
    final answer (s1's budget forcing). The generator never raises for a failed round: the failure
    is recorded on the round and the run ends with reason "error".
    """
    if max_rounds < 1:
        raise ValueError("max_rounds must be at least 1")
    if thinking_budget is not None and thinking_budget < 1:
        raise ValueError("the thinking budget must be at least 1 token")
    cancel = cancel or threading.Event()
    history: list[RoundRecord] = []
    stop = tuple(dict.fromkeys(settings.stop + prompter.stop))
    tags = prompter.tags
    while True:
        index = len(history)
        prompt = prompter.prompt(question, history)
        messages = prompter.messages(question, history)
        yield RoundStarted(index, prompt, tags, prompt_opens_thinking(prompt, tags))
        round_settings = replace(settings, seed=round_seed(settings.seed, question, index),
                                 stop=stop)
        pieces: list[Piece] = []
        stats: GenStats | None = None
        try:
            for item in _stream_round(backend, prompt, messages, round_settings, cancel,
                                      tags, thinking_budget, prompter.budget_cue):
                if isinstance(item, Piece):
                    pieces.append(item)
                    yield TokenStreamed(index, item.text)
                else:
                    stats = item
        except PromptTooLong as exc:
            stats = _failed(0, str(exc))
        except BackendError as exc:
            stats = _failed(sum(not p.synthetic for p in pieces), str(exc))
        except Exception as exc:  # a backend failure ends the run, it must not kill the caller
            stats = _failed(len(pieces), f"{type(exc).__name__}: {exc}")
        if stats is None:
            stats = _failed(len(pieces), "backend ended without stats")
        record = score_round(index, prompt, pieces, stats, history, gold, tags=tags)
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


class _BudgetCancel(threading.Event):
    """Set by the loop when the thinking budget is spent; also reads as set on a user cancel."""

    def __init__(self, parent: threading.Event) -> None:
        super().__init__()
        self.parent = parent

    def is_set(self) -> bool:
        return super().is_set() or self.parent.is_set()


def _stream_round(
    backend: Backend,
    prompt: str,
    messages: Sequence[ChatMessage] | None,
    settings: GenSettings,
    cancel: threading.Event,
    tags: ThinkTags | None,
    budget: int | None,
    budget_cue: str,
) -> Iterator[Piece | GenStats]:
    """One round's pieces then its GenStats, with reasoning deltas folded between think tags
    (so the raw text is self-describing) and the thinking budget enforced."""
    pair = tags or THINK_TAGS[0]
    opened = prompt_opens_thinking(prompt, tags)
    watch = ThinkingStream(pair, starts_in_thinking=opened)
    in_field = False  # inside text the server streams as a separate reasoning field
    spent = _BudgetCancel(cancel)
    thinking = 0
    text: list[str] = []
    first: GenStats | None = None
    for item in backend.stream(prompt, settings, spent if budget else cancel, messages):
        if isinstance(item, GenStats):
            first = item
            break
        out: list[Piece] = []
        if item.reasoning and not in_field:
            in_field = True
            if watch.kind != "thinking":
                out.append(Piece(pair.open, synthetic=True))
        elif not item.reasoning and in_field:
            in_field = False
            out.append(Piece(pair.close, synthetic=True))
        out.append(replace(item, reasoning=False))
        for piece in out:
            watch.feed(piece.text)
            text.append(piece.text)
            yield piece
        if watch.kind == "thinking" and not item.synthetic:
            thinking += 1
            if budget is not None and thinking >= budget:
                spent.set()  # the backend stops at its next token
    if first is None:
        return
    forced = bool(budget) and threading.Event.is_set(spent) and not cancel.is_set()
    if not forced:
        yield first
        return
    if watch.kind != "thinking":  # the thinking closed on the very token the budget ran out
        yield replace(first, finish_reason="length")
        return
    # Budget forcing: close the thinking with the cue and let the model write its final part.
    cue = budget_cue.format(close=pair.close)
    yield Piece(cue, synthetic=True)
    left = settings.max_tokens - first.completion_tokens
    if left < 1:
        yield replace(first, finish_reason="length")
        return
    second: GenStats | None = None
    for item in backend.stream(prompt + "".join(text) + cue, replace(settings, max_tokens=left),
                               cancel, None):
        if isinstance(item, GenStats):
            second = item
        else:
            yield replace(item, reasoning=False)
    if second is None:
        return
    yield GenStats(
        prompt_tokens=first.prompt_tokens + second.prompt_tokens,
        completion_tokens=first.completion_tokens + second.completion_tokens,
        cached_tokens=first.cached_tokens + second.cached_tokens,
        finish_reason=second.finish_reason,
        prompt_seconds=first.prompt_seconds,
        gen_seconds=first.gen_seconds + second.prompt_seconds + second.gen_seconds,
        error=second.error,
        counted_locally=first.counted_locally or second.counted_locally,
        # The sum is only known if both parts are; it is only reported if both were.
        cached_source=None if None in (first.cached_source, second.cached_source)
        else first.cached_source if first.cached_source == second.cached_source
        else "estimated",
    )


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
