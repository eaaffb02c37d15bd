# Two commands do everything: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
BUNDLE := web/static/dist/app.js
JS_SOURCES := $(wildcard web/static/src/*.js)
# Debian packages the test suite drives for real.
# webkit2gtk-driver + xvfb + xauth: the guest pages in WebKit (Safari's engine), headless under xvfb-run.
TEST_DEBS := chromium redis-server postgresql webkit2gtk-driver xvfb xauth
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest messages screenshots system-node system-test clean

run: $(VENV)/.installed $(BUNDLE)
	$(BIN)/tsunagu db upgrade
	$(BIN)/tsunagu demo
	LOG_FORMAT=$${LOG_FORMAT:-console} HOST=$(HOST) PORT=$(PORT) exec $(BIN)/tsunagu serve

test: system-test $(VENV)/.installed-test $(BUNDLE)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint typecheck pytest; status=$$?; \
	echo "make test: total runtime $$(( $$(date +%s) - start )) s"; exit $$status

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

# The suite runs in a fresh network namespace that has only loopback (see README.md, "Two commands"), as two
# pytest processes side by side, the browser tests and the others (scripts/suite.py); PYTEST_ARGS: one run.
pytest:
	unshare --net -- sh -c 'ip link set lo up && exec $(BIN)/python -m scripts.suite $(PYTEST_ARGS)'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is needed ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json | system-node
	npm ci --no-audit --no-fund
	touch $@

$(BUNDLE): node_modules/.installed $(JS_SOURCES)
	npm run --silent build

# Node.js and npm build the browser bundle.
system-node:
	@command -v npm >/dev/null || scripts/apt-install nodejs npm

system-test: system-node
	@scripts/apt-install $(TEST_DEBS)

# Photograph a real call for README.md (docs/screenshots/), on loopback only like the tests.
screenshots: system-test $(VENV)/.installed-test $(BUNDLE)
	unshare --net -- sh -c 'ip link set lo up && exec $(BIN)/python -m scripts.screenshots'

# Refresh the message catalogue after changing UI strings.
messages: $(VENV)/.installed-test
	mkdir -p var
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k InvalidInput -k Conflict -k NotFound -k Forbidden \
		-k RateLimited:2 -k t --no-location --omit-header -w 200 -o var/messages.pot .
	$(BIN)/pybabel update -i var/messages.pot -d web/locale -l ja -w 200 --ignore-obsolete

clean:
	rm -rf $(VENV) node_modules web/static/dist
