# The two commands a newcomer needs: `make run` and `make test`. Both install what is missing into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint fuzz bench install clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/alliance serve --demo --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check app tests alembic bench partners
	$(BIN)/ruff format --check app tests alembic bench partners
	$(BIN)/mypy

fuzz: $(INSTALLED)
	$(BIN)/python -m pytest -m fuzz $(PYTEST_ARGS)

bench: $(INSTALLED)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .alliance .pytest_cache .mypy_cache .ruff_cache
