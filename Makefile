# The same commands README shows. `make run` and `make test` work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-sqlite test-pg lint audit bench bench-hl7 clean

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

# Known vulnerabilities in the installed packages (PyPI advisories). Best effort: when the
# advisory service cannot be reached (offline machine) it says so and does not fail.
audit: install
	@out=$$(timeout 300 $(VENV)/bin/pip-audit --local --skip-editable --progress-spinner off 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ] && printf '%s' "$$out" | grep -qiE 'ConnectionError|ProxyError|Max retries|NewConnectionError|ConnectTimeout|ReadTimeout|Name or service not known|Temporary failure in name resolution|Network is unreachable' || [ $$rc -eq 124 ]; then \
	  echo "pip-audit: advisory service not reachable, skipped (not a failure)"; exit 0; fi; \
	printf '%s\n' "$$out" | tail -n 40; exit $$rc

bench: install
	$(PY) bench/run.py

# HL7 v2 over MLLP beside the FHIR endpoint on the same encounters (a few minutes).
bench-hl7: install
	$(PY) -m bench.hl7

clean:
	rm -rf $(VENV) node_modules server/static/vendor var
