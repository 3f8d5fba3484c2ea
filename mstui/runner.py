"""Assemble a run (backend, prompter, policy) from a RunConfig, for the CLI and the TUI alike."""

from __future__ import annotations

from dataclasses import dataclass

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.core.belief import ObservationModel
from mstui.core.fitting import ChainFit
from mstui.core.policies import parse_policy
from mstui.core.prompts import Prompter, load_format
from mstui.core.types import Policy


@dataclass
class Run:
    """What the refinement loop needs, ready to go."""

    config: RunConfig
    backend: Backend
    prompter: Prompter
    policy: Policy


def needs_fit(spec: str) -> bool:
    """Whether a policy spec decides from a fitted chain (markov, gate)."""
    return spec.split(":", 1)[0].strip().lower() in ("markov", "gate")


def make_policy(config: RunConfig, fit: ChainFit | None, gold: str | None,
                obs_model: ObservationModel | None = None) -> Policy:
    """The policy of a config; one-line errors for a policy that cannot run here."""
    spec = config.policy_spec
    if spec.startswith("oracle") and gold is None:
        raise ValueError("the oracle policy needs the gold answer; pass --gold")
    policy: Policy = parse_policy(spec, fit, obs_model, price=config.price)
    return policy


def build_run(config: RunConfig, *, gold: str | None = None, backend: Backend | None = None,
              fit: ChainFit | None = None, obs_model: ObservationModel | None = None) -> Run:
    """Check the cheap things first (policy, prompts), then load the model."""
    fmt = load_format(config.prompt_format)
    policy = make_policy(config, fit, gold, obs_model)  # fail before a slow model load
    if backend is None:
        from mstui.engine.factory import open_backend

        backend = open_backend(config)
    prompter = Prompter(fmt, config.strategy, backend.render_chat)
    return Run(config, backend, prompter, policy)
