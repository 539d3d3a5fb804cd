"""In a real browser: an adjudicator compares two blinded reads target by target, the
differing targets highlighted, each beside the key image of the site's kept study (issue
12). Screenshot: test-output/e2e/<database>/adjudication-key-images.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.demo import _study_zip
from web.services import SYSTEM, Actor, create_trial, create_user, import_case, save_timepoint
from web.services.central import set_central_review, submit_read
from web.services.studies import attach_imaging
from web.services.uploads import match_segments, measure_upload

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"
TRIAL = "ICR-IMG"


def _evidence(case: dict[str, Any], visit: str, store: Path) -> dict[str, Any]:
    measured = measure_upload(_study_zip(SAMPLE / visit), store=store)
    return {"image": measured["image"], "lesions": match_segments(case, measured)[2],
            "study": measured["study"]}  # fmt: skip


def _seed(app: Any) -> None:
    store = Path(app.config["STUDY_STORE"])
    demo = json.loads((SAMPLE / "demo_case.json").read_text())
    session = app.extensions["recist_sessions"]()
    try:
        create_trial(session, SYSTEM, code=TRIAL, title="Central review with images",
                     arms=[("A", "arm A")])  # fmt: skip
        for name, role in (("reader_a", "reader"), ("reader_b", "reader"), ("adj", "adjudicator")):
            create_user(session, SYSTEM, username=name, password=PASSWORD, role=role,
                        trials=[TRIAL])  # fmt: skip
        case = {**demo, "timepoints": demo["timepoints"][:1], "arm": "A"}
        import_case(session, SYSTEM, TRIAL, case)
        # The site's read of W8, with its study kept (as an upload does), and the baseline's.
        attach_imaging(session, SYSTEM, TRIAL, "DEMO-001", "BL", _evidence(case, "BL", store))
        save_timepoint(session, SYSTEM, TRIAL, "DEMO-001", demo["timepoints"][1],
                       imaging=_evidence(case, "W8", store))  # fmt: skip
        set_central_review(session, SYSTEM, TRIAL, on=True)
        lesions = [{k: v for k, v in le.items() if k in ("id", "site", "kind", "nodal")}
                   for le in demo["lesions"]]  # fmt: skip
        first = {"lesions": lesions, "timepoints": demo["timepoints"][:2]}
        second = json.loads(json.dumps(first))
        second["timepoints"][1]["targets"]["T1"] = 40.0  # read B: T1 grew, not shrank
        submit_read(session, Actor("reader_a", "reader"), TRIAL, "DEMO-001", read=first,
                    password=PASSWORD)  # fmt: skip
        submit_read(session, Actor("reader_b", "reader"), TRIAL, "DEMO-001", read=second,
                    password=PASSWORD)  # fmt: skip
    finally:
        session.close()


def test_the_adjudicator_sees_the_differing_target_beside_its_key_image(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    page = login("adj", viewport=(1280, 1000))
    page.goto(f"{base}/trials/{TRIAL}/subjects/DEMO-001/adjudication")
    differs = page.locator("#read-comparison tr.differs")
    assert differs.count() == 1
    row = differs.first
    assert row.get_attribute("data-tp") == "W8" and row.get_attribute("data-lesion") == "T1"
    cells = [c.strip() for c in row.locator("td").all_inner_texts()]
    assert cells[2:4] == ["25.3", "40.0"]
    images = page.locator("#read-comparison img")
    assert images.count() == 6  # T1, T2, T3 at BL and W8 (the site's kept studies)
    images.last.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#read-comparison img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.locator("#read-comparison").screenshot(
        path=str(screenshots / "adjudication-key-images.png")
    )
