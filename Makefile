# Two entry points: `make reproduce` (the article's figures) and `make test` (the whole suite).
# Both create the virtual environment on first use, with torch pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= article-figures
STAMP := $(VENV)/.gdscope-installed

.PHONY: reproduce test lint bench venv clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/gdscope reproduce --out $(OUT) --force

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_loss_map.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
