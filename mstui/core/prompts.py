"""Refinement strategies: turn (question, earlier rounds) into the next prompt, from data files."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from mstui.core.backend import ChatMessage
from mstui.core.reasoning import ThinkTags, prompt_opens_thinking, split_reasoning
from mstui.core.types import RoundRecord

STRATEGIES = ("reanswer", "refine", "wait")
FORMATS = ("fewshot", "chat", "reasoning")
DEFAULT_BUDGET_CUE = "\n\nTime is up, so here is the final answer.\n{close}\n\n"
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
    # Closes the thinking when a round's thinking budget is spent; {close} is the end tag.
    budget_cue: str = DEFAULT_BUDGET_CUE


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
        budget_cue=data.get("budget_cue", DEFAULT_BUDGET_CUE),
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
      earlier token is already in the KV cache. For a reasoning model (`tags` set) this is s1's
      budget forcing: the final part and the closing tag are dropped and the cue goes inside
      the thinking.

    For a reasoning model, `refine` puts the previous working in the user's turn: R1-distill,
    QwQ and Qwen3 templates delete the thinking of earlier assistant turns.
    """

    fmt: PromptFormat
    strategy: str
    render_chat: ChatRenderer
    tags: ThinkTags | None = None  # the model's think tags; None for a model that does not think
    use_system: bool = True  # False where the model family advises no system prompt (R1)

    @property
    def budget_cue(self) -> str:
        """The text that closes a thinking part whose budget is spent ({close}: the end tag)."""
        return self.fmt.budget_cue

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
            return self._wait(last)
        if self.strategy == "refine":
            return self._refine(question, last)
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
            if self.tags is not None:
                return self._turns(self._refine_shown(question, last))
            return self._turns(
                self.fmt.first.format(question=question),
                {"role": "assistant", "content": last.response.strip()},
                {"role": "user", "content": self.fmt.refine},
            )
        previous = last.answer_text if last.answer_text is not None else NO_ANSWER
        return self._turns(self.fmt.reanswer.format(question=question, previous=previous))

    def _turns(self, user: str, *turns: ChatMessage) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        if self.fmt.system and self.use_system:
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

    def _wait(self, last: RoundRecord) -> str:
        opened = prompt_opens_thinking(last.prompt, self.tags)
        split = split_reasoning(last.response, self.tags, starts_in_thinking=opened)
        if self.tags is not None and split.has_thinking:
            # Budget forcing: keep the raw thinking (opening tag included), drop the closing tag
            # and the final part, and continue inside the thinking.
            thinking = last.response[: split.thinking_end].rstrip()
            if opened and thinking.lstrip().startswith(self.tags.open):
                # The prompt opened the thinking and the model opened it again: one tag.
                thinking = thinking.lstrip()[len(self.tags.open):].lstrip()
            # A round whose budget was spent ends its thinking with the cue that closed it
            # ("I am out of thinking time…"); continuing after it would contradict it.
            cue = self.fmt.budget_cue.format(close=self.tags.close)
            said = cue[: cue.find(self.tags.close)].strip()
            if said and thinking.endswith(said):
                thinking = thinking[: -len(said)].rstrip()
            # The cue goes on its own line inside the thinking, whatever the format's own cue.
            return last.prompt + thinking + "\n" + self.fmt.wait.lstrip()
        return last.prompt + last.response + self.fmt.wait

    def _refine_shown(self, question: str, last: RoundRecord) -> str:
        working = last.response.strip()
        if self.tags is not None:
            parts = [last.thinking.strip(), (last.final or "").strip()]
            working = "\n\n".join(p for p in parts if p) or NO_ANSWER
        if "{working}" in self.fmt.refine:
            return self.fmt.refine.format(question=question, working=working)
        first = self.fmt.first.format(question=question)
        return (f"{first}\n\nHere is a previous attempt, with its working:\n\n{working}\n\n"
                f"{self.fmt.refine}")

    def _refine(self, question: str, last: RoundRecord) -> str:
        if self.tags is not None and self.fmt.kind == "chat":
            return self._chat(self._refine_shown(question, last))
        response = last.response
        if self.fmt.kind == "chat":
            first = self.fmt.first.format(question=question)
            return self._chat(
                first,
                {"role": "assistant", "content": response.strip()},
                {"role": "user", "content": self.fmt.refine},
            )
        return self._first(question) + response + self.fmt.refine
