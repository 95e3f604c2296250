# Two commands set everything up: `make run` and `make test`. Both create .venv and install the pinned packages.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install run test lint bench lock clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	bin/run

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# make bench: 1,000,000 logs; make bench ARGS=--quick (100,000) or ARGS=--large (adds 10,000,000).
bench: install
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) var
