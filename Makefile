# Two commands for a newcomer: `make demo` (a real 3-node Swarm on this machine)
# and `make test` (the whole test suite against real peers).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint venv clean-demo

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/bootstrap
	@touch $@

demo:
	scripts/demo

test:
	scripts/test

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

clean-demo:
	scripts/demo --down
