# The two commands: `make demo` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLBACKEND := Agg

.PHONY: demo test lint run bench venv clean soak fuzz

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

# Production-style on one machine: Daphne, a Celery worker and celery beat as separate
# processes (Procfile), on the PostgreSQL and Redis named by DATABASE_URL and REDIS_URL.
run: $(STAMP)
	@test -n "$$DATABASE_URL" -a -n "$$REDIS_URL" || { echo "make run needs DATABASE_URL and REDIS_URL"; exit 1; }
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	@# Metrics files of processes from an earlier run (docs/deploy.md, "Metrics").
	metrics="$${PROMETHEUS_MULTIPROC_DIR:-$${RPM_VAR_DIR:-var}/metrics}"; \
		if [ -d "$$metrics" ]; then find "$$metrics" -maxdepth 1 -name '*.db' -delete; fi
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

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

# Every benchmark; each prints its figures and ends with one JSON line. The server
# benchmarks need PostgreSQL and Redis (defaults: this machine's, as in .ci/run).
BENCH_DB ?= postgres://postgres@127.0.0.1:5432/rpm
BENCH_REDIS ?= redis://127.0.0.1:6379/0
bench: $(STAMP)
	$(BIN)/python bench/ecg_speed.py
	$(BIN)/python bench/ecg_accuracy.py
	$(BIN)/python bench/qkd.py
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DB)} REDIS_URL=$${REDIS_URL:-$(BENCH_REDIS)} \
		$(BIN)/python bench/ingest.py
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DB)} REDIS_URL=$${REDIS_URL:-$(BENCH_REDIS)} \
		$(BIN)/python bench/alert_latency.py
	DATABASE_URL=$${DATABASE_URL:-$(BENCH_DB)} REDIS_URL=$${REDIS_URL:-$(BENCH_REDIS)} \
		$(BIN)/python bench/batch_cost.py

# Faults at soak size: 100,000 readings through worker kills and restarts of Redis,
# Daphne and PostgreSQL (throwaway servers of its own), then the exactly-once checks.
soak: $(STAMP)
	$(BIN)/python bench/soak.py

# The schema fuzzing of the suite, longer and over every operation.
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL DEBUG=true FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/pytest -p no:cacheprovider tests/test_schemathesis.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
