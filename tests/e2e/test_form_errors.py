"""In a real browser: a refused save puts the cursor in the field its error names, marks it
``aria-invalid`` and shows one error box (issue 14) — text in a size, a duplicated lesion
id, a new lesion without its site — and the annotation fields are on the forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.services import SYSTEM, create_subject, create_trial, create_user, import_case
from web.testing import baseline_lesions

pytestmark = pytest.mark.e2e

SHOTS = Path("/tmp/shots-fields")


def _seed(app: Any) -> None:
    session = app.extensions["recist_sessions"]()
    try:
        create_trial(session, SYSTEM, code="FE", title="Form errors", arms=[("A", "arm A")])
        create_user(
            session, SYSTEM, username="rad", password=PASSWORD, role="reader", trials=["FE"]
        )
        lesions = [
            {"id": le["id"], "site": le["site"], "kind": le["kind"],
             "nodal": le.get("nodal", False)}
            for le in baseline_lesions()
        ]  # fmt: skip
        targets = {le["id"]: le["size"] for le in baseline_lesions() if le["kind"] == "target"}
        import_case(
            session,
            SYSTEM,
            "FE",
            {
                "subject_id": "F-1",
                "lesions": lesions,
                "timepoints": [
                    {"id": "BL", "date": "2021-01-04", "targets": targets,
                     "non_targets": {"NT01": "present"}},
                ],
            },
        )  # fmt: skip
        create_subject(session, SYSTEM, "FE", code="F-2", arm="A")
    finally:
        session.close()


def _page(live_server: dict[str, Any], login: Login) -> Any:
    _seed(live_server["app"])
    return login("rad", viewport=(1400, 900))


def _focused(page: Any) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.name"))


def _shot(page: Any, screenshots: Path, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for folder in (screenshots, SHOTS):
        page.screenshot(path=str(folder / name), full_page=True)


def test_text_in_a_size_and_a_new_lesion_without_site_put_the_cursor_there(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    page = _page(live_server, login)
    url = live_server["url"] + "/trials/FE/subjects/F-1/timepoints/new"
    page.goto(url)
    page.fill("input[name=code]", "W8")
    page.fill("input[name=date]", "2021-03-01")
    page.fill("input[name=t_T01_mm]", "21")
    page.fill("input[name=t_T02_mm]", "1o")  # a letter o for a zero
    page.fill("input[name=img_T01_series]", "3")
    page.fill("input[name=new_0_location]", "segment VII")
    page.select_option("select[name=new_0_site]", "liver")
    with page.expect_navigation():
        page.click("#timepoint-form button[type=submit]")
    assert page.locator(".error[role=alert]:visible").count() == 1
    assert "'1o' is not a number of mm" in page.locator("#error").inner_text()
    assert _focused(page) == "t_T02_mm"
    assert page.get_attribute("input[name=t_T02_mm]", "aria-invalid") == "true"
    # What was typed is all still there, the annotations included.
    assert page.input_value("input[name=img_T01_series]") == "3"
    assert page.input_value("input[name=new_0_location]") == "segment VII"
    _shot(page, screenshots, "follow-up-text-in-a-size.png")

    page.fill("input[name=t_T02_mm]", "14")
    page.fill("input[name=new_1_sa]", "12")  # a second new lesion, its site forgotten
    with page.expect_navigation():
        page.click("#timepoint-form button[type=submit]")
    assert "choose its site" in page.locator("#error").inner_text()
    assert _focused(page) == "new_1_site"
    assert page.get_attribute("select[name=new_1_site]", "aria-invalid") == "true"
    _shot(page, screenshots, "follow-up-new-lesion-without-site.png")


def test_a_duplicated_baseline_id_puts_the_cursor_in_the_second_one(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    page = _page(live_server, login)
    page.goto(live_server["url"] + "/trials/FE/subjects/F-2/baseline")
    page.fill("input[name=date]", "2021-01-04")
    rows = [("T01", "liver", "30"), ("", "", ""), ("T01", "lung", "22")]
    for i, (code, site, size) in enumerate(rows):
        if code:
            page.fill(f"input[name=code_{i}]", code)
            page.select_option(f"select[name=site_{i}]", site)
            page.fill(f"input[name=size_{i}]", size)
    page.fill("input[name=location_0]", "segment VII")
    page.fill("input[name=series_0]", "3")
    page.fill("input[name=image_0]", "41")
    with page.expect_navigation():
        page.click("#baseline-form button[type=submit]")
    page.wait_for_timeout(800)  # the live check runs once on a refused form
    boxes = page.locator(".error[role=alert]:visible")
    assert boxes.count() == 1, [boxes.nth(i).inner_text() for i in range(boxes.count())]
    assert "used twice" in boxes.first.inner_text()
    assert _focused(page) == "code_2"
    assert page.get_attribute("input[name=code_2]", "aria-invalid") == "true"
    assert page.input_value("input[name=location_0]") == "segment VII"
    _shot(page, screenshots, "baseline-duplicated-id.png")


def test_the_grid_names_locations_and_adjudication_shows_what_differs(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    from tests.recist.conftest import case, fu
    from web.services import Actor, save_timepoint
    from web.services.central import set_central_review, submit_read
    from web.testing import assign_everyone

    page = _page(live_server, login)
    session = live_server["app"].extensions["recist_sessions"]()
    try:
        save_timepoint(
            session,
            Actor("rad", "reader"),
            "FE",
            "F-1",
            {
                "id": "W8",
                "date": "2021-03-01",
                "targets": {"T01": 21.0, "T02": 14.0},
                "non_targets": {"NT01": "present"},
                "new_lesions": [{"id": "NL01", "site": "liver", "location": "segment VII"}],
            },
        )
        create_trial(session, SYSTEM, code="CR", title="Central", arms=[("A", "arm A")])
        for name in ("r1", "r2", "adj"):
            role = "adjudicator" if name == "adj" else "reader"
            create_user(session, SYSTEM, username=name, password=PASSWORD, role=role)
        assign_everyone(session)
        set_central_review(session, Actor("adj", "trial_manager"), "CR", on=True)
        create_subject(session, SYSTEM, "CR", code="C-1", arm="A", randomized_on="2021-01-04")

        def read(*follow_ups: dict[str, Any]) -> dict[str, Any]:
            whole = case({"T1": 30.0}, *follow_ups, non_targets=("NT1",))
            return {"lesions": whole["lesions"], "timepoints": whole["timepoints"]}

        one = read(
            fu(targets={"T1": 28.0}),
            fu(targets={"T1": 40.0}, new_lesions=[{"id": "NL01", "site": "liver"}]),
        )
        two = read(
            fu(targets={"T1": 28.0}), fu(targets={"T1": 31.0}, non_targets={"NT1": "absent"})
        )
        two["timepoints"][1]["date"] = "2021-03-03"
        submit_read(session, Actor("r1", "reader"), "CR", "C-1", read=one, password=PASSWORD)
        submit_read(session, Actor("r2", "reader"), "CR", "C-1", read=two, password=PASSWORD)
    finally:
        session.close()
    page.goto(live_server["url"] + "/trials/FE/subjects/F-1")
    assert "liver · segment VII" in page.locator("tr[data-lesion=NL01]").inner_text()
    _shot(page, screenshots, "grid-location.png")
    login("adj", page=page)
    page.goto(live_server["url"] + "/trials/CR/subjects/C-1/adjudication")
    assert "FU1: the reads describe different scans" in page.inner_text("#scan-date-warnings")
    assert "only in read 1" in page.inner_text("#new-lesion-comparison")
    assert page.locator("#non-target-comparison tr.differs").count() == 1
    _shot(page, screenshots, "adjudication-differences.png")
