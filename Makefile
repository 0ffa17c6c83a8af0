# The two commands: `make run` serves the API + admin on :3100, `make test` runs the suite.
PYTHON ?= python3
# Every target here is for development (production runs the image): ask for it explicitly,
# since the settings default to production. DEBUG=false in the environment still wins.
export DEBUG ?= true
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint format check-migrations ci clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

## run: install, make keys, migrate, ensure a staff login, serve on http://127.0.0.1:3100
run: $(VENV)/.installed
	$(BIN)/python manage.py generate_keys --if-missing
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_staff
	$(BIN)/python manage.py serve

## test: install test tools and run the whole suite (on DATABASE_URL / REDIS_URL when set)
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: style, the import contract (layers, no cycles; docs/architecture.md) and types
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tests.architecture.layers
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-migrations: $(VENV)/.installed
	$(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache staticfiles
