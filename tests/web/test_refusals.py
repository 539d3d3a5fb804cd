"""Issue 10's refusals, one by one through the API: each names the field and the rule,
and nothing is written (the stored case, the result and the audit trail are unchanged)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.models import AuditRecord
from web.testing import baseline_lesions, bearer

S = "/trials/{trial}/subjects/S-1"


@pytest.fixture
def api(client: FlaskClient, users: dict[str, str]) -> Any:
    def call(role: str, method: str, path: str, **kwargs: Any) -> Any:
        return client.open("/api/v1" + path, method=method, headers=bearer(users[role]), **kwargs)

    return call


@pytest.fixture
def subject(api: Any, trial: str) -> str:
    """S-1: randomised 2021-01-05, baseline 2021-01-04 (two targets, one non-target), W8."""
    base = S.format(trial=trial)
    created = api(
        "trial_manager",
        "POST",
        f"/trials/{trial}/subjects",
        json={"subject_id": "S-1", "randomized_on": "2021-01-05"},
    )
    assert created.status_code == 201, created.get_json()
    body = {"date": "2021-01-04", "lesions": baseline_lesions()}
    saved = api("reader", "PUT", base + "/baseline", json=body)
    assert saved.status_code == 200, saved.get_json()
    w8 = {
        "id": "W8",
        "date": "2021-03-01",
        "targets": {"T01": 21.0, "T02": 14.0},
        "non_targets": {"NT01": "present"},
    }
    assert api("reader", "POST", base + "/timepoints", json=w8).status_code == 201
    return base


def _state(session: Session, api: Any, base: str) -> tuple[Any, ...]:
    session.rollback()  # a fresh snapshot: the app wrote through its own sessions
    # Clinical records: access events (token use per route family) are audited as well.
    records = session.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(AuditRecord.entity.not_in(("access", "api_token")))
    )
    body = api("reviewer", "GET", base).get_json()
    return records, body["case"], body["result"], body["version"]


def _refused(
    session: Session, api: Any, base: str, role: str, method: str, path: str, body: Any
) -> dict[str, Any]:
    before = _state(session, api, base)
    response = api(role, method, path, json=body)
    assert 400 <= response.status_code < 500, response.get_json()
    assert _state(session, api, base) == before  # nothing written, nothing audited
    error: dict[str, Any] = response.get_json()["error"]
    error["status"] = response.status_code
    return error


def _baseline_body(**change: Any) -> dict[str, Any]:
    lesions = copy.deepcopy(baseline_lesions())
    for index, values in change.items():
        lesions[int(index.removeprefix("l"))].update(values)
    return {"date": "2021-01-04", "lesions": lesions, "version": 2}


def test_a_string_nodal_is_refused_not_stored_as_a_node(
    session: Session, api: Any, subject: str
) -> None:
    version = api("reader", "GET", subject + "/timepoints/BL").get_json()["version"]
    body = {**_baseline_body(l0={"nodal": "false"}), "version": version}
    error = _refused(session, api, subject, "reader", "PUT", subject + "/baseline", body)
    assert error["pointer"] == "/lesions/0/nodal"
    assert "lesion T01" in error["message"] and "'false'" in error["message"]


def test_a_size_on_a_non_target_is_refused_not_dropped(
    session: Session, api: Any, subject: str
) -> None:
    version = api("reader", "GET", subject + "/timepoints/BL").get_json()["version"]
    body = {**_baseline_body(l2={"size": 12.0}), "version": version}
    error = _refused(session, api, subject, "reader", "PUT", subject + "/baseline", body)
    assert (error["pointer"], error["rule"]) == ("/lesions/2/size", "R-SEL-3")
    assert "lesion NT01" in error["message"]


@pytest.mark.parametrize(
    ("value", "rule"), [(1e308, "R-PLAUS-SIZE"), (1000.5, "R-PLAUS-SIZE"), (-3.0, None)]
)
def test_implausible_sizes_are_refused_everywhere(
    session: Session, api: Any, subject: str, value: float, rule: str | None
) -> None:
    w8 = api("reader", "GET", subject + "/timepoints/W8").get_json()
    w8["targets"]["T01"] = value
    error = _refused(session, api, subject, "reader", "PUT", subject + "/timepoints/W8", w8)
    assert error["pointer"] == "/targets/T01" and error.get("rule") == rule
    assert "lesion T01" in error["message"]
    # The stateless route gives the same verdict on the same value.
    case = api("reviewer", "GET", subject).get_json()["case"]
    case["timepoints"][1]["targets"]["T01"] = value
    for tp in case["timepoints"]:
        tp.pop("version")
    assessed = api("reviewer", "POST", "/assess", json=case)
    assert assessed.status_code == 400
    assert assessed.get_json()["error"].get("rule") == rule


@pytest.mark.parametrize(
    ("field", "value", "rule", "text"),
    [
        ("died_on", "9999-01-01", "R-PLAUS-DATE", "is in the future"),
        ("new_therapy_on", "1800-01-01", "R-PLAUS-DATE", "is before 1900-01-01"),
        ("new_therapy_on", "2021-01-01", "R-PLAUS-ORIGIN", "before randomisation"),
        ("died_on", "2020-12-31", "R-PLAUS-ORIGIN", "before randomisation"),
    ],
)
def test_implausible_subject_dates_are_refused(
    session: Session, api: Any, subject: str, field: str, value: str, rule: str, text: str
) -> None:
    version = api("reviewer", "GET", subject).get_json()["version"]
    body = {field: value, "version": version, "reason": "reported"}
    error = _refused(session, api, subject, "trial_manager", "PATCH", subject, body)
    assert (error["field"], error["rule"]) == (field, rule) and text in error["message"]


def test_a_follow_up_in_the_future_is_refused_against_the_app_clock(
    app: Flask, session: Session, api: Any, subject: str
) -> None:
    w16 = {"id": "W16", "date": "9999-12-31", "targets": {"T01": 20.0, "T02": 14.0}}
    w16["non_targets"] = {"NT01": "present"}
    error = _refused(session, api, subject, "reader", "POST", subject + "/timepoints", w16)
    assert (error["pointer"], error["rule"]) == ("/date", "R-PLAUS-DATE")
    # The clock can be set: the day after it is the future, the day itself is not.
    app.config["TODAY"] = "2021-04-25"
    w16["date"] = "2021-04-26"
    assert (
        "in the future"
        in _refused(session, api, subject, "reader", "POST", subject + "/timepoints", w16)[
            "message"
        ]
    )
    app.config["TODAY"] = "2021-04-26"
    assert api("reader", "POST", subject + "/timepoints", json=w16).status_code == 201


def test_a_baseline_long_before_randomisation_needs_a_reason(
    session: Session, api: Any, trial: str
) -> None:
    api("trial_manager", "POST", f"/trials/{trial}/subjects", json={"subject_id": "S-2",
        "randomized_on": "2021-01-05"})  # fmt: skip
    base = f"/trials/{trial}/subjects/S-2"
    body = {"date": "1900-01-01", "lesions": baseline_lesions()}
    response = api("reader", "PUT", base + "/baseline", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "reason_required"
    assert [d["rule"] for d in error["details"]] == ["R-PLAUS-BLWINDOW"]
    body["reason"] = "archived scan re-used, confirmed with the site"
    assert api("reader", "PUT", base + "/baseline", json=body).status_code == 200


@pytest.mark.parametrize(
    ("settings", "code", "rule"),
    [({"sd_min_days": float("nan")}, "invalid_json", None),  # the bare NaN literal
     ({"reappearance_min_mm": 1e30}, "invalid_input", "R-PLAUS-SETTINGS"),
     ({"sd_min_days": 10**6}, "invalid_input", "R-PLAUS-SETTINGS"),
     ({"visit_interval_days": 0}, "invalid_input", "R-PLAUS-SETTINGS"),
     ({"confirmation": "yes"}, "invalid_input", None)],
)  # fmt: skip
def test_implausible_settings_are_refused(
    api: Any, settings: dict[str, Any], code: str, rule: str | None
) -> None:
    body = json.dumps({"code": "T-BAD", "title": "bad", "settings": settings})
    response = api("trial_manager", "POST", "/trials", data=body, content_type="application/json")
    assert response.status_code == 400
    error = response.get_json()["error"]
    key = next(iter(settings))
    assert (error["code"], error.get("rule")) == (code, rule)
    assert error["pointer"] == f"/settings/{key}"
    assert key in error["message"] or "NaN" in error["message"]
    assert api("admin", "GET", "/trials/T-BAD").status_code == 404


@pytest.mark.parametrize("reason", [7, ["x"], {"a": 1}, True])
def test_a_reason_that_is_not_text_is_refused_and_the_chain_stays_intact(
    session: Session, api: Any, subject: str, reason: Any
) -> None:
    version = api("reviewer", "GET", subject).get_json()["version"]
    body = {"arm": "B", "version": version, "reason": reason}
    error = _refused(session, api, subject, "trial_manager", "PATCH", subject, body)
    assert error["pointer"] == "/reason" and error["status"] == 400
    verify = api("admin", "GET", "/audit/verify").get_json()
    assert verify["intact"] is True, verify


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/baseline", {"date": "2021-01-04", "lesions": baseline_lesions()}),
        ("PATCH", "", {"arm": "B", "reason": "randomisation list corrected"}),
        ("PUT", "/timepoints/W8", {"id": "W8", "date": "2021-03-01", "targets": {}}),
    ],
)
def test_a_write_without_the_version_it_edits_is_refused(
    session: Session, api: Any, subject: str, method: str, path: str, body: dict[str, Any]
) -> None:
    role = "trial_manager" if method == "PATCH" else "reader"
    error = _refused(session, api, subject, role, method, subject + path, body)
    assert error["pointer"] == "/version" and error["status"] in (409, 422)


def test_a_stale_version_is_refused(session: Session, api: Any, subject: str) -> None:
    version = api("reviewer", "GET", subject).get_json()["version"]
    body = {"arm": "B", "version": version, "reason": "randomisation list corrected"}
    assert api("trial_manager", "PATCH", subject, json=body).status_code == 200
    body["arm"] = "A"  # the second manager still holds the old version
    error = _refused(session, api, subject, "trial_manager", "PATCH", subject, body)
    assert (error["status"], error["code"]) == (409, "concurrent_edit")


def test_the_randomisation_date_cannot_move_under_a_signed_read(
    session: Session, api: Any, subject: str
) -> None:
    from web.testing import PASSWORD

    version = api("reader", "GET", subject + "/timepoints/W8").get_json()["version"]
    signed = api(
        "reader",
        "POST",
        subject + "/timepoints/W8/sign",
        json={"password": PASSWORD, "meaning": "read complete", "version": version},
    )
    assert signed.status_code == 200, signed.get_json()
    version = api("reviewer", "GET", subject).get_json()["version"]
    body = {"randomized_on": "2021-01-02", "version": version, "reason": "list corrected"}
    error = _refused(session, api, subject, "trial_manager", "PATCH", subject, body)
    assert (error["status"], error["code"], error["pointer"]) == (409, "locked", "/randomized_on")
    assert "W8" in error["message"]
    # Other subject fields (a death reported later) still change under a signed read.
    body = {"died_on": "2021-06-01", "version": version, "reason": "death reported"}
    assert api("trial_manager", "PATCH", subject, json=body).status_code == 200


def test_a_save_that_changes_nothing_is_audited(session: Session, api: Any, subject: str) -> None:
    w8 = api("reader", "GET", subject + "/timepoints/W8").get_json()
    response = api("reader", "PUT", subject + "/timepoints/W8", json=w8)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["timepoint"]["version"] == w8["version"] + 1
    session.rollback()
    saved = session.scalars(
        select(AuditRecord).where(AuditRecord.action == "save", AuditRecord.entity == "timepoint")
    ).all()
    assert [(r.entity_key.rsplit("/", 1)[1], r.field, r.username) for r in saved] == [
        ("W8", "unchanged", "reader")
    ]
    verify = api("admin", "GET", "/audit/verify").get_json()
    assert verify["intact"] is True, verify
