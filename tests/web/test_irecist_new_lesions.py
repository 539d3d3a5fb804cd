"""iRECIST's follow-up of new lesions in the web application (issue 15; I-NEW-1..4): a new
lesion's size, size word, category and state stored (``web.models.NewLesion``), entered on
the per-visit form and through the API of an iRECIST trial, carried forward to the next
visit, read back, audited; the case rebuilt from the rows (``build_case``, the one
contract path) gives the engine's answer for the JSON case. A RECIST 1.1 trial keeps the
simple form and refuses the iRECIST fields (I-NEW-4)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from recist.jsonio import assess_json
from tests.web.helpers import form_fields
from web.models import AuditRecord
from web.services import SYSTEM, build_case, create_subject, create_trial, get_subject
from web.services import save_baseline as store_baseline
from web.testing import assign_everyone, baseline_lesions, bearer, login

IREC = "T-IRECNL"
SUBJECT = "S-1"
NEW_PAGE = f"/trials/{IREC}/subjects/{SUBJECT}/timepoints/new"
API = f"/api/v1/trials/{IREC}/subjects/{SUBJECT}"


@pytest.fixture
def irecist_subject(session: Session, users: dict[str, str]) -> str:
    """Subject S-1 of an iRECIST trial with the standard baseline (T01 liver 30 mm, T02 node
    20 mm, NT01 bone) on 2021-01-04."""
    create_trial(
        session, SYSTEM, code=IREC, title="Immunotherapy", settings={"criteria": "irecist"},
        arms=[("A", "arm A")],
    )  # fmt: skip
    assign_everyone(session)
    create_subject(session, SYSTEM, IREC, code=SUBJECT, arm="A")
    store_baseline(
        session, SYSTEM, IREC, SUBJECT, date_value="2021-01-04", lesions=baseline_lesions()
    )
    return SUBJECT


@pytest.fixture
def reader(app: Flask, users: dict[str, str]) -> FlaskClient:
    client = app.test_client()
    login(client, "reader")
    return client


def _visits(session: Session) -> list[str]:
    """The subject's stored visits, read afresh (nothing half-written by a refusal)."""
    session.expire_all()
    return [tp.code for tp in get_subject(session, IREC, SUBJECT).timepoints]


def _follow_up(code: str, day: str, new: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": code, "date": day, "targets": {"T01": 30.0, "T02": 20.0},
            "non_targets": {"NT01": "present"}, "new_lesions": new}  # fmt: skip


def _visit(client: FlaskClient, fields: dict[str, str], url: str = NEW_PAGE) -> Any:
    """Post the follow-up form as the browser would, after changing ``fields``."""
    values = form_fields(client.get(url).data.decode(), "timepoint-form")
    return client.post(url, data={**values, **fields})


def _stored(api_get: Any, tp: str) -> dict[str, Any]:
    body: dict[str, Any] = api_get(f"{API}/timepoints/{tp}").get_json()
    return body


@pytest.fixture
def api_get(client: FlaskClient, users: dict[str, str]) -> Any:
    return lambda path: client.get(path, headers=bearer(users["reader"]))


def _w8(reader: FlaskClient) -> Any:
    """W8: NL01 a 14 mm lung lesion (the reader's new target), NL02 a bone lesion."""
    return _visit(reader, {
        "code": "W8", "date": "2021-03-01", "t_T01_mm": "30", "t_T02_mm": "20",
        "new_0_site": "lung", "new_0_sa": "14", "new_0_category": "target",
        "new_1_site": "bone", "new_1_state": "present",
    })  # fmt: skip


def test_the_irecist_form_offers_size_state_and_category_and_stores_them(
    reader: FlaskClient, irecist_subject: str, api_get: Any
) -> None:
    page = reader.get(NEW_PAGE).data.decode()
    assert "<th>Size (mm; node SA, I-NEW-4)</th><th>State</th><th>Category (I-NEW-1)</th>" in page
    assert 'name="new_0_state"' in page and 'name="new_0_category"' in page
    assert _w8(reader).status_code == 302
    stored = _stored(api_get, "W8")
    assert stored["new_lesions"] == [
        {"id": "NL01", "site": "lung", "equivocal": False, "size_mm": 14.0, "category": "target"},
        {"id": "NL02", "site": "bone", "equivocal": False, "state": "present"},
    ]
    result = api_get(API).get_json()["result"]
    assert result["timepoints"][1]["overall_response"] == "iUPD"  # I-UPD-1
    assert [(c["id"], c["category"]) for c in result["new_lesion_categories"]] == [
        ("NL01", "target"), ("NL02", "non-target")
    ]  # fmt: skip


