"""Typed messages the model worker posts to the app (one direction: worker → UI)."""

from __future__ import annotations

from textual.message import Message

from mstui.core.types import Decision, RoundRecord
from mstui.ui.view import ProbView


class ModelLoading(Message):
    """The worker started loading a model."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class ModelReady(Message):
    """The model is loaded; `offload` is 'CPU only (...)' / 'GPU: n/m layers' in plain words."""

    def __init__(self, model: str, backend: str, offload: str, seconds: float) -> None:
        super().__init__()
        self.model = model
        self.backend = backend
        self.offload = offload
        self.seconds = seconds


class ModelFailed(Message):
    """The model could not be found or loaded; `error` is one line for the user."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class Notice(Message):
    """A one-line status for the user (store trouble, policy fallback, ...)."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity


class RunBegan(Message):
    """A run started: what is asked, under which policy and fit."""

    def __init__(
        self,
        run_id: int | None,
        question: str,
        gold: str | None,
        policy: str,
        max_rounds: int,
        fit_label: str,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.question = question
        self.gold = gold
        self.policy = policy
        self.max_rounds = max_rounds
        self.fit_label = fit_label


class RoundBegan(Message):
    """A round's prompt was sent; its tokens follow through the worker's TokenBuffer."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index


class RoundDone(Message):
    """A round finished (or was cancelled / failed) and was scored and stored."""

    def __init__(self, record: RoundRecord) -> None:
        super().__init__()
        self.record = record


class DecisionReady(Message):
    """The decision after a round took effect, with the probability view computed by the core."""

    def __init__(self, decision: Decision, view: ProbView) -> None:
        super().__init__()
        self.decision = decision
        self.view = view


class FitShown(Message):
    """The fit a run would use, before round 0: p̂₀ and the predicted curve (at model load,
    and when a run begins), so the panel says what the next decision rests on."""

    def __init__(self, view: ProbView) -> None:
        super().__init__()
        self.view = view


class Paused(Message):
    """Step mode or a breakpoint stopped before a decision took effect; the worker waits."""

    def __init__(self, decision: Decision, view: ProbView, why: str) -> None:
        super().__init__()
        self.decision = decision
        self.view = view
        self.why = why


class RunDone(Message):
    """The run ended: reason is 'policy', 'cancelled' or 'error'."""

    def __init__(
        self,
        run_id: int | None,
        reason: str,
        final_answer: str | None,
        final_correct: bool | None,
        rounds: int,
        error: str | None,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.reason = reason
        self.final_answer = final_answer
        self.final_correct = final_correct
        self.rounds = rounds
        self.error = error
