"""Generation speed against the model's own measured rate: a hint when it collapses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mstui.core.types import RoundRecord

# A round this much slower than the model's reference rate is a collapse, not the usual
# round-to-round spread: llama.cpp threads that spin-wait on cores other work holds lose
# 2.5-14x (docs/performance.md, "Threads"), and so, less often, does one thread on a machine
# busy enough, which the hint then says too.
SLOW_FACTOR = 3.0
# Rounds shorter than these are timed too coarsely to judge: a few tokens, or a few
# milliseconds in which one scheduler hiccup triples the time (a scripted or tiny model).
MIN_TOKENS = 8
MIN_SECONDS = 0.1


@dataclass(frozen=True)
class RateSample:
    """One finished round's generation: tokens after the first, and tok/s over them."""

    tokens: int
    rate: float

    @property
    def timed(self) -> bool:
        """Long enough, in tokens and in time, for its rate to mean something."""
        return self.tokens >= MIN_TOKENS and self.rate > 0 and \
            self.tokens / self.rate >= MIN_SECONDS


@dataclass(frozen=True)
class SlowRate:
    """The latest round ran far below the reference rate."""

    rate: float  # tok/s of the latest round
    reference: float  # the model's measured rate it is compared with
    hint: str  # one line for the user, naming --threads


def sample_of(record: RoundRecord) -> RateSample | None:
    """A finished round's generation as a RateSample; None for a cancelled or failed one."""
    if record.finish_reason in ("cancelled", "error"):
        return None
    return RateSample(max(record.completion_tokens - 1, 0), record.tokens_per_second)


def reference_rate(samples: Sequence[RateSample], earlier: float | None = None) -> float | None:
    """The model's measured rate: the best of the rounds long enough to time, and of a best
    rate measured before them (`earlier`); None when there is neither."""
    rates = [s.rate for s in samples if s.timed]
    if earlier is not None and earlier > 0:
        rates.append(earlier)
    return max(rates) if rates else None


def slow_rate(
    samples: Sequence[RateSample],
    earlier: float | None = None,
    *,
    threads: int | None = None,
    factor: float = SLOW_FACTOR,
) -> SlowRate | None:
    """Whether the latest of `samples` (finished rounds, oldest first) ran below 1/`factor` of
    the model's reference rate: the best earlier round, or `earlier` (the best rate measured
    before these samples, e.g. in earlier runs of the same loaded model). `threads` is the
    llama.cpp thread count in use, named in the hint."""
    if not samples:
        return None
    latest = samples[-1]
    if not latest.timed:
        return None
    reference = reference_rate(samples[:-1], earlier)
    if reference is None or latest.rate * factor >= reference:
        return None
    return SlowRate(latest.rate, reference,
                    threads_hint(latest.rate, reference, threads, factor=factor))


def threads_hint(rate: float, reference: float, threads: int | None, *,
                 factor: float = SLOW_FACTOR) -> str:
    """One line: how slow, against what, and the --threads setting that usually fixes it."""
    if threads is None:
        fix = "try a lower --threads"
    elif threads > 1:
        fix = f"try --threads {max(1, threads // 2)} (now {threads})"
    else:
        fix = "--threads is already 1: close the other work on this machine"
    return (f"generation fell to {rate:.1f} tok/s, under 1/{factor:g} of this model's "
            f"{reference:.1f} tok/s measured earlier: llama.cpp threads stall when other work "
            f"shares the cores; {fix}")


class RateWatch:
    """The rounds of one loaded model, as they finish: says once when one collapses.

    Once per model: the fix (fewer --threads, less other work) takes a restart, so saying it
    again every round would only nag.
    """

    def __init__(self, threads: int | None, measured: float | None = None) -> None:
        self.threads = threads
        # The model's measured rate: a stored best on this machine, then the best round seen.
        self.best: float | None = measured
        self.said = False

    def add(self, record: RoundRecord) -> SlowRate | None:
        """Take a finished round; the collapse, the first time there is one."""
        sample = sample_of(record)
        if sample is None:
            return None
        slow = slow_rate([sample], self.best, threads=self.threads)
        if sample.timed:
            self.best = max(self.best or 0.0, sample.rate)
        if slow is None or self.said:
            return None
        self.said = True
        return slow
