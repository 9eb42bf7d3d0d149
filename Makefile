# `make demo` and `make test` work on a fresh clone: both create .venv and install the pinned stack first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all bench clean browser

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/crmscore demo

test: $(STAMP) browser
	$(BIN)/python -m pytest

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -m ""

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
