# The two commands a newcomer needs:  `make book`  and  `make test`  (`make demo` for a quick look).
# Both create .venv (first run: a few minutes, torch is large) and reuse it afterwards.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# MNIST's folder (MNIST/raw/*-ubyte), when it sits beside the checkout; without it, vitlib
# downloads MNIST to ~/.cache/vitlib.
ifneq ($(wildcard ../shared/data/MNIST/raw),)
export VITLIB_DATA ?= $(abspath ../shared/data)
endif

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

# Executes every chapter and writes the site to _build/html. The final chapter trains a model: the
# whole build took 13.5 minutes on 2 CPU cores; VITLIB_BOOK_QUICK=1 make book trains on a subset.
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

clean:
	rm -rf $(VENV) _build runs .pytest_cache .ruff_cache
