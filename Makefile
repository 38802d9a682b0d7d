# The course's two commands: `make lab` (set up, then open the notebooks) and `make test`.
# Every target sets up the virtual environment first, once; later runs skip that step.
# Each Python gets its own: make test PYTHON=python3.13 VENV=.venv-3.13

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= quick
# Extra flags for JupyterLab, e.g. make lab LAB_ARGS="--ip=0.0.0.0 --port=8890"
LAB_ARGS ?=
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# TensorFlow's C++ start-up lines (cuInit, oneDNN, absl) are noise in notebooks and tests;
# set TF_CPP_MIN_LOG_LEVEL=0 to see them again.
export TF_CPP_MIN_LOG_LEVEL ?= 3
export GRPC_VERBOSITY ?= ERROR
# nbval runs the notebooks in the smoke profile; unit tests run once per Keras backend.
PYTEST := COURSE_PROFILE=smoke $(BIN)/python -m pytest
# The unit tests run in WORKERS processes (pytest-xdist): on 2 cores that takes a third off
# each pass. The notebooks run one at a time, as a student runs them (their times are
# claims). WORKERS=0 runs everything in one process.
WORKERS ?= 2
UNITS := $(PYTEST) -n $(WORKERS) tests
# Tests run tiny models for a few steps: on JAX, compiling them fast beats optimising them.
JAX := KERAS_BACKEND=jax XLA_FLAGS=--xla_backend_optimization_level=0

.PHONY: setup lab run test test-jax lint clean gpu-prep

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v >= (3, 10) else \
	  "Python 3.10 or later is needed (found %d.%d): run make with PYTHON=python3.12 or similar" % v)'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo \
	  "Could not create $(VENV): on Debian/Ubuntu run 'sudo apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

# Containers and cloud notebooks run as root, which JupyterLab refuses without --allow-root.
lab: setup
	@flags="$(strip $(LAB_ARGS))"; \
	if [ "$$(id -u)" = 0 ]; then flags="--allow-root $$flags"; \
	  echo "make lab: running as root (as in most containers), so JupyterLab gets --allow-root"; fi; \
	if [ "$$(uname)" = Linux ] && [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  flags="--ServerApp.open_browser=False $$flags"; \
	  echo "make lab: no display here: open the http://localhost:8888/lab?token=... address below"; fi; \
	echo $(BIN)/jupyter lab $$flags notebooks/; \
	exec $(BIN)/jupyter lab $$flags notebooks/

# Execute every notebook headless into build/, with an HTML copy of each.
run: setup
	@mkdir -p build
	COURSE_PROFILE=$(PROFILE) $(BIN)/jupyter nbconvert --to notebook --execute \
	  --ExecutePreprocessor.timeout=-1 --output-dir build $(NOTEBOOKS)
	$(BIN)/jupyter nbconvert --to html --output-dir build $(addprefix build/,$(notdir $(NOTEBOOKS)))

test: setup
	$(JAX) $(UNITS)
	KERAS_BACKEND=tensorflow $(UNITS)
	KERAS_BACKEND=tensorflow $(PYTEST) --nbval-lax notebooks

test-jax: setup
	$(JAX) $(UNITS)
	$(JAX) $(PYTEST) --nbval-lax notebooks

lint: setup
	$(BIN)/python -m pip install -q ruff
	$(BIN)/ruff check course_lib tests

clean:
	rm -rf build .pytest_cache

# What benchmarks/gpu_check.sh needs on a lent GPU machine: Keras's wheels in .whl/ and the
# CIFAR-10 zips in .data/ (both git-ignored); prints their size and the device call to make.
gpu-prep:
	PYTHON=$(PYTHON) bash benchmarks/gpu_prep.sh
