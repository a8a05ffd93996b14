# Sluice: `make run` serves the app, `make test` runs every test, `make stack` runs the local
# production stack (nginx, two Sluice processes, PostgreSQL, Redis). All set everything up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run tune-once test stack nginx setup setup-dev prepare bench gpu-cuda clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip builds llama-cpp-python from source the first time (~10 min on 2 cores) and caches the wheel.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

prepare: setup
	$(BIN)/python manage.py migrate --no-input -v 0
	$(BIN)/python manage.py collectstatic --no-input -v 0
	$(BIN)/python manage.py prepare_model
	$(BIN)/python manage.py ensure_admin

# The first run on a machine measures it (manage.py tune, at most about 3 minutes) unless a
# tuning file matches this model and CPU; SLUICE_TUNE=0 skips that, and so does CI.
SLUICE_TUNE ?= 1

run: prepare tune-once
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

tune-once: prepare
	@if [ "$(SLUICE_TUNE)" = "0" ] || [ "$$CI" = "true" ]; then echo "Tuning skipped (SLUICE_TUNE=0 or CI)."; \
	else $(BIN)/python manage.py tune --if-needed || echo "Tuning failed: serving with the defaults."; fi

test: setup-dev nginx
	command -v chromium || (apt-get update && apt-get install -y chromium chromium-driver)  # browser tests: Debian's Chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Debian's nginx for the stack; RUNLEVEL=1 keeps the package from starting a system-wide nginx.
nginx:
	test -x /usr/sbin/nginx || (apt-get update && RUNLEVEL=1 apt-get install -y nginx-light)

# nginx on a free port in front of two Sluice processes (SLUICE_N_THREADS = cores / 2), a fresh
# PostgreSQL database and a private Redis; prints the URL, an API key and an admin password.
# Ctrl-C stops all of it and drops the database. SLUICE_* variables reach the processes.
stack: setup nginx
	$(BIN)/python -m deploy.localstack

# Sluice against the alternatives (issue 16; bench/compare_bench.py, docs/benchmarks.md): 12-15 min
# on a quiet 2-core machine; results in bench/results/compare.json, plots in docs/bench/.
# BENCH_ARGS=--quick for a 2-minute smoke run (written beside, not over, the full results).
bench: setup-dev
	$(BIN)/python manage.py prepare_model
	$(BIN)/python bench/compare_bench.py $(BENCH_ARGS)

# Rebuild llama-cpp-python with CUDA offload (then set SLUICE_N_GPU_LAYERS=-1).
gpu-cuda: setup
	CMAKE_ARGS="-DGGML_CUDA=on" $(BIN)/pip install --no-cache-dir --force-reinstall --no-deps llama-cpp-python==0.3.36

clean:
	rm -rf $(VENV) var
