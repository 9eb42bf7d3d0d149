# `make demo` and `make test` work on a fresh clone: both create .venv and install the pinned stack first.
# The stack is installed by uv (pinned below, bootstrapped with the venv's own pip) from the same constraints.txt:
# the resulting `pip freeze` is identical to a plain pip install of it, in well under a minute instead of ~4.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9
# Two pytest-xdist workers (the machines have 2 cores); tests/conftest.py says how tests are grouped onto them.
PYTEST_WORKERS ?= 2
PYTEST_XDIST   := -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder

.PHONY: install demo test test-all bench clean browser

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/crmscore demo

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_XDIST)

test-all: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m ""

# Headless Chromium for the browser tests of the HTML report (tests/browser), from the Debian packages when missing
# (root on these machines; never `playwright install`, its download host is unreachable). See ../shared/stack_notes.md.
CHROMIUM ?= /usr/lib/chromium/chromium
browser:
	@test -x $(CHROMIUM) || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends chromium fonts-dejavu-core; }
	@$(CHROMIUM) --version

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .crmscore .pytest_cache
