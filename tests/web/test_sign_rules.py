"""Who may sign a read (issue 11): only the reader who entered it, or an adjudicator acting
as such, recorded as such; everyone else is refused (403) on the page and the API, before
any password is checked. The manifestation shows "Full Name (username)" when users have
a full name."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.web.helpers import follow_up, read_subject
from web.models import AuditRecord, Timepoint, User
from web.services import SYSTEM, Actor, create_token, create_user
from web.services.signing import (
    ADJUDICATOR_MEANING,
    NotYourRead,
    printed_name,
    sign_timepoint,
)
from web.testing import PASSWORD, assign_everyone, bearer, login

READER1 = Actor("reader1", "reader")
READER2 = Actor("reader2", "reader")
ADJUDICATOR = Actor("adjudicator", "adjudicator")
ADMIN = Actor("admin", "admin")
W8 = "/trials/TRIAL-1/subjects/S-001/timepoints/W8"


@pytest.fixture
def w8(session: Session, trial: str, users: dict[str, str], monkeypatch: Any) -> int:
    """reader1 entered S-001 (baseline and W8); returns W8's version. reader1 and reader2
    get API tokens in ``users``."""
    for name in ("reader1", "reader2"):
        create_user(session, SYSTEM, username=name, password=PASSWORD, role="reader")
        users[name] = create_token(session, SYSTEM, username=name, name="tests")
    assign_everyone(session)
    monkeypatch.setattr("tests.web.helpers.READER", READER1)
    version = read_subject(session, trial, "S-001", follow_up("W8", "2021-03-01", 21.0, 14.0))
    session.expunge_all()
    session.rollback()
    return version


def _sign(session: Session, who: Actor, version: int, **kwargs: Any) -> Timepoint:
    options: dict[str, Any] = {"password": PASSWORD, "meaning": "read complete"}
    options.update(kwargs)
    return sign_timepoint(
        session, who, "TRIAL-1", "S-001", "W8", expected_version=version, **options
    )


def _signs(session: Session) -> list[AuditRecord]:
    session.rollback()
    query = select(AuditRecord).where(AuditRecord.action == "sign").order_by(AuditRecord.seq)
    return list(session.scalars(query))


def _failed_logins(session: Session, username: str) -> int:
    session.rollback()
    return int(session.scalar(select(User.failed_logins).where(User.username == username)) or 0)


def test_reader2_cannot_sign_reader1s_read_and_gets_no_password_guess_through_it(
    session: Session, w8: int
) -> None:
    message = (
        r"subject S-001: timepoint W8 was entered by reader1; only reader1 can sign it \(or an "
        r"adjudicator, acting as adjudicator\), not reader2; nothing was signed"
    )
    with pytest.raises(NotYourRead, match=message) as refused:
        _sign(session, READER2, w8)
    assert (refused.value.status, refused.value.code) == (403, "not_your_read")
    # Refused before the password is checked: a wrong one is not even counted.
    with pytest.raises(NotYourRead):
        _sign(session, READER2, w8, password="a guess")
    assert _failed_logins(session, "reader2") == 0
    assert _signs(session) == []
    assert not session.scalar(select(Timepoint.locked).where(Timepoint.code == "W8"))
    # Nor the administrator, who did not enter it either.
    with pytest.raises(NotYourRead, match=r"only reader1 can sign it .* not admin"):
        _sign(session, ADMIN, w8)
    # reader1, who entered it, signs it.
    assert _sign(session, READER1, w8).signed_by == "reader1"


def test_an_adjudicator_signs_anothers_read_only_acting_as_adjudicator_recorded_as_such(
    session: Session, w8: int
) -> None:
    with pytest.raises(NotYourRead, match=r"was entered by reader1; an adjudicator signs"):
        _sign(session, ADJUDICATOR, w8)
    assert _signs(session) == []
    tp = _sign(session, ADJUDICATOR, w8, meaning=ADJUDICATOR_MEANING)
    assert (tp.signed_by, tp.sign_meaning) == ("adjudicator", ADJUDICATOR_MEANING)
    (record,) = _signs(session)
    assert record.username == "adjudicator"
    assert record.reason == f"{ADJUDICATOR_MEANING}; read entered by reader1"
    assert re.fullmatch(
        r"adjudicator · read complete \(acting as adjudicator\) · sha256:[0-9a-f]{64}",
        record.new or "",
    )


def test_a_reader_cannot_sign_their_own_read_as_adjudicator(session: Session, w8: int) -> None:
    with pytest.raises(NotYourRead, match=r"W8 is your own read: sign it with the meaning"):
        _sign(session, READER1, w8, meaning=ADJUDICATOR_MEANING)


def test_the_reader_is_taken_from_the_trail_when_a_timepoint_has_no_updated_by(
    session: Session, w8: int
) -> None:
    """Rows from before ``updated_by`` was kept: the trail's last writer is the reader."""
    session.execute(text("UPDATE timepoint SET updated_by = NULL"))
    session.commit()
    with pytest.raises(NotYourRead, match=r"was entered by reader1"):
        _sign(session, READER2, w8)
    assert _sign(session, READER1, w8).locked


