# The two commands: `make demo` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg

.PHONY: demo test lint unit integration run bench venv clean

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Sets everything up on the embedded default and serves HTTPS on 127.0.0.1:8443.
demo: $(STAMP)
	DEBUG=true $(BIN)/python manage.py migrate --noinput -v0
	DEBUG=true $(BIN)/python manage.py demo --port 8443

lint: $(STAMP)
	$(BIN)/ruff check .

# Unit and feature tests on the embedded default (SQLite, in-process everything);
# then, when DATABASE_URL and REDIS_URL are set, the whole suite again on PostgreSQL
# with the integration suite against real Redis, Celery worker and Daphne processes.
test: lint $(STAMP)
	env -u DATABASE_URL -u REDIS_URL DEBUG=true $(BIN)/pytest -m "not integration" -p no:cacheprovider
ifneq ($(strip $(DATABASE_URL)),)
	env -u REDIS_URL DEBUG=true TEST_REDIS_URL="$(REDIS_URL)" DATABASE_URL="$(DATABASE_URL)" \
		$(BIN)/pytest -p no:cacheprovider
else
	@if [ "$$CI" = "true" ]; then echo "CI=true but DATABASE_URL/REDIS_URL are not set: the integration suite cannot be skipped in CI"; exit 1; fi
	@echo "Integration suite skipped: set DATABASE_URL (PostgreSQL) and REDIS_URL (Redis) to run it."
endif

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
