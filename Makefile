PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install test lint bench clean

install:
	$(PYTHON) -m pip install -e '.[dev]'

test:
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint:
	$(PYTHON) -m ruff check execnet_cli tests bench
	$(PYTHON) -m ruff format --check execnet_cli tests bench
	$(PYTHON) -m mypy execnet_cli

bench:
	$(PYTHON) bench/run_all.py

clean:
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
