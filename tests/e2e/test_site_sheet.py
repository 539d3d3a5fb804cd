"""In a real browser: the site reader's worksheet (issue 14, one entry design, fewer
keystrokes). From the subject page, a standard follow-up (3 targets, 1 non-target, no new
lesion) is one click and a few keystrokes: the cursor starts in the next visit's first
cell, its code and date suggested from the schedule; Enter moves down the column, the
engine's result appears as the reader types, and Ctrl+S saves. The counts are printed and
asserted (they are counts, not timings)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.services import SYSTEM, create_trial, create_user, import_case

pytestmark = pytest.mark.e2e

MAX_KEYS, MAX_CLICKS = 15, 2
SHOTS = Path("/tmp/shots-sheet")


def _seed(app: Any) -> None:
    session = app.extensions["recist_sessions"]()
    try:
        create_trial(
            session,
            SYSTEM,
            code="WS",
            title="Worksheet",
            arms=[("A", "arm A")],
            settings={"visit_interval_days": 56},
        )
        create_user(
            session, SYSTEM, username="rad", password=PASSWORD, role="reader", trials=["WS"]
        )
        import_case(
            session,
            SYSTEM,
            "WS",
            {
                "subject_id": "W-1",
                "lesions": [
                    {"id": "T01", "site": "liver", "kind": "target"},
                    {"id": "T02", "site": "lung", "kind": "target"},
                    {"id": "T03", "site": "lymph node", "kind": "target", "nodal": True},
                    {"id": "NT01", "site": "bone", "kind": "non-target"},
                ],
                "timepoints": [
                    {"id": "BL", "date": "2021-01-04",
                     "targets": {"T01": 30, "T02": 25, "T03": 20},
                     "non_targets": {"NT01": "present"}},
                    {"id": "W8", "date": "2021-03-01",
                     "targets": {"T01": 24, "T02": 20, "T03": 15},
                     "non_targets": {"NT01": "present"}},
                ],
            },
        )  # fmt: skip
    finally:
        session.close()


def _shot(page: Any, screenshots: Path, name: str) -> None:
    path = screenshots / name
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / name)


def test_a_standard_follow_up_on_the_worksheet_with_the_live_result(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    page = login("rad")
    page.goto(base + "/trials/WS/subjects/W-1")
    keys = clicks = 0

    with page.expect_navigation():
        page.click("#open-sheet")
    clicks += 1
    assert page.url.endswith("/trials/WS/subjects/W-1/sheet")
    # The next visit is suggested from the schedule (W8 + 56 days), the cursor in its
    # first cell.
    assert page.input_value("input[name=visit_2]") == "W16"
    assert page.input_value("input[name=date_2]") == "2021-04-26"
    assert page.evaluate("document.activeElement.name") == "cell_0_2"
    # The stored visits' result is there before anything is typed.
    page.wait_for_selector("#live-timepoints tr[data-tp=W8]")

    def type_text(text: str) -> None:
        nonlocal keys
        page.keyboard.type(text)
        keys += len(text)

    def press(key: str) -> None:
        nonlocal keys
        page.keyboard.press(key)
        keys += 1

    type_text("18")
    # The live result while typing: W16 with T02, T03 and NT01 still pending.
    page.wait_for_selector("#live-pending")
    assert "T02 at W16" in page.inner_text("#live-pending")
    row = page.locator("#live-timepoints tr[data-tp=W16]")
    assert "NE" in row.inner_text()
    press("Enter")
    type_text("12")
    press("Enter")
    type_text("9")
    press("Enter")
    type_text("P")
    page.wait_for_selector("#live-check:not(:has(#live-pending))")
    row = page.locator("#live-timepoints tr[data-tp=W16]")
    cells = row.locator("td").all_inner_texts()
    # Sum 39 of the baseline 75 (-48 %), nadir 59 at W8; target PR, overall PR (R-TGT-PR).
    assert cells[1:9] == ["39.0", "-48.0 %", "-33.9 %", "PR", "NON-CR/NON-PD", "no", "PR",
                          cells[8]]  # fmt: skip
    assert "R-TGT-PR" in cells[8]
    _shot(page, screenshots, "site-sheet-live-result.png")
    with page.expect_navigation():
        press("Control+s")
    assert page.url.endswith("/trials/WS/subjects/W-1")
    assert "W16" in page.locator("table").first.inner_text()
    print(f"\nstandard follow-up on the worksheet: {keys} keystrokes, {clicks} click(s)")
    assert keys <= MAX_KEYS and clicks <= MAX_CLICKS
    assert (keys, clicks) == (10, 1)


def test_a_live_error_marks_the_cell_and_takes_the_cursor_there(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    page = login("rad")
    page.goto(base + "/trials/WS/subjects/W-1/sheet")
    page.keyboard.type("18x")
    page.keyboard.press("Enter")  # on to T02: the error in T01 calls the cursor back
    page.wait_for_selector("#live-error")
    assert "lesion T01, visit W16" in page.inner_text("#live-error")
    assert page.get_attribute("input[name=cell_0_2]", "aria-invalid") == "true"
    page.wait_for_function("document.activeElement.name === 'cell_0_2'")
    _shot(page, screenshots, "site-sheet-live-error.png")
    # Fixed, the mark goes and the result comes back.
    page.keyboard.press("Backspace")
    page.wait_for_selector("#live-timepoints tr[data-tp=W16]")
    assert page.get_attribute("input[name=cell_0_2]", "aria-invalid") is None


def test_a_signed_visit_is_a_read_only_column_on_a_phone_too(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    from web.services import Actor, get_subject, get_timepoint
    from web.services.signing import ADJUDICATOR_MEANING, sign_timepoint

    _seed(live_server["app"])
    session = live_server["app"].extensions["recist_sessions"]()
    try:
        create_user(
            session, SYSTEM, username="adj", password=PASSWORD, role="adjudicator", trials=["WS"]
        )
        version = get_timepoint(get_subject(session, "WS", "W-1"), "W8").version
        sign_timepoint(
            session, Actor("adj", "adjudicator"), "WS", "W-1", "W8",
            password=PASSWORD, meaning=ADJUDICATOR_MEANING, expected_version=version,
        )  # fmt: skip
    finally:
        session.close()
    base = live_server["url"]
    page = login("rad")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/trials/WS/subjects/W-1/sheet")
    assert page.get_attribute("input[name=cell_0_1]", "readonly") is not None
    assert "signed" in page.inner_text("th[data-column='1']")
    page.focus("input[name=cell_0_1]")
    page.keyboard.type("99")
    assert page.input_value("input[name=cell_0_1]") == "24"
    # The per-visit form is one link away for a small screen.
    assert page.locator("a", has_text="per-visit form").count() == 1
    page.wait_for_selector("#live-timepoints tr[data-tp=W8]")
    _shot(page, screenshots, "site-sheet-signed-phone.png")


def test_without_javascript_the_check_button_shows_the_result(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    page = login("rad", java_script_enabled=False)
    page.goto(base + "/trials/WS/subjects/W-1/sheet")
    for row, text in enumerate(("18", "12", "9", "P")):
        page.fill(f"input[name=cell_{row}_2]", text)
    with page.expect_navigation():
        page.click("#check")
    cells = page.locator("#check-timepoints tr[data-tp=W16] td").all_inner_texts()
    assert cells[2:9] == ["39.0", "-48.0 %", "-33.9 %", "PR", "NON-CR/NON-PD", "no", "PR"]
    assert "R-TGT-PR" in cells[9]
    assert page.input_value("input[name=cell_2_2]") == "9"  # the worksheet as typed
    _shot(page, screenshots, "site-sheet-no-script-check.png")
