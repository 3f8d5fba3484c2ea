"""Small builders shared by tests."""

from __future__ import annotations

from mstui.core.types import Observation, RoundRecord


def make_record(index: int, prompt: str, response: str, answer: str | None,
                correct: bool | None = None, tokens: int = 10) -> RoundRecord:
    """A finished round with the given answer (text = answer) and round-number cost."""
    return RoundRecord(
        index=index, prompt=prompt, response=response, answer=answer, answer_text=answer,
        extraction_rule="answer-is" if answer else "none", correct=correct,
        prompt_tokens=tokens, completion_tokens=tokens, cached_tokens=0, finish_reason="stop",
        prompt_seconds=0.01, gen_seconds=0.1,
        observation=Observation(found=answer is not None, changed=None, agreement=None,
                                logprob=None),
    )
