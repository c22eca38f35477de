# The two commands a newcomer needs:  `make book`  and  `make test`.
# Both create .venv (first run: a few minutes, torch is large) and reuse it afterwards.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MNIST's folder (MNIST/raw/*-ubyte). Without it, vitlib downloads MNIST to ~/.cache/vitlib.
export VITLIB_DATA ?= $(abspath ../shared/data)

.PHONY: setup test lint demo book clean

$(BIN)/.installed: pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -e .
	touch $@

setup: $(BIN)/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m vitlib

clean:
	rm -rf $(VENV) _build runs .pytest_cache .ruff_cache
