"""Plain data records shared by the core, the engine, the store and the UI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Action = Literal["continue", "stop"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
CacheSource = Literal["reported", "estimated"]
# A finish reason in words: llama.cpp's bare "stop" printed beside a CONTINUE decision reads as
# the policy's verdict, so every surface says what the model did.
FINISH_TEXT = {"stop": "model ended its answer", "length": "hit the token limit",
               "cancelled": "cancelled", "error": "failed"}


def finish_text(reason: str) -> str:
    """How a round ended, in words ("model ended its answer", "hit the token limit", …)."""
    return FINISH_TEXT.get(reason, reason)


@dataclass(frozen=True)
class Observation:
    """Cheap, label-free features of one round, the inputs of the live belief (DESIGN §1.3).

    `changed` and `agreement` are None at round 0 (nothing to compare with).
    """

    found: bool  # an answer could be extracted at all
    changed: bool | None  # answer differs from the previous round's
    agreement: float | None  # fraction of earlier rounds whose answer equals this one
    logprob: float | None  # mean log-probability of the answer tokens, when known
    # Reasoning rounds (DESIGN §2.1): the round ended inside its thinking (no answer), and how
    # many tokens the thinking took (None for a model that does not think).
    truncated: bool = False
    thinking_tokens: int | None = None


@dataclass(frozen=True)
class RoundRecord:
    """One finished round: what was asked, what came back, and what it cost.

    This is the unit the store persists and the policies read. `correct` is None when no gold
    answer is known (a live question) or the grading timed out or failed (see `judge` and
    `grade_error`), and is only ever read by the `oracle` policy.
    """

    index: int
    prompt: str
    response: str
    answer: str | None  # normalized final answer, None when nothing was found
    answer_text: str | None  # the exact extracted text, shown to the user
    extraction_rule: str  # "boxed", "answer-is", "hashes", "last-number" or "none"
    correct: bool | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens served from the KV cache (prefix reuse)
    finish_reason: FinishReason
    prompt_seconds: float  # time to first token
    gen_seconds: float  # first token to last
    observation: Observation
    error: str | None = None
    # Who decided `correct` (core.grading's judges: "exact", "math-verify", "none", "timeout",
    # "error"); None for rounds graded before judges were recorded, or without gold.
    judge: str | None = None
    grade_error: str | None = None  # why a round is ungraded, or what the judge could not read
    # A reasoning round's parts (DESIGN §2.1). `response` stays the full raw text; `final` is
    # what the answer was extracted from (the whole response for a model that does not think).
    thinking: str = ""
    final: str | None = None
    truncated: bool = False  # ended inside the thinking: no answer, neither right nor wrong
    thinking_tokens: int = 0
    # "reported" (the server counted the cache hits), "estimated" (mstui worked them out), or
    # None (not known: a server that reports none, a round stored before this was recorded).
    cached_source: CacheSource | None = None

    @property
    def final_text(self) -> str:
        """The part the answer comes from: `final`, or the whole response when none was split."""
        return self.response if self.final is None else self.final

    @property
    def tokens(self) -> int:
        """Tokens this round cost: prompt tokens actually evaluated plus tokens generated."""
        return (self.prompt_tokens - self.cached_tokens) + self.completion_tokens

    @property
    def tokens_per_second(self) -> float:
        """Generation speed; 0.0 when nothing was generated."""
        if self.gen_seconds <= 0 or self.completion_tokens <= 1:
            return 0.0
        # The first token's time belongs to prompt evaluation, so count the ones after it.
        return (self.completion_tokens - 1) / self.gen_seconds


@dataclass(frozen=True)
class Decision:
    """A policy's verdict after a round, with every number behind it (DESIGN §1.3/§1.4).

    Numbers that do not apply to a policy are None; the UI shows them as "—".
    """

    round: int  # the round just finished (0-based)
    action: Action
    rule: str  # short name of the rule that fired, e.g. "cap", "gain<price", "fixed", "repeat"
    reason: str  # one human sentence
    policy: str  # the policy's spec, e.g. "markov", "fixed:3"
    belief: float | None = None  # q_t = P(current answer correct | seen so far)
    pi: float | None = None  # stationary accuracy b / (a + b)
    lam: float | None = None  # 1 - a - b
    expected_gain: float | None = None  # b - (a + b) q_t, gain in P(correct) of one more round
    price: float | None = None  # κ: accuracy the user trades for one token
    round_cost: float | None = None  # T: expected tokens of one more round
    cap: int | None = None  # the hard cap on total rounds
    override: Action | None = None  # set when a user forced the action in step-through
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def final_action(self) -> Action:
        """The action actually taken: the user's override when there is one."""
        return self.override if self.override is not None else self.action


class Policy(Protocol):
    """Decides, after each finished round, whether to run one more.

    Policies are stateless: `decide` sees the whole history every time, so the same object
    serves a live run, a replay and an offline what-if.
    """

    @property
    def spec(self) -> str:
        """The policy as written by the user, e.g. "markov:0.001"; stored with each run."""
        ...

    def decide(self, history: Sequence[RoundRecord], max_rounds: int) -> Decision:
        """Return the decision after the last round in `history` (never empty)."""
        ...


def cache_text(record: RoundRecord) -> str:
    """'312 cached, reported' / '312 cached, estimated' / 'cache hits not reported': an unknown
    count is not shown as 0."""
    if record.cached_source is None:
        return "cache hits not reported"
    return f"{record.cached_tokens} cached, {record.cached_source}"
