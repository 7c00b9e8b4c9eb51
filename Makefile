# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edge-mlp-installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
EVAL_SUBSET := edge_mlp/assets/fashion_mnist_eval2000.npz

.PHONY: setup test-setup demo test app-vectors zoo-stats shift-choice clean arm64

# `make demo` installs what the demo runs (the package and its runtimes, into the venv); `make
# test` adds the test tools and, as root, two Debian packages (below).
setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $(STAMP)

TEST_STAMP := $(VENV)/.edge-mlp-test-installed
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(TEST_STAMP)

# Debian packages for the tests, installed when missing and we are root: Fashion-MNIST (~30 MB) for
# full-test-set parity, and Kotlin (kotlinc) to compile the Android app's preprocessing. Without them
# the suite uses the committed subsets and skips the Kotlin check, saying so.
APT_INSTALL := apt-get install -y -qq
test-setup: $(TEST_STAMP)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  [ -f $(FASHION_MNIST) ] || missing="$$missing dataset-fashion-mnist"; \
	  command -v kotlinc >/dev/null || missing="$$missing kotlin"; \
	  for pkg in $$missing; do \
	    $(APT_INSTALL) $$pkg >/dev/null 2>&1 \
	    || (apt-get update -qq >/dev/null 2>&1 && $(APT_INSTALL) $$pkg >/dev/null 2>&1) \
	    || echo "note: could not install $$pkg; the tests that need it use subsets or skip"; \
	  done; \
	fi

# Rewrites the preprocessing vectors next to each sample app's unit tests (tests check they are current).
app-vectors: $(STAMP)
	$(PY) -m edge_mlp.apps

# Rewrites the registered variants' params/MACs that `edge-mlp list` reads (tests check they are current).
zoo-stats: $(STAMP)
	$(PY) -m edge_mlp.stats

# Rewrites what `--shift-lowering auto` picks from the committed bench ablation results (tests check it is current).
shift-choice: $(STAMP)
	$(PY) -m edge_mlp.shift_choice

# The main job on the shipped default: the demo as_mlp_mobile to every target, parity of the
# ExecuTorch int8 artifact against PyTorch on the committed evaluation subset, then the artifacts
# bundled into the Android and iOS sample apps (gitignored there), ready to build.
demo: setup
	$(VENV)/bin/edge-mlp list
	$(VENV)/bin/edge-mlp convert as_mlp_mobile --target all --weights demo --out out/demo
	$(VENV)/bin/edge-mlp parity out/demo/as_mlp_mobile-executorch-int8.pte --data $(EVAL_SUBSET)
	$(VENV)/bin/edge-mlp bundle out/demo --app android
	$(VENV)/bin/edge-mlp bundle out/demo --app ios

# One pytest-xdist worker per core (at most 4: each holds torch and the runtimes in memory); the
# workers share one cache of converted artifacts (tests/conftest.py).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)
# As root, the arm64 root of tests/test_arm64.py first (built once, ~10 min; cached after): where the
# machine cannot (no binfmt_misc), those tests skip and say why; any other failure fails them.
test: test-setup
	@[ "$$(id -u)" != 0 ] || $(PY) -m edge_mlp.arm64 || echo "note: no arm64 root (above); tests/test_arm64.py says why"
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=20

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info

# The arm64 root that edge_mlp.arm64 / tests/test_arm64.py run artifacts in, on the aarch64 builds
# of the runtimes under user-mode QEMU (issue 17). Needs root; the first build takes about 10
# minutes (Debian's second stage runs emulated), a current one returns at once.
arm64: $(STAMP)
	$(PY) -m edge_mlp.arm64
