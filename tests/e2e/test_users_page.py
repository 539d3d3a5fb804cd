"""In a real browser: an administrator adds a reader on the users page, assigns them to a
trial and passes on the password shown once; the reader logs in with it and reaches the
trial. Screenshots go to test-output/e2e/<database>/users-*.png (users-created.png: the
new user's page with the password; users-list.png: the list).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.services import SYSTEM, create_trial, create_user

pytestmark = pytest.mark.e2e

TRIAL = "E2E-USERS"


def _seed(app: Any) -> None:
    session = app.extensions["recist_sessions"]()
    try:
        create_user(
            session, SYSTEM, username="root", password=PASSWORD, role="admin",
            full_name="Ada Admin",
        )  # fmt: skip
        create_trial(session, SYSTEM, code=TRIAL, title="Users page", arms=[("A", "arm A")])
        create_trial(session, SYSTEM, code="E2E-OTHER", title="Not assigned", arms=[("A", "A")])
    finally:
        session.close()


def test_an_admin_adds_a_reader_to_a_trial_and_the_reader_logs_in_with_the_shown_password(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    admin = login("root")
    admin.click("#users-link")
    assert admin.url == base + "/users"
    form = admin.locator("#user-create")
    form.locator("input[name=username]").fill("rita")
    form.locator("input[name=full_name]").fill("Rita Reader")
    form.locator("select[name=role]").select_option("reader")
    form.locator(f"input[name=trial][value={TRIAL}]").check()
    form.locator("button[type=submit]").click()
    notice = admin.locator("#new-password")
    notice.wait_for()
    password = admin.locator("#password-value").inner_text().strip()
    assert len(password) >= 16
    assert "only this once" in notice.inner_text()
    assert admin.locator("h1").inner_text().startswith("Rita Reader (rita)")
    admin.screenshot(path=str(screenshots / "users-created.png"), full_page=True)
    # A refused form keeps what was typed and names the field (the same name again).
    admin.click("#users-link")
    form = admin.locator("#user-create")
    form.locator("input[name=username]").fill("rita")
    form.locator("input[name=full_name]").fill("Someone Else")
    form.locator("select[name=role]").select_option("reviewer")
    form.locator("button[type=submit]").click()
    assert "already exists" in admin.locator("#error").inner_text()
    assert form.locator("input[name=username]").get_attribute("aria-invalid") == "true"
    assert form.locator("input[name=full_name]").input_value() == "Someone Else"
    assert form.locator("select[name=role]").input_value() == "reviewer"
    row = admin.locator("#users tr[data-user=rita]").inner_text()
    assert "Rita Reader" in row and TRIAL in row and "never" in row
    admin.screenshot(path=str(screenshots / "users-list.png"), full_page=True)

    reader = login("rita", password)
    assert reader.url == base + "/"
    assert reader.locator(f"text={TRIAL}").count() >= 1
    assert reader.locator("text=E2E-OTHER").count() == 0
    response = reader.goto(f"{base}/trials/{TRIAL}")
    assert response is not None and response.status == 200
    response = reader.goto(f"{base}/users")
    assert response is not None and response.status == 403
    reader.context.close()

    admin.goto(base + "/users")
    row = admin.locator("#users tr[data-user=rita]").inner_text()
    assert "never" not in row  # the last login is known now
    admin.context.close()
