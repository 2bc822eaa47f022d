# The README's commands. Each creates .venv on first use (Python 3.11+ needed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test lint bench clean

demo: $(VENV)/.installed  ## replay tests/events through the real handlers; print (or post) the messages
	$(PY) -m tools.replay tests/events

test: lint  ## the gates, then the whole offline test suite
	$(PY) -m pytest

lint: $(VENV)/.installed  ## ruff (style, bugs, complexity <= 10) and mypy --strict over app.py and chalicelib/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "batch-notify needs Python 3.11+: run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# requirements.txt's wheels, for chalice deploy/package in the tests and bench/ to use offline
	$(PY) -m pip download --quiet --disable-pip-version-check --dest $(VENV)/wheels -r requirements.txt
	@touch $@

bench: $(VENV)/.installed  ## every bench/*.py in turn (files starting with _ are helpers); each prints a table
	@status=0; for script in bench/[!_]*.py; do \
		echo; echo "== $$script"; $(PY) $$script || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache
