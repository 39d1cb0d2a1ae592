# Two commands for a new user: `make run` serves the API, `make test` runs the tests.
# Each creates or updates .venv from the requirements files first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run try dev test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

$(VENV)/.bench: requirements.txt requirements-dev.txt requirements-bench.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@ $(VENV)/.dev $(VENV)/.runtime

# A local .env with a random SECRET_KEY and DEBUG on (so the default admin/admin123 works locally), or an empty
# SECRET_KEY of a copied .env.example filled in.
.PHONY: local-env
local-env: | $(VENV)/bin/python
	@$(PY) -m devtools.local_env .env

# When no Redis answers where the service (or the test suite) will look on this machine, start one.
.PHONY: local-redis
local-redis: $(VENV)/.runtime
	@$(PY) -m devtools.local_redis

run: $(VENV)/.runtime local-env local-redis
	PORT=$(PORT) $(VENV)/bin/gunicorn -c gunicorn.conf.py chatbot_project.wsgi

# The service as `make run` starts it, against a stand-in upstream on this machine: answers without a Groq key.
try: $(VENV)/.dev local-env local-redis
	@PORT=$(PORT) $(PY) -m devtools.stand_in

dev: $(VENV)/.runtime local-env local-redis
	$(PY) manage.py upgraderediskeys
	$(PY) manage.py ensureadmin
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

# The browser tests drive Debian's chromium with Playwright: no browser is downloaded. As root (as in CI) a
# missing chromium is installed with apt-get; otherwise the tests skip and say what to install.
.PHONY: chromium
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium for the browser tests (apt-get)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# tests/test_nginx.py runs deploy/nginx.conf with Debian's nginx (on loopback ports of its own, never as a service):
# as root a missing nginx is installed with apt-get, without starting it; otherwise those tests skip.
.PHONY: nginx
nginx:
	@if [ ! -x /usr/sbin/nginx ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing nginx for the reverse-proxy tests (apt-get)..."; \
		apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	fi

# The suites that use Redis run on one Redis, a Redis Cluster and a Sentinel setup (tests/conftest.py), in
# TEST_WORKERS processes (pytest-xdist; most tests wait on sockets rather than use a core, and each module stays in
# one process with the servers it starts); then the tests that time something, alone.
TEST_WORKERS ?= 4
test: $(VENV)/.dev chromium nginx
	@$(PY) -m devtools.local_redis $${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
	$(PY) -m pytest --redis-topologies=all -m "not timed" -n $(TEST_WORKERS) --dist loadscope
	$(PY) -m pytest --redis-topologies=all -m timed

# The fake upstream, the service under gunicorn.conf.py and a load generator, all on this machine (about 15 minutes);
# a local Redis is installed and started when none answers. BENCH_ARGS=--quick for a short try.
bench: $(VENV)/.bench
	@$(PY) -m devtools.local_redis redis://127.0.0.1:6379/0
	$(PY) -m bench.run $(BENCH_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache staticfiles
