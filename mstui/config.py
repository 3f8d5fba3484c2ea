"""The settings of one run, shared by the CLI, the TUI and sweeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from mstui.core.backend import GenSettings


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to start a run; validated by `validate()` with one-line errors."""

    model: str | None = None  # path, name in models/, or None for the default model
    backend: str = "llama"  # "llama" (in-process) or "openai" (any OpenAI-compatible server)
    base_url: str | None = None  # the server's URL, for backend "openai"
    api_key: str | None = None
    strategy: str = "reanswer"
    prompt_format: str = "fewshot"
    policy: str = "fixed"
    max_rounds: int = 4
    price: float = 0.0  # κ for the markov policy
    ctx: int | None = None
    gpu_layers: int = -1
    threads: int | None = None  # llama.cpp threads; None = every core
    logprobs: bool = False
    gen: GenSettings = field(default_factory=GenSettings)

    def validate(self) -> RunConfig:
        """Raise ValueError with a one-line message for settings that cannot work."""
        from mstui.core.prompts import FORMATS, check_strategy

        if self.max_rounds < 1:
            raise ValueError(f"--max-rounds must be at least 1 (got {self.max_rounds})")
        check_strategy(self.strategy)
        if self.backend not in ("llama", "openai"):
            raise ValueError(f"unknown backend {self.backend!r}; choose llama or openai")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("--backend openai needs --base-url (e.g. http://127.0.0.1:8080/v1)")
        if self.prompt_format not in FORMATS:
            raise ValueError(f"unknown prompt format {self.prompt_format!r}; choose one of: "
                             f"{', '.join(FORMATS)}")
        if self.gen.max_tokens < 1:
            raise ValueError(f"--max-tokens must be at least 1 (got {self.gen.max_tokens})")
        if not 0.0 <= self.gen.temperature <= 5.0:
            raise ValueError(f"--temperature must be between 0 and 5 (got {self.gen.temperature})")
        if self.price < 0:
            raise ValueError(f"--price must be 0 or more (got {self.price})")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1 (got {self.threads})")
        if self.ctx is not None and self.ctx < 16:
            raise ValueError(f"--ctx must be at least 16 tokens (got {self.ctx})")
        return self

    @property
    def policy_spec(self) -> str:
        """The policy as stored and shown: `fixed` alone means "run to the cap"."""
        if self.policy == "fixed":
            return f"fixed:{self.max_rounds - 1}"
        return self.policy
