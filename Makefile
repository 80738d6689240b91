# The README's two commands: `make demo` (the main job) and `make test`.
# Each creates .venv when missing and installs, in order:
# - torch (for parity/ and benchmarks/), pinned by TORCH_PIN from pip's index, or from
#   TORCH_INDEX_URL when set. What pip's default index serves depends on the machine: a local
#   CPU wheel where one is configured (this project's CI), else PyPI's Linux wheel, which is the
#   CUDA build (several GB; it runs on a CPU too). For a CPU-only wheel elsewhere set
#   TORCH_INDEX_URL to PyTorch's CPU wheel index; for a CUDA version matching your driver, to
#   that CUDA index.
# - this package with its torch and test extras, plus JAX_EXTRA when set: `cuda12` (JAX's
#   CUDA 12 build) or `tpu`; e.g. `make test JAX_EXTRA=cuda12` on a GPU machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
TORCH_INDEX_URL ?=
JAX_EXTRA ?=
comma := ,
EXTRAS := torch,test$(if $(JAX_EXTRA),$(comma)$(JAX_EXTRA))
STAMP := $(VENV)/.installed$(if $(JAX_EXTRA),-$(JAX_EXTRA))

.PHONY: demo test lint install browser bench parity

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)" $(if $(TORCH_INDEX_URL),--index-url "$(TORCH_INDEX_URL)")
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(STAMP)

demo: install
	$(PY) -m jaxunsup reproduce --quick --workdir runs
	@echo "report: runs/report/index.html"
	-@$(PY) docs/readme_table.py runs  # README's results table against this run

test: install browser
	$(VENV)/bin/ruff check jaxunsup parity tests benchmarks docs
	$(VENV)/bin/ruff format --check jaxunsup parity tests benchmarks docs
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15  # two workers: compilation is single-threaded

parity: install
	$(PY) -m parity

bench: install
	$(PY) benchmarks/bench.py all

# The report's browser test opens the page in Debian's chromium through chromedriver: both are
# installed when missing (apt-get, as root or through sudo). Where that cannot work the test
# skips itself, and this says so.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" -eq 0 ]; then s=""; elif command -v sudo >/dev/null; then s=sudo; else s=no; fi; \
		if [ "$$s" != no ] && command -v apt-get >/dev/null; then \
			echo "installing chromium and chromedriver (apt-get) for the report's browser test"; \
			$$s apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else \
			echo "no chromium/chromedriver and no apt-get as root: the browser test will skip"; \
		fi; \
	fi
