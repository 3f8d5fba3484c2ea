"""Shared fixtures: a tiny real GGUF, the default model when installed, a fresh database path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gguf_factory import write_tiny_llama

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random-weight llama GGUF (~0.5 MB) that the real llama.cpp loads in ms."""
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture()
def default_model() -> Path:
    """The embedded default model; the test is skipped (with the reason) where it is absent."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"default model not installed at {DEFAULT_MODEL} (run `make model`)")
    return DEFAULT_MODEL
