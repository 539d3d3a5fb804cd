"""The load test's checks run for real on a small load: concurrent readers through the
real server, then no acknowledged write lost and no two writes merged (issue 11). Timing
is reported by ``benchmarks/load_test.py``, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_saves_lose_nothing_and_merge_nothing(backend: str) -> None:
    if backend == "postgresql" and not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL")
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load_test.py"), "--backend", backend,
         "--readers", "3", "--saves", "6", "--workers", "2", "--threads", "2"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    checks = next(line for line in run.stdout.splitlines() if line.startswith("checks:"))
    assert "lost from the audit trail 0;" in checks
    assert "timepoints mixing two saves 0;" in checks
    assert "not the last acknowledged save 0 of" in checks
    acknowledged = int(checks.split()[1])
    assert acknowledged >= 3 * 6  # the distinct phase alone acknowledges every save
