# Two entry points: `make reproduce` (the article's figures) and `make test` (the whole suite;
# `make test-fast` leaves out the tests marked slow, browser and ray).
# Both create the virtual environment on first use, with torch pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= article-figures
STAMP := $(VENV)/.gdscope-installed

.PHONY: reproduce test test-fast lint bench venv clean browser serve

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
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (never a browser a test tool downloads itself).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser tests will be skipped"

test: lint browser
	$(BIN)/python -m pytest

# The markers are registered in pyproject.toml ([tool.pytest.ini_options]).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow and not browser and not ray"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_loss_map.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_animation.py
	$(BIN)/python benchmarks/bench_model_landscape.py
	$(BIN)/python benchmarks/bench_model_study.py

serve: $(STAMP)
	$(BIN)/gdscope serve --open

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
