"""The site reader's worksheet (issue 14): lesion rows × visit columns for a subject's own
visits, saved through the per-visit services, with the engine's result as the reader
types (the check: nothing stored)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recist.cli import main as recist_main
from tests.web.helpers import form_fields
from web.models import AuditRecord
from web.services import (
    SYSTEM,
    Actor,
    build_case,
    create_subject,
    create_user,
    get_subject,
    get_timepoint,
    save_baseline,
    save_timepoint,
)
from web.services.sheet import next_visit
from web.services.signing import ADJUDICATOR_MEANING, sign_timepoint
from web.testing import PASSWORD, assign_everyone, baseline_lesions, login

pytestmark = pytest.mark.usefixtures("users")

W16 = {"T01": "18", "T02": "12", "NT01": "P"}


def _seed(session: Session, trial: str, code: str = "S-001") -> None:
    """``code``: the baseline of web.testing (T01 liver 30, T02 node 20, NT01 bone) on
    2021-01-04 and W8 on 2021-03-01 (T01 21, T02 14, NT01 present)."""
    create_subject(session, SYSTEM, trial, code=code, arm="A")
    save_baseline(session, SYSTEM, trial, code, date_value="2021-01-04", lesions=baseline_lesions())
    save_timepoint(
        session, SYSTEM, trial, code,
        {"id": "W8", "date": "2021-03-01", "targets": {"T01": 21.0, "T02": 14.0},
         "non_targets": {"NT01": "present"}},
    )  # fmt: skip


def _url(trial: str, code: str = "S-001") -> str:
    return f"/trials/{trial}/subjects/{code}/sheet"


def _sheet(client: FlaskClient, trial: str, code: str = "S-001") -> dict[str, str]:
    """The worksheet's fields as the browser would post them."""
    page = client.get(_url(trial, code))
    assert page.status_code == 200, page.text
    return form_fields(page.text, "read-sheet")


def _row(fields: dict[str, str], lesion: str) -> int:
    return next(
        int(k.split("_")[1]) for k, v in fields.items() if k.startswith("id_") and v == lesion
    )


def _column(fields: dict[str, str], visit: str) -> int:
    return next(
        int(k.split("_")[1]) for k, v in fields.items() if k.startswith("visit_") and v == visit
    )


def _type(fields: dict[str, str], visit: str, values: dict[str, str]) -> dict[str, str]:
    j = _column(fields, visit)
    out = dict(fields)
    for lesion, text in values.items():
        out[f"cell_{_row(fields, lesion)}_{j}"] = text
    return out


def _audit_count(session: Session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(AuditRecord)) or 0


def _case(session: Session, trial: str, code: str) -> dict[str, Any]:
    session.rollback()
    case = build_case(get_subject(session, trial, code))
    case.pop("subject_id")
    return case


@pytest.fixture
def subject(session: Session, trial: str, client: FlaskClient) -> str:
    _seed(session, trial)
    login(client, "reader")
    return "S-001"


def test_the_worksheet_lays_out_the_visits_and_a_next_column_from_the_schedule(
    client: FlaskClient, trial: str, subject: str
) -> None:
    fields = _sheet(client, trial)
    assert [fields[f"visit_{j}"] for j in range(3)] == ["BL", "W8", "W16"]
    # The protocol's interval (visit_interval_days 56 in the fixture trial) after W8.
    assert fields["date_2"] == "2021-04-26"
    assert fields["orig_2"] == "" and fields["orig_1"] == "W8" and fields["version_1"]
    t01 = _row(fields, "T01")
    assert (fields[f"cell_{t01}_0"], fields[f"cell_{t01}_1"], fields[f"cell_{t01}_2"]) == (
        "30",
        "21",
        "",
    )
    page = client.get(_url(trial)).text
    # The cursor starts in the new visit's first cell.
    assert f'name="cell_{t01}_2"' in page.split("autofocus")[0].rsplit("<input", 1)[1]


def test_next_visit_continues_the_numbering_and_the_schedule() -> None:
    case: dict[str, Any] = {"settings": {}, "timepoints": []}
    assert next_visit(case, date(2022, 1, 1)) == ("", "")
    case["timepoints"] = [{"id": "BL", "date": "2021-01-04"}]
    assert next_visit(case, date(2022, 1, 1)) == ("W8", "2021-03-01")
    case["timepoints"].append({"id": "W6", "date": "2021-02-15"})
    case["settings"] = {"visit_interval_days": 42}
    assert next_visit(case, date(2022, 1, 1)) == ("W12", "2021-03-29")
    case["timepoints"].append({"id": "W12", "date": "2021-03-29"})
    assert next_visit(case, date(2022, 1, 1)) == ("W18", "2021-05-10")
    # Never a date after today (R-PLAUS-DATE would refuse it).
    assert next_visit(case, date(2021, 4, 2)) == ("W18", "2021-04-02")
    case = {"settings": {}, "timepoints": [{"id": "C1", "date": "2021-01-04"},
                                           {"id": "C2", "date": "2021-01-25"}]}  # fmt: skip
    assert next_visit(case, date(2022, 1, 1)) == ("C3", "2021-02-15")


