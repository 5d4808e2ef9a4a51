# One command on a fresh Debian machine with Python 3.11: `make` (setup + the demo).
# Tests: `make test`. Everything installs what it needs and is idempotent.

PY        ?= python3.11
VENV      ?= .venv
PYTHON    := $(VENV)/bin/python
RUN_DIR   ?= runs/demo
FMNIST    := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTEST_ARGS ?=
# Test processes (pytest-xdist, one test file per worker): 2 cut the suite from 23 to 13 min
# on 2 cores (TensorFlow's tracing is mostly single-threaded).
TEST_WORKERS ?= 2

.PHONY: all setup venv data demo test test-slow bazel-test bench cost clean

all: demo

setup: $(VENV)/.installed data

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found; install Python 3.11"; exit 1; }
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements.lock
	touch $@

# Offline Fashion-MNIST (Debian package dataset-fashion-mnist), installed when missing.
data: $(FMNIST)
$(FMNIST):
	@if command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -qq dataset-fashion-mnist || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; \
	else echo "warning: apt-get not found; Fashion-MNIST tests will be skipped"; fi

demo: setup
	$(PYTHON) -m eatnas_tf.demo --run_dir=$(RUN_DIR)

cost: setup
	$(PYTHON) -m eatnas_tf.cost --space=imagenet \
	  --arch=sep_k3_w1.0_d1,mb6_k3_w1.0_d2_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d4_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d1_skip

test: setup
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: setup
	$(PYTHON) -m pytest -q -m slow $(PYTEST_ARGS)

bazel-test: setup
	@command -v bazel >/dev/null 2>&1 || \
	  (apt-get install -y -qq bazel-bootstrap || (apt-get update -qq && apt-get install -y -qq bazel-bootstrap)) >/dev/null
	bazel test //tests:all

bench: demo
	for b in benchmarks/*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

clean:
	rm -rf $(VENV) bazel-* .pytest_cache
