"""Signing a timepoint read (password re-entry, stated meaning) locks it; unlocking needs an
adjudicator or trial manager and a reason; all of it is in the audit trail."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from web.models import AuditRecord, Timepoint
from web.services import (
    SYSTEM,
    Actor,
    ConcurrentEdit,
    InvalidInput,
    Locked,
    create_subject,
    delete_timepoint,
    save_baseline,
    save_timepoint,
)
from web.services.signing import SignatureRefused, sign_timepoint, unlock_timepoint
from web.testing import PASSWORD, baseline_lesions, login

READER = Actor("reader", "reader")
W8 = {
    "id": "W8",
    "date": "2021-03-01",
    "targets": {"T01": 21.0, "T02": 14.0},
    "non_targets": {"NT01": "present"},
}


@pytest.fixture
def read(session: Session, trial: str, users: dict[str, str]) -> int:
    """S-001 with a baseline and a W8 read; returns W8's version."""
    create_subject(session, SYSTEM, trial, code="S-001", arm="A")
    save_baseline(
        session,
        READER,
        trial,
        "S-001",
        date_value="2021-01-04",
        lesions=baseline_lesions(),
    )
    _subject, tp = save_timepoint(session, READER, trial, "S-001", W8)
    return tp.version


def _sign(session: Session, trial: str, version: int, password: str = PASSWORD) -> Timepoint:
    return sign_timepoint(
        session,
        READER,
        trial,
        "S-001",
        "W8",
        password=password,
        meaning="read complete",
        expected_version=version,
    )


def _audit(session: Session, action: str) -> list[AuditRecord]:
    session.rollback()
    return list(
        session.scalars(
            select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)
        )
    )


def test_a_signed_read_is_locked_and_the_signature_is_audited_with_its_meaning(
    session: Session, trial: str, read: int
) -> None:
    tp = _sign(session, trial, read)
    assert tp.locked and tp.signed_by == "reader" and tp.sign_meaning == "read complete"
    assert tp.signed_at is not None and tp.version == read + 1
    (signed,) = _audit(session, "sign")
    assert (signed.username, signed.entity_key, signed.reason) == (
        "reader",
        "TRIAL-1/S-001/W8",
        "read complete",
    )
    # The manifestation (who, meaning) and the SHA-256 of the values signed.
    assert re.fullmatch(r"reader · read complete · sha256:[0-9a-f]{64}", signed.new or "")
    (locked,) = _audit(session, "lock")
    assert (locked.old, locked.new, locked.seq) == ("false", "true", signed.seq + 1)


def test_a_locked_read_cannot_be_changed_deleted_or_have_its_baseline_edited(
    session: Session, trial: str, read: int
) -> None:
    tp = _sign(session, trial, read)
    message = r"timepoint W8 was signed by reader \(read complete\) and is locked"
    with pytest.raises(Locked, match=message):
        save_timepoint(
            session,
            READER,
            trial,
            "S-001",
            {**W8, "targets": {"T01": 40.0, "T02": 14.0}},
            expected_version=tp.version,
            reason="re-measured",
        )
    with pytest.raises(Locked, match=message):
        delete_timepoint(
            session, READER, trial, "S-001", "W8", expected_version=tp.version, reason="oops"
        )
    with pytest.raises(Locked, match=message):
        save_baseline(
            session,
            READER,
            trial,
            "S-001",
            date_value="2021-01-04",
            lesions=baseline_lesions()[:1],
            expected_version=1,
        )
    with pytest.raises(Locked, match=message):
        _sign(session, trial, tp.version)


def test_no_follow_up_can_be_inserted_moved_or_deleted_before_a_signed_read(
    session: Session, trial: str, read: int
) -> None:
    """W8 is PR against the baseline sum; a new W4 with small sizes would make W8 PD
    (a lower nadir, R-TGT-PD) after it was signed, so any change dated before it waits
    for an unlock."""
    _subject, w16 = save_timepoint(
        session, READER, trial, "S-001", {**W8, "id": "W16", "date": "2021-04-26"}
    )
    tp = _sign(session, trial, read)
    result_before = session.get(Timepoint, tp.id).subject.result_json
    message = r"timepoint W4 \(2021-02-01\) comes before W8 \(2021-03-01\), which was signed"
    with pytest.raises(Locked, match=message):
        save_timepoint(
            session, READER, trial, "S-001",
            {"id": "W4", "date": "2021-02-01", "targets": {"T01": 5.0, "T02": 5.0},
             "non_targets": {"NT01": "present"}},
        )  # fmt: skip
    with pytest.raises(Locked, match=r"timepoint W16 \(2021-03-01\) comes before W8"):
        save_timepoint(
            session, READER, trial, "S-001", {**W8, "id": "W16"},
            expected_version=w16.version, reason="wrong date",
        )  # fmt: skip
    session.rollback()
    subject = session.get(Timepoint, tp.id).subject
    assert [t.code for t in subject.timepoints] == ["BL", "W8", "W16"]
    assert subject.result_json == result_before
    # After W8 nothing is signed: W16 may still change, and be deleted.
    save_timepoint(
        session, READER, trial, "S-001", {**W8, "id": "W16", "date": "2021-05-03"},
        expected_version=w16.version, reason="scan date corrected",
    )  # fmt: skip
    w16_now = next(t for t in subject.timepoints if t.code == "W16")
    delete_timepoint(
        session, READER, trial, "S-001", "W16", expected_version=w16_now.version,
        reason="duplicate entry",
    )  # fmt: skip


