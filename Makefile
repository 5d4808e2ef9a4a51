# One command on a fresh Debian/Ubuntu machine with Python 3.10-3.13: `make` (setup + the demo).
# Tests: `make test`. Everything installs what it needs and is idempotent.

# The interpreter for a new venv: PY=... if given, else the first of these that runs
# (a pyenv shim of a version pyenv has not selected is on PATH but does not run).
PYTHONS_SUPPORTED := python3.13 python3.12 python3.11 python3.10
PY        ?=
VENV      ?= .venv
PYTHON    := $(VENV)/bin/python
RUN_DIR   ?= runs/demo
FMNIST    := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTEST_ARGS ?=
# Test processes (pytest-xdist, one test file per worker): 2 cut the suite from 23 to 13 min
# on 2 cores (TensorFlow's tracing is mostly single-threaded).
TEST_WORKERS ?= 2
# make test-pythons: one venv per Python under .venvs/, the foundation and smoke-search tests.
TEST_PYTHONS ?= 3.10 3.11 3.13
PYTHONS_TESTS ?= tests/test_arch.py tests/test_cost.py tests/test_search_e2e.py
PYTHONS_K ?= not test_search_e2e or smoke
MOBILENET_V2 := sep_k3_w1.0_d1,mb6_k3_w1.0_d2_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d4_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d3_skip,mb6_k3_w1.0_d1_skip

# $(call pick_python,NAMES): prints the first of NAMES that runs Python 3.10-3.13 (exit 1 if
# none does).
SUPPORTED_PY := import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))
pick_python = for p in $(1); do \
	  if "$$p" -c "$(SUPPORTED_PY)" >/dev/null 2>&1; then echo "$$p"; exit 0; fi; done; exit 1

.PHONY: all setup venv data demo test test-slow test-install test-pythons lint ray bazel-test \
	bench cost clean mediapipe

all: demo

setup: $(VENV)/.installed data mediapipe

$(VENV)/.installed: requirements.lock pyproject.toml
	@if [ ! -x $(PYTHON) ]; then \
	  py=$$($(call pick_python,$(or $(PY),$(PYTHONS_SUPPORTED)))) || { \
	    echo "error: no supported Python found (tried: $(or $(PY),$(PYTHONS_SUPPORTED))); eatnas_tf needs Python 3.10-3.13 (make PY=/path/to/python3.X)"; exit 1; }; \
	  echo "$$py -m venv $(VENV)  ($$($$py -V))"; $$py -m venv $(VENV) || exit 1; \
	fi
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r requirements.lock
	touch $@

venv: $(VENV)/.installed

# The MediaPipe venv (requirements-mediapipe.lock): MediaPipe's TFLite metadata writer for the
# exported files (export/metadata.py runs export/mediapipe_metadata_tool.py in it) and its
# ImageClassifier for tests/test_mediapipe.py. Its own venv: mediapipe 0.10.21 pins protobuf < 5,
# TensorFlow 2.21 needs >= 6.31. mediapipe has wheels up to Python 3.12: the first of MP_PYTHONS
# that runs, else pyenv's newest 3.12/3.11/3.10; with none, a warning (exports then carry no
# metadata and say so in export_report.json).
MP_VENV    ?= .venv-mediapipe
MP_PY      ?=
MP_PYTHONS := python3.12 python3.11 python3.10
mediapipe: $(MP_VENV)/.installed
$(MP_VENV)/.installed: requirements-mediapipe.lock
	@if [ ! -x $(MP_VENV)/bin/python ]; then \
	  py=$$($(call pick_python,$(or $(MP_PY),$(MP_PYTHONS)))) || \
	    for v in 3.12 3.11 3.10; do \
	      py=$$(ls -d $$(pyenv root 2>/dev/null)/versions/$$v.*/bin/python$$v 2>/dev/null | tail -1); \
	      [ -n "$$py" ] && break; done; \
	  if [ -z "$$py" ]; then \
	    echo "warning: no Python 3.10-3.12 found for $(MP_VENV) (mediapipe 0.10.21 has no wheel for newer); exported .tflite files will carry no metadata (make mediapipe MP_PY=/path/to/python3.12)"; \
	    exit 0; fi; \
	  echo "$$py -m venv $(MP_VENV)  ($$($$py -V))"; $$py -m venv $(MP_VENV) || exit 1; \
	fi; \
	$(MP_VENV)/bin/python -m pip install -q --upgrade pip && \
	$(MP_VENV)/bin/python -m pip install -q -r requirements-mediapipe.lock && touch $@

