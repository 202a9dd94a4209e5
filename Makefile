# Two commands set everything up on a fresh machine with only Python and the package registries:
#   make crawl-shard   creates .venv (pipeline only), builds the embedded sample, runs the pipeline on it
#   make test          creates .venv with the train and dev extras, runs the tests
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# torch: where nvidia-smi sees a GPU, PyPI's build (CUDA); elsewhere the CPU build, from PyTorch's CPU index
# as an extra index (its 2.13.0+cpu sorts above PyPI's CUDA 2.13.0; a CPU wheel in pip's find-links counts
# too). Where that index cannot be reached pip warns and goes on with the others. Override TORCH_SPEC and
# TORCH_INDEX (empty: PyPI only) as needed.
HAVE_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= $(if $(HAVE_GPU),,https://download.pytorch.org/whl/cpu)
TORCH_PIP_ARGS = $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX) --timeout 20 --retries 1)

OUT ?= out/sample
PROFILE ?= default
# one dataset: every snapshot of SNAPSHOT ("A B") and every shard of SHARDS ("0-9", "0,5,7", "3")
SNAPSHOT ?=
SHARD ?= 0
SHARDS ?= $(SHARD)
NUM_SHARDS ?= 1
LIMIT ?=
PYTEST_ARGS ?=
TEST_MARK ?= not slow and not gpu

SAMPLE_WARC := build/sample/sample.warc.gz

.PHONY: help venv venv-all crawl-shard sample test test-all lint bench train-sample clean resources

help:
	@echo "make crawl-shard [SNAPSHOT='CC-MAIN-2023-06 CC-MAIN-2023-14' SHARDS=0-9 NUM_SHARDS=n PROFILE=default OUT=dir]"
	@echo "make test | test-all | lint | bench | train-sample | resources | clean"

# setup.py and the .pyx: the compiled walk of the default profile, rebuilt by the editable install
$(VENV)/.base: pyproject.toml setup.py obelics/html/_walk.pyx
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=23.2"
	$(PIP) install -e ".[obelics-2023]"
	touch $@

$(VENV)/.all: pyproject.toml setup.py obelics/html/_walk.pyx $(VENV)/.base
	$(PIP) install "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(PIP) install -e ".[train,dev,view,obelics-2023]"
	touch $@

venv: $(VENV)/.base
venv-all: $(VENV)/.all

$(SAMPLE_WARC): $(VENV)/.base obelics/sample/build_sample.py $(wildcard obelics/sample/pages/*.html)
	$(PY) -m obelics.sample.build_sample -o $@

sample: $(SAMPLE_WARC)

# No SNAPSHOT: the embedded sample, offline (configs/run/sample.yaml). With SNAPSHOT: shard SHARD of
# NUM_SHARDS of that Common Crawl snapshot (LIMIT=m takes only its first m WARC files).
# with several snapshots/shards the run is one dataset (dedup over all of them); rerunning with more
# snapshots or shards on the same OUT extends it
CRAWL_OUT = $(if $(SNAPSHOT),$(if $(filter out/sample,$(OUT)),out/$(subst $(eval) ,+,$(strip $(SNAPSHOT))),$(OUT)),$(OUT))
crawl-shard: $(VENV)/.base $(SAMPLE_WARC)
	$(VENV)/bin/obelics run --profile $(PROFILE) --out $(CRAWL_OUT) \
	  $(if $(SNAPSHOT),$(foreach s,$(SNAPSHOT),--snapshot $(s)) --shards "$(SHARDS)" --num-shards $(NUM_SHARDS) $(if $(LIMIT),--limit $(LIMIT)),--restart-if-changed configs/run/sample.yaml)

test: $(VENV)/.all $(SAMPLE_WARC)
	DS_ACCELERATOR=$${DS_ACCELERATOR:-cpu} $(PY) -m pytest -q -m "$(TEST_MARK)" $(PYTEST_ARGS)

test-all:
	$(MAKE) test TEST_MARK="not gpu"

lint: $(VENV)/.all
	$(VENV)/bin/ruff check obelics filters pipeline model train tests bench

bench: $(VENV)/.all $(SAMPLE_WARC)
	bash bench/setup_datatrove_env.sh
	$(PY) -m bench.run_all

# tiny IDEFICS on the sample's shards, exported as a plain transformers folder, one line generated on a shared photo
TRAIN_OUT ?= out/train/tiny
PHOTO ?= ../shared/data/images/skimage__chelsea.png
train-sample: $(VENV)/.all crawl-shard
	$(PY) -m train --config configs/train/tiny.yaml data.shards=$(OUT)/webdataset run.out_dir=$(TRAIN_OUT)
	$(PY) -m train.export $(TRAIN_OUT) $(TRAIN_OUT)/export
	$(PY) -m train.generate $(TRAIN_OUT)/export --image $(PHOTO) --text "This photo shows" --max-new-tokens 12

resources: $(VENV)/.base
	$(VENV)/bin/obelics resources fetch

clean:
	rm -rf build out .pytest_cache
