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

.PHONY: setup test lint demo book book-fresh reader-notebooks clean

$(BIN)/.installed: pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -e .
	touch $@

setup: $(BIN)/.installed

# playwright-core drives Debian's Chromium in the book's page tests (it downloads no browser);
# without npm those tests skip, except in CI.
BROWSER_DEPS := tests/browser/node_modules/.installed
$(BROWSER_DEPS): tests/browser/package.json tests/browser/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/browser --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the browser layout test will skip"; fi

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint $(BROWSER_DEPS)
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m vitlib

# Executes the chapters and writes the site to _build/html. The final chapter trains a model: a
# first build takes about a quarter of an hour on 2 CPU cores; after that only the chapters whose
# code changed run again (execute_notebooks: cache). VITLIB_BOOK_QUICK=1 make book trains on a
# subset and builds into _build/quick, so its short runs never stand in for the real ones.
ifeq ($(VITLIB_BOOK_QUICK),1)
BOOK_OUT := _build/quick
else
BOOK_OUT := .
endif

book: setup
	$(BIN)/jupyter-book build . --path-output $(BOOK_OUT) -W -n --keep-going

# The cache keys on each notebook's code, not on vitlib or the shipped results: after changing
# those, rebuild everything.
book-fresh: setup
	rm -rf $(BOOK_OUT)/_build/.jupyter_cache
	$(MAKE) book

# The notebooks the book's Colab buttons open, notebooks/<chapter>.ipynb: each chapter in plain
# Markdown, with the numbers this build measured in place of its {glue:text} roles (Colab and
# Jupyter would show the chapter's MyST markup raw). Commit them after a build whose numbers
# should reach readers; VITLIB_BOOK_QUICK=1 takes them from the quick build.
reader-notebooks: book
	$(BIN)/python scripts/reader_notebooks.py --build $(BOOK_OUT)

clean:
	rm -rf $(VENV) _build runs .pytest_cache .ruff_cache
