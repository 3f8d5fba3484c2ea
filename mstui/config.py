"""The settings of one run, shared by the CLI, the TUI and sweeps."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mstui.core.backend import GenSettings
from mstui.core.profiles import ModelProfile

# The cap on total rounds (the first answer included) of `mstui run`, `mstui sweep` and the TUI
# alike, so a pool swept with the defaults matches what a live run does with them.
DEFAULT_MAX_ROUNDS = 4



def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, as taskset or a container sets it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None) -> int:
    """llama.cpp threads when --threads is not given: half the usable cores, at least 1.

    Not every core: llama.cpp's threads spin-wait for each other at every step, so one thread
    preempted by other work stalls them all. On 2 cores shared with other work, 2 threads ran
    at 2-28 tok/s where 1 thread ran at 14-72 (docs/performance.md, "Threads"); half the cores
    also leaves room for the UI, grading and whatever else runs, and is about the physical
    cores on a machine with two hardware threads per core.
    """
    return max(1, (cores if cores is not None else usable_cores()) // 2)


# Settings a model profile may choose; a name in RunConfig.explicit was set by the user and wins.
PROFILE_SETTINGS = ("prompt_format", "ctx", "max_tokens", "temperature", "top_p", "top_k",
                    "min_p")


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
    max_rounds: int = DEFAULT_MAX_ROUNDS
    price: float = 0.0  # κ for the markov policy
    fit_id: int | None = None  # a stored fit the user pinned (else the chooser picks one)
    allow_sparse_fit: bool = False  # let markov/gate use a fit whose rates are the prior
    ctx: int | None = None
    gpu_layers: int = -1
    threads: int | None = None  # llama.cpp threads; None = default_threads()
    logprobs: bool = False
    gen: GenSettings = field(default_factory=GenSettings)
    profile: str = "auto"  # "auto" (detect from the chat template) or a name in PROFILES
    thinking_budget: int | None = None  # thinking tokens per round before the answer is forced
    # PROFILE_SETTINGS the user set, which a profile keeps; None (a config built in code): every
    # setting whose value differs from the plain profile's counts as set.
    explicit: frozenset[str] | None = None
    applied_profile: str | None = None  # the profile whose defaults this config carries

    def is_set(self, name: str) -> bool:
        """Whether the user chose setting `name` (one of PROFILE_SETTINGS)."""
        if self.explicit is not None:
            return name in self.explicit
        from mstui.core.profiles import PLAIN

        source = self if name in ("prompt_format", "ctx") else self.gen
        plain = {"ctx": PLAIN.n_ctx}.get(name, getattr(PLAIN, name, None))
        return bool(getattr(source, name) != plain)

    def choosing(self, name: str) -> frozenset[str]:
        """`explicit` with `name` added, for a setting the user has just chosen."""
        current = self.explicit if self.explicit is not None else frozenset(
            n for n in PROFILE_SETTINGS if self.is_set(n))
        return current | {name}

    def with_profile(self, profile: ModelProfile, *, model_ctx: int | None = None) -> RunConfig:
        """This config with the profile's defaults for every setting the user did not set.

        Applied once: a config that already carries a profile is returned as it is, so a change
        made later (the TUI's palette) is not overwritten. `model_ctx` caps the context.
        """
        if self.applied_profile is not None:
            return self
        chosen = {k: v for k, v in (
            ("prompt_format", profile.prompt_format),
            ("ctx", profile.n_ctx if profile.n_ctx is None or model_ctx is None
             else min(profile.n_ctx, model_ctx)),
        ) if not self.is_set(k)}
        # A reasoning profile's round budget (thousands) is capped at half the context it runs
        # in (the prompt and a `wait` continuation need the rest): a 2048-token model gets 1024.
        ctx = chosen.get("ctx", self.ctx)
        budget = profile.max_tokens
        if profile.reasoning and isinstance(ctx, int):
            budget = min(budget, max(ctx // 2, 16))
        gen = {k: v for k, v in (
            ("max_tokens", budget), ("temperature", profile.temperature),
            ("top_p", profile.top_p), ("top_k", profile.top_k), ("min_p", profile.min_p),
        ) if not self.is_set(k)}
        return replace(self, **chosen, gen=replace(self.gen, **gen),  # type: ignore[arg-type]
                       applied_profile=profile.name)

    def validate(self) -> RunConfig:
        """Raise ValueError with a one-line message for settings that cannot work."""
        from mstui.core.prompts import FORMATS, check_strategy

        if not 1 <= self.max_rounds <= 1000:
            raise ValueError(f"--max-rounds must be between 1 and 1000 (got {self.max_rounds})")
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
        if not 0.0 <= self.price <= 1.0:  # also refuses NaN
            raise ValueError(f"--price must be between 0 and 1 accuracy per token "
                             f"(got {self.price})")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be at least 1 (got {self.threads})")
        if self.ctx is not None and self.ctx < 16:
            raise ValueError(f"--ctx must be at least 16 tokens (got {self.ctx})")
        if self.thinking_budget is not None and self.thinking_budget < 1:
            raise ValueError(f"--thinking-budget must be at least 1 token "
                             f"(got {self.thinking_budget})")
        if not 0.0 < self.gen.top_p <= 1.0:
            raise ValueError(f"--top-p must be in (0, 1] (got {self.gen.top_p})")
        if self.gen.top_k < 0:
            raise ValueError(f"--top-k must be 0 (off) or more (got {self.gen.top_k})")
        if not 0.0 <= self.gen.min_p < 1.0:
            raise ValueError(f"--min-p must be in [0, 1) (got {self.gen.min_p})")
        if self.profile != "auto":
            from mstui.core.profiles import profile_by_name

            profile_by_name(self.profile)
        return self

    @property
    def policy_spec(self) -> str:
        """The policy as stored and shown: `fixed` alone means "run to the cap"."""
        if self.policy == "fixed":
            return f"fixed:{self.max_rounds - 1}"
        return self.policy


# ---- the user's own settings (kept across launches) ----------------------------------------

def user_settings_path() -> Path:
    """Where the TUI remembers the user's choices (the theme): $XDG_CONFIG_HOME/mstui/
    settings.json, else ~/.config/mstui/settings.json (XDG: a relative value is ignored)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "mstui" / "settings.json"


def load_user_settings(path: Path) -> dict[str, Any]:
    """The settings saved at `path`; {} when there are none or the file is unreadable (a
    broken settings file must never keep the app from starting)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_user_setting(path: Path, key: str, value: Any) -> None:
    """Set one setting, keeping the others; written to a side file and renamed into place so
    an interrupted write never leaves half a file. OSError when it cannot be written."""
    data = load_user_settings(path)
    if data.get(key) == value:
        return
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)