def test_a_wrong_password_signs_nothing(session: Session, trial: str, read: int) -> None:
    with pytest.raises(SignatureRefused, match=r"the password does not match reader's"):
        _sign(session, trial, read, password="not the password")
    with pytest.raises(InvalidInput, match=r"signing needs your password, entered again"):
        _sign(session, trial, read, password="")
    assert _audit(session, "sign") == []
    session.rollback()
    assert not session.scalar(select(Timepoint.locked).where(Timepoint.code == "W8"))


def test_wrong_signing_passwords_count_towards_the_account_lock(
    session: Session, trial: str, read: int
) -> None:
    """A stolen session or token must not give unlimited password guesses through signing."""
    from web.models import User
    from web.services import MAX_FAILED_LOGINS

    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(SignatureRefused):
            _sign(session, trial, read, password="guess")
    session.rollback()
    user = session.scalar(select(User).where(User.username == "reader"))
    assert user is not None and user.locked_until is not None
    # Locked: even the right password signs nothing now, and says so.
    with pytest.raises(SignatureRefused, match=r"or the account is locked"):
        _sign(session, trial, read)
    session.rollback()
    assert not session.scalar(select(Timepoint.locked).where(Timepoint.code == "W8"))
    assert [r.entity_key for r in _audit(session, "lock")] == ["reader"]


def test_signing_a_read_changed_since_it_was_checked_is_refused(
    session: Session, trial: str, read: int
) -> None:
    save_timepoint(
        session,
        READER,
        trial,
        "S-001",
        {**W8, "targets": {"T01": 22.0, "T02": 14.0}},
        expected_version=read,
        reason="re-measured",
    )
    with pytest.raises(ConcurrentEdit, match=r"W8 changed after you opened it .*saved by reader"):
        _sign(session, trial, read)


def test_unlocking_needs_an_adjudicator_or_trial_manager_and_a_reason(
    session: Session, trial: str, read: int
) -> None:
    _sign(session, trial, read)
    with pytest.raises(InvalidInput, match=r"only an adjudicator or a trial manager can unlock"):
        unlock_timepoint(session, READER, trial, "S-001", "W8", reason="typo")
    manager = Actor("trial_manager", "trial_manager")
    with pytest.raises(InvalidInput, match=r"unlocking a signed read needs a reason"):
        unlock_timepoint(session, manager, trial, "S-001", "W8", reason="  ")
    tp = unlock_timepoint(session, manager, trial, "S-001", "W8", reason="T01 measured on W4")
    assert not tp.locked and tp.signed_by is None
    records = _audit(session, "unlock")
    assert [(r.field, r.old, r.new, r.reason, r.username) for r in records] == [
        ("locked", "true", "false", "T01 measured on W4", "trial_manager"),
        ("signature", "reader · read complete", None, "T01 measured on W4", "trial_manager"),
    ]
    # Unlocked, the read can be corrected and signed again.
    _s, tp = save_timepoint(
        session,
        READER,
        trial,
        "S-001",
        {**W8, "targets": {"T01": 23.0, "T02": 14.0}},
        expected_version=tp.version,
        reason="re-measured",
    )
    assert _sign(session, trial, tp.version).locked


def test_readers_sign_on_the_subject_page_and_a_trial_manager_unlocks_there(
    app: Flask, trial: str, read: int
) -> None:
    reader: FlaskClient = app.test_client()
    login(reader, "reader")
    base = f"/trials/{trial}/subjects/S-001"
    page = reader.get(base).data.decode()
    assert 'action="/trials/TRIAL-1/subjects/S-001/timepoints/W8/sign"' in page
    response = reader.post(
        base + "/timepoints/W8/sign",
        data={"version": str(read), "meaning": "read complete", "password": "wrong"},
    )
    assert response.status_code == 400
    assert (
        b"the password does not match reader&#39;s (or the account is locked after repeated "
        b"failures); nothing was signed"
    ) in response.data
    response = reader.post(
        base + "/timepoints/W8/sign",
        data={"version": str(read), "meaning": "read complete", "password": PASSWORD},
    )
    assert response.status_code == 302
    page = reader.get(base).data.decode()
    assert "signed and locked</strong> by reader" in page and "Unlock" not in page
    form = reader.get(base + "/timepoints/W8").data.decode()
    assert 'id="locked"' in form and "Signed by reader (read complete) on " in form
    assert re.search(r'<fieldset class="plain"\s+disabled>', form)
    response = reader.post(base + "/timepoints/W8/unlock", data={"reason": "x"})
    assert response.status_code == 403
    manager = app.test_client()
    login(manager, "trial_manager")
    response = manager.post(base + "/timepoints/W8/unlock", data={"reason": ""})
    assert response.status_code == 400 and b"needs a reason" in response.data
    response = manager.post(base + "/timepoints/W8/unlock", data={"reason": "re-read"})
    assert response.status_code == 302
    assert "signed and locked" not in manager.get(base).data.decode()
