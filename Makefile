# Two commands do all the set-up: `make run` (the app) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run serve test test-fast lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

# `make run ADDRESS=0.0.0.0` serves the machine's network (a classroom LAN), not only this machine.
ADDRESS ?= 127.0.0.1
run: $(VENV)/.run-deps
	$(PY) -m densenet_viz.app.launch --server.address $(ADDRESS) --server.port $${PORT:-8501}

# Several app processes behind HAProxy (cookie affinity): `make serve REPLICAS=4 PORT=8600 ADDRESS=0.0.0.0`.
# REPLICAS defaults to one per usable core (CPU affinity and cgroup quota, as the app's worker pools count them).
# STORE=redis://host:6379/0 keeps class mode's classes in Redis (default: one SQLite file on this machine).
SERVE_PORT ?= $(or $(PORT),8501)
serve: $(VENV)/.run-deps
	$(PY) deploy/serve.py $(if $(REPLICAS),--replicas $(REPLICAS)) --port $(SERVE_PORT) --address $(ADDRESS) \
		$(if $(STORE),--store $(STORE))

# The suite in TEST_WORKERS processes (pytest-xdist; `make test TEST_WORKERS=0` runs it in this one), each test file
# whole in one of them (its module fixtures, servers and states stay together). The browser tests mostly wait on
# the app server, so two processes finish the suite in about 0.6 of the time on a 2-core machine.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)
test: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_PARALLEL)

# Before each commit: ruff and every test that needs neither a browser nor a server of its own (a few minutes).
test-fast: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow and not browser" -q

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .

bench: $(VENV)/.run-deps
	$(PY) -m densenet_viz.bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
