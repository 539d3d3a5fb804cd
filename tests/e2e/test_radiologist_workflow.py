"""In a real browser: a trial manager adds a subject; a reader logs in and enters a
baseline (two targets and a non-target), a follow-up that is PR and one that is PD, and
watches the grid, the reasons and the progression flag update.
Screenshots go to test-output/e2e/<database>/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.services import SYSTEM, create_trial, create_user
from web.services.membership import add_member

pytestmark = pytest.mark.e2e


def _seed(app: Any) -> None:
    session = app.extensions["recist_sessions"]()
    try:
        create_user(
            session, SYSTEM, username="coordinator", password=PASSWORD, role="trial_manager"
        )
        create_trial(
            session,
            SYSTEM,
            code="E2E",
            title="End-to-end trial",
            settings={"visit_interval_days": 56},
            arms=[("A", "arm A")],
        )
        # Segregation of duties: the reader enters and signs, the manager runs the trial;
        # both are members of the trial (only members reach it).
        for name, role in (("radiologist", "reader"), ("coordinator", "trial_manager")):
            if name == "radiologist":
                create_user(session, SYSTEM, username=name, password=PASSWORD, role=role)
            add_member(session, SYSTEM, username=name, trial_code="E2E")
    finally:
        session.close()


def _overall(page: Any) -> list[str]:
    return [c.strip() for c in page.locator("#overall-row td").all_inner_texts()]


def test_manager_adds_subject_reader_enters_baseline_pr_and_pd_and_sees_the_grid_update(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    errors: list[str] = []
    manager = login("coordinator", start="/", errors=errors)
    manager.wait_for_url(base + "/")
    manager.click("text=E2E")
    # A trial manager runs the trial but does not measure: no baseline entry is offered.
    manager.fill("input[name=code]", "E2E-001")
    manager.select_option("select[name=arm]", "A")
    manager.fill("input[name=randomized_on]", "2021-01-01")
    manager.click("text=Add subject")
    manager.wait_for_url("**/subjects/E2E-001")

    page = login("radiologist", start="/", errors=errors)
    page.wait_for_url(base + "/")
    page.goto(base + "/trials/E2E/subjects/E2E-001/baseline")

    page.fill("input[name=date]", "2021-01-04")
    page.select_option("select[name=site_0]", "liver")
    # Live findings: an 8 mm liver target breaks R-MEAS-1 while it is typed.
    page.fill("input[name=size_0]", "8")
    page.locator("#findings li", has_text="R-MEAS-1").wait_for()
    page.screenshot(path=str(screenshots / "0-baseline-live-finding.png"), full_page=True)
    # A size that cannot be saved at all is an error of its own, not a finding.
    page.fill("input[name=size_0]", "-5")
    page.locator("#input-error", has_text="negative size").wait_for()
    assert page.locator("#findings li").count() == 0
    page.fill("input[name=size_0]", "30")
    page.locator("#input-error").wait_for(state="hidden")
    page.select_option("select[name=site_1]", "lymph node")
    page.check("input[name=nodal_1]")
    page.fill("input[name=size_1]", "20")
    page.select_option("select[name=kind_2]", "non-target")
    page.select_option("select[name=site_2]", "bone")
    page.locator("#findings li").first.wait_for(state="detached")
    page.screenshot(path=str(screenshots / "1-baseline-form.png"), full_page=True)
    page.click("text=Save baseline")
    page.wait_for_url("**/subjects/E2E-001")
    assert page.locator("tr.sum td").first.inner_text().strip() == "50.0"

    page.click("#add-followup")
    page.fill("input[name=code]", "W8")
    page.fill("input[name=date]", "2021-03-01")
    page.fill("input[name=t_T01_mm]", "21")
    page.fill("input[name=t_T02_mm]", "14")
    page.click("text=Save follow-up")
    page.wait_for_url("**/subjects/E2E-001")
    assert _overall(page) == ["", "PR"]
    assert page.locator("#bor").inner_text() == "PR"
    assert page.locator("#progression").inner_text() == "none"
    page.locator("tr.reasons details").last.locator("summary").click()
    assert "R-TGT-PR" in page.locator("tr.reasons").inner_text()
    page.screenshot(path=str(screenshots / "2-grid-pr.png"), full_page=True)

    page.click("#add-followup")
    page.fill("input[name=code]", "W16")
    page.fill("input[name=date]", "2021-04-26")
    page.fill("input[name=t_T01_mm]", "27")
    page.fill("input[name=t_T02_mm]", "15")
    # A refused save puts the cursor in the field the error names, marked invalid.
    page.fill("input[name=t_T01_mm]", "-27")
    page.click("text=Save follow-up")
    page.locator("#error", has_text="lesion T01").wait_for()
    # The page's script moves the cursor once it has run (after the error is shown).
    page.wait_for_function("document.activeElement && document.activeElement.name === 't_T01_mm'")
    assert page.evaluate("document.activeElement.name") == "t_T01_mm"
    assert page.get_attribute("input[name=t_T01_mm]", "aria-invalid") == "true"
    # The refusal is an HTTP 400, which the browser logs as a failed load: that one only.
    assert errors and all("status of 400" in e for e in errors), errors
    errors.clear()
    page.fill("input[name=t_T01_mm]", "27")
    # Enter in the last size moves on to the non-targets; it never submits the form.
    page.press("input[name=t_T02_mm]", "Enter")
    assert page.evaluate("document.activeElement.name") == "nt_NT01"
    assert page.url.endswith("/timepoints/new")
    page.click("text=Save follow-up")
    page.wait_for_url("**/subjects/E2E-001")
    assert _overall(page) == ["", "PR", "PD"]
    assert page.locator("#progression").inner_text().startswith("PD at W16")
    assert "R-TGT-PD" in (page.locator("#overall-row td").nth(2).get_attribute("title") or "")
    for summary in page.locator("tr.reasons details summary").all():
        summary.click()
    reasons = page.locator("tr.reasons").inner_text()
    assert "R-TGT-PD" in reasons and "R-TGT-PR" in reasons
    page.screenshot(path=str(screenshots / "3-grid-pd.png"), full_page=True)

    page.click("text=E2E")
    row = page.locator("#subjects tr", has_text="E2E-001")
    assert "PD" in row.locator(".flag-pd").inner_text()
    assert "PD_TARGET" in row.inner_text()
    page.screenshot(path=str(screenshots / "4-subject-list.png"), full_page=True)
    assert errors == []
    for name in (
        "0-baseline-live-finding",
        "1-baseline-form",
        "2-grid-pr",
        "3-grid-pd",
        "4-subject-list",
    ):
        assert (screenshots / f"{name}.png").stat().st_size > 10_000
