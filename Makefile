# The two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench demo clean mypyc bench-mypyc

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

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# All four benchmarks; each prints ratios against a baseline measured in the same run.
# bench_web also runs on PostgreSQL when BENCH_DATABASE_URL (or TEST_DATABASE_URL) is set.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_assess.py
	$(BIN)/python benchmarks/bench_measure.py
	$(BIN)/python benchmarks/bench_sdtm.py
	$(BIN)/python benchmarks/bench_web.py

# Optional: the engine's pure core compiled with mypyc (a C compiler and Python headers
# needed), built apart in build/mypyc so that it never shadows the sources: `make test`
# and every other target run pure Python. errors.py and settings.py stay interpreted:
# mypyc checks attribute types on assignment (Settings turns its strings into enums after
# __init__; safejson's JsonInputError, interpreted, sets the attributes of a compiled
# RecistError). See README, Benchmarks.
MYPYC_MODULES = response lesions target non_target new_lesions overall baseline \
	best_response pfs local_failure assessment irecist contract
MYPYC_DIR = build/mypyc

mypyc: $(STAMP)
	rm -rf $(MYPYC_DIR) && mkdir -p $(MYPYC_DIR)
	cp -r recist pyproject.toml $(MYPYC_DIR)/
	cd $(MYPYC_DIR) && $(abspath $(BIN))/mypyc $(patsubst %,recist/%.py,$(MYPYC_MODULES))

bench-mypyc: mypyc
	PYTHONPATH=$(CURDIR)/$(MYPYC_DIR) $(BIN)/python benchmarks/bench_assess.py

clean:
	rm -rf $(VENV) build *.egg-info
