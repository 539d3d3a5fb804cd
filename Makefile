# The two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench demo clean mypyc test-mypyc bench-mypyc

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

# `make run HOST=0.0.0.0 PORT=8080` (the environment does not override these: zsh sets HOST)
HOST = 127.0.0.1
PORT = 5000

run: $(STAMP)
	$(BIN)/recist demo-run --host $(HOST) --port $(PORT)

demo: $(STAMP)
	$(BIN)/recist assess recist/demo/demo_cases.jsonl --format table

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check recist

typecheck: $(STAMP)
	$(BIN)/mypy recist web

# A test whose failure carries one of these messages is run once more (pytest-rerunfailures)
# and listed under "rerun test summary info": a PostgreSQL server process that died under
# the test, or a headless Chromium that could not render. These come from the machine, not
# from the code under test; any other failure fails at once. See README, The two commands.
INFRA_RERUN = --reruns 1 -raR \
	--only-rerun 'server closed the connection unexpectedly' \
	--only-rerun 'Unable to capture screenshot' \
	--only-rerun 'Target crashed'

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(INFRA_RERUN)
	@if $(BIN)/python -c "$$HAS_COMPILER"; then $(MAKE) --no-print-directory test-mypyc; \
	else echo "test-mypyc skipped: no C compiler or Python headers (the compiled core is optional)"; fi

# Whether this machine can build the optional compiled core (make mypyc).
define HAS_COMPILER
import os, shutil, sys, sysconfig
headers = os.path.join(sysconfig.get_paths()["include"], "Python.h")
sys.exit(0 if shutil.which("cc") and os.path.exists(headers) else 1)
endef
export HAS_COMPILER

# All four benchmarks; each prints ratios against a baseline measured in the same run.
# bench_web also runs on PostgreSQL when BENCH_DATABASE_URL (or TEST_DATABASE_URL) is set.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_assess.py
	$(BIN)/python benchmarks/bench_measure.py
	$(BIN)/python benchmarks/bench_sdtm.py
	$(BIN)/python benchmarks/bench_web.py

# Optional: the wheel whose pure engine core is compiled with mypyc (a C compiler and the
# Python headers needed; the modules are listed in setup.py), built into dist/mypyc and
# unpacked apart in build/mypyc so that it never shadows the sources: `make test` runs the
# engine's tests on it too (test-mypyc), and every other target runs pure Python. See
# README, Benchmarks.
MYPYC_DIR = build/mypyc
MYPYC_TESTS = tests/recist tests/cdisc_io tests/endpoints tests/test_rule_catalogue.py

mypyc: $(STAMP)
	rm -rf $(MYPYC_DIR) dist/mypyc build/lib.* build/temp.*
	$(BIN)/python -m pip install --quiet 'setuptools>=68' wheel  # pyproject's build needs
	RECIST_MYPYC=1 $(BIN)/python -m pip wheel --quiet --no-build-isolation --no-deps \
		-w dist/mypyc .
	$(BIN)/python -m pip install --quiet --no-deps --target $(MYPYC_DIR) dist/mypyc/*.whl

# The engine's tests on the compiled core: --import-mode=append keeps the checkout's
# pure-Python recist/ behind build/mypyc on the path, and with RECIST_EXPECT_COMPILED every
# test worker checks it imported the compiled modules (tests/conftest.py).
test-mypyc: mypyc
	PYTHONPATH=$(MYPYC_DIR) PYTHONSAFEPATH=1 RECIST_EXPECT_COMPILED=1 $(BIN)/python -m pytest -q -n 2 -p no:randomly \
		--import-mode=append -p no:cacheprovider $(MYPYC_TESTS)

bench-mypyc: mypyc
	PYTHONPATH=$(CURDIR)/$(MYPYC_DIR) $(BIN)/python benchmarks/bench_assess.py

clean:
	rm -rf $(VENV) build dist *.egg-info
