# Two commands on a fresh machine with Python 3.11 (see README):
#   make demo   set up, then run the whole product on a synthetic cartoon with known truth
#   make test   set up (Python packages and the Debian packages of the RTSP test server), run the tests
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[train,dev,bench]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/screentime demo

system-deps:
	bash scripts/install-system-deps.sh

test: $(VENV)/.installed system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
