# Entry points: `make demo` (set up, then run the demo society on the built-in model)
# and `make test` (set up, then run the whole test suite). Both create .venv if missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp

.PHONY: setup demo test lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

demo: $(STAMP)
	$(VENV)/bin/coevo demo

test: $(STAMP)
	$(PY) -m pytest -q -ra

lint: $(STAMP)
	$(VENV)/bin/ruff check coevo tests benchmarks
	$(VENV)/bin/ruff format --check coevo tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/engine_throughput.py
