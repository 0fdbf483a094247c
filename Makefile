# rill — build, train, test.
#
#   make demo    generate text with the bundled default model
#   make test    run every test
#   make model   retrain the default model (models/rill-tiny) from the corpus
#
# ONNX Runtime's version is pinned once, in Cargo.toml's [workspace.metadata.onnxruntime].

SHELL := /bin/bash
ORT_VERSION := $(shell sed -n 's/^onnxruntime-wheel *= *"\(.*\)"/\1/p' Cargo.toml)
VENV := .venv
PY := $(VENV)/bin/python
TRAIN := target/release/rill-train
MODEL := models/rill-tiny
CORPUS := build/corpus.txt
CORPUS_DEBS := bible-kjv bible-kjv-text python3.11-doc
# Training budget of the default model (minutes of wall-clock on 2 cores).
TRAIN_MINUTES ?= 45

.PHONY: all build venv demo test test-rust test-python model corpus lint clean

all: build

build:
	cargo build --release --workspace

# Python environment with the pinned ONNX Runtime wheel (the independent reference).
$(VENV)/.ok-$(ORT_VERSION): Makefile Cargo.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		onnxruntime==$(ORT_VERSION) numpy onnx pytest safetensors tokenizers
	touch $@
venv: $(VENV)/.ok-$(ORT_VERSION)

demo: venv
	$(PY) scripts/demo_generate.py $(MODEL) "In the beginning" "The function returns" "And the king said"

test: build venv test-rust test-python

test-rust:
	cargo test --release --workspace

test-python: build venv
	RILL_TRAIN=$(TRAIN) $(PY) -m pytest -q tests/python

# The corpus: two Debian packages (see README), unpacked without installing them.
$(CORPUS): scripts/build_corpus.py
	mkdir -p build/debs build/debs/root
	cd build/debs && apt-get download $(CORPUS_DEBS)
	for f in build/debs/*.deb; do dpkg -x $$f build/debs/root; done
	python3 scripts/build_corpus.py build/debs/root $(CORPUS)
corpus: $(CORPUS)

model: build $(CORPUS)
	$(TRAIN) train --corpus $(CORPUS) --out $(MODEL) --force \
		--steps 1200 --time-limit-min $(TRAIN_MINUTES) --eval-every 100 --quiet
	$(TRAIN) export --from $(MODEL)

lint:
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf build $(VENV)