def test_the_page_refuses_reader2_with_the_reason_and_offers_the_adjudicator_his_meaning(
    app: Flask, w8: int
) -> None:
    page = "/trials/TRIAL-1/subjects/S-001"
    reader2 = app.test_client()
    login(reader2, "reader2")
    body = reader2.get(page).data.decode()
    assert f'action="{W8}/sign"' not in body
    assert "only reader1 (or an adjudicator) signs this read" in body
    response = reader2.post(
        W8 + "/sign",
        data={"version": str(w8), "meaning": "read complete", "password": PASSWORD},
    )
    assert response.status_code == 403
    assert b"W8 was entered by reader1; only reader1 can sign it" in response.data
    adjudicator = app.test_client()
    login(adjudicator, "adjudicator")
    body = adjudicator.get(page).data.decode()
    assert "<option>read complete (acting as adjudicator)</option>" in body
    assert "<option>read complete</option>" not in body
    reader1 = app.test_client()
    login(reader1, "reader1")
    body = reader1.get(page).data.decode()
    assert f'action="{W8}/sign"' in body and "<option>read complete</option>" in body
    response = adjudicator.post(
        W8 + "/sign",
        data={"version": str(w8), "meaning": ADJUDICATOR_MEANING, "password": PASSWORD},
    )
    assert response.status_code == 302
    body = reader1.get(page).data.decode()
    assert "signed and locked</strong> by adjudicator" in body
    assert "“read complete (acting as adjudicator)”" in body


def test_the_api_refuses_reader2_with_403_not_your_read(
    app: Flask, w8: int, users: dict[str, str]
) -> None:
    client = app.test_client()
    body = {"password": PASSWORD, "meaning": "read complete", "version": w8}
    response = client.post(f"/api/v1{W8}/sign", json=body, headers=bearer(users["reader2"]))
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "not_your_read"
    assert error["message"].startswith("subject S-001: timepoint W8 was entered by reader1;")
    signature = client.get(f"/api/v1{W8}/signature", headers=bearer(users["reviewer"]))
    assert signature.get_json()["locked"] is False
    assert signature.get_json()["entered_by"] == "reader1"
    response = client.post(f"/api/v1{W8}/sign", json=body, headers=bearer(users["reader1"]))
    assert response.status_code == 200
    assert (response.get_json()["signed_by"], response.get_json()["signer"]) == (
        "reader1",
        "reader1",
    )


def test_printed_name_shows_the_full_name_when_there_is_one() -> None:
    assert printed_name(SimpleNamespace(username="r1", full_name="Ada Lovelace")) == (
        "Ada Lovelace (r1)"
    )
    for full in (None, "", "  "):
        assert printed_name(SimpleNamespace(username="r1", full_name=full)) == "r1"
    assert printed_name(SimpleNamespace(username="r1")) == "r1"  # no full_name yet


def test_the_manifestation_carries_the_signers_full_name(
    app: Flask, session: Session, w8: int, users: dict[str, str], monkeypatch: Any
) -> None:
    """With ``User.full_name`` (a column once migration 0009 adds it; a stand-in until
    then), the sign record, the subject page and the API show "Full Name (username)"."""
    if "full_name" in User.__table__.columns:
        session.execute(
            text("UPDATE app_user SET full_name = 'Rita Reader' WHERE username = 'reader1'")
        )
        session.commit()
    else:
        names = {"reader1": "Rita Reader"}
        monkeypatch.setattr(
            User, "full_name", property(lambda u: names.get(u.username)), raising=False
        )
    _sign(session, READER1, w8)
    (record,) = _signs(session)
    assert (record.new or "").startswith("Rita Reader (reader1) · read complete · sha256:")
    client = app.test_client()
    login(client, "reviewer")
    body = client.get("/trials/TRIAL-1/subjects/S-001").data.decode()
    assert "signed and locked</strong> by Rita Reader (reader1)," in body
    signature = client.get(f"/api/v1{W8}/signature", headers=bearer(users["reviewer"]))
    assert signature.get_json()["signer"] == "Rita Reader (reader1)"
    assert signature.get_json()["signed_by"] == "reader1"
