# The README's two commands: `make run` serves the index, `make test` runs the tests.
# Both set up their own virtual environment from the pinned requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2
THREADS ?= 4

.PHONY: run dev test venv clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Production server: several workers (the store is safe across processes), long timeout so a big
# layer upload is not cut off, graceful stop on SIGTERM.
run: venv
	$(BIN)/gunicorn --bind $(HOST):$(PORT) --workers $(WORKERS) --threads $(THREADS) \
		--timeout 900 --graceful-timeout 30 --access-logfile - wsgi:app

# Flask's development server with the reloader.
dev: venv
	$(BIN)/python app.py --host $(HOST) --port $(PORT) --debug

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# HTTP workloads (push/pull handshakes, login, search) beside the /v1/_ping ceiling, against a
# server started as `make run` starts it; see bench/README.md. Shorter: BENCH_ARGS="--duration 3".
.PHONY: bench
bench: venv
	$(BIN)/python bench/http_bench.py $(BENCH_ARGS)
