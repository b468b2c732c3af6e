# `make demo` and `make test` set everything up on a fresh machine, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# torch wheels: the CUDA build for x86_64 (it runs on the CPU too), the CPU build for aarch64
ifeq ($(shell uname -m),aarch64)
TORCH := torch==2.9.1 torchvision==0.24.1
else
TORCH := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: demo test test-fast lint format figures bench setup data clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# Debian ships Fashion-MNIST's IDX files; install them when we may (root) and they are missing.
data:
	@if [ ! -e $(FASHION) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

demo: setup
	$(PY) analyses/stability.py --scale demo

# Everything CI checks: lint, the fast suite, and the slow end-to-end studies at reduced size.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -m "slow or not slow"; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

test-fast: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every study at the scale the gallery in figures/ shows.
figures: setup
	$(PY) analyses/stability.py --scale full
	$(PY) analyses/sparse_lmc.py --scale full
	$(PY) analyses/distillation.py --scale demo
	$(PY) analyses/freetickets.py --scale full
	$(PY) analyses/dst_corruption.py --scale full
	$(PY) analyses/dst_corruption.py --scale full --network convnet --densities 0.9 --steps 1500 --replicates 2
	$(PY) analyses/geometry.py --scale full
	$(PY) analyses/atlas.py --scale demo --out figures/atlas

bench: setup
	$(PY) benchmarks/interpolation.py --quick
	$(PY) benchmarks/sparse_step.py --quick
	$(PY) benchmarks/dst_step.py --quick
	$(PY) benchmarks/corruptions.py --quick
	$(PY) benchmarks/distill_dm.py --quick
	$(PY) benchmarks/curvature.py --quick
	$(PY) benchmarks/surface.py --quick
	$(PY) benchmarks/train_throughput.py --quick

clean:
	rm -rf runs results .pytest_cache