# Offline Fashion-MNIST (Debian package dataset-fashion-mnist), installed when missing.
data: $(FMNIST)
$(FMNIST):
	@if command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -qq dataset-fashion-mnist || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; \
	else echo "warning: apt-get not found; Fashion-MNIST tests will be skipped"; fi

# Exactly the README's command.
demo: setup
	$(PYTHON) -m eatnas_tf.demo --run_dir=$(RUN_DIR) --flagfile=flags/demo.cfg

# The Ray executor (--executor=ray): ray and its pinned dependencies into the venv.
ray: $(VENV)/.ray
$(VENV)/.ray: $(VENV)/.installed requirements-ray.lock
	$(PYTHON) -m pip install -q -r requirements-ray.lock
	touch $@

cost: setup
	$(PYTHON) -m eatnas_tf.cost --space=imagenet --arch=$(MOBILENET_V2)

test: setup
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: setup
	$(PYTHON) -m pytest -q -m slow $(PYTEST_ARGS)

# Builds the wheel, installs it into a fresh venv outside the checkout and runs the console
# scripts from there (tests/test_install.py; a few minutes, mostly pip).
test-install: setup
	$(PYTHON) -m pytest -q -p no:randomly -m slow tests/test_install.py $(PYTEST_ARGS)

# The foundation and smoke-search tests on each Python of TEST_PYTHONS, each in its own venv
# (.venvs/pyXY, made once from requirements.lock; the first run downloads TensorFlow per
# Python). A version pyenv has but has not selected is found under $(pyenv root)/versions.
test-pythons:
	@for v in $(TEST_PYTHONS); do \
	  py=$$($(call pick_python,python$$v)) || \
	    py=$$(ls -d $$(pyenv root 2>/dev/null)/versions/$$v.*/bin/python$$v 2>/dev/null | tail -1); \
	  if [ -z "$$py" ] || ! "$$py" -c "$(SUPPORTED_PY)" >/dev/null 2>&1; then \
	    echo "error: python$$v not found (install it, or set TEST_PYTHONS)"; exit 1; fi; \
	  venv=.venvs/py$$(echo $$v | tr -d .); \
	  echo "== Python $$v ($$py) in $$venv"; \
	  $(MAKE) --no-print-directory $$venv/.installed VENV=$$venv PY=$$py || exit 1; \
	  $$venv/bin/python -m pip install -q --no-deps --no-build-isolation ".[test,export]" \
	    || exit 1; \
	  $$venv/bin/python -m pip check || exit 1; \
	  start=$$(date +%s); \
	  $$venv/bin/python -m pytest -q -p no:randomly $(PYTHONS_TESTS) -k "$(PYTHONS_K)" $(PYTEST_ARGS) \
	    || exit 1; \
	  echo "== Python $$v: $$(( $$(date +%s) - start )) s"; \
	done

# Ruff (pinned in requirements.lock, configured in pyproject.toml); not in CI yet.
lint: setup
	$(PYTHON) -m ruff check eatnas_tf export tests benchmarks

bazel-test: setup
	@command -v bazel >/dev/null 2>&1 || \
	  (apt-get install -y -qq bazel-bootstrap || (apt-get update -qq && apt-get install -y -qq bazel-bootstrap)) >/dev/null
	bazel test //tests:all

bench: demo
	for b in benchmarks/*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(MP_VENV) .venvs bazel-* .pytest_cache build dist *.egg-info
