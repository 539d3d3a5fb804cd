"""In a real browser: the follow-up form offers as many new-lesion rows as needed (issue
14), and a lesion typed in an added row is saved like any other (R-NEW-1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Login
from tests.e2e.test_keyboard import _seed

pytestmark = pytest.mark.e2e


def test_added_new_lesion_rows_are_saved(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    page = login("rad")
    page.goto(base + "/trials/KB/subjects/K-1/timepoints/new")
    rows = page.locator("#new-lesions tbody tr")
    spare = rows.count()
    for _ in range(2):
        page.click("#add-new-lesion")
    assert rows.count() == spare + 2
    # The cursor is in the added row's id; its fields are numbered on from the last row.
    assert page.evaluate("document.activeElement.name") == f"new_{spare + 1}_id"
    page.fill("input[name=t_T01_mm]", "21")
    page.fill("input[name=t_T02_mm]", "14")
    page.select_option(f"select[name=new_{spare + 1}_site]", "liver")
    page.fill(f"input[name=new_{spare + 1}_location]", "segment VII")
    page.screenshot(path=str(screenshots / "new-lesion-rows-added.png"), full_page=True)
    with page.expect_navigation():
        page.click("#timepoint-form button[type=submit]")
    assert page.url.endswith("/trials/KB/subjects/K-1"), page.url
    text = page.locator("#grid, table").first.inner_text()
    assert "NL01" in text  # the lesion typed in the added row, numbered as the first new one
    overall = page.locator("table").first.inner_text()
    assert "PD" in overall  # a new lesion is progression (R-NEW-1)