def test_the_next_visit_carries_every_new_lesion_forward_and_confirms_by_growth(
    reader: FlaskClient, irecist_subject: str, api_get: Any
) -> None:
    _w8(reader)
    values = form_fields(reader.get(NEW_PAGE).data.decode(), "timepoint-form")
    carried = {k: v for k, v in values.items() if re.match(r"new_[01]_", k)}
    assert carried == {
        "new_0_id": "NL01", "new_0_site": "lung", "new_0_sa": "", "new_0_state": "",
        "new_0_category": "", "new_0_scan": "", "new_0_carried": "W8",
        "new_0_location": "", "new_0_series": "", "new_0_image": "",
        "new_1_id": "NL02", "new_1_site": "bone", "new_1_sa": "", "new_1_state": "",
        "new_1_category": "", "new_1_scan": "", "new_1_carried": "W8",
        "new_1_location": "", "new_1_series": "", "new_1_image": "",
    }  # fmt: skip
    page = reader.get(NEW_PAGE).data.decode()
    assert "listed at W8 (14.0 mm): give its size or state now (I-NEW-4)" in page
    assert "listed at W8 (present): give its size or state now (I-NEW-4)" in page
    response = _visit(reader, {
        "code": "W14", "date": "2021-04-12", "t_T01_mm": "30", "t_T02_mm": "20",
        "new_0_sa": "20", "new_1_state": "progression",
    })  # fmt: skip
    assert response.status_code == 302, response.data.decode()[:2000]
    assert _stored(api_get, "W14")["new_lesions"] == [
        {"id": "NL01", "site": "lung", "equivocal": False, "size_mm": 20.0},
        {"id": "NL02", "site": "bone", "equivocal": False, "state": "progression"},
    ]
    result = api_get(API).get_json()["result"]
    # I-CPD-3: the new-target sum grew 14 → 20 mm (≥ 5 mm) since the iUPD.
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["iUPD", "iCPD"]
    grid = reader.get(f"/trials/{IREC}/subjects/{SUBJECT}").data.decode()
    sums = re.search(r'<th scope="row"[^>]*>New-target sum \(mm\)</th>(.*?)</tr>', grid, re.S)
    assert sums is not None
    assert [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>",
            sums[1], re.S)] == ["", "14.0", "20.0"]  # fmt: skip


def test_editing_a_visit_shows_and_changes_the_fields_with_an_audit_record(
    reader: FlaskClient, irecist_subject: str, api_get: Any, session: Session
) -> None:
    _w8(reader)
    _visit(reader, {"code": "W14", "date": "2021-04-12", "t_T01_mm": "30", "t_T02_mm": "20",
                    "new_0_sa": "20", "new_1_state": "progression"})  # fmt: skip
    edit = f"/trials/{IREC}/subjects/{SUBJECT}/timepoints/W14"
    values = form_fields(reader.get(edit).data.decode(), "timepoint-form")
    assert (values["new_0_sa"], values["new_0_state"]) == ("20.0", "")
    assert (values["new_1_sa"], values["new_1_state"]) == ("", "progression")
    response = _visit(
        reader, {"new_0_sa": "", "new_0_state": "not_evaluated", "reason": "slice missing"}, edit
    )
    assert response.status_code == 302, response.data.decode()[:2000]
    assert _stored(api_get, "W14")["new_lesions"][0] == {
        "id": "NL01", "site": "lung", "equivocal": False, "state": "not_evaluated"
    }  # fmt: skip
    record = session.scalars(
        select(AuditRecord).where(
            AuditRecord.entity == "new_lesion", AuditRecord.field == "size_mm",
            AuditRecord.entity_key == f"{IREC}/{SUBJECT}/W14/NL01",
        ).order_by(AuditRecord.seq.desc())
    ).first()  # fmt: skip
    assert record is not None and (record.old, record.new) == ("20.0", None)
    assert record.reason == "slice missing"
    result = api_get(API).get_json()["result"]
    assert result["timepoints"][2]["new_target_sum_mm"] is None  # I-NEW-3: NL01 NE
    assert result["timepoints"][2]["new_target_partial_sum_mm"] == 0.0


