"""In a real browser: a trial with NCT02089100's eligibility (docs/rules.md §12); the
subject page lists each breach as a baseline finding, and the baseline form's live check
shows them while the reader types (R-ELIG-COUNT, R-ELIG-SIZE, R-ELIG-VOLUME, R-ELIG-SITE).
Screenshots: test-output/e2e/<database>/eligibility-subject.png, eligibility-baseline.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recist.settings import STEREO_SEIN_ELIGIBILITY
from tests.e2e.conftest import PASSWORD, Login
from web.services import SYSTEM, create_trial, create_user, import_case

pytestmark = pytest.mark.e2e

TRIAL = "STEREO-SEIN"
NON_TARGETS = {"NT01": "present", "NT02": "present", "NT03": "present"}
CASE = {
    "subject_id": "0101-007",
    "arm": "A",
    "randomized_on": "2024-01-10",
    "lesions": [
        {"id": "T01", "site": "liver", "kind": "target", "volume_ml": 160.0},
        {"id": "T02", "site": "lung", "kind": "target", "volume_ml": 540.0},
        {"id": "T03", "site": "lymph node", "kind": "target", "nodal": True},
        {"id": "NT01", "site": "bone", "kind": "non-target"},
        {"id": "NT02", "site": "bone", "kind": "non-target"},
        {"id": "NT03", "site": "brain", "kind": "non-target"},
    ],
    "timepoints": [
        {"id": "BL", "date": "2024-01-08", "targets": {"T01": 74.0, "T02": 96.0, "T03": 18.0},
         "non_targets": NON_TARGETS},
        {"id": "W8", "date": "2024-03-04", "targets": {"T01": 50.0, "T02": 60.0, "T03": 9.0},
         "non_targets": NON_TARGETS},
    ],
}  # fmt: skip


def _seed(app: Any) -> None:
    session = app.extensions["recist_sessions"]()
    try:
        settings = {"eligibility": STEREO_SEIN_ELIGIBILITY}
        create_trial(session, SYSTEM, code=TRIAL, title="STEREO-SEIN model trial",
                     settings=settings, arms=[("A", "SBRT")])  # fmt: skip
        create_user(session, SYSTEM, username="reader", password=PASSWORD, role="reader",
                    trials=[TRIAL])  # fmt: skip
        import_case(session, SYSTEM, TRIAL, CASE)
    finally:
        session.close()


def test_the_breaches_show_on_the_subject_page_and_in_the_live_baseline_check(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    page = login("reader", viewport=(1280, 1000))
    page.goto(f"{base}/trials/{TRIAL}/subjects/0101-007")
    findings = [t.strip() for t in page.locator("details.findings li").all_inner_texts()]
    assert [f.split()[0] for f in findings] == [
        "R-ELIG-COUNT",
        "R-ELIG-SIZE",
        "R-ELIG-VOLUME",
        "R-ELIG-SITE",
    ]
    assert (
        "baseline longest diameter 74.0 mm is above the limit of 70.0 mm for liver" in (findings[1])
    )
    assert page.locator("#bor").inner_text() == "PR"  # findings change no response
    page.screenshot(path=str(screenshots / "eligibility-subject.png"), full_page=True)
    page.goto(f"{base}/trials/{TRIAL}/subjects/0101-007/baseline")
    page.fill("input[name=size_0]", "70.0")  # now within the liver's limit
    page.wait_for_function("() => document.querySelectorAll('#findings li').length === 3")
    live = page.locator("#findings").inner_text()
    assert "R-ELIG-SIZE" not in live and "R-ELIG-VOLUME" in live  # T02's volume, as imported
    page.locator("#findings-box").screenshot(path=str(screenshots / "eligibility-baseline.png"))
