# Two commands do everything on a fresh machine: `make run` and `make test`.
PORT ?= 3001
HOST ?= 127.0.0.1
# Web processes (uvicorn --workers): `make run WORKERS=2`.
WORKERS ?= 1
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: run test test-embedded test-server venv migrate worker beat web lint prod-check bench bench-gateway clean

# requirements.txt is the runtime (the Docker image); requirements-dev.txt adds tests and tools.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

migrate: venv
	$(PY) manage.py migrate --noinput -v 0

# The whole service on this machine: web (uvicorn, WORKERS processes), Celery worker with beat, demo providers.
run: migrate
	PORT=$(PORT) AFMTS_DEMO=$${AFMTS_DEMO-1} $(PY) manage.py bootstrap
	AFMTS_DEMO=$${AFMTS_DEMO-1} $(PY) manage.py serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# Server mode runs these as separate processes (several web replicas, many workers, one beat).
web: migrate
	$(PY) manage.py serve --no-worker --host $(HOST) --port $(PORT) --workers $(WORKERS)
worker: venv
	$(VENV)/bin/celery -A afmts worker -l info
beat: venv
	$(VENV)/bin/celery -A afmts beat -l info

# The suite on the embedded default (SQLite), then on PostgreSQL + Redis. In CI (CI=true) the
# second pass always runs and fails if they are unreachable; elsewhere it runs when they answer.
test: venv
	$(MAKE) --no-print-directory test-embedded
	@if [ "$$CI" = "true" ] || $(PY) -m afmts.probe "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"; then \
		$(MAKE) --no-print-directory test-server; \
	else echo "server-mode pass skipped: PostgreSQL/Redis not reachable (CI=true forces it)"; fi

# Background writers that tests drive by hand (key usage, usage records) wait long enough not to run on their own.
# The fake providers play hosted kinds on 127.0.0.1: private upstreams allowed (tests/conftest.py sets it too).
TEST_ENV := AFMTS_KEY_USAGE_FLUSH_SECONDS=3600 AFMTS_USAGE_FLUSH_SECONDS=3600 AFMTS_ALLOW_PRIVATE_UPSTREAMS=1

test-embedded: venv
	env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL $(TEST_ENV) AFMTS_DATA_DIR=$(CURDIR)/data/test-embedded \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

test-server: venv
	$(TEST_ENV) DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) AFMTS_ALLOW_GENERATED_SECRETS=1 \
		AFMTS_DATA_DIR=$(CURDIR)/data/test-server $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

# `check --deploy` with the settings docker/compose.yml gives production (server mode, DEBUG off,
# AFMTS_HTTPS on, real-looking secrets): fails on any warning.
PROD_ENV := DEBUG=0 AFMTS_HTTPS=1 SECURE_HSTS_PRELOAD=1 ALLOWED_HOSTS=afmts.example.com CSRF_TRUSTED_ORIGINS=https://afmts.example.com \
	DATABASE_URL=postgres://afmts:afmts@127.0.0.1:5432/afmts REDIS_URL=redis://127.0.0.1:6379/0 \
	AFMTS_DATA_DIR=$(CURDIR)/data/prod-check
prod-check: venv
	env $(PROD_ENV) SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
		FERNET_KEYS="$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
		$(PY) manage.py check --deploy --fail-level WARNING

bench: migrate
	$(PY) bench/find.py

# The gateway beside LiteLLM and Portkey in one run (installs nginx, wrk, LiteLLM's venv and Portkey's
# npm package on first use); BENCH_ARGS="--quick" for a smoke run.
BENCH_ARGS ?=
bench-gateway: venv
	$(PY) bench/gateway.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data staticfiles
