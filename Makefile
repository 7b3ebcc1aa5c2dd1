# Two entry points: `make reproduce` (the article's figures) and `make test` (the whole suite;
# `make test-fast` leaves out the tests marked slow, browser and ray).
# Both create the virtual environment on first use, with torch pinned by constraints.txt:
# `reproduce` installs gdscope alone (what the figures need), `test` adds the dev extra.
# Afterwards the command is .venv/bin/gdscope (or `. .venv/bin/activate`, then gdscope).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= article-figures
STAMP := $(VENV)/.gdscope-installed
DEV_STAMP := $(VENV)/.gdscope-dev-installed
WEB_STAMP := $(VENV)/.gdscope-web-installed

.PHONY: reproduce test test-fast explore lint bench venv dev clean browser serve docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	@echo "installing gdscope into $(VENV) (torch, numpy, matplotlib; a minute or two the first time)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(STAMP)

# gdscope with an extra: .gdscope-dev-installed (every test's tools), .gdscope-web-installed, …
$(VENV)/.gdscope-%-installed: pyproject.toml constraints.txt | $(BIN)/python
	@echo "installing gdscope with its $* extra into $(VENV) (a few minutes the first time)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$*]'
	touch $(STAMP) $@

venv: $(STAMP)

dev: $(DEV_STAMP)

reproduce: $(STAMP)
	$(BIN)/gdscope reproduce --out $(OUT) --force
	@echo "the gdscope command is $(BIN)/gdscope (or run '. $(BIN)/activate' and then gdscope)"

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (never a browser a test tool downloads itself).
# Without it they are skipped on a developer's machine; under CI (CI=true) that is an error, here
# and in the tests (tests/conftest.py).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| if [ "$$CI" = true ]; then echo "chromium could not be installed: CI needs the browser tests" >&2; exit 1; \
		else echo "chromium could not be installed: the browser tests will be skipped"; fi

test: lint browser
	$(BIN)/python -m pytest

# The markers are registered in pyproject.toml ([tool.pytest.ini_options]).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow and not browser and not ray"

# The property tests with new random draws (the suite's draws are fixed; tests/conftest.py).
explore: $(DEV_STAMP)
	$(BIN)/python -m pytest --hypothesis-profile=explore -m "not slow and not browser and not ray" \
		$$(grep -rl "@given" tests)

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/bench_loss_map.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_animation.py
	$(BIN)/python benchmarks/bench_model_landscape.py
	$(BIN)/python benchmarks/bench_hessian.py
	$(BIN)/python benchmarks/bench_model_study.py
	$(BIN)/python benchmarks/bench_recorder.py

serve: $(WEB_STAMP)
	$(BIN)/gdscope serve --open

# The documentation site, built as CI builds it (tests/test_docs.py), then served locally.
docs: $(DEV_STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
