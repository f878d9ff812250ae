# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ncst-installed
DEMO_DIR ?= demo_out

.PHONY: setup demo test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# --force: DEMO_DIR is this Makefile's own output folder, so a rerun refreshes it (ncst demo alone refuses to
# delete trained runs or an edited recipe.yaml).
demo: $(STAMP)
	$(VENV)/bin/ncst demo $(DEMO_DIR) --force

test: $(STAMP)
	$(PY) -m pytest -q tests

test-slow: $(STAMP)
	NCST_SLOW=1 $(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
