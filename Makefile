# Two commands for a new user: `make run` serves the API, `make test` runs the tests.
# Each creates or updates .venv from the requirements files first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run dev test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# A local .env with a random SECRET_KEY and DEBUG on (so the default admin/admin123 works locally).
.env: | $(VENV)/bin/python
	@$(PY) -c "import secrets; print('# Local development settings (never commit this file).'); \
	print('SECRET_KEY=' + secrets.token_urlsafe(48)); print('DEBUG=true')" > .env
	@echo "Wrote .env with a random SECRET_KEY and DEBUG=true."

run: $(VENV)/.runtime .env
	PORT=$(PORT) $(VENV)/bin/gunicorn -c gunicorn.conf.py chatbot_project.wsgi

dev: $(VENV)/.runtime .env
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

test: $(VENV)/.dev chromium
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache staticfiles
