"""In a real browser (issue 14): an equivocal new lesion carried to the next visit and
confirmed there dates the progression back to its first sighting (R-NEW-2), and a trial
manager's settings change re-assesses every subject."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.services import SYSTEM, create_trial, create_user, import_case
from web.testing import baseline_lesions

pytestmark = pytest.mark.e2e


def _seed(app: Any, follow_up: dict[str, Any]) -> None:
    """Trial RF, reader 'rad' and trial manager 'tm'; subject R-1 with the standard
    baseline (T01 30 mm, T02 20 mm, NT01) and ``follow_up``."""
    session = app.extensions["recist_sessions"]()
    try:
        create_trial(session, SYSTEM, code="RF", title="Reader flows", arms=[("A", "arm A")])
        for name, role in (("rad", "reader"), ("tm", "trial_manager")):
            create_user(session, SYSTEM, username=name, password=PASSWORD, role=role,
                        trials=["RF"])  # fmt: skip
        lesions = [
            {k: le[k] for k in ("id", "site", "kind")} | {"nodal": le.get("nodal", False)}
            for le in baseline_lesions()
        ]
        targets = {le["id"]: le["size"] for le in baseline_lesions() if le["kind"] == "target"}
        baseline = {"id": "BL", "date": "2021-01-04", "targets": targets,
                    "non_targets": {"NT01": "present"}}  # fmt: skip
        import_case(
            session,
            SYSTEM,
            "RF",
            {"subject_id": "R-1", "lesions": lesions, "timepoints": [baseline, follow_up]},
        )
    finally:
        session.close()


def test_a_carried_equivocal_lesion_confirmed_at_the_next_visit_is_back_dated(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(
        live_server["app"],
        {"id": "W8", "date": "2021-03-01", "targets": {"T01": 29.0, "T02": 19.0},
         "non_targets": {"NT01": "present"},
         "new_lesions": [{"id": "NL01", "site": "lung", "equivocal": True}]},
    )  # fmt: skip
    page = login("rad")
    page.goto(live_server["url"] + "/trials/RF/subjects/R-1/timepoints/new")
    # The open equivocal lesion is on the form already, under its id, still equivocal.
    assert page.input_value("input[name=new_0_id]") == "NL01"
    assert page.is_checked("input[name=new_0_equivocal]")
    assert "open since W8" in page.locator("#new-lesions").inner_text()
    assert page.input_value("input[name=code]") == "W16"
    page.keyboard.type("29")
    page.keyboard.press("Enter")
    page.keyboard.type("19")
    page.uncheck("input[name=new_0_equivocal]")  # now unequivocally new
    page.screenshot(path=str(screenshots / "carried-equivocal-confirmed.png"), full_page=True)
    with page.expect_navigation():
        page.keyboard.press("Control+s")
    assert page.url.endswith("/trials/RF/subjects/R-1")
    # Progression at W16, dated to W8, the lesion's first sighting (R-NEW-2).
    assert page.inner_text("#progression") == "PD at W16, dated 2021-03-01"


def test_a_settings_change_re_assesses_the_subjects(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    # W8: 21 + 14 = 35 mm against 50 mm, −30 % (PR); nothing confirms it.
    _seed(
        live_server["app"],
        {"id": "W8", "date": "2021-03-01", "targets": {"T01": 21.0, "T02": 14.0},
         "non_targets": {"NT01": "present"}},
    )  # fmt: skip
    page = login("tm")
    page.goto(live_server["url"] + "/trials/RF")

    def bor() -> str:
        row = page.locator("tr", has=page.locator("a", has_text="R-1"))
        return row.locator("td").nth(3).inner_text().split(" ")[0]

    before = bor()
    page.click("#settings summary")
    confirmation = page.is_checked("input[name=s_confirmation]")
    page.set_checked("input[name=s_confirmation]", not confirmation)
    page.fill("#settings-form input[name=reason]", "SAP v2: confirmation as the protocol says")
    with page.expect_navigation():
        page.click("#settings-form button[type=submit]")
    flash = page.locator(".flash, [role=status]").all_inner_texts()
    assert any("1 subject(s) re-assessed with a changed result" in text for text in flash), (
        flash, page.locator(".error").all_inner_texts()
    )
    after = bor()
    # Unconfirmed, the PR at day 56 counts as SD (R-BOR-CONF, R-BOR-SDMIN); confirmation
    # off, it is the BOR (R-BOR-1).
    assert {before, after} == {"PR", "SD"}
    assert after == ("SD" if not confirmation else "PR")
    page.screenshot(path=str(screenshots / "settings-re-assessed.png"), full_page=True)
