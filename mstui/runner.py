"""Assemble a run (backend, prompter, policy) from a RunConfig, for the CLI and the TUI alike."""

from __future__ import annotations

from dataclasses import dataclass

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.core.belief import ObservationModel
from mstui.core.fitting import ChainFit
from mstui.core.policies import parse_policy
from mstui.core.profiles import ModelProfile
from mstui.core.prompts import Prompter, load_format
from mstui.core.types import Policy


@dataclass
class Run:
    """What the refinement loop needs, ready to go."""

    config: RunConfig
    backend: Backend
    prompter: Prompter
    policy: Policy
    profile: ModelProfile


def needs_fit(spec: str) -> bool:
    """Whether a policy spec decides from a fitted chain (markov, mixture, gate)."""
    from mstui.core.policies import FIT_POLICIES

    return spec.split(":", 1)[0].strip().lower() in FIT_POLICIES


def make_policy(config: RunConfig, fit: ChainFit | None, gold: str | None,
                obs_model: ObservationModel | None = None) -> Policy:
    """The policy of a config; one-line errors for a policy that cannot run here."""
    spec = config.policy_spec
    if spec.startswith("oracle") and gold is None:
        raise ValueError("the oracle policy needs the gold answer; pass --gold")
    policy: Policy = parse_policy(spec, fit, obs_model, price=config.price,
                                  allow_sparse=config.allow_sparse_fit)
    return policy


def build_run(config: RunConfig, *, gold: str | None = None, backend: Backend | None = None,
              fit: ChainFit | None = None, obs_model: ObservationModel | None = None) -> Run:
    """Check the cheap things first (policy, prompts), then load the model with its profile's
    defaults (`load`); `run.config` is the config as it will run."""
    load_format(config.prompt_format)
    make_policy(config, fit, gold, obs_model)  # fail before a slow model load
    from mstui.engine.factory import backend_profile, load

    if backend is None:
        backend, config, profile = load(config)
    else:
        profile = backend_profile(config, backend)
        config = config.with_profile(profile)
    check_reasoning(config, backend, profile)
    fmt = load_format(config.prompt_format)
    policy = make_policy(config, fit, gold, obs_model)
    prompter = Prompter(fmt, config.strategy, backend.render_chat, tags=profile.tags,
                        use_system=profile.use_system)
    return Run(config, backend, prompter, policy, profile)


def check_first_prompt(run: Run, question: str) -> None:
    """Refuse, before a run is stored, a question whose first prompt cannot fit the context
    (PromptTooLong, one line); backends that cannot count tokens locally are not checked."""
    check = getattr(run.backend, "check_prompt", None)
    if check is not None:
        check(run.prompter.prompt(question, []))


def check_reasoning(config: RunConfig, backend: Backend, profile: ModelProfile) -> None:
    """One-line errors for reasoning settings that cannot work with this model and backend."""
    budget = config.thinking_budget
    ctx = backend.info.context_length
    if budget is not None:
        if profile.tags is None:
            raise ValueError(f"--thinking-budget needs a reasoning model; {backend.info.model} "
                             f"has profile {profile.name} (pass --profile reasoning to insist)")
        if ctx and budget >= ctx:
            raise ValueError(f"--thinking-budget {budget} does not fit the {ctx}-token context; "
                             "lower it or raise --ctx")
    needs_template = (config.prompt_format != "fewshot"
                      and (config.strategy == "wait" or budget is not None))
    if needs_template and not getattr(backend, "renders_served_template", True):
        what = "--strategy wait" if config.strategy == "wait" else "--thinking-budget"
        raise ValueError(f"{what} with a chat format continues the model's own text, which "
                         f"needs the served chat template, and {backend.info.model}'s server "
                         "exposes none (llama-server does at /props); use --format fewshot or "
                         "another server")
