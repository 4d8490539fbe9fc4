# payops — every install step lives here; `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SANDBOX_PORT ?= 12111
PYTEST_ARGS ?=
# test workers (pytest-xdist): one per core; each has its own databases, ports, folders and sandbox
PYTEST_WORKERS ?= auto
CHROMIUM ?= /usr/bin/chromium
APT_CHROMIUM := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
SSH_KEYGEN ?= ssh-keygen
APT_OPENSSH := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-client >/dev/null

.DEFAULT_GOAL := help

.PHONY: help install openssh browser demo incident-demo lab test test-nb lint bench sandbox clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) openssh ## create .venv and install payops (editable) with its dev tools

openssh: ## OpenSSH's ssh-keygen, which signs and verifies approvals (apt-get as root when missing)
	@command -v $(SSH_KEYGEN) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing OpenSSH's ssh-keygen (approvals are signed and verified with it)"; \
	    $(APT_OPENSSH) || { apt-get update -q >/dev/null && $(APT_OPENSSH); }; \
	  fi; \
	  command -v $(SSH_KEYGEN) >/dev/null || { \
	    echo "ssh-keygen not found: install OpenSSH >= 8.9 (Debian: openssh-client) or set PAYOPS_SSH_KEYGEN"; exit 1; }; }

browser: ## Debian's chromium for the report's browser test (apt-get as root; never a browser download)
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (the report's browser test)"; \
	    $(APT_CHROMIUM) || { apt-get update -q >/dev/null && $(APT_CHROMIUM); } \
	      || { echo "apt-get could not install chromium: the browser test will skip (fail under CI=true)"; test "$$CI" != true; }; \
	  else echo "no $(CHROMIUM) and no root apt-get: the browser test will skip (fail under CI=true)"; fi; }

demo: install ## the manual payout SOP end to end offline (sandbox + SQLite + local Slack/SMTP), ending with a rehearsal
	$(PY) -m payops.demo

incident-demo: install ## a checkout incident offline from alert to close (sandbox, receiver, moto S3, local Redis+RabbitMQ)
	$(PY) -m payops.incident.demo

test: install browser ## run every test (unit, database on SQLite and PostgreSQL, notebooks via nbval, e2e)
	@# byte-compiled once here: hundreds of test processes would each compile payops again (PYTHONDONTWRITEBYTECODE)
	@$(PY) -m compileall -q -j 0 lib tests >/dev/null
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-nb: install ## execute the runbook notebooks against the sandbox and validate them with nbval
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=25 tests/notebooks $(PYTEST_ARGS)

lint: install ## ruff over the library, tests and benchmarks
	$(VENV)/bin/ruff check lib tests bench scripts

bench: install ## run the benchmarks; numbers go to bench/results/
	$(PY) -m bench

LAB_PORT ?= 8888
lab: install ## JupyterLab on runbooks/ and notebooks/ (127.0.0.1, token printed; LAB_PORT=8888)
	$(VENV)/bin/payops lab --port $(LAB_PORT)

sandbox: install ## run the Stripe sandbox (demo seed) with the Slack and SMTP sinks, in the foreground
	$(VENV)/bin/payops sandbox serve --port $(SANDBOX_PORT) --seed demo

clean: ## remove the venv, local database and outputs
	rm -rf $(VENV) var outputs .pytest_cache .ruff_cache
