"""In a real browser: two blinded readers enter their reads on the RECIST worksheet, check
them and sign; they disagree on progression, the adjudicator sees both reads side by side
and accepts one, and the ADaM export shows the accepted read.
Screenshots go to test-output/e2e/<database>/central-*.png (central-worksheet-*.png: the
worksheet after "Check").
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.services import SYSTEM, create_subject, create_trial, create_user
from web.services.central import set_central_review
from web.services.membership import add_member

pytestmark = pytest.mark.e2e

TRIAL = "E2E-ICR"


VISITS = [("BL", "2021-01-04"), ("FU1", "2021-03-01"), ("FU2", "2021-04-26")]
# Reader A calls PD at FU2 (30 → 28 → 40 mm, R-TGT-PD); reader B sees 31 mm: no PD. Both
# see the bone non-target present throughout. Rows: role, site, cells (blank ids: T01, NT01).
READS = {
    "reader_a": [("target", "liver", ["30", "28", "40"]), ("non-target", "bone", ["", "P", "P"])],
    "reader_b": [("target", "liver", ["30", "28", "31"]), ("non-target", "bone", ["", "P", "P"])],
}


def _fill_worksheet(page: Any, rows: list[tuple[str, str, list[str]]]) -> None:
    """Type a read on the worksheet: visit names and dates, then each lesion row."""
    for j, (visit, day) in enumerate(VISITS):
        page.fill(f"input[name=visit_{j}]", visit)
        page.fill(f"input[name=date_{j}]", day)
    for i, (role, site, cells) in enumerate(rows):
        page.select_option(f"select[name=role_{i}]", role)
        page.select_option(f"select[name=site_{i}]", site)
        for j, text in enumerate(cells):
            if text:
                page.fill(f"input[name=cell_{i}_{j}]", text)


def _seed(app: Any) -> None:
    session = app.extensions["recist_sessions"]()
    try:
        for name, role in (
            ("reader_a", "reader"),
            ("reader_b", "reader"),
            ("adj", "adjudicator"),
        ):
            create_user(session, SYSTEM, username=name, password=PASSWORD, role=role)
        create_trial(session, SYSTEM, code=TRIAL, title="Central review", arms=[("A", "arm A")])
        for name in ("reader_a", "reader_b", "adj"):
            add_member(session, SYSTEM, username=name, trial_code=TRIAL)
        set_central_review(session, SYSTEM, TRIAL, on=True)
        create_subject(session, SYSTEM, TRIAL, code="ICR-001", arm="A", randomized_on="2021-01-04")
    finally:
        session.close()


def test_two_readers_disagree_on_pd_the_adjudicator_accepts_one_and_the_export_shows_it(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    for name, read in READS.items():
        page = login(name)
        page.goto(f"{base}/trials/{TRIAL}")  # a blinded reader lands on the reading list
        assert page.url.endswith(f"/trials/{TRIAL}/central-reads")
        page.click("text=ICR-001")
        # Rows 0-4 are target rows on a fresh worksheet: row 1 becomes the non-target.
        _fill_worksheet(page, read)
        assert page.locator("input[name=id_1]").get_attribute("placeholder") == "NT01"
        if name == "reader_b":  # one more visit column, added in place by read_sheet.js
            page.click("#add-columns")
            assert page.locator("input[name=visit_5]").count() == 1
            assert page.locator("input[name=cell_1_5]").count() == 1
        expected = "PD at FU2, 2021-04-26" if name == "reader_a" else "none"
        # read_sheet.js checks the worksheet as it is typed…
        live = page.locator("#live-summary")
        live.wait_for()
        page.wait_for_function(
            "t => document.getElementById('live-summary').textContent.includes(t)",
            arg=expected,
        )
        page.screenshot(path=str(screenshots / f"central-live-{name}.png"), full_page=True)
        page.click("#check")  # …and "Check" shows the engine's outcome in full, nothing signed
        assert page.locator("#check-pd").inner_text() == expected
        assert page.locator("input[name=cell_0_2]").input_value() == read[0][2][2]
        page.screenshot(path=str(screenshots / f"central-worksheet-{name}.png"), full_page=True)
        page.fill("input[name=password]", PASSWORD)
        page.click("#sign")
        assert page.locator("#my-pd").inner_text() == expected
        assert page.locator("#signed-sheet").count() == 1
        page.screenshot(path=str(screenshots / f"central-read-{name}.png"), full_page=True)
        # Blinded: the site read of the subject is refused.
        response = page.goto(f"{base}/trials/{TRIAL}/subjects/ICR-001")
        assert response is not None and response.status == 403
        page.context.close()

    page = login("adj")
    page.goto(f"{base}/trials/{TRIAL}/central-review")
    row = page.locator("#central tr[data-subject=ICR-001]")
    assert "progression: read 1 2021-04-26, read 2 none" in row.inner_text()
    row.locator("text=awaiting adjudication").click()
    assert page.locator("section.read").count() == 2
    assert "reader_a" in page.locator("section.read[data-slot='1']").inner_text()
    assert "reader_b" in page.locator("section.read[data-slot='2']").inner_text()
    page.screenshot(path=str(screenshots / "central-adjudication.png"), full_page=True)
    page.select_option("select[name=accepted]", "1")
    page.fill("input[name=rationale]", "FU2 growth confirmed on thin slices")
    page.fill("input[name=password]", PASSWORD)
    page.click("text=Sign and accept")
    assert "Read 1 accepted by adj" in page.locator("#adjudicated").inner_text()

    page.goto(f"{base}/trials/{TRIAL}/central-review")
    assert (
        "read 1 (reader_a)"
        in page.locator("#central tr[data-subject=ICR-001] .accepted").inner_text()
    )
    with page.expect_download() as download_info:
        page.click("#adrs-csv")
    body = Path(download_info.value.path()).read_text()
    rows = [r for r in csv.DictReader(io.StringIO(body)) if r["PARAMCD"] == "PD"]
    by_reader = {r["RSEVALID"]: (r["AVALC"], r["RSACPTFL"]) for r in rows}
    assert by_reader == {"reader_a": ("Y", "Y"), "reader_b": ("N", "")}
    page.screenshot(path=str(screenshots / "central-review.png"), full_page=True)
    page.context.close()
