"""Open the backend a RunConfig asks for."""

from __future__ import annotations

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.core.profiles import ModelProfile, detect_profile, profile_by_name
from mstui.engine.models import resolve_model


def backend_profile(config: RunConfig, backend: Backend) -> ModelProfile:
    """The profile a config names, or the one detected from the backend's chat template."""
    if config.profile != "auto":
        return profile_by_name(config.profile)
    # A server that has streamed a reasoning field marks a reasoning model even under a generic
    # name (a later run on the same backend, after runner.learned_profile said so).
    return detect_profile(getattr(backend, "chat_template", None), backend.info.model,
                          streams_reasoning=getattr(backend, "streams_reasoning", False))


def load(config: RunConfig) -> tuple[Backend, RunConfig, ModelProfile]:
    """Open the backend with the model profile's defaults applied to what the user left unset.

    For a GGUF the profile is read from its header before loading, so the context it asks
    for is the one loaded; a server's profile comes from the template it exposes.
    """
    config = with_header_profile(config)
    backend = open_backend(config)
    profile = backend_profile(config, backend)
    return backend, config.with_profile(profile), profile


def with_header_profile(config: RunConfig) -> RunConfig:
    """For a GGUF, the config with the profile read from its header (no weights loaded), so
    the context the profile asks for is the one loaded; other backends are left as they are."""
    if config.backend != "llama" or config.applied_profile is not None:
        return config
    from mstui.engine.gguf_info import read_gguf_info

    info = read_gguf_info(resolve_model(config.model))
    trained = info.context_length
    if config.ctx is not None and trained and config.ctx > trained:
        # llama.cpp would allocate it and warn to a log nobody sees; past the trained length
        # the model's output degrades.
        raise ValueError(f"--ctx {config.ctx} is above {info.path.name}'s {trained}-token "
                         f"context (its training length); use at most --ctx {trained}")
    profile = (profile_by_name(config.profile) if config.profile != "auto"
               else detect_profile(info.chat_template, info.path.name))
    return config.with_profile(profile, model_ctx=info.context_length or None)


def open_backend(config: RunConfig) -> Backend:
    """Load the model in the calling thread (a llama.cpp model stays on its loading thread)."""
    if config.backend == "llama":
        from mstui.engine.llama_backend import LlamaBackend

        path = resolve_model(config.model)
        return LlamaBackend(path, n_ctx=config.ctx, n_gpu_layers=config.gpu_layers,
                            n_threads=config.threads, logits_all=config.logprobs,
                            seed=config.gen.seed)
    if config.backend == "openai":
        from mstui.engine.openai_backend import OpenAIBackend

        assert config.base_url is not None  # RunConfig.validate checks it
        return OpenAIBackend(config.base_url, model=config.model, api_key=config.api_key)
    raise ValueError(f"unknown backend {config.backend!r}; choose llama or openai")


def model_label(config: RunConfig) -> str | None:
    """The model name runs are stored under, known before loading: the GGUF's file name, or
    the server's model name when one was given (None: ask the server)."""
    if config.backend == "llama":
        return resolve_model(config.model).name
    return config.model
