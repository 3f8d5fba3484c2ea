"""Open the backend a RunConfig asks for."""

from __future__ import annotations

from mstui.config import RunConfig
from mstui.core.backend import Backend
from mstui.engine.models import resolve_model


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