def test_a_size_and_a_state_on_one_row_are_refused_naming_the_lesion(
    reader: FlaskClient, irecist_subject: str, session: Session
) -> None:
    _w8(reader)
    response = _visit(reader, {"code": "W14", "date": "2021-04-12", "t_T01_mm": "30",
                               "t_T02_mm": "20", "new_0_sa": "20",
                               "new_0_state": "absent"})  # fmt: skip
    assert response.status_code == 400
    assert (
        "subject S-1, timepoint W14, lesion NL01, field state: a size was entered and the state "
        "is &#39;absent&#39;; give one of them (I-NEW-4)"
    ) in response.data.decode()
    assert _visits(session) == ["BL", "W8"]


def test_a_carried_new_target_left_without_a_size_is_refused_with_the_rule(
    reader: FlaskClient, irecist_subject: str, session: Session
) -> None:
    _w8(reader)
    response = _visit(reader, {"code": "W14", "date": "2021-04-12", "t_T01_mm": "30",
                               "t_T02_mm": "20", "new_1_state": "present"})  # fmt: skip
    assert response.status_code == 400
    text = response.data.decode()
    assert re.search(r"subject S-1, timepoint W14, lesion NL01.*new lesion NL01 is a new target "
                     r"lesion since W8: give its size_mm.*\(I-NEW-4\)", text, re.S)  # fmt: skip
    # The form comes back as typed, the carried rows with their notes.
    assert "listed at W8 (14.0 mm): give its size or state now (I-NEW-4)" in text
    assert form_fields(text, "timepoint-form")["new_1_state"] == "present"
    assert _visits(session) == ["BL", "W8"]


def test_the_api_stores_reads_and_replaces_the_fields(
    irecist_subject: str, client: FlaskClient, users: dict[str, str]
) -> None:
    auth = bearer(users["reader"])
    w8 = _follow_up("W8", "2021-03-01", [
        {"id": "N1", "site": "lung", "size_mm": 14.0, "category": "target"},
        {"id": "N2", "site": "lymph node", "nodal": True, "size_mm": 16.0},
        {"id": "N3", "site": "bone", "category": "non-target"},
    ])  # fmt: skip
    created = client.post(f"{API}/timepoints", json=w8, headers=auth)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["timepoint"]["new_lesions"] == [
        {"id": "N1", "site": "lung", "equivocal": False, "size_mm": 14.0, "category": "target"},
        {"id": "N2", "site": "lymph node", "equivocal": False, "nodal": True, "size_mm": 16.0},
        {"id": "N3", "site": "bone", "equivocal": False, "category": "non-target"},
    ]
    # A later listing may leave out site and nodal (I-NEW-4): the row keeps the first's.
    w14 = _follow_up("W14", "2021-04-12", [
        {"id": "N1", "size_mm": "too_small"}, {"id": "N2", "size_mm": "absent"},
        {"id": "N3", "state": "absent"},
    ])  # fmt: skip
    created = client.post(f"{API}/timepoints", json=w14, headers=auth)
    assert created.status_code == 201, created.get_json()
    stored = created.get_json()["timepoint"]
    assert stored["new_lesions"] == [
        {"id": "N1", "site": "lung", "equivocal": False, "size_mm": "too_small"},
        {"id": "N2", "site": "lymph node", "equivocal": False, "nodal": True,
         "size_mm": "absent"},
        {"id": "N3", "site": "bone", "equivocal": False, "state": "absent"},
    ]  # fmt: skip
    measured = client.get(f"{API}/timepoints/W14/measurements", headers=auth).get_json()
    assert {"lesion": "N3", "kind": "new", "value": stored["new_lesions"][2]} in (
        measured["measurements"]
    )
    replaced = client.put(
        f"{API}/timepoints/W14",
        json={**w14, "version": stored["version"], "reason": "re-read",
              "new_lesions": [{"id": "N1", "size_mm": 19.0}, {"id": "N3", "state": "progression"}]},
        headers=auth,
    )  # fmt: skip
    assert replaced.status_code == 200, replaced.get_json()
    body = replaced.get_json()
    assert body["timepoint"]["new_lesions"] == [
        {"id": "N1", "site": "lung", "equivocal": False, "size_mm": 19.0},
        {"id": "N3", "site": "bone", "equivocal": False, "state": "progression"},
    ]
    assert body["result"]["timepoints"][2]["overall_response"] == "iCPD"  # I-CPD-3, I-CPD-4


