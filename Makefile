# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edge-mlp-installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
EVAL_SUBSET := edge_mlp/assets/fashion_mnist_eval2000.npz

.PHONY: setup data demo test clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Fashion-MNIST (Debian's dataset-fashion-mnist, ~30 MB) for full-test-set parity and training.
# Installed when missing and we are root; without it everything uses the committed subsets.
data:
	@if [ ! -f $(FASHION_MNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
	  || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1) \
	  || echo "note: could not install dataset-fashion-mnist; using the committed Fashion-MNIST subsets"; \
	fi

# The main job on the shipped default: the demo as_mlp_mobile to every target, then parity of the
# ExecuTorch int8 artifact against PyTorch on the committed evaluation subset.
demo: setup
	$(VENV)/bin/edge-mlp list
	$(VENV)/bin/edge-mlp convert as_mlp_mobile --target all --weights demo --out out/demo
	$(VENV)/bin/edge-mlp parity out/demo/as_mlp_mobile-executorch-int8.pte --data $(EVAL_SUBSET)

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
