"""Baseline volumes typed on the baseline form (R-ELIG-VOLUME): validated (R-PLAUS-SIZE),
kept with the baseline's imaging evidence, audited, carried into the case; a volume that
imaging gave is shown as such and wins (a typed other value is refused)."""

from __future__ import annotations

import copy
import html
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import READER, form_fields
from web.models import AuditRecord, Subject
from web.services import build_case, create_subject, save_baseline
from web.services.studies import attach_imaging
from web.services.trials import update_settings
from web.testing import bearer, login

PAGE = "/trials/TRIAL-1"
FORM = f"{PAGE}/subjects/S-1/baseline"


def _form(**typed: str) -> dict[str, str]:
    return {
        "date": "2021-01-04",
        "code": "BL",
        "rows": "2",
        "code_0": "T01",
        "kind_0": "target",
        "site_0": "liver",
        "size_0": "40",
        "code_1": "T02",
        "kind_1": "target",
        "site_1": "lung",
        "size_1": "20",
        **typed,
    }


def _subject(session: Session, trial: str, limit: float = 500) -> None:
    update_settings(
        session, READER, trial, {"eligibility": {"max_volume_ml": limit}}, reason="protocol"
    )
    create_subject(session, READER, trial, code="S-1", arm="A")
    session.commit()


def _stored(session: Session) -> Subject:
    session.rollback()
    row = session.scalar(select(Subject).where(Subject.code == "S-1"))
    assert row is not None
    return row


