"""Protocol settings editable after creation (issue 14): with a reason, audited, every
subject re-assessed in the same transaction, and refused when a signed read's result
would change (a signature is never silently re-interpreted)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import READER, follow_up, form_fields, read_subject
from web.models import AuditRecord, Trial
from web.services.signing import sign_timepoint
from web.testing import PASSWORD, bearer

PATH = "/api/v1/trials/TRIAL-1/settings"


def _patch(
    client: FlaskClient, users: dict[str, str], body: dict[str, Any], role: str = "trial_manager"
) -> Any:
    return client.patch(PATH, json=body, headers=bearer(users[role]))


def test_a_settings_change_re_assesses_every_subject_and_is_audited_with_its_reason(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str]
) -> None:
    read_subject(session, trial, "S-1", follow_up("W8", "2021-03-01", 21.0, 14.0))
    read_subject(session, trial, "S-2", follow_up("W8", "2021-03-01", 30.0, 20.0))
    session.rollback()
    assert _patch(client, users, {"settings": {"criteria": "irecist"}}, "reader").status_code == 403
    missing = _patch(client, users, {"settings": {"criteria": "irecist"}})
    assert missing.status_code == 422
    assert missing.get_json()["error"]["code"] == "reason_required"
    bad = _patch(client, users, {"settings": {"sd_min": 4}, "reason": "x"})
    assert bad.status_code == 400 and "sd_min" in bad.get_json()["error"]["message"]
    done = _patch(
        client, users, {"settings": {"criteria": "irecist"}, "reason": "protocol amendment 2"}
    )
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["subjects_changed"] == 2
    assert done.get_json()["settings"]["criteria"] == "irecist"
    assert done.get_json()["settings"]["visit_interval_days"] == 56  # the others are kept
    result = client.get(
        "/api/v1/trials/TRIAL-1/subjects/S-1/result", headers=bearer(users["reviewer"])
    ).get_json()["result"]
    assert result["timepoints"][1]["overall_response"] == "iPR"
    session.rollback()
    (record,) = session.scalars(
        select(AuditRecord).where(AuditRecord.entity == "trial", AuditRecord.field == "settings",
                                  AuditRecord.action == "update")
    ).all()  # fmt: skip
    assert (record.username, record.reason) == ("trial_manager", "protocol amendment 2")
    same = _patch(client, users, {"settings": {"criteria": "irecist"}, "reason": "again"})
    assert same.get_json()["subjects_changed"] == 0  # nothing changed, nothing written


def test_a_change_that_would_alter_a_signed_read_is_refused_and_nothing_is_written(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str]
) -> None:
    version = read_subject(session, trial, "S-1", follow_up("W8", "2021-03-01", 21.0, 14.0))
    sign_timepoint(
        session, READER, trial, "S-1", "W8", expected_version=version, password=PASSWORD,
        meaning="read complete",
    )  # fmt: skip
    session.rollback()
    before = session.scalar(select(Trial.settings).where(Trial.code == trial))
    refused = _patch(client, users, {"settings": {"criteria": "irecist"}, "reason": "amendment"})
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "signed_reads_would_change"
    assert "S-1 W8 (PR → iPR)" in error["message"] and "unlock them first" in error["message"]
    session.rollback()
    assert session.scalar(select(Trial.settings).where(Trial.code == trial)) == before
    # A change that leaves the signed read as it is goes through.
    ok = _patch(client, users, {"settings": {"visit_interval_days": 84}, "reason": "schedule"})
    assert ok.status_code == 200, ok.get_json()


def test_the_trial_page_edits_settings_and_keeps_what_was_typed_when_refused(
    app: Any, session: Session, trial: str, users: dict[str, str]
) -> None:
    from web.testing import login

    version = read_subject(session, trial, "S-1", follow_up("W8", "2021-03-01", 21.0, 14.0))
    session.rollback()
    manager = app.test_client()
    login(manager, "trial_manager")
    fields = form_fields(manager.get("/trials/TRIAL-1").data.decode(), "settings-form")
    assert fields["s_visit_interval_days"] == "56" and fields["s_reappearance_min_mm"] == "5.0"
    # No reason: refused, and the typed values come back (the box left unticked stays so).
    typed = {**fields, "s_criteria": "irecist", "s_sd_min_days": "49"}
    typed.pop("s_pr_hold", None)
    page = manager.post("/trials/TRIAL-1/settings", data={**typed, "reason": ""})
    assert page.status_code == 422
    back = form_fields(page.data.decode(), "settings-form")
    assert (back["s_criteria"], back["s_sd_min_days"], back.get("s_pr_hold")) == (
        "irecist",
        "49",
        None,
    )
    saved = manager.post(
        "/trials/TRIAL-1/settings", data={**typed, "reason": "amendment 3"}, follow_redirects=True
    )
    assert "1 subject(s) re-assessed" in saved.data.decode()
    session.rollback()
    stored = session.scalar(select(Trial.settings).where(Trial.code == trial))
    assert (stored["criteria"], stored["sd_min_days"], stored["pr_hold"]) == ("irecist", 49, False)
    # Signed, a read refuses a change that would alter it, naming it; the values stay typed.
    sign_timepoint(
        session, READER, trial, "S-1", "W8", expected_version=version, password=PASSWORD,
        meaning="read complete",
    )  # fmt: skip
    session.rollback()
    back_to = {**typed, "s_criteria": "recist1.1", "reason": "revert"}
    refused = manager.post("/trials/TRIAL-1/settings", data=back_to)
    assert refused.status_code == 409
    assert "S-1 W8 (iPR → PR)" in refused.data.decode()
    assert form_fields(refused.data.decode(), "settings-form")["s_criteria"] == "recist1.1"
