"""A protocol's eligibility in the web application (docs/rules.md §12): the trial settings
form edits it (with a reason, audited, every subject re-assessed), the breaches show as
baseline findings on the subject page and the baseline form (R-ELIG-COUNT, R-ELIG-SIZE,
R-ELIG-VOLUME, R-ELIG-SITE), and a case import keeps the volumes imaging supplied."""

from __future__ import annotations

import copy
import html
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from recist.settings import STEREO_SEIN_ELIGIBILITY
from tests.web.helpers import READER, form_fields
from web.models import AuditRecord, Subject, Trial
from web.services import create_subject, save_baseline
from web.services.studies import attach_imaging
from web.testing import bearer, login

PAGE = "/trials/TRIAL-1"


def _big_liver_subject(session: Session, trial: str) -> None:
    """S-1: a 72 mm liver target, a node and a brain non-target (saved with a reason: no
    rules yet, but the form needs none either way here)."""
    create_subject(session, READER, trial, code="S-1", arm="A")
    save_baseline(
        session,
        READER,
        trial,
        "S-1",
        date_value="2021-01-04",
        lesions=[
            {"id": "T01", "kind": "target", "site": "liver", "size": 72.0},
            {"id": "T02", "kind": "target", "site": "lymph node", "nodal": True, "size": 20.0},
            {"id": "NT01", "kind": "non-target", "site": "brain"},
        ],
    )
    session.rollback()


