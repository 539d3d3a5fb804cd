"""In a real browser: a reader opens the inbox from the header's badge, goes to the subject
with unsigned reads and signs all of them with one password (issue 14).
Screenshots go to test-output/e2e/<database>/ (inbox.png, sign-all.png, signed-all.png).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from tests.web.helpers import follow_up
from web.services import (
    SYSTEM,
    Actor,
    create_subject,
    create_trial,
    create_user,
    save_baseline,
    save_timepoint,
)
from web.services.membership import add_member
from web.testing import baseline_lesions

pytestmark = pytest.mark.e2e

READER = Actor("radiologist", "reader")


def _seed(app: Any) -> None:
    """Trial E2E; subject E2E-001 read by the radiologist: BL, W8 (PR), W16 (PD)."""
    session = app.extensions["recist_sessions"]()
    try:
        create_user(
            session,
            SYSTEM,
            username="radiologist",
            password=PASSWORD,
            role="reader",
            full_name="Rita Radiologist",
        )
        create_trial(
            session,
            SYSTEM,
            code="E2E",
            title="End-to-end trial",
            settings={"visit_interval_days": 56},
            arms=[("A", "arm A")],
        )
        add_member(session, SYSTEM, username="radiologist", trial_code="E2E")
        create_subject(session, SYSTEM, "E2E", code="E2E-001", arm="A")
        save_baseline(
            session, READER, "E2E", "E2E-001", date_value="2021-01-04", lesions=baseline_lesions()
        )
        save_timepoint(session, READER, "E2E", "E2E-001", follow_up("W8", "2021-03-01", 21, 14))
        save_timepoint(session, READER, "E2E", "E2E-001", follow_up("W16", "2021-04-26", 30, 14))
    finally:
        session.close()


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / name), full_page=True)


def test_a_reader_signs_all_unsigned_reads_with_one_password(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    errors: list[str] = []
    page = login("radiologist", start="/", errors=errors)
    page.wait_for_url(base + "/")
    assert page.inner_text("#inbox-count") == "3"
    page.click("#inbox-link")
    page.wait_for_url(base + "/inbox")
    rows = page.locator("#inbox-unsigned tbody tr")
    assert rows.count() == 3
    _shot(page, screenshots, "inbox.png")
    page.locator("#inbox-unsigned tbody tr").first.locator("a").click()
    page.wait_for_url("**/subjects/E2E-001#sign-all")
    form = page.locator("#sign-all-form")
    listed = [t.strip() for t in form.locator("tbody tr td:first-child").all_inner_texts()]
    assert listed == ["BL", "W8", "W16"]
    assert "Rita Radiologist (radiologist)" in form.inner_text()
    form.locator("input[name=password]").fill(PASSWORD)
    form.scroll_into_view_if_needed()
    _shot(page, screenshots, "sign-all.png")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/subjects/E2E-001")
    assert "Signed (read complete) and locked in one signature: BL, W8, W16." in page.inner_text(
        ".flash"
    )
    states = page.locator("#reads td.sign-state").all_inner_texts()
    assert len(states) == 3 and all(s.startswith("signed and locked by Rita") for s in states)
    assert page.locator("#sign-all-form").count() == 0
    assert page.locator("#inbox-count").count() == 0  # nothing waits any more
    _shot(page, screenshots, "signed-all.png")
    assert errors == []
