# The same commands README shows. `make run` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-sqlite test-pg lint bench clean

install: $(STAMP) server/static/vendor/htmx.min.js

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

# htmx comes from the npm registry, pinned by package-lock.json, served from our origin.
server/static/vendor/htmx.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p server/static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js server/static/vendor/htmx.min.js

run: install
	$(VENV)/bin/chartdesk demo

test: install
	$(VENV)/bin/pytest

test-sqlite: install
	CHARTDESK_TEST_DB=sqlite $(VENV)/bin/pytest

test-pg: install
	CHARTDESK_TEST_DB=postgresql $(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy server

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) node_modules server/static/vendor var
