# The two commands a newcomer needs (see README): `make run` and `make test`.
# Each sets up what it needs first; setting up twice does nothing the second time.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup setup-test

# The main job: a small fungiverse on 127.0.0.1 (docs/demo.md). ARGS passes options, e.g.
# `make run ARGS="--rounds 3"`; Ctrl-C stops it, running it again resumes.
run: setup
	$(BIN)/spore demo $(ARGS)

# SPORE_REQUIRE_INTEROP=1: a real peer or server that setup-test installs must not be skipped quietly.
test: setup-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(abspath $(BIN)):$$PATH" SPORE_REQUIRE_INTEROP=1 $(BIN)/python -m pytest

setup: $(VENV)/.spore-installed

# CPU torch first, from the exact version: a bare torch requirement would pull a CUDA build of several GB.
$(VENV)/.spore-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# What the tests start or compare against beside the project: real Fediverse peers (Fedify under Node
# 22, fediverse-pasture), a second SPARQL server (Virtuoso), a reference for the aggregation rules,
# a federated SPARQL client (Comunica) and a real browser (Debian's Chromium, driven by Playwright).
setup-test: setup
	bash .ci/install-fedify.sh
	bash .ci/install-comunica.sh
	VENV=$(VENV) bash .ci/install-chromium.sh
	bash .ci/install-pasture.sh
	bash .ci/install-virtuoso.sh
	VENV=$(VENV) bash .ci/install-byzfl.sh