def test_the_api_refuses_an_irecist_field_naming_where_and_the_rule(
    irecist_subject: str, client: FlaskClient, users: dict[str, str], session: Session
) -> None:
    auth = bearer(users["reader"])
    first = _follow_up("W8", "2021-03-01", [{"id": "N1", "site": "lung", "size_mm": 14.0}])
    assert client.post(f"{API}/timepoints", json=first, headers=auth).status_code == 201
    later = _follow_up(
        "W14", "2021-04-12", [{"id": "N1", "size_mm": 15.0, "category": "non-target"}]
    )
    refused = client.post(f"{API}/timepoints", json=later, headers=auth)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["rule"] == "I-NEW-4" and error["field"] == "new_lesions.N1"
    assert "subject S-1, timepoint W14, lesion N1" in error["message"]
    assert _visits(session) == ["BL", "W8"]
    # A later listing of a lesion never seen before needs its site (the web's own rule).
    unknown = _follow_up("W14", "2021-04-12", [{"id": "N9", "size_mm": 15.0}])
    refused = client.post(f"{API}/timepoints", json=unknown, headers=auth)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["field"] == "new_lesions.N9.site" and error["pointer"] == "/new_lesions/0/site"
    assert error["message"].startswith("subject S-1, timepoint W14, lesion N9: new lesion N9 "
                                       "needs its site where it is first listed")  # fmt: skip


def test_a_recist_1_1_trial_keeps_the_simple_form_and_refuses_the_fields(
    app: Flask, session: Session, trial: str, users: dict[str, str], client: FlaskClient
) -> None:
    create_subject(session, SYSTEM, trial, code="R-1", arm="A")
    store_baseline(session, SYSTEM, trial, "R-1", date_value="2021-01-04",
                   lesions=baseline_lesions())  # fmt: skip
    browser = app.test_client()
    login(browser, "reader")
    page = browser.get(f"/trials/{trial}/subjects/R-1/timepoints/new").data.decode()
    assert "<th>SA (mm, R-NEW-1)</th><th>Location" in page
    assert "new_0_state" not in page and "new_0_category" not in page
    assert 'id="irecist-new-hint"' not in page
    tp = _follow_up("W8", "2021-03-01", [{"id": "N1", "site": "lung", "category": "target"}])
    refused = client.post(f"/api/v1/trials/{trial}/subjects/R-1/timepoints", json=tp,
                          headers=bearer(users["reader"]))  # fmt: skip
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert (error["rule"], error["field"]) == ("I-NEW-4", "new_lesions.N1")
    assert "set the setting criteria to 'irecist'" in error["message"]


CASE = {
    "subject_id": "RT-1",
    "randomized_on": "2021-01-01",
    "lesions": [
        {"id": "T1", "site": "liver", "kind": "target"},
        {"id": "NT1", "site": "bone", "kind": "non-target"},
    ],
    "timepoints": [
        {"id": "BL", "date": "2021-01-04", "targets": {"T1": 50.0},
         "non_targets": {"NT1": "present"}, "new_lesions": []},
        {"id": "W8", "date": "2021-03-01", "targets": {"T1": 50.0},
         "non_targets": {"NT1": "present"}, "new_lesions": [
             {"id": "N1", "site": "lung", "size_mm": 12.0},
             {"id": "N2", "site": "lymph node", "nodal": True, "short_axis_mm": 16.0},
             {"id": "N3", "site": "skin", "size_mm": 8.0, "category": "non-target"},
             {"id": "N4", "site": "liver", "equivocal": True}]},
        {"id": "W14", "date": "2021-04-12", "targets": {"T1": 40.0},
         "non_targets": {"NT1": "present"}, "new_lesions": [
             {"id": "N1", "size_mm": 10.5}, {"id": "N2", "short_axis_mm": 12.0},
             {"id": "N3", "state": "present"}, {"id": "N4", "site": "liver", "equivocal": True}]},
        {"id": "W20", "date": "2021-05-24", "targets": {"T1": 30.0},
         "non_targets": {"NT1": "present"}, "new_lesions": [
             {"id": "N1", "size_mm": "absent"}, {"id": "N2", "size_mm": "not_evaluated"},
             {"id": "N3", "state": "absent"}, {"id": "N4", "size_mm": 11.0}]},
    ],
}  # fmt: skip


