"""In a real browser: the trial page flags the subjects with eligibility findings (a
marker with the rule ids, a count under the title, a filter), and the baseline form takes
a typed volume per lesion, shows imaging's as such, and its live check reads the typed one
(R-ELIG-VOLUME). Screenshots: test-output/e2e/<database>/eligibility-trial.png,
eligibility-trial-filtered.png, eligibility-baseline-volumes.png."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from recist.settings import STEREO_SEIN_ELIGIBILITY
from tests.e2e.conftest import PASSWORD, Login
from tests.e2e.test_eligibility import CASE, TRIAL
from web.services import SYSTEM, create_subject, create_trial, create_user, import_case

pytestmark = pytest.mark.e2e


def _seed(app: Any) -> None:
    session = app.extensions["recist_sessions"]()
    try:
        create_trial(session, SYSTEM, code=TRIAL, title="STEREO-SEIN model trial",
                     settings={"eligibility": STEREO_SEIN_ELIGIBILITY},
                     arms=[("A", "SBRT")])  # fmt: skip
        create_user(session, SYSTEM, username="reader", password=PASSWORD, role="reader",
                    trials=[TRIAL])  # fmt: skip
        import_case(session, SYSTEM, TRIAL, CASE)  # four R-ELIG findings
        within = copy.deepcopy(CASE)
        within["subject_id"] = "0101-008"
        within["lesions"] = [le for le in within["lesions"] if le["id"] in ("T01", "NT01")]
        within["lesions"][0]["volume_ml"] = 120.0
        for tp in within["timepoints"]:
            tp["targets"] = {"T01": 60.0 if tp["id"] == "BL" else 40.0}
            tp["non_targets"] = {"NT01": "present"}
        import_case(session, SYSTEM, TRIAL, within)
        create_subject(session, SYSTEM, TRIAL, code="0101-009", arm="A")
    finally:
        session.close()


def test_the_trial_page_flags_breaches_and_the_baseline_form_takes_volumes(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    extra = Path(os.environ.get("ELIG_SHOTS", str(screenshots)))
    extra.mkdir(parents=True, exist_ok=True)
    page = login("reader")
    page.goto(f"{base}/trials/{TRIAL}")
    assert (
        "1 subject with eligibility findings" in page.locator("#eligibility-breaches").inner_text()
    )
    marker = page.locator("#subjects .flag-elig")
    assert marker.count() == 1
    assert marker.get_attribute("data-rules") == (
        "R-ELIG-COUNT R-ELIG-SIZE R-ELIG-VOLUME R-ELIG-SITE"
    )
    title = marker.get_attribute("title") or ""
    assert "R-ELIG-VOLUME T02: " in title and "R-ELIG-SITE NT03: " in title
    page.screenshot(path=str(extra / "eligibility-trial.png"), full_page=True)
    page.click("#eligibility-filter")
    rows = page.locator("#subjects tbody tr")
    assert rows.count() == 1 and "0101-007" in rows.first.inner_text()
    page.screenshot(path=str(extra / "eligibility-trial-filtered.png"))
    # The within-limits subject: T01's volume came with the imported case (imaging).
    page.goto(f"{base}/trials/{TRIAL}/subjects/0101-008/baseline")
    assert "120 from imaging" in page.locator("#volume-T01").inner_text()
    assert page.locator("input[name=volume_0]").count() == 0
    page.fill("input[name=code_2]", "T02")
    page.select_option("select[name=site_2]", "lung")
    page.fill("input[name=size_2]", "30")
    page.fill("input[name=volume_2]", "650")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#findings li')].some(li => "
        "li.textContent.includes('R-ELIG-VOLUME'))"
    )
    live = page.locator("#findings").inner_text()
    assert "T02" in live and "650 mL" in live
    page.fill("input[name=volume_2]", "0")
    page.wait_for_function("() => !document.getElementById('input-error').hidden")
    assert "lesion T02 volume (mL)" in page.locator("#input-error").inner_text()
    page.fill("input[name=volume_2]", "650")
    page.wait_for_function("() => document.getElementById('input-error').hidden")
    page.screenshot(path=str(extra / "eligibility-baseline-volumes.png"), full_page=True)