def test_the_settings_form_edits_eligibility_and_the_subject_page_shows_the_breaches(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    _big_liver_subject(session, trial)
    manager = app.test_client()
    login(manager, "trial_manager")
    subject_page = manager.get(f"{PAGE}/subjects/S-1").data.decode()
    assert "R-ELIG" not in subject_page  # no rules, no finding (RECIST 1.1 has none)
    fields = form_fields(manager.get(PAGE).data.decode(), "settings-form")
    assert fields["s_elig_max_lesions"] == "" and fields["s_elig_sites"] == ""
    assert fields["s_elig_count_nodes"] == "on"
    typed = {
        **fields,
        "s_elig_protocol": "NCT02089100",
        "s_elig_max_lesions": "5",
        "s_elig_max_diameter_mm": "100",
        "s_elig_max_volume_ml": "500",
        "s_elig_sites": "liver: 70 mm",
        "s_elig_excluded_sites": "brain",
    }
    # Without a reason: refused, and what was typed comes back.
    page = manager.post(f"{PAGE}/settings", data={**typed, "reason": ""})
    assert page.status_code == 422
    back = form_fields(page.data.decode(), "settings-form")
    assert (back["s_elig_sites"], back["s_elig_excluded_sites"]) == ("liver: 70 mm", "brain")
    saved = manager.post(
        f"{PAGE}/settings", data={**typed, "reason": "protocol v2: eligibility"},
        follow_redirects=True,
    )  # fmt: skip
    assert saved.status_code == 200
    session.rollback()
    stored = session.scalar(select(Trial.settings).where(Trial.code == trial))
    assert stored["eligibility"] == STEREO_SEIN_ELIGIBILITY
    (record,) = session.scalars(
        select(AuditRecord).where(AuditRecord.entity == "trial", AuditRecord.field == "settings",
                                  AuditRecord.action == "update")
    ).all()  # fmt: skip
    assert record.reason == "protocol v2: eligibility" and "NCT02089100" in (record.new or "")
    # Every subject was re-assessed: the findings are in the stored result and on the page.
    result = session.scalar(select(Subject.result_json).where(Subject.code == "S-1"))
    assert [(w["rule"], w["lesion"]) for w in result["warnings"]] == [
        ("R-ELIG-SIZE", "T01"),
        ("R-ELIG-SITE", "NT01"),
    ]
    page = manager.get(f"{PAGE}/subjects/S-1").data.decode()
    assert (
        "<code>R-ELIG-SIZE</code> T01: target T01 (liver): baseline longest diameter 72.0 mm"
        in (page)
    )
    assert "limit of 70.0 mm for liver (NCT02089100 eligibility" in page
    assert "<code>R-ELIG-SITE</code> NT01" in page
    trial_page = manager.get(PAGE).data.decode()
    assert "NCT02089100: at most 5 lesions; each ≤ 100 mm; each ≤ 500 mL; liver ≤ 70 mm" in (
        trial_page
    )
    again = form_fields(trial_page, "settings-form")
    assert (again["s_elig_max_lesions"], again["s_elig_sites"]) == ("5", "liver: 70 mm")
    # The form's values give the same rules back; all blank clears them (re-assessed).
    blank = {**again, **{k: "" for k in again if k.startswith("s_elig_")}}
    manager.post(f"{PAGE}/settings", data={**blank, "reason": "eligibility withdrawn"})
    session.rollback()
    assert session.scalar(select(Trial.settings).where(Trial.code == trial))["eligibility"] is None
    result = session.scalar(select(Subject.result_json).where(Subject.code == "S-1"))
    assert result["warnings"] == []


def test_bad_eligibility_on_the_form_is_refused_naming_the_field(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    manager = app.test_client()
    login(manager, "trial_manager")
    fields = form_fields(manager.get(PAGE).data.decode(), "settings-form")
    for typed, words in (
        ({"s_elig_sites": "liver 70"}, "write 'site: 70 mm'"),
        ({"s_elig_sites": "liver: 70 cm"}, "'70 cm' is not a limit in mm or mL"),
        ({"s_elig_max_lesions": "five"}, "'five' is not a whole number of lesions"),
        ({"s_elig_max_diameter_mm": "0"}, "settings.eligibility.max_diameter_mm"),
    ):
        page = manager.post(f"{PAGE}/settings", data={**fields, **typed, "reason": "x"})
        assert page.status_code == 400, typed
        assert words in html.unescape(page.data.decode()), typed
    session.rollback()
    assert (
        session.scalar(select(Trial.settings).where(Trial.code == trial)).get("eligibility") is None
    )


def test_the_baseline_form_needs_a_reason_for_an_eligibility_breach(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    client = app.test_client()
    manager_token = users["trial_manager"]
    client.patch(
        f"/api/v1{PAGE}/settings",
        json={"settings": {"eligibility": {"max_lesions": 2}}, "reason": "amendment"},
        headers=bearer(manager_token),
    )
    create_subject(session, READER, trial, code="S-2", arm="A")
    session.rollback()
    reader = app.test_client()
    login(reader, "reader")
    form = {
        "date": "2021-01-04",
        "code": "BL",
        "rows": "3",
        **{f"code_{i}": f"T0{i + 1}" for i in range(3)},
        **{f"kind_{i}": "target" for i in range(3)},
        "site_0": "liver",
        "site_1": "lung",
        "site_2": "adrenal",
        "size_0": "30",
        "size_1": "25",
        "size_2": "20",
    }
    page = reader.post(f"{PAGE}/subjects/S-2/baseline", data=form)
    text = page.data.decode()
    assert page.status_code == 422, text[:2000]
    assert "R-ELIG-COUNT" in text and "3 metastatic lesions at baseline" in text
    saved = reader.post(
        f"{PAGE}/subjects/S-2/baseline", data={**form, "reason": "enrolled before amendment"}
    )
    assert saved.status_code == 302


def test_a_case_import_keeps_the_volumes_and_reports_the_breach(
    client: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    client.patch(
        f"/api/v1{PAGE}/settings",
        json={"settings": {"eligibility": STEREO_SEIN_ELIGIBILITY}, "reason": "protocol"},
        headers=bearer(users["trial_manager"]),
    )
    case = {
        "subject_id": "S-3",
        "lesions": [
            {"id": "T01", "site": "lung", "kind": "target", "volume_ml": 501.0},
            {"id": "T02", "site": "liver", "kind": "target", "volume_ml": 40.0},
        ],
        "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": {"T01": 95.0, "T02": 45}}],
    }
    done = client.post(f"/api/v1{PAGE}/cases", json=case, headers=bearer(users["trial_manager"]))
    assert done.status_code == 201, done.get_json()
    warnings = done.get_json()["result"]["warnings"]
    assert [(w["rule"], w["lesion"]) for w in warnings] == [("R-ELIG-VOLUME", "T01")]
    assert "volume 501 mL is above the limit of 500 mL" in warnings[0]["message"]
    got = client.get(f"/api/v1{PAGE}/subjects/S-3", headers=bearer(users["reviewer"])).get_json()
    assert [le.get("volume_ml") for le in got["case"]["lesions"]] == [501.0, 40.0]
    # The baseline entry may send the stored volume back, not another one.
    body = {
        "id": "BL",
        "date": "2021-01-04",
        "version": got["case"]["timepoints"][0]["version"],
        "reason": "re-checked",
        "lesions": [
            {"id": "T01", "site": "lung", "kind": "target", "size": 95.0, "volume_ml": 501.0},
            {"id": "T02", "site": "liver", "kind": "target", "size": 45.0, "volume_ml": 41.0},
        ],
    }
    refused = client.put(
        f"/api/v1{PAGE}/subjects/S-3/baseline", json=body, headers=bearer(users["reader"])
    )
    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert error["pointer"] == "/lesions/1/volume_ml" and "R-ELIG-VOLUME" in error["message"]
    body["lesions"][1]["volume_ml"] = 40.0
    ok = client.put(
        f"/api/v1{PAGE}/subjects/S-3/baseline", json=body, headers=bearer(users["reader"])
    )
    assert ok.status_code == 200, ok.get_json()


def test_attaching_baseline_imaging_adds_its_volumes_and_re_assesses(
    session: Session, trial: str, users: dict[str, str]
) -> None:
    from web.services.trials import update_settings

    update_settings(
        session, READER, trial, {"eligibility": {"max_volume_ml": 500}}, reason="protocol"
    )
    _big_liver_subject(session, trial)
    evidence = {
        "image": {},
        "study": None,
        "lesions": {"T01": {"mm": 72.0, "axis": "longest diameter", "volume_ml": 612.5}},
    }
    attach_imaging(session, READER, trial, "S-1", "BL", copy.deepcopy(evidence))
    session.rollback()
    row = session.scalar(select(Subject).where(Subject.code == "S-1"))
    assert row.timepoints[0].imaging_json["volumes"] == {"T01": 612.5}
    assert [(w["rule"], w["lesion"]) for w in row.result_json["warnings"]] == [
        ("R-ELIG-VOLUME", "T01")
    ]
