"""Carry forward what is open (issue 14): an equivocal new lesion at W8 appears on the
next visit's form, ready to be confirmed (its progression back-dated to W8, R-NEW-2) or
cleared as resolved; a blank id never silently becomes a fresh lesion dated later."""

from __future__ import annotations

import html
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from tests.web.helpers import form_fields
from web.services import SYSTEM, save_timepoint
from web.testing import login, seed_subject_with_follow_up

BASE = "/trials/TRIAL-1/subjects/S-001"


def _with_equivocal_w8(session: Session, trial: str) -> None:
    seed_subject_with_follow_up(session, trial)
    save_timepoint(
        session,
        SYSTEM,
        trial,
        "S-001",
        {
            "id": "W8",
            "date": "2021-03-01",
            "targets": {"T01": 21.0, "T02": 14.0},
            "non_targets": {"NT01": "present"},
            "new_lesions": [{"id": "NL01", "site": "liver", "equivocal": True}],
        },
        expected_version=1,
    )
    session.rollback()


def test_an_open_equivocal_lesion_is_carried_to_the_next_visit_and_confirmed_back_dated(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    _with_equivocal_w8(session, trial)
    client = app.test_client()
    login(client, "reader")
    page = client.get(BASE + "/timepoints/new").data.decode()
    fields = form_fields(page, "timepoint-form")
    assert (fields["new_0_id"], fields["new_0_site"], fields.get("new_0_equivocal")) == (
        "NL01",
        "liver",
        "on",
    )
    assert 'data-carried="NL01"' in page and "open since W8" in html.unescape(page)
    fields.pop("new_0_equivocal")  # unequivocally new now
    fields.update(code="W16", date="2021-04-26", t_T01_mm="22", t_T02_mm="14")
    saved = client.post(BASE + "/timepoints/new", data=fields)
    assert saved.status_code == 302, html.unescape(saved.data.decode())[-800:]
    result = client.get(f"/api/v1{BASE}/result", headers=_token(users)).get_json()["result"]
    assert result["progression"]["timepoint"] == "W16"
    assert result["progression"]["date"] == "2021-03-01"  # back-dated to W8 (R-NEW-2)
    # Confirmed: no longer open, so the next visit starts without it.
    again = form_fields(client.get(BASE + "/timepoints/new").data.decode(), "timepoint-form")
    assert again.get("new_0_id", "") == ""


def test_a_resolved_equivocal_lesion_is_cleared_and_no_progression_is_called(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    _with_equivocal_w8(session, trial)
    client = app.test_client()
    login(client, "reader")
    fields = form_fields(client.get(BASE + "/timepoints/new").data.decode(), "timepoint-form")
    for key in ("new_0_id", "new_0_site", "new_0_equivocal"):
        fields.pop(key, None)
    fields.update(code="W16", date="2021-04-26", t_T01_mm="21", t_T02_mm="14")
    assert client.post(BASE + "/timepoints/new", data=fields).status_code == 302
    result = client.get(f"/api/v1{BASE}/result", headers=_token(users)).get_json()["result"]
    assert result["progression"] is None


def _token(users: dict[str, str]) -> dict[str, Any]:
    return {"Authorization": f"Bearer {users['reviewer']}"}
