"""Synthetic rounds and decisions for tests, benchmarks and UI snapshots (no model needed)."""

from __future__ import annotations

import random

from mstui.core.types import Decision, Observation, RoundRecord

_WORDS = [
    "first",
    "add",
    "the",
    "apples",
    "then",
    "subtract",
    "the",
    "pears",
    "so",
    "the",
    "total",
    "is",
    "carefully",
    "checked",
    "again",
    "wait",
    "let",
    "me",
    "recompute",
    "each",
    "step",
    "because",
    "the",
    "farmer",
    "sold",
    "twelve",
    "baskets",
    "on",
    "monday",
]


def response_text(rng: random.Random, answer: str, chars: int = 300) -> str:
    """About `chars` characters of plausible reasoning ending in a boxed answer."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars - 20:
        words.append(rng.choice(_WORDS))
    return " ".join(words) + f". The answer is \\boxed{{{answer}}}."


def sample_round(
    index: int,
    *,
    answer: str = "42",
    correct: bool | None = True,
    response: str | None = None,
    rng: random.Random | None = None,
    previous: str | None = None,
) -> RoundRecord:
    """A plausible finished round; `previous` is the prior round's answer (sets `changed`)."""
    rng = rng or random.Random(index)
    return RoundRecord(
        index=index,
        prompt=f"Question ... (round {index})",
        response=response if response is not None else response_text(rng, answer),
        answer=answer,
        answer_text=answer,
        extraction_rule="boxed",
        correct=correct,
        prompt_tokens=120 + 40 * index,
        completion_tokens=90,
        cached_tokens=100 + 40 * index if index else 0,
        finish_reason="stop",
        prompt_seconds=0.05,
        gen_seconds=0.9,
        observation=Observation(
            found=True,
            changed=None if index == 0 else previous != answer,
            agreement=None if index == 0 else 0.5,
            logprob=-0.25,
        ),
    )


def sample_decision(index: int, *, stop: bool = False, cap: int = 8) -> Decision:
    """A markov-policy decision after round `index` with every number filled in."""
    return Decision(
        round=index,
        action="stop" if stop else "continue",
        rule="gain<price" if stop else "gain>=price",
        reason="one more round is not worth its tokens" if stop else "expected gain beats price",
        policy="markov",
        belief=0.6,
        pi=0.7,
        lam=0.5,
        expected_gain=0.05,
        price=1e-4,
        round_cost=210.0,
        cap=cap,
        extra={"q_prior": 0.55},
    )
