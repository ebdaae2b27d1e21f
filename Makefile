# Every target makes the virtual environment itself, so a fresh clone needs only python3 >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: all venv run test lint mypy bench lock clean

all: lint test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

## run: the daemon with the example channel file (etc/channels.yaml), state in ./state
run: venv
	$(BIN)/notifierd --config etc/channels.yaml --state-dir state

## test: the whole test suite (unit and real-process tests)
test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: intake, end-to-end and backlog benchmarks (prints one table); the PostgreSQL ones on
## BENCH_STORE_URL (empty: left out)
BENCH_STORE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
bench: venv
	$(BIN)/python -m bench $(if $(BENCH_STORE_URL),--store-url $(BENCH_STORE_URL))

## lock: pin every dependency of the image, with hashes, in requirements.lock (from PyPI itself,
## whatever index or local wheels this machine's pip is set up with); the postgresql extra too,
## so that one image serves a SQLite or a PostgreSQL store
lock: venv
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_CONSTRAINT= $(BIN)/pip-compile --quiet \
		--generate-hashes --all-build-deps --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --index-url https://pypi.org/simple --extra postgresql \
		--output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) state .mypy_cache .ruff_cache .pytest_cache
