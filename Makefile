PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install test faults lint bench clean

install:
	$(PYTHON) -m pip install -e '.[dev]'

test:
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# The fault suite, slow cases included; prints what each case measured (the README's
# Reliability table) and writes it to faults-table.md.
faults:
	XNET_FAULTS_TABLE=faults-table.md $(PYTHON) -m pytest -m faults -p no:cacheprovider $(PYTEST_ARGS)

lint:
	$(PYTHON) -m ruff check execnet_cli tests bench
	$(PYTHON) -m ruff format --check execnet_cli tests bench
	$(PYTHON) -m mypy execnet_cli

bench:
	$(PYTHON) bench/run_all.py

clean:
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
