# Every target bootstraps its own virtual environment from the pinned lock file.
# Usage: make demo | make test | make bench | make ui | make lint | make lock
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
UV_VERSION ?= 0.9.30
BIN := $(VENV)/bin
SEG := $(BIN)/seg
export SEG_DATA_DIR ?= $(CURDIR)/data

# Demo: ~20 k customers over 60 days ending DEMO_END, then the DAG for the last DEMO_DAYS days.
DEMO_END ?= 2026-11-02
DEMO_DAYS ?= 3
DEMO_CUSTOMERS ?= 20000

.PHONY: venv demo test bench ui lint lock clean-data

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, got {sys.version}"'
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

demo: venv
	$(SEG) generate --customers $(DEMO_CUSTOMERS) --days 60 --end $(DEMO_END) --seed 42
	$(SEG) run --date $(DEMO_END) --days $(DEMO_DAYS)
	$(SEG) summary

test: venv
	$(BIN)/pytest tests

bench: venv
	$(SEG) bench $(if $(SCALES),--scales $(SCALES))

ui: venv
	$(SEG) ui

lint: venv
	$(BIN)/ruff check seg ml expectations dags tests
	$(BIN)/sqlfluff lint dbt_project/models

# Re-resolve the pins (needs the package index): requirements.in -> requirements.lock + requirements.txt.
lock: venv
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --no-header -o requirements.lock
	$(BIN)/python scripts/pin_direct.py requirements.in requirements.lock > requirements.txt

clean-data:
	rm -rf "$(SEG_DATA_DIR)"
