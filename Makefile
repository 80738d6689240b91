# The README's two commands: `make demo` (the main job) and `make test`.
# Each creates .venv when missing. torch comes first, pinned to the CPU build that pip finds
# on this machine, so nothing later pulls a multi-GB CUDA wheel.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test lint install bench parity

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[torch,test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m jaxunsup reproduce --quick --workdir runs
	@echo "report: runs/report/index.html"

test: install
	$(VENV)/bin/ruff check jaxunsup parity tests benchmarks
	$(VENV)/bin/ruff format --check jaxunsup parity tests benchmarks
	$(PY) -m pytest -q -n 2 --dist loadfile  # two workers: compilation is single-threaded

parity: install
	$(PY) -m parity

bench: install
	$(PY) benchmarks/bench.py all