def test_a_typed_volume_is_stored_audited_carried_into_the_case_and_checked(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    _subject(session, trial)
    reader = app.test_client()
    login(reader, "reader")
    # 612.5 mL is above the protocol's 500 mL: a finding, so saving needs a reason.
    page = reader.post(FORM, data=_form(volume_0="612,5"))
    assert page.status_code == 422
    text = html.unescape(page.data.decode())
    assert "<code>R-ELIG-VOLUME</code> T01" in text and "612.5 mL" in text
    assert form_fields(page.data.decode(), "baseline-form")["volume_0"] == "612,5"
    saved = reader.post(FORM, data=_form(volume_0="612,5", volume_1="3", reason="enrolled"))
    assert saved.status_code == 302, saved.data.decode()[:2000]
    row = _stored(session)
    evidence = row.timepoints[0].imaging_json
    assert evidence == {"volumes": {"T01": 612.5, "T02": 3.0}, "typed_volumes": ["T01", "T02"]}
    assert [le.get("volume_ml") for le in build_case(row)["lesions"]] == [612.5, 3.0]
    assert [(w["rule"], w["lesion"]) for w in row.result_json["warnings"]] == [
        ("R-ELIG-VOLUME", "T01")
    ]
    records = session.scalars(
        select(AuditRecord).where(AuditRecord.field == "volume_ml").order_by(AuditRecord.id)
    ).all()
    assert [(r.entity_key, r.action, r.old, r.new, r.reason) for r in records] == [
        (f"{trial}/S-1/T01", "create", None, "612.5", "enrolled"),
        (f"{trial}/S-1/T02", "create", None, "3.0", "enrolled"),
    ]
    # The form shows them again; changing one and clearing the other is audited.
    fields = form_fields(reader.get(FORM).data.decode(), "baseline-form")
    assert (fields["volume_0"], fields["volume_1"]) == ("612.5", "3")
    changed = {**fields, "volume_0": "450", "volume_1": ""}
    # A change after the first entry needs a reason, like every stored value.
    refused = reader.post(FORM, data=changed)
    assert refused.status_code == 422
    assert "changing lesion TRIAL-1/S-1/T01 (volume_ml) after its first entry needs a reason" in (
        html.unescape(refused.data.decode())
    )
    assert _stored(session).timepoints[0].imaging_json["volumes"]["T01"] == 612.5
    again = reader.post(FORM, data={**changed, "reason": "re-measured"})
    assert again.status_code == 302, again.data.decode()[:2000]
    row = _stored(session)
    assert row.timepoints[0].imaging_json == {"volumes": {"T01": 450.0}, "typed_volumes": ["T01"]}
    assert row.result_json["warnings"] == []
    changes = session.scalars(
        select(AuditRecord).where(AuditRecord.field == "volume_ml").order_by(AuditRecord.id)
    ).all()[2:]
    assert [(r.entity_key, r.old, r.new) for r in changes] == [
        (f"{trial}/S-1/T01", "612.5", "450.0"),
        (f"{trial}/S-1/T02", "3.0", None),
    ]


@pytest.mark.parametrize("typed", ["0", "-5", "abc", "nan", "inf", "1000001", "1e400"])
def test_a_bad_volume_is_refused_naming_lesion_and_field_and_nothing_is_written(
    app: Any, session: Session, trial: str, users: dict[str, str], typed: str
) -> None:
    _subject(session, trial)
    reader = app.test_client()
    login(reader, "reader")
    page = reader.post(FORM, data=_form(volume_1=typed, reason="x"))
    assert page.status_code == 400
    text = html.unescape(page.data.decode())
    assert f"lesion T02 volume (mL): {typed!r} is not a lesion volume" in text
    assert "R-PLAUS-SIZE" in text
    assert form_fields(page.data.decode(), "baseline-form")["volume_1"] == typed
    assert _stored(session).timepoints == []


def test_the_api_refuses_an_implausible_volume_with_the_pointer(
    client: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    _subject(session, trial)
    body = {
        "id": "BL",
        "date": "2021-01-04",
        "reason": "x",
        "lesions": [{"id": "T01", "site": "liver", "kind": "target", "size": 40.0,
                     "volume_ml": 0}],
    }  # fmt: skip
    refused = client.put(
        f"/api/v1{PAGE}/subjects/S-1/baseline", json=body, headers=bearer(users["reader"])
    )
    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert error["pointer"] == "/lesions/0/volume_ml" and error["rule"] == "R-PLAUS-SIZE"
    assert (
        "subject S-1, lesion T01: volume_ml 0 is not a plausible lesion volume"
        in (error["message"])
    )
    body["lesions"][0]["volume_ml"] = 12.5
    ok = client.put(
        f"/api/v1{PAGE}/subjects/S-1/baseline", json=body, headers=bearer(users["reader"])
    )
    assert ok.status_code in (200, 201), ok.get_json()
    assert _stored(session).timepoints[0].imaging_json["volumes"] == {"T01": 12.5}


def test_a_volume_from_imaging_is_shown_as_such_and_wins_over_a_typed_one(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    _subject(session, trial)
    save_baseline(
        session, READER, trial, "S-1", date_value="2021-01-04",
        lesions=[{"id": "T01", "kind": "target", "site": "liver", "size": 40.0, "volume_ml": 20.0},
                 {"id": "T02", "kind": "target", "site": "lung", "size": 20.0}],
    )  # fmt: skip
    measured = {"T01": {"mm": 40.0, "axis": "longest diameter", "volume_ml": 612.5}}
    evidence = {"image": {}, "study": None, "lesions": measured}
    attach_imaging(session, READER, trial, "S-1", "BL", copy.deepcopy(evidence))
    row = _stored(session)
    # The study measured T01: its volume replaced the typed one, which is typed no more.
    assert row.timepoints[0].imaging_json["volumes"] == {"T01": 612.5}
    assert "typed_volumes" not in row.timepoints[0].imaging_json
    (replaced,) = session.scalars(select(AuditRecord).where(AuditRecord.field == "volumes")).all()
    assert (replaced.old, replaced.new) == ('{"T01": 20.0}', '{"T01": 612.5}')
    assert replaced.reason == "the study's volume wins (R-ELIG-VOLUME)"
    reader = app.test_client()
    login(reader, "reader")
    page = reader.get(FORM).data.decode()
    assert 'id="volume-T01"' in page and "612.5 <small>from imaging</small>" in page
    fields = form_fields(page, "baseline-form")
    assert "volume_0" not in fields and fields["volume_1"] == ""
    # The form posts no volume for T01: imaging's stays, a typed one for T02 joins it.
    saved = reader.post(FORM, data={**fields, "volume_1": "7", "reason": "over the limit"})
    assert saved.status_code == 302, saved.data.decode()[:2000]
    row = _stored(session)
    assert row.timepoints[0].imaging_json["volumes"] == {"T01": 612.5, "T02": 7.0}
    assert row.timepoints[0].imaging_json["typed_volumes"] == ["T02"]
    assert [(w["rule"], w["lesion"]) for w in row.result_json["warnings"]] == [
        ("R-ELIG-VOLUME", "T01")
    ]
    # Typing another value for T01 (a crafted post) is refused, naming subject and lesion.
    crafted = reader.post(FORM, data={**fields, "volume_0": "100", "reason": "x"})
    assert crafted.status_code == 400
    assert "lesion T01: volume_ml 100 is not the volume imaging gave (612.5 mL)" in html.unescape(
        crafted.data.decode()
    )


def test_the_live_check_reads_the_typed_volume(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    _subject(session, trial, limit=100)
    reader = app.test_client()
    login(reader, "reader")
    got = reader.post(f"{FORM}/check", data=_form(volume_1="150")).get_json()
    assert got["error"] is None
    assert [(f["rule"], f["lesion"]) for f in got["findings"]] == [("R-ELIG-VOLUME", "T02")]
    bad = reader.post(f"{FORM}/check", data=_form(volume_1="-1")).get_json()
    assert "lesion T02 volume (mL)" in bad["error"] and bad["findings"] == []
