"""Server-side sessions (issue 11): logout, password changes and deactivation end them for
good (a replayed cookie no longer works), idle and absolute timeouts, and every access
event in the audit trail without breaking the chain. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.access_helpers import Clock, cli, clock, cookie, records
from web.models import AuditRecord, User, UserSession
from web.services.audit import verify_chain
from web.testing import PASSWORD, dispose, login, make_test_app

__all__ = ["cli", "clock"]  # fixtures

NEW_PASSWORD = "a brand new passphrase"


def _replay(app: Flask, value: str) -> Any:
    """Another browser presenting a captured session cookie."""
    thief = app.test_client()
    thief.set_cookie("recist_session", value)
    return thief


def _logged_in(client: Any) -> bool:
    response = client.get("/")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def test_a_cookie_captured_before_logout_no_longer_works_after_it(
    app: Flask, users: dict[str, str], session: Session
) -> None:
    client = app.test_client()
    assert login(client, "reader").status_code == 302
    captured = cookie(client)
    assert _logged_in(_replay(app, captured))  # the captured cookie works … until logout
    client.post("/logout")
    thief = _replay(app, captured)
    response = thief.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert not _logged_in(client)
    session.rollback()
    ended = session.scalars(select(UserSession.ended_by)).all()
    assert ended == ["logout"]


def test_the_session_id_is_stored_only_as_a_hash(
    app: Flask, users: dict[str, str], session: Session
) -> None:
    client = app.test_client()
    login(client, "reader")
    # Flask's cookie is signed, not encrypted: the session id in it is not in the database.
    payload = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    sid = payload.loads(cookie(client))["sid"]
    stored = session.scalars(select(UserSession.sid_sha256)).one()
    assert len(sid) >= 40 and sid != stored and len(stored) == 64


def test_set_password_from_the_cli_ends_every_session_of_the_user(
    app: Flask,
    users: dict[str, str],
    cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    phone, desk, other = app.test_client(), app.test_client(), app.test_client()
    for client, name in ((phone, "reader"), (desk, "reader"), (other, "admin")):
        assert login(client, name).status_code == 302
    assert cli("set-password", "reader", "--password-stdin", stdin=NEW_PASSWORD + "\n") == 0
    assert capsys.readouterr().out == "reader: password changed; 2 session(s) ended\n"
    assert not _logged_in(phone) and not _logged_in(desk)
    assert _logged_in(other)  # another user's session is untouched
    assert login(app.test_client(), "reader").status_code == 401
    assert login(app.test_client(), "reader", NEW_PASSWORD).status_code == 302


def test_changing_ones_password_on_the_account_page_logs_out_the_other_sessions(
    app: Flask, users: dict[str, str], session: Session
) -> None:
    here, there = app.test_client(), app.test_client()
    login(here, "reader")
    login(there, "reader")
    form = {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    mismatch = here.post("/account/password", data={**form, "new_password_again": "other one!"})
    assert mismatch.status_code == 400 and b"the new password and its repetition differ" in (
        mismatch.data
    )
    wrong = here.post(
        "/account/password",
        data={**form, "old_password": "not my password", "new_password_again": NEW_PASSWORD},
    )
    assert wrong.status_code == 400
    assert b"the current password is wrong" in wrong.data
    session.rollback()
    reader = session.scalar(select(User).where(User.username == "reader"))
    assert reader is not None and reader.failed_logins == 1  # counted like a login
    response = here.post("/account/password", data={**form, "new_password_again": NEW_PASSWORD})
    assert response.status_code == 302
    page = here.get("/account")
    assert page.status_code == 200  # this browser goes on, on a fresh session
    assert b"1 other session(s) were logged out" in page.data
    assert not _logged_in(there)
    assert login(app.test_client(), "reader").status_code == 401
    assert login(app.test_client(), "reader", NEW_PASSWORD).status_code == 302


def test_a_session_ends_after_30_idle_minutes_and_the_expiry_is_audited(
    app: Flask, users: dict[str, str], session: Session, clock: Clock
) -> None:
    client = app.test_client()
    login(client, "reviewer")
    clock.advance(minutes=29)
    assert _logged_in(client)  # activity: the idle time starts again
    clock.advance(minutes=29)
    assert _logged_in(client)
    clock.advance(minutes=30, seconds=1)
    response = client.get("/trials/X")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = client.get(response.headers["Location"]).data.decode()
    assert "Your session ended after 30 minutes without activity" in page
    (expiry,) = records(session, action="expire")
    assert (expiry.entity, expiry.entity_key, expiry.new) == ("access", "reviewer", "idle")
    assert expiry.reason == "no request for 30 minutes"
    assert not _logged_in(client)
    assert len(records(session, action="expire")) == 1  # ended once, audited once


def test_a_session_ends_12_hours_after_login_however_active(
    app: Flask, users: dict[str, str], session: Session, clock: Clock
) -> None:
    client = app.test_client()
    login(client, "reader")
    for _ in range(35):  # every 20 minutes for 11 h 40 min
        clock.advance(minutes=20)
        assert _logged_in(client)
    clock.advance(minutes=20)
    assert not _logged_in(client)
    (expiry,) = records(session, action="expire")
    assert (expiry.new, expiry.reason) == ("expired", "12 hours since login")


def test_timeouts_come_from_the_environment_and_flasks_31_days_never_apply(
    database: dict[str, Any], monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("RECIST_SESSION_IDLE_MINUTES", "5")
    monkeypatch.setenv("RECIST_SESSION_MAX_HOURS", "1")
    short = make_test_app(database)
    try:
        assert short.permanent_session_lifetime == timedelta(hours=1)
        from web.services import SYSTEM, create_user

        db = short.extensions["recist_sessions"]()
        create_user(db, SYSTEM, username="reader", password=PASSWORD, role="reader")
        db.close()
        client = short.test_client()
        response = login(client, "reader")
        set_cookie = response.headers["Set-Cookie"]
        assert "Expires" not in set_cookie and "Max-Age" not in set_cookie  # a browser session
        clock.advance(minutes=4)
        assert _logged_in(client)
        clock.advance(minutes=5, seconds=1)
        assert not _logged_in(client)
    finally:
        dispose(short)
    monkeypatch.setenv("RECIST_SESSION_IDLE_MINUTES", "90")  # longer than the absolute one
    with pytest.raises(ValueError, match="idle session timeout"):
        make_test_app(database)
    monkeypatch.setenv("RECIST_SESSION_IDLE_MINUTES", "soon")
    with pytest.raises(ValueError, match="RECIST_SESSION_IDLE_MINUTES='soon' is not a number"):
        make_test_app(database)


def test_the_default_cookie_lifetime_is_the_absolute_timeout(app: Flask) -> None:
    assert app.permanent_session_lifetime == timedelta(hours=12)
    assert app.config["SESSION_IDLE_MINUTES"] == 30


def test_deactivating_a_user_ends_their_sessions_at_once(
    app: Flask, users: dict[str, str], cli: Callable[..., int], session: Session
) -> None:
    client = app.test_client()
    login(client, "reader")
    captured = cookie(client)
    assert cli("deactivate", "reader") == 0
    assert not _logged_in(client)
    assert login(app.test_client(), "reader").status_code == 401
    assert cli("activate", "reader") == 0
    assert login(app.test_client(), "reader").status_code == 302
    assert not _logged_in(_replay(app, captured))  # the old session stays ended
    changes = [(r.field, r.old, r.new) for r in records(session, entity="user", field="active")]
    assert changes == [("active", "true", "false"), ("active", "false", "true")]


def test_logins_logouts_and_failed_logins_are_audited_without_the_password(
    app: Flask, users: dict[str, str], session: Session
) -> None:
    client = app.test_client()
    client.post("/login", data={"username": "reader", "password": "Secret-Guess-42"})
    client.post("/login", data={"username": "ghost", "password": "Other-Guess-43"})
    login(client, "reader")
    client.post("/logout")
    access = [
        (r.username, r.action, r.entity_key, r.field, r.new, r.reason)
        for r in records(session, entity="access")
    ]
    assert access == [
        ("reader", "login_failed", "reader", "auth.login", "127.0.0.1", "wrong password"),
        ("anonymous", "login_failed", "(unknown user name)", "auth.login", "127.0.0.1",
         "unknown user name"),
        ("reader", "login", "reader", "address", "127.0.0.1", None),
        ("reader", "logout", "reader", "address", "127.0.0.1", None),
    ]  # fmt: skip
    everything = session.scalars(select(AuditRecord)).all()
    text = " ".join(str(getattr(r, c)) for r in everything for c in ("old", "new", "reason"))
    assert "Guess-4" not in text and PASSWORD not in text and "ghost" not in text
    session.rollback()
    report = verify_chain(session.connection())
    assert report.intact and report.records == len(everything)
