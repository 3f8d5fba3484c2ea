"""Glue between a run and the trace store: find the fit a run uses, persist its events."""

from __future__ import annotations

import dataclasses

from mstui.analysis.choose import FoundFit, choose_fit
from mstui.config import RunConfig
from mstui.core.answers import normalize_answer
from mstui.core.backend import Backend
from mstui.core.loop import DecisionMade, Event, RoundFinished, RunFinished
from mstui.core.throughput import RateWatch
from mstui.store import Store

STATUS_OF_REASON = {"policy": "finished", "cancelled": "cancelled", "error": "failed"}


def find_fit(store: Store, model: str, strategy: str, problem_set: str | None,
             pin: int | None = None) -> FoundFit | None:
    """The fit a run uses; see mstui.analysis.choose (the one chooser)."""
    return choose_fit(store, model, strategy, problem_set, pin)


def measured_rate(store: Store | None, backend: Backend) -> float | None:
    """This model's best stored tok/s on this machine (see store.query.best_rate); None when
    nothing is stored or the file cannot be read (the hint then waits for this run's rounds)."""
    from mstui.core.throughput import MIN_SECONDS, MIN_TOKENS
    from mstui.store import StoreError
    from mstui.store.liveness import host
    from mstui.store.query import best_rate

    if store is None:
        return None
    try:
        with store.reader() as db:
            return best_rate(db, backend.info.model, backend.info.backend, host(),
                             min_tokens=MIN_TOKENS, min_seconds=MIN_SECONDS)
    except (StoreError, OSError):
        return None


def rate_watch(config: RunConfig, store: Store | None, backend: Backend) -> RateWatch | None:
    """The watch on an in-process model's tok/s (the slow-rate hint naming --threads), seeded
    with its best stored rate; None for a server, whose speed --threads does not set."""
    if config.backend != "llama":
        return None
    return RateWatch(backend.info.threads or None, measured_rate(store, backend))


class RunRecorder:
    """Writes one run as it happens: the run row at start, each round and decision as they end.

    A round is committed as soon as it finishes, before its decision, so a step-mode pause or a
    kill while the user thinks never loses it.
    """

    def __init__(self, store: Store, config: RunConfig, backend: Backend, *, question: str,
                 gold: str | None, problem_set: str | None = None, problem_id: str | None = None,
                 level: int | None = None, fit_id: int | None = None, policy: str | None = None,
                 sweep: str | None = None, claim: bool = False) -> None:
        self.store = store
        info = backend.info
        # `gold` is what rounds are graded against, as given; the run keeps it raw, beside its
        # normalized form (shown, and used by the exact judge).
        gold_raw = gold
        if gold is not None:
            gold = normalize_answer(gold) or gold
        store.upsert_model(info.model, backend=info.backend, architecture=info.details.get(
            "architecture"), quantization=info.details.get("quantization"))
        settings = dataclasses.asdict(config.gen) | {"prompt_format": config.prompt_format,
                                                      "price": config.price, "ctx": config.ctx,
                                                      "offload": info.offload_text,
                                                      "profile": config.applied_profile,
                                                      "thinking_budget": config.thinking_budget}
        # With `claim`, AlreadyClaimed (from the store) means another process has the problem.
        self.run_id = store.start_run(
            question=question, gold=gold, max_rounds=config.max_rounds, model=info.model,
            backend=info.backend, problem_set=problem_set, problem_id=problem_id, level=level,
            strategy=config.strategy, policy=policy or config.policy_spec, fit_id=fit_id,
            settings=settings, sweep=sweep, gold_raw=gold_raw, claim=claim)

    def handle(self, event: Event) -> None:
        """Persist what an event finished; other events are ignored."""
        if isinstance(event, RoundFinished):
            self.store.add_round(self.run_id, event.record)
        elif isinstance(event, DecisionMade):
            self.store.add_decision(self.run_id, event.decision)
        elif isinstance(event, RunFinished):
            self.store.finish_run(self.run_id, STATUS_OF_REASON.get(event.reason, "finished"),
                                  error=event.error)

    def override(self, round_index: int, action: str) -> None:
        """Record a user's forced continue/stop on an already stored decision."""
        self.store.set_override(self.run_id, round_index, action)  # type: ignore[arg-type]
