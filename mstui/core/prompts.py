"""Refinement strategies: turn (question, earlier rounds) into the next prompt, from data files."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from mstui.core.backend import ChatMessage
from mstui.core.types import RoundRecord

STRATEGIES = ("reanswer", "refine", "wait")
FORMATS = ("fewshot", "chat")
NO_ANSWER = "(no final answer)"

ChatRenderer = Callable[[Sequence[ChatMessage]], str]


@dataclass(frozen=True)
class PromptFormat:
    """One template file of mstui/prompts/: how a question and its re-asks are worded."""

    name: str
    kind: str  # "completion" or "chat"
    stop: tuple[str, ...]
    first: str
    reanswer: str
    refine: str
    wait: str
    preamble: str = ""
    system: str = ""


def load_format(name: str) -> PromptFormat:
    """Read mstui/prompts/NAME.toml; a one-line ValueError for an unknown name."""
    if name not in FORMATS:
        raise ValueError(f"unknown prompt format {name!r}; choose one of: {', '.join(FORMATS)}")
    text = resources.files("mstui.prompts").joinpath(f"{name}.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return PromptFormat(
        name=data["name"],
        kind=data["kind"],
        stop=tuple(data.get("stop", ())),
        first=data["first"],
        reanswer=data["reanswer"],
        refine=data["refine"],
        wait=data["wait"],
        preamble=data.get("preamble", ""),
        system=data.get("system", ""),
    )


def check_strategy(name: str) -> str:
    """Return `name` if it is a known strategy, else raise a one-line ValueError."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    return name


@dataclass(frozen=True)
class Prompter:
    """Builds each round's prompt so that later rounds share the longest possible token prefix.

    - reanswer: the first prompt's text up to the question, plus one line with the previous
      final answer only (keeps the chain Markov);
    - refine: the first round's prompt and the previous full response, then a check cue;
    - wait: the previous round's prompt and response continued after a "Wait," cue, so every
      earlier token is already in the KV cache.
    """

    fmt: PromptFormat
    strategy: str
    render_chat: ChatRenderer

    def __post_init__(self) -> None:
        check_strategy(self.strategy)

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop sequences of the format (few-shot prompts stop before inventing a new question)."""
        return self.fmt.stop

    def prompt(self, question: str, history: Sequence[RoundRecord]) -> str:
        """The prompt of round len(history)."""
        if not history:
            return self._first(question)
        last = history[-1]
        if self.strategy == "wait":
            return last.prompt + last.response + self.fmt.wait
        if self.strategy == "refine":
            return self._refine(question, last.response)
        previous = last.answer_text if last.answer_text is not None else NO_ANSWER
        return self._reanswer(question, previous)

    def messages(self, question: str, history: Sequence[RoundRecord]) -> list[ChatMessage] | None:
        """The chat turns of round len(history) for chat-format rounds; None when the round is
        plain text (few-shot completion, or `wait`, which continues the assistant's own text)."""
        if self.fmt.kind != "chat" or (history and self.strategy == "wait"):
            return None
        if not history:
            return self._turns(self.fmt.first.format(question=question))
        last = history[-1]
        if self.strategy == "refine":
            return self._turns(
                self.fmt.first.format(question=question),
                {"role": "assistant", "content": last.response.strip()},
                {"role": "user", "content": self.fmt.refine},
            )
        previous = last.answer_text if last.answer_text is not None else NO_ANSWER
        return self._turns(self.fmt.reanswer.format(question=question, previous=previous))

    def _turns(self, user: str, *turns: ChatMessage) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        if self.fmt.system:
            messages.append({"role": "system", "content": self.fmt.system})
        messages.append({"role": "user", "content": user})
        messages.extend(turns)
        return messages

    def _completion(self, body: str) -> str:
        return self.fmt.preamble + body

    def _chat(self, user: str, *turns: ChatMessage) -> str:
        return self.render_chat(self._turns(user, *turns))

    def _first(self, question: str) -> str:
        body = self.fmt.first.format(question=question)
        return self._chat(body) if self.fmt.kind == "chat" else self._completion(body)

    def _reanswer(self, question: str, previous: str) -> str:
        body = self.fmt.reanswer.format(question=question, previous=previous)
        return self._chat(body) if self.fmt.kind == "chat" else self._completion(body)

    def _refine(self, question: str, response: str) -> str:
        if self.fmt.kind == "chat":
            first = self.fmt.first.format(question=question)
            return self._chat(
                first,
                {"role": "assistant", "content": response.strip()},
                {"role": "user", "content": self.fmt.refine},
            )
        return self._first(question) + response + self.fmt.refine
