# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edge-mlp-installed

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The main job on the shipped default: as_mlp_mobile to every target (each in its default precision).
demo: setup
	$(VENV)/bin/edge-mlp list
	$(VENV)/bin/edge-mlp convert as_mlp_mobile --target all --out out/demo

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