def _check(client: FlaskClient, trial: str, fields: dict[str, str]) -> Any:
    response = client.post(
        _url(trial),
        data={**fields, "action": "check"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.get_json()


def test_the_check_is_the_engine_on_the_case_the_sheet_would_produce(
    client: FlaskClient, session: Session, trial: str, subject: str, tmp_path: Path
) -> None:
    before_case, before_audit = _case(session, trial, subject), _audit_count(session)
    data = _check(client, trial, _type(_sheet(client, trial), "W16", W16))
    assert data["error"] is None and data["pending"] == []
    # The same case given to `recist assess` (the engine directly, not the web).
    case = {**before_case, "subject_id": subject}
    case["timepoints"] = [
        *case["timepoints"],
        {"id": "W16", "date": "2021-04-26", "targets": {"T01": 18.0, "T02": 12.0},
         "non_targets": {"NT01": "present"}, "new_lesions": []},
    ]  # fmt: skip
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    out = io.StringIO()
    with redirect_stdout(out):
        assert recist_main(["assess", str(path), "--today", date.today().isoformat()]) == 0
    engine = json.loads(out.getvalue())
    got = data["outcome"]
    for tp in got["timepoints"]:
        assert tp.pop("rules") == [r.split(":")[0] for r in tp["reasons"] if r.startswith("R-")]
    assert got == engine
    w16 = got["timepoints"][2]
    assert (w16["sum_mm"], w16["change_from_baseline_pct"], w16["overall_response"]) == (
        30.0,
        -40.0,
        "PR",
    )
    # Nothing stored, nothing audited.
    assert _case(session, trial, subject) == before_case
    assert _audit_count(session) == before_audit


def test_the_check_counts_blank_cells_as_pending_and_marks_a_bad_cell(
    client: FlaskClient, trial: str, subject: str
) -> None:
    fields = _sheet(client, trial)
    data = _check(client, trial, _type(fields, "W16", {"T01": "18"}))
    assert data["pending"] == ["T02 at W16", "NT01 at W16"]
    assert data["outcome"]["timepoints"][2]["target_response"] == "NE"
    bad = _check(client, trial, _type(fields, "W16", {"T01": "18x", "T02": "12", "NT01": "P"}))
    assert bad["outcome"] is None
    assert bad["field"] == f"cell_{_row(fields, 'T01')}_2"
    assert "lesion T01, visit W16" in bad["error"]


def test_the_no_script_check_button_shows_the_result_with_rule_ids(
    client: FlaskClient, trial: str, subject: str
) -> None:
    fields = _type(_sheet(client, trial), "W16", W16)
    page = client.post(_url(trial), data={**fields, "action": "check"})
    assert page.status_code == 200
    assert 'id="check-timepoints"' in page.text
    assert "<code>R-TGT-PR</code>" in page.text


def test_check_and_save_need_the_entry_permission_and_membership(
    app: Flask, session: Session, trial: str, subject: str
) -> None:
    other = app.test_client()
    login(other, "reviewer")
    assert other.post(_url(trial), data={"action": "check"}).status_code == 403
    create_user(session, SYSTEM, username="outsider", password=PASSWORD, role="reader")
    outsider = app.test_client()
    login(outsider, "outsider")
    assert outsider.get(_url(trial)).status_code == 403
    assert outsider.post(_url(trial), data={"action": "check"}).status_code == 403


def _form_follow_up(client: FlaskClient, trial: str, subject: str, **values: str) -> Any:
    page = client.get(f"/trials/{trial}/subjects/{subject}/timepoints/new")
    fields = form_fields(page.text, "timepoint-form")
    fields.update(values)
    return client.post(f"/trials/{trial}/subjects/{subject}/timepoints/new", data=fields)


def test_saving_from_the_sheet_stores_what_the_per_visit_form_stores(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    _seed(session, trial, "S-002")
    assign_everyone(session)
    form = _form_follow_up(
        client, trial, "S-002", code="W16", date="2021-04-26", t_T01_mm="18", t_T02_mm="12"
    )
    assert form.status_code == 302, form.text
    before = _audit_count(session)
    saved = client.post(
        _url(trial), data={**_type(_sheet(client, trial), "W16", W16), "action": "save"}
    )
    assert saved.status_code == 302, saved.text
    assert saved.headers["Location"].endswith(f"/trials/{trial}/subjects/{subject}")
    assert _case(session, trial, subject) == _case(session, trial, "S-002")
    # Only W16 was written: the audit records are its creation and its three values.
    after = session.scalars(select(AuditRecord).order_by(AuditRecord.id)).all()[before:]
    assert {(r.action, r.entity, r.entity_key.split("/", 2)[2]) for r in after} == {
        ("create", "timepoint", "W16"),
        ("create", "measurement", "W16/T01"),
        ("create", "measurement", "W16/T02"),
        ("create", "measurement", "W16/NT01"),
    }
    tp = get_timepoint(get_subject(session, trial, subject), "W16")
    assert not tp.locked and tp.signed_by is None  # saving never signs


def test_editing_from_the_sheet_edits_as_the_per_visit_form_does(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    _seed(session, trial, "S-002")
    assign_everyone(session)
    page = client.get(f"/trials/{trial}/subjects/S-002/timepoints/W8")
    fields = form_fields(page.text, "timepoint-form")
    fields.update(t_T01_mm="24", nt_NT01="progression", reason="re-measured")
    edited = client.post(f"/trials/{trial}/subjects/S-002/timepoints/W8", data=fields)
    assert edited.status_code == 302, edited.text
    w8_version = get_timepoint(get_subject(session, trial, subject), "W8").version
    sheet = _type(_sheet(client, trial), "W8", {"T01": "24", "NT01": "PD"})
    saved = client.post(_url(trial), data={**sheet, "action": "save", "reason": "re-measured"})
    assert saved.status_code == 302, saved.text
    assert _case(session, trial, subject) == _case(session, trial, "S-002")
    session.rollback()
    subject_row = get_subject(session, trial, subject)
    assert get_timepoint(subject_row, "W8").version == w8_version + 1
    assert subject_row.result_json["timepoints"][1]["overall_response"] == "PD"
    reasons = session.scalars(
        select(AuditRecord.reason)
        .where(AuditRecord.entity_key == f"{trial}/{subject}/W8/T01")
        .order_by(AuditRecord.seq)
    ).all()
    assert reasons[-1] == "re-measured"


def test_an_unchanged_sheet_saves_nothing(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    before = _audit_count(session)
    fields = _sheet(client, trial)
    fields["visit_2"] = fields["date_2"] = ""  # no next visit typed
    saved = client.post(_url(trial), data={**fields, "action": "save"}, follow_redirects=True)
    assert "Nothing changed" in saved.text
    assert _audit_count(session) == before


def test_a_stale_sheet_is_refused_with_409_and_writes_nothing(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    fields = _type(_sheet(client, trial), "W16", W16)
    session.rollback()
    version = get_timepoint(get_subject(session, trial, subject), "W8").version
    save_timepoint(
        session, Actor("someone", "reader"), trial, subject,
        {"id": "W8", "date": "2021-03-01", "targets": {"T01": 22.0, "T02": 14.0},
         "non_targets": {"NT01": "present"}},
        expected_version=version, reason="re-measured",
    )  # fmt: skip
    before_case, before = _case(session, trial, subject), _audit_count(session)
    stale = client.post(_url(trial), data={**fields, "action": "save"})
    assert stale.status_code == 409
    assert "W8" in stale.text and "reload" in stale.text
    assert _case(session, trial, subject) == before_case  # W16 not created either
    assert _audit_count(session) == before


def test_a_visit_added_elsewhere_makes_the_sheet_stale(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    fields = _type(_sheet(client, trial), "W16", W16)
    save_timepoint(
        session, SYSTEM, trial, subject,
        {"id": "W12", "date": "2021-03-29", "targets": {"T01": 20.0, "T02": 14.0},
         "non_targets": {"NT01": "present"}},
    )  # fmt: skip
    stale = client.post(_url(trial), data={**fields, "action": "save"})
    assert stale.status_code == 409 and "W12 was added" in stale.text


def test_a_signed_visit_is_a_read_only_column_and_its_change_is_refused(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    session.rollback()
    version = get_timepoint(get_subject(session, trial, subject), "W8").version
    sign_timepoint(
        session, Actor("adjudicator", "adjudicator"), trial, subject, "W8",
        password=PASSWORD, meaning=ADJUDICATOR_MEANING, expected_version=version,
    )  # fmt: skip
    page = client.get(_url(trial)).text
    fields = form_fields(page, "read-sheet")
    t01 = _row(fields, "T01")
    cell = page.split(f'name="cell_{t01}_1"')[1].split(">")[0]
    assert "readonly" in cell
    assert "readonly" not in page.split(f'name="cell_{t01}_2"')[1].split(">")[0]
    before_case, before = _case(session, trial, subject), _audit_count(session)
    refused = client.post(
        _url(trial), data={**_type(fields, "W8", {"T01": "25"}), "action": "save"}
    )
    assert refused.status_code == 409
    assert "locked" in refused.text
    assert _case(session, trial, subject) == before_case
    assert _audit_count(session) == before
    # The next visit is still saved beside the signed one.
    saved = client.post(_url(trial), data={**_type(fields, "W16", W16), "action": "save"})
    assert saved.status_code == 302, saved.text
    assert [tp["id"] for tp in _case(session, trial, subject)["timepoints"]] == [
        "BL",
        "W8",
        "W16",
    ]


def test_a_bad_cell_is_refused_marked_and_focused(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    fields = _sheet(client, trial)
    before = _audit_count(session)
    bad = client.post(
        _url(trial),
        data={**_type(fields, "W16", {"T01": "18", "T02": "big", "NT01": "P"}), "action": "save"},
    )
    assert bad.status_code == 400
    name = f"cell_{_row(fields, 'T02')}_2"
    tag = bad.text.split(f'name="{name}"')[1].split(">")[0]
    assert 'class="bad"' in tag and "autofocus" in tag
    assert "lesion T02, visit W16" in bad.text
    assert _audit_count(session) == before


def test_an_engine_refusal_on_save_marks_the_visit_cell(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    fields = _type(_sheet(client, trial), "W16", W16)
    fields["date_2"] = "2021-03-01"  # W8's date
    bad = client.post(_url(trial), data={**fields, "action": "save"})
    assert bad.status_code == 400
    assert "W8 is already dated 2021-03-01" in bad.text
    assert 'class="bad"' in bad.text.split('name="date_2"')[1].split(">")[0]


def test_a_new_subject_gets_its_baseline_from_the_sheet(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    create_subject(session, SYSTEM, trial, code="S-003", arm="A")
    assign_everyone(session)
    fields = _sheet(client, trial, "S-003")
    fields.update(visit_0="BL", date_0="2021-01-04", site_0="liver", cell_0_0="30")
    saved = client.post(_url(trial, "S-003"), data={**fields, "action": "save"})
    assert saved.status_code == 302, saved.text
    case = _case(session, trial, "S-003")
    assert case["lesions"] == [{"id": "T01", "site": "liver", "kind": "target", "nodal": False}]
    assert case["timepoints"][0]["targets"] == {"T01": 30.0}


def test_a_refusal_in_a_later_visit_writes_nothing_of_the_earlier_ones(
    client: FlaskClient, session: Session, trial: str, subject: str
) -> None:
    """One transaction: W8's valid edit is saved first, then W16 is refused (its date is
    W8's): neither is stored, nothing is audited."""
    fields = _type(_type(_sheet(client, trial), "W8", {"T01": "23"}), "W16", W16)
    fields.update(date_2="2021-03-01", reason="re-measured")
    before_case, before = _case(session, trial, subject), _audit_count(session)
    refused = client.post(_url(trial), data={**fields, "action": "save"})
    assert refused.status_code == 400
    assert "W8 is already dated 2021-03-01" in refused.text
    assert _case(session, trial, subject) == before_case
    assert _audit_count(session) == before


@pytest.mark.parametrize(
    "posted",
    [
        {"action": "save"},
        {"action": "check"},
        {
            "action": "save",
            "orig_0": "ZZ",
            "version_0": "x",
            "visit_0": "BL",
            "date_0": "2021-01-04",
        },
        {"action": "save", "columns": "999", "rows": "-3", "orig_1": "W8", "version_1": "1"},
    ],
)
def test_a_posted_sheet_that_makes_no_sense_is_refused_not_a_500(
    client: FlaskClient, session: Session, trial: str, subject: str, posted: dict[str, str]
) -> None:
    before = _audit_count(session)
    response = client.post(_url(trial), data=posted)
    assert response.status_code in (400, 409)
    assert 'role="alert"' in response.text
    assert _audit_count(session) == before
    create_subject(session, SYSTEM, trial, code="S-004", arm="A")  # no visit yet
    assign_everyone(session)
    before = _audit_count(session)
    response = client.post(_url(trial, "S-004"), data=posted)
    assert response.status_code in (400, 409)
    assert _audit_count(session) == before
