"""In a real browser: a reviewer opens the imaging demo subject's progression call, sees
every lesion's key image drawn by the server, opens the slice viewer from one, scrolls it
with the keyboard and the wheel and changes the window. Screenshots go to
test-output/e2e/<database>/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Login
from web.demo import DEMO_TRIAL, DEMO_USERS, seed_demo, seed_users

pytestmark = pytest.mark.e2e


def test_a_reviewer_sees_key_images_and_scrolls_the_series(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    session = live_server["app"].extensions["recist_sessions"]()
    try:
        passwords = {name: pw for name, (_, pw) in seed_users(session).items()}
        seed_demo(session, subjects=2, passwords=passwords)
    finally:
        session.close()
    base = live_server["url"]
    errors: list[str] = []
    reviewer = DEMO_USERS["reviewer"]
    page = login(reviewer, passwords[reviewer], viewport=(1280, 1000), errors=errors)
    page.goto(f"{base}/trials/{DEMO_TRIAL}/subjects/DEMO-001/progression")
    images = page.locator("#key-images img")
    assert images.count() == 9  # the targets T1, T2, T3 at BL, W8 and W16 side by side
    images.last.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#key-images img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.locator("#key-images").screenshot(path=str(screenshots / "evidence-key-images.png"))

    page.locator('a.key-image[data-tp="W16"][data-lesion="T1"]').click()
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    position = page.locator("#viewer-position")
    assert "(measured slice)" in position.inner_text()
    start = position.inner_text()
    page.wait_for_function("() => document.getElementById('viewer-image').naturalWidth > 0")
    page.screenshot(path=str(screenshots / "evidence-viewer-measured-slice.png"), full_page=True)
    page.locator("#viewer-image").press("ArrowDown")
    assert position.inner_text() != start and "(measured slice)" not in position.inner_text()
    page.locator("#viewer-image").hover()
    page.mouse.wheel(0, -120)
    assert position.inner_text() == start
    page.select_option("#viewer-window", "bone")
    page.wait_for_function(
        "() => document.getElementById('viewer-image').src.includes('window=bone')"
        " && document.getElementById('viewer-image').complete"
    )
    page.locator("#viewer").screenshot(path=str(screenshots / "evidence-viewer-bone.png"))
    assert errors == []
