"""Assemble a run (backend, prompter, policy) from a RunConfig, for the CLI and the TUI alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.core.belief import ObservationModel
from mstui.core.fitting import ChainFit
from mstui.core.policies import parse_policy
from mstui.core.profiles import PROFILES, ModelProfile, detect_profile
from mstui.core.prompts import Prompter, load_format
from mstui.core.types import Policy, RoundRecord


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
        raise ValueError("the oracle policy needs the gold answer; pass --gold (in the TUI, "
                         "press n for a problem that has one)")
    policy: Policy = parse_policy(spec, fit, obs_model, price=config.price,
                                  allow_sparse=config.allow_sparse_fit)
    return policy


def build_run(config: RunConfig, *, gold: str | None = None, backend: Backend | None = None,
              fit: ChainFit | None = None, obs_model: ObservationModel | None = None,
              profile: ModelProfile | None = None) -> Run:
    """Check the cheap things first (policy, prompts), then load the model with its profile's
    defaults (`load`); `run.config` is the config as it will run. `profile` (with `backend`)
    replaces the detected one: what an earlier run on this backend revealed (`learned_profile`)."""
    load_format(config.prompt_format)
    make_policy(config, fit, gold, obs_model)  # fail before a slow model load
    from mstui.engine.factory import backend_profile, load

    if backend is None:
        backend, config, profile = load(config)
    else:
        profile = profile or backend_profile(config, backend)
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
    if check is None:
        return
    tokens = len(check(run.prompter.prompt(question, [])))
    budget, ctx = run.config.thinking_budget, run.backend.info.context_length
    if budget is not None and ctx and tokens + budget >= ctx:
        # Past the context the round ends `length` inside the thinking: the budget never acts.
        raise ValueError(f"the first prompt ({tokens} tokens) and --thinking-budget {budget} do "
                         f"not fit the {ctx}-token context; lower --thinking-budget to at most "
                         f"{max(ctx - tokens - 1, 0)} or raise --ctx")


def check_reasoning(config: RunConfig, backend: Backend, profile: ModelProfile) -> None:
    """One-line errors for reasoning settings that cannot work with this model and backend."""
    budget = config.thinking_budget
    ctx = backend.info.context_length
    if budget is not None:
        if profile.tags is None:
            raise ValueError(f"--thinking-budget needs a reasoning model; {backend.info.model} "
                             f"has profile {profile.name} (pass --profile reasoning to insist)")
        if config.prompt_format == "fewshot":
            # A few-shot prompt never opens the model's thinking: the budget would never count.
            raise ValueError("--thinking-budget closes the model's thinking, which only a chat "
                             "format opens with the model's own template; use --format "
                             "reasoning (or chat), or drop --thinking-budget")
        if ctx and budget >= ctx:
            raise ValueError(f"--thinking-budget {budget} does not fit the {ctx}-token context; "
                             "lower it or raise --ctx")
        if budget >= config.gen.max_tokens:
            raise ValueError(f"--thinking-budget {budget} is not below --max-tokens "
                             f"{config.gen.max_tokens}: the round ends before the budget is "
                             "spent; lower it or raise --max-tokens")
    needs_template = (config.prompt_format != "fewshot"
                      and (config.strategy == "wait" or budget is not None))
    if needs_template and not getattr(backend, "renders_served_template", True):
        # --format fewshot continues plain text (fine for `wait`), but has no thinking to close.
        what, remedy = (("--thinking-budget", "use a server that exposes it, or drop "
                         "--thinking-budget") if budget is not None else
                        ("--strategy wait", "use --format fewshot or another server"))
        raise ValueError(f"{what} with a chat format continues the model's own text, which "
                         f"needs the served chat template, and {backend.info.model}'s server "
                         f"exposes none (llama-server does at /props); {remedy}")


def learned_profile(config: RunConfig, backend: Backend,
                    rounds: Sequence[RoundRecord]) -> tuple[ModelProfile, str] | None:
    """The reasoning profile a finished run revealed, and what revealed it; None when nothing
    new was learned.

    A server gives no chat template or reasoning flag before it is asked (vLLM has no /props; a
    `--served-model-name` hides the family), so a model detected as plain at load can turn out
    to think: the server streamed a reasoning field (`reasoning_content` / `reasoning`), or a
    round closed a thinking part in its text. Only with `--profile auto`; a profile the user
    named is kept. The run that revealed it keeps its settings (its rounds stay comparable);
    the caller says so, and applies the profile to the runs after it where there are any.
    """
    used = config.applied_profile
    if config.profile != "auto" or (used in PROFILES and PROFILES[used].reasoning):
        return None
    if getattr(backend, "streams_reasoning", False):
        why = "the server streamed its thinking in a reasoning field"
    elif any(r.final is not None for r in rounds):
        why = "its rounds closed a thinking part"
    else:
        return None
    profile = detect_profile(getattr(backend, "chat_template", None), backend.info.model,
                             streams_reasoning=True)
    if not profile.reasoning:  # pragma: no cover - detect_profile always finds one here
        return None
    return profile, why


def learned_note(config: RunConfig, backend: Backend, rounds: Sequence[RoundRecord], *,
                 next_runs: bool) -> str:
    """One line about `learned_profile`: what was found, what this run used, what to do ("" when
    nothing was learned). `next_runs`: the caller applies the profile to the runs that follow
    (the TUI); otherwise the user is told to pass `--profile`."""
    found = learned_profile(config, backend, rounds)
    if found is None:
        return ""
    profile, why = found
    used = config.applied_profile or "plain"
    then = (f"the next runs use profile {profile.name}" if next_runs
            else f"pass --profile {profile.name} to run with its defaults")
    return (f"{backend.info.model} is a reasoning model ({why}), but this run used the {used} "
            f"profile (format {config.prompt_format}, {config.gen.max_tokens} tok/round, "
            f"T {config.gen.temperature:g}): {then} (format {profile.prompt_format}, "
            f"{profile.max_tokens} tok/round, T {profile.temperature:g})")
