"""Reasoning-model transcripts in the shapes of R1-distill, QwQ and Qwen3 outputs (our own text).

Each is thousands of tokens of thinking with drafts, boxed guesses and retractions, closed by
`</think>`, then a short final part. R1-distill and QwQ responses carry only the closing tag (the
template opens `<think>` in the prompt); Qwen3 writes both tags.
"""

from __future__ import annotations

import random

QUESTION = ("Sam buys 3 bags of 4 apples and then finds 2 more apples. How many apples does "
            "Sam have?")
GOLD = "14"

_STEPS = [
    "Let me re-read the problem. Sam buys 3 bags, and each bag has 4 apples.",
    "So the bags give 3 times 4, which is 12 apples.",
    "I think the answer is 12. \\boxed{12}",
    "Wait, I should double-check whether anything else happens in the problem.",
    "Hmm, he also finds 2 more apples after buying the bags.",
    "So 12 plus 2 is 14. But let me make sure I did not misread the number of bags.",
    "Actually, let me recount: bag one has 4, bag two has 4, bag three has 4, so 4 + 4 + 4 = 12.",
    "Alternatively, maybe the 2 apples are inside one of the bags? No, it says he finds 2 more.",
    "Let me verify once more with a different approach: 3 * 4 = 12, 12 + 2 = 14.",
    "Hold on, could the answer be 10 if he ate some? The problem does not say he ate any.",
    "So the final answer is 14, not 12 as I first wrote.",
]


def thinking_text(tokens: int, seed: int = 0) -> str:
    """About `tokens` words of thinking with drafts and retractions (never a closing tag)."""
    rng = random.Random(seed)
    out: list[str] = []
    words = 0
    while words < tokens:
        step = _STEPS[rng.randrange(len(_STEPS))]
        if rng.random() < 0.15:
            step = f"Wait, maybe I made a mistake. Let me redo step {rng.randint(1, 9)}. " + step
        out.append(step)
        words += len(step.split())
    out.append("Okay, I'm fairly confident now: 12 from the bags plus 2 found gives 14.")
    return "\n\n".join(out)


FINAL_R1 = ("Sam buys 3 bags of 4 apples, which is \\(3 \\times 4 = 12\\) apples. He then "
            "finds 2 more, so he has \\(12 + 2 = 14\\) apples.\n\n**Final Answer**\n"
            "\\[\n\\boxed{14}\n\\]")


def r1_response(tokens: int = 2000, seed: int = 0) -> str:
    """DeepSeek-R1-Distill shape: thinking (the `<think>` was in the prompt), `</think>`, final."""
    return f"{thinking_text(tokens, seed)}\n</think>\n\n{FINAL_R1}"


def qwq_response(tokens: int = 2000, seed: int = 1) -> str:
    """QwQ-32B shape: like R1 (its template also opens `<think>`), a plainer final part."""
    return (f"{thinking_text(tokens, seed)}\n</think>\n\nSam has 3 × 4 = 12 apples from the "
            "bags and finds 2 more, so he has **14** apples.\n\nThe final answer is "
            "\\boxed{14}.")


def qwen3_response(tokens: int = 2000, seed: int = 2) -> str:
    """Qwen3 thinking-mode shape: the model writes both tags itself."""
    return (f"<think>\n{thinking_text(tokens, seed)}\n</think>\n\nSam has \\(3 \\cdot 4 + 2 = "
            "14\\) apples.\n\n\\boxed{14}")


def cut_in_thinking(response: str, fraction: float = 0.5) -> str:
    """The response cut off inside its thinking (a `length` finish)."""
    end = response.index("</think>")
    return response[: int(end * fraction)]
