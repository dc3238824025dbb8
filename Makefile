PYTHON ?= python3
PYTEST_ARGS ?=
#: Where test-matrix keeps a venv per controller Python (ignored by git).
MATRIX_DIR ?= .matrix
#: Which controller Pythons test-matrix runs the suite on: all (3.10+ found) or ends
#: (the oldest and the newest); MATRIX_SKIP=X.Y leaves one out (CI: the one make test ran).
MATRIX ?= all
MATRIX_SKIP ?=

.PHONY: install test test-matrix test-execnet-suite test-xdist-suite faults lint bench demo clean

install:
	$(PYTHON) -m pip install -e '.[dev]'

test:
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# The fault suite, slow cases included; prints what each case measured (the README's
# Reliability table) and writes it to faults-table.md.
faults:
	XNET_FAULTS_TABLE=faults-table.md $(PYTHON) -m pytest -m faults -p no:cacheprovider $(PYTEST_ARGS)

# The whole suite under every controller Python we claim (3.10+) that is found here, each
# in its own venv with the dev dependencies; the interpreters are found, not named.
test-matrix:
	@pythons="$$($(PYTHON) tests/test_execnet_interpreters.py --controllers $(MATRIX) \
		--skip-version '$(MATRIX_SKIP)')" || exit 1; \
	failed=""; \
	for python in $$pythons; do \
		version=$$($$python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		venv="$(MATRIX_DIR)/py$$version"; \
		echo "== test-matrix: Python $$version ($$python) in $$venv"; \
		{ [ -x "$$venv/bin/python" ] || $$python -m venv "$$venv"; } && \
		"$$venv/bin/python" -m pip install -q -e '.[dev]' && \
		PYTHONPATH= "$$venv/bin/python" -m pytest -p no:cacheprovider $(PYTEST_ARGS) \
			|| failed="$$failed $$version"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-matrix: failed on Python$$failed"; exit 1; fi

# execnet's own test suite (its sdist's testing/; ~2 min) and pytest-xdist's (8-15 min), each
# through our alias and through execnet, compared test by test; the differences allowed are
# listed in tests/test_execnet_suite.py.
test-execnet-suite:
	XNET_EXECNET_SUITE=1 $(PYTHON) -m pytest -p no:cacheprovider -s -k execnet \
		tests/test_execnet_suite.py

test-xdist-suite:
	XNET_XDIST_SUITE=1 $(PYTHON) -m pytest -p no:cacheprovider -s -k xdist \
		tests/test_execnet_suite.py

lint:
	$(PYTHON) -m ruff check execnet_cli tests bench
	$(PYTHON) -m ruff format --check execnet_cli tests bench
	$(PYTHON) -m mypy execnet_cli

bench:
	$(PYTHON) bench/run_all.py

# The README's examples on inventories/demo.yaml (local workers, one via another), then ssh
# ones on three loopback sshd hosts it starts and stops (tests/demo.py).
demo:
	$(PYTHON) tests/demo.py

clean:
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis $(MATRIX_DIR)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
