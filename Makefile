# The README's two commands: `make run` serves the index, `make test` runs the tests.
# Both set up their own virtual environment from the pinned requirements first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# HOST, PORT, WORKERS and THREADS given on the make command line override the INDEX_* settings
# (only there: a HOST variable in the shell's environment is not taken for an address).
SERVE_ENV := $(foreach var,HOST PORT WORKERS THREADS,$(if $(filter command line,$(origin $(var))),INDEX_$(var)=$($(var))))

.PHONY: run dev cert self-check test test-fast lint fuzz venv clean-venv

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

# Production server: checks the settings (one clear line and exit 2 when one is bad), builds the
# app once, then granian with several workers (the store is safe across processes): slow clients
# cut off by INDEX_HEADER_TIMEOUT / INDEX_MIN_BODY_RATE, TLS when INDEX_TLS_CERT/INDEX_TLS_KEY are
# set, graceful stop on SIGTERM.
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

# The pure and in-process tests only, spread over the machine's cores: a quick check while
# working (about half a minute on an idle 2-core machine); `make test` runs everything. Left out:
# tests that start processes (live), fuzzing (fuzz, whose modules are not even collected: building
# schemathesis's tests alone costs seconds, and so its plugins stay unloaded), checks at scale
# (slow), and every case but the first of a parametrized test (a case's cost is mostly its fresh app).
FAST_ARGS := -m "not live and not fuzz and not slow" --first-case-only -p no:cacheprovider \
	--ignore=tests/security/test_fuzz.py --ignore=tests/security/test_properties.py \
	-p no:schemathesis -p no:hypothesispytest -p no:anyio
# The tests' data dirs go to memory (/dev/shm) where there is one: every write of the store is
# fsynced, and on a busy disk those waits, not the CPU, made most of the run (kill -9 trials in
# `make test` check durability on a real disk). This checkout's own folder, removed afterwards.
FAST_TMP := $(if $(wildcard /dev/shm/.),/dev/shm/docker-index-test-fast-$(shell printf %s "$(CURDIR)" | cksum | cut -d" " -f1))
test-fast: venv
	$(BIN)/python -m pytest -q $(FAST_ARGS) -n auto $(if $(FAST_TMP),--basetemp=$(FAST_TMP)) $(PYTEST_ARGS); \
		status=$$?; $(if $(FAST_TMP),rm -rf $(FAST_TMP);) exit $$status

# ruff (style, imports, likely bugs) over everything, mypy (strict) over index/; pyproject.toml
# holds both configurations.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# Longer schemathesis and hypothesis runs than `make test` does (CI runs this after the tests).
FUZZ_EXAMPLES ?= 100
PROPERTY_EXAMPLES ?= 1000
fuzz: $(VENV)/.dev-installed
	INDEX_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) INDEX_PROPERTY_EXAMPLES=$(PROPERTY_EXAMPLES) \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/security/test_fuzz.py tests/security/test_properties.py

clean-venv:
	rm -rf $(VENV)

# Issue 18's figures in one run: the trivial-Flask ping under each candidate server (gunicorn,
# granian) interleaved with the index's own requests under `make run` (push and pull handshakes,
# login, search, new-image pushes), then slow clients against each; see bench/README.md.
# Then part 4: memory per worker, start-up, search and announce/merge at 100 and 100,000
# repositories side by side (bench/memory_scale.py; the short run compares 100 and 10,000).
# `make bench` takes about 5 minutes plus the memory run, `make bench-short` about 2;
# BENCH_ARGS and MEMORY_ARGS add options.
.PHONY: bench bench-short
bench: $(VENV)/.dev-installed
	$(BIN)/python bench/serving_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/memory_scale.py $(MEMORY_ARGS)

bench-short: $(VENV)/.dev-installed
	$(BIN)/python bench/serving_bench.py --short $(BENCH_ARGS)
	$(BIN)/python bench/memory_scale.py --sizes 100,10000 --samples 50 $(MEMORY_ARGS)
