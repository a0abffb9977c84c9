PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?= -q
SERVICES_DIR ?= $(or $(SAAS_SERVICES_DIR),/tmp/saas-test-services)

.PHONY: venv dev-deps run serve worker test test-fast lint-docker bench clean

venv: $(VENV)/.installed-runtime

dev-deps: $(VENV)/.installed-dev

# Debian's python3 ships without ensurepip; install python3-venv when root and it is missing.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); [ "$$(id -u)" -eq 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
		$(PYTHON) -m venv $(VENV); }

$(VENV)/.installed-runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

# No DATABASE_URL/REDIS_URL needed: the app defaults to SQLite under instance/ and inline jobs.
run: venv
	mkdir -p instance
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/flask run --host 127.0.0.1 --port 8000

serve: venv
	mkdir -p instance
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

# Queues high, default, low in that order, with the retry scheduler; needs REDIS_URL.
worker: venv
	$(VENV)/bin/python -m saas.worker

# One shell, so the trap stops the services whatever happens and pytest's status is kept.
test: dev-deps
	@export SAAS_SERVICES_DIR="$(SERVICES_DIR)"; \
	trap 'bash scripts/test-services.sh stop' EXIT; trap 'exit 130' INT TERM; \
	bash scripts/test-services.sh start || exit $$?; \
	. "$(SERVICES_DIR)/env"; \
	status=0; $(VENV)/bin/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# The tests that need neither PostgreSQL nor Redis: config, schemas, the gate, SQLite API flows.
test-fast: dev-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m "not services"

lint-docker: dev-deps
	$(VENV)/bin/hadolint Dockerfile

bench: venv
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) instance/*.db .pytest_cache .hypothesis .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
