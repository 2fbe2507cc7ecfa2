# hemolab: one command per job. Every target that needs Python sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hemolab-installed
# Both cores for the test suite (JAX never forks: xdist workers are spawned processes); each
# worker then keeps one XLA host device (the tracer-leak lane runs the two-device path).
WORKERS ?= 2
ONE_DEVICE := HEMOLAB_HOST_DEVICES=1

.PHONY: install demo test test-fast bench lint typecheck lock clean lane-tracer lane-devices

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hemolab needs Python 3.11+ (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev,peers,ray,web]"
	touch $(STAMP)

install: $(STAMP)
	@test -x /usr/bin/chromium || if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; else echo "warning: Debian's chromium is missing (the browser tests need /usr/bin/chromium): run 'sudo apt-get install -y chromium'" >&2; fi

demo: install
	$(BIN)/hemolab demo

test: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pyright
	# Ray in a process of its own, first (coverage appended by the main lane): a test worker
	# that had started Ray segfaulted in later tests (design note 010)
	$(ONE_DEVICE) $(BIN)/python -m pytest -q -p no:cacheprovider -m ray --cov --cov-report= \
		--cov-fail-under=0 tests/test_ray_backend.py
	$(ONE_DEVICE) $(BIN)/python -m pytest -n $(WORKERS) --dist worksteal --cov --cov-append \
		--cov-report=term --durations=25
	# two one-process lanes side by side (one core each), their outputs kept apart
	$(MAKE) --no-print-directory -j2 -Otarget lane-tracer lane-devices
	# SBML Test Suite conformance: every shared case, two spawned workers (design note 007);
	# compile-bound, so LLVM's optimisation level 0 (25 % less time per case; note 025)
	XLA_FLAGS="$(XLA_FLAGS) --xla_backend_optimization_level=0" \
		$(BIN)/python -m pytest -q -p no:cacheprovider -m conformance tests/test_sbml_conformance.py

# the tracer-leak lane (STYLE.md): the solver loop and triggers under JAX's leak checker
lane-tracer:
	JAX_CHECK_TRACER_LEAKS=1 $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/test_solver_ode.py tests/test_triggers.py tests/test_sensitivities.py

# calibration split over two host devices equals the one-device run
lane-devices:
	$(BIN)/python -m pytest -q -p no:cacheprovider -m devices tests/test_calibrate_devices.py

test-fast: install
	$(ONE_DEVICE) $(BIN)/python -m pytest -n $(WORKERS) --dist worksteal -m "not slow"

bench: install
	$(BIN)/python bench/run.py all
	$(BIN)/python bench/population_stream.py

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/pyright

# Regenerate the pinned versions after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v "^-e " | grep -v "^pip==" > requirements.lock

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
