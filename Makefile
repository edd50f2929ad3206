# The same commands README shows. `make run` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-sqlite test-pg lint audit bench bench-claims bench-hl7 bench-pages bench-reports screenshots clean

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

# alembic check: the models and the migrations describe the same schema (a throwaway SQLite).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy server
	$(VENV)/bin/bandit -q -r server -ll
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	  CHARTDESK_DATABASE_URL="sqlite:///$$d/lint.db" $(VENV)/bin/alembic upgrade head && \
	  CHARTDESK_DATABASE_URL="sqlite:///$$d/lint.db" $(VENV)/bin/alembic check

# Known vulnerabilities in the installed packages (PyPI advisories). Says how many packages
# it checked and names those it could not; offline (advisory service unreachable) it does
# not fail, a known vulnerability in a checked package does. See tools/dependency_audit.py.
audit: install
	$(PY) tools/dependency_audit.py

# README's screenshots (docs/*.png), taken by the browser test at 1366x768.
screenshots: install
	CHARTDESK_SCREENSHOTS=docs CHARTDESK_TEST_DB=postgresql $(VENV)/bin/pytest -q tests/test_screenshots.py

bench: install
	$(PY) bench/run.py

# Claims only: Next beside the bare SKIP LOCKED loop and the minimal FastAPI app (issue 23).
bench-claims: install
	$(PY) bench/claims.py --profile

# HL7 v2 over MLLP beside the FHIR endpoint on the same encounters (a few minutes).
# Server time of every page on the demo data (bench/results/pages-latest.md).
bench-pages: install
	$(PY) -m bench.pages

bench-hl7: install
	$(PY) -m bench.hl7

# Dashboard figures (productivity, throughput, case-mix, DNFB) at 1M work items and the
# compliance activity at 10M audit events, beside the same SQL in psql
# (bench/results/reports-latest.md).
bench-reports: install
	$(PY) -m bench.reports

clean:
	rm -rf $(VENV) node_modules server/static/vendor var
