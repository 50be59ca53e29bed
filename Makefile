# Two commands on a fresh machine with Python 3.11, 3.12 or 3.13 (see README):
#   make demo   set up, then run the whole product on a synthetic cartoon with known truth
#   make test   set up (Python packages and the Debian packages of the RTSP test server), ruff, mypy, the tests
# PYTHON: the first of python3.13/3.12/3.11 found (TensorFlow's wheels support those), else python3
# when it is >= 3.11; `make PYTHON=/path/to/python` overrides.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' \
	2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint system-deps

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "make: no Python 3.11-3.13 found (python3.13, python3.12, python3.11, python3)"; exit 1; }
	@echo "using $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[train,dev,bench,plot,cluster]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/screentime demo

system-deps:
	bash scripts/install-system-deps.sh

test: $(VENV)/.installed system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
