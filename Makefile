# Thin: create the venv and install, then hand over to manage.py / pytest.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean chromium

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first: anything else pulls gigabytes of CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	# langchain-postgres (the benchmarks' peer) pins pgvector<0.4, which the platform cannot use;
	# its v2 PGVectorStore never imports pgvector, so it goes in without its pins (the `bench`
	# extra lists its other dependencies). The smoke test runs it in `make test` too.
	$(PY) -m pip install --quiet --no-deps "langchain-postgres>=0.0.14"
	touch $(STAMP)

run: $(STAMP)
	$(PY) platform/run.py

test: $(STAMP) chromium
	$(PY) -m pytest

# The browser tests drive Debian's Chromium. Install it when missing and apt can (as root);
# otherwise the browser tests are skipped with the reason, and everything else still runs.
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 \
	  || [ "$$(id -u)" != 0 ] || { echo "Installing Chromium for the browser tests ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null || echo "Chromium could not be installed: the browser tests will be skipped."; }

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var/staticfiles

# SIZE=small|default|large
SIZE ?= default
bench: $(STAMP)
	$(PY) benchmarks/run.py --size $(SIZE)
