# The two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench demo clean

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

clean:
	rm -rf $(VENV) build *.egg-info
