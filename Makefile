# The README's two commands: `make run` serves the index, `make test` runs the tests.
# Both set up their own virtual environment from the pinned requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# HOST, PORT, WORKERS and THREADS given on the make command line override the INDEX_* settings
# (only there: a HOST variable in the shell's environment is not taken for an address).
SERVE_ENV := $(foreach var,HOST PORT WORKERS THREADS,$(if $(filter command line,$(origin $(var))),INDEX_$(var)=$($(var))))

.PHONY: run dev cert self-check test fuzz venv clean-venv

# Two stages: `make run` needs only the runtime requirements (and the `docker-index` command,
# installed editable from this checkout); `make test` adds the test tools on top.
venv: $(VENV)/.dev-installed

$(VENV)/.runtime-installed: requirements.txt pyproject.toml index/version.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Production server: checks the settings (one clear line and exit 2 when one is bad), then
# gunicorn with several workers (the store is safe across processes), long timeouts for big
# layer uploads, TLS when INDEX_TLS_CERT/INDEX_TLS_KEY are set, graceful stop on SIGTERM.
run: $(VENV)/.runtime-installed
	$(SERVE_ENV) exec $(BIN)/docker-index serve

# Flask's development server with the reloader.
dev: $(VENV)/.runtime-installed
	$(SERVE_ENV) $(BIN)/python app.py --debug

# A self-signed certificate in ./certs for a test rig; prints how to make docker trust it.
cert: $(VENV)/.runtime-installed
	$(BIN)/docker-index cert $(CERT_ARGS)

# Runs the docker client's index flows against a running index: make self-check URL=... USER_NAME=...
self-check: $(VENV)/.runtime-installed
	$(BIN)/docker-index self-check $(or $(URL),http://127.0.0.1:5000) --username $(or $(USER_NAME),selfcheck)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Longer schemathesis and hypothesis runs than `make test` does (CI runs this after the tests).
FUZZ_EXAMPLES ?= 100
PROPERTY_EXAMPLES ?= 1000
fuzz: $(VENV)/.dev-installed
	INDEX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) INDEX_PROPERTY_EXAMPLES=$(PROPERTY_EXAMPLES) \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/security/test_fuzz.py tests/security/test_properties.py

clean-venv:
	rm -rf $(VENV)

# HTTP workloads (push/pull handshakes, login, search) beside the /v1/_ping ceiling, against a
# server started as `make run` starts it; see bench/README.md. Shorter: BENCH_ARGS="--duration 3".
.PHONY: bench
bench: $(VENV)/.dev-installed
	$(BIN)/python bench/http_bench.py $(BENCH_ARGS)
