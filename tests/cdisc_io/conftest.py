"""Fixtures of the cdisc_io tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cdisc_io.cdisc_fixtures import pharmaverse_dir


@pytest.fixture(scope="session")
def pharmaverse() -> Path:
    """The pharmaverse CSVs (../shared/testdata/pharmaverse beside the repository)."""
    path = pharmaverse_dir()
    if path is None:
        pytest.skip("pharmaverse test data not found (set RECIST_TESTDATA)")
    return path
