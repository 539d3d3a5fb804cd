"""The whole suite: print the bad-input catalogue's count per entry point at the end of the
run (tests/robustness/test_catalogue.py writes them; here, the controller reads them)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

COUNTS = Path(__file__).resolve().parents[1] / "test-output" / "robustness"

# Uploaded studies the tests keep (web.services.studies) go under test-output/, never into
# an instance folder of the checkout.
os.environ.setdefault(
    "RECIST_STUDY_STORE", str(Path(__file__).resolve().parents[1] / "test-output" / "studies")
)
# Drawn plots (web.services.plot_cache) likewise.
os.environ.setdefault(
    "RECIST_PLOT_CACHE", str(Path(__file__).resolve().parents[1] / "test-output" / "plot-cache")
)


def pytest_sessionstart(session: Any) -> None:
    if os.environ.get("RECIST_EXPECT_COMPILED") == "1":  # `make test-mypyc`, every worker
        import recist.assessment
        import recist.contract

        for module in (recist.assessment, recist.contract):
            assert module.__file__ and module.__file__.endswith(".so"), (
                f"the compiled engine was asked for, but {module.__name__} is "
                f"{module.__file__}"
            )
    if not hasattr(session.config, "workerinput"):  # the controller: start afresh
        for stale in COUNTS.glob("*.json"):
            stale.unlink()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    files = sorted(COUNTS.glob("*.json"))
    if not files:
        return
    terminalreporter.section("bad-input catalogue: cases refused per entry point")
    total = 0
    for path in files:
        counts = json.loads(path.read_text())
        for entry, count in sorted(counts.items()):
            terminalreporter.write_line(f"{count:5d}  {entry}")
            total += count
    terminalreporter.write_line(f"{total:5d}  in all ({len(files)} families)")