def test_the_contract_round_trip_db_case_engine_gives_the_json_cases_result(
    irecist_subject: str, client: FlaskClient, users: dict[str, str], session: Session
) -> None:
    auth = bearer(users["trial_manager"])
    imported = client.post(f"/api/v1/trials/{IREC}/cases", json=CASE, headers=auth)
    assert imported.status_code == 201, imported.get_json()
    stored = client.get(f"/api/v1/trials/{IREC}/subjects/RT-1", headers=auth).get_json()
    engine = assess_json({**CASE, "settings": stored["case"]["settings"]})
    assert stored["result"] == engine
    assert [tp["overall_response"] for tp in engine["timepoints"][1:]] == [
        "iUPD", "iSD", "iUPD"
    ]  # fmt: skip
    # The rows hold what was sent; a later listing carries its first listing's site/nodal.
    rebuilt = build_case(get_subject(session, IREC, "RT-1"))
    for sent, kept in zip(CASE["timepoints"][1:], rebuilt["timepoints"][1:], strict=True):
        for item, row in zip(sent["new_lesions"], kept["new_lesions"], strict=True):
            first = CASE["timepoints"][1]["new_lesions"]
            origin = next(n for n in first if n["id"] == item["id"])
            expected = {"site": origin["site"], "equivocal": False, **item}
            if origin.get("nodal"):
                expected["nodal"] = True
            assert row == expected
    assert assess_json(rebuilt) == engine  # DB → case → engine


@pytest.mark.parametrize(
    "item",
    [
        {"id": "N1", "site": "lung", "equivocal": False, "size_mm": 14.25},
        {"id": "N1", "site": "lung", "equivocal": False, "size_mm": "too_small"},
        {"id": "N1", "site": "lymph node", "equivocal": False, "nodal": True,
         "short_axis_mm": 16.0},
        {"id": "N1", "site": "lymph node", "equivocal": False, "nodal": True, "size_mm": 16.0},
        {"id": "N1", "site": "bone", "equivocal": False, "category": "non-target",
         "state": "progression"},
        {"id": "N1", "site": "liver", "equivocal": True},
    ],
)  # fmt: skip
def test_a_new_lesion_goes_to_its_row_and_back_unchanged(item: dict[str, Any]) -> None:
    """cases.new_lesion_columns and cases.stored_new_lesion are each other's inverse."""
    from recist.jsonio import NewLesionIn
    from web.models import NewLesion
    from web.services.cases import new_lesion_columns, stored_new_lesion

    row = NewLesion(code=item["id"], **new_lesion_columns(NewLesionIn(**item), None))
    assert stored_new_lesion(row) == item


def test_a_later_listing_takes_site_and_nodal_from_its_first_row() -> None:
    from recist.jsonio import NewLesionIn
    from web.models import NewLesion
    from web.services.cases import new_lesion_columns

    first = NewLesion(code="N1", site="lymph node", nodal=True)
    later = new_lesion_columns(NewLesionIn(id="N1", size_mm="absent"), first)
    assert (later["site"], later["nodal"], later["size_state"]) == ("lymph node", True, "absent")
    # Given, they are kept as given (the engine refuses a contradiction, I-NEW-4).
    given = new_lesion_columns(NewLesionIn(id="N1", site="lung", nodal=False), first)
    assert (given["site"], given["nodal"]) == ("lung", False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("new_2_state", "<script>"), ("new_2_category", "a\x00b"), ("new_2_sa", "nan"),
     ("new_2_sa", "1e308"), ("new_2_state", "present\u202e")],
)  # fmt: skip
def test_hostile_values_in_the_irecist_fields_are_refused_and_write_nothing(
    reader: FlaskClient, irecist_subject: str, session: Session, field: str, value: str
) -> None:
    fields = {"code": "W8", "date": "2021-03-01", "t_T01_mm": "30", "t_T02_mm": "20",
              "new_2_site": "lung", field: value}  # fmt: skip
    if field != "new_2_sa":
        fields["new_2_sa"] = "" if field == "new_2_state" else "12"
    response = _visit(reader, fields)
    assert response.status_code == 400, response.data.decode()[:500]
    text = response.data.decode()
    # The refusal names the lesion's field (or, for a NUL, the form field that holds it).
    assert "new_lesions" in text or "NL01" in text or field in text
    assert _visits(session) == ["BL"]
