"""The failed-login limits (issue 11): password guesses through signing count like logins,
per account and per client address; the counts live in the database (a restart keeps
them); one address shared by many users never locks out a correct password. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.web.access_helpers import records
from tests.web.helpers import follow_up, read_subject
from web import create_app
from web.models import LoginFailure, User
from web.services import SYSTEM, create_token, create_trial, create_user
from web.services.users import authenticate, parse_limit
from web.testing import (
    PASSWORD,
    TRIAL,
    assign_everyone,
    bearer,
    dispose,
    login,
    make_test_app,
)

SIGN = f"/trials/{TRIAL}/subjects/S-1/timepoints/W8/sign"


@pytest.fixture
def limited(database: dict[str, Any]) -> Iterator[Flask]:
    """An app allowing 3 failed logins per address per minute; users reader, reader2 and
    admin; S-1 with a W8 read by reader."""
    app = make_test_app(database, LOGIN_RATE_LIMIT="3 per minute")
    db = app.extensions["recist_sessions"]()
    for name, role in (("reader", "reader"), ("reader2", "reader"), ("admin", "admin")):
        create_user(db, SYSTEM, username=name, password=PASSWORD, role=role)
    create_trial(db, SYSTEM, code=TRIAL, title="t", arms=[("A", "arm A")])
    assign_everyone(db)
    app.config["W8_VERSION"] = read_subject(
        db, TRIAL, "S-1", follow_up("W8", "2021-03-01", 21.0, 14.0)
    )
    db.close()
    yield app
    dispose(app)


def _user(app: Flask, name: str) -> User:
    db = app.extensions["recist_sessions"]()
    try:
        user = db.scalars(select(User).where(User.username == name)).one()
        db.expunge(user)
        return user
    finally:
        db.close()


def _sign(client: Any, app: Flask, password: str) -> Any:
    data = {"version": str(app.config["W8_VERSION"]), "meaning": "read complete"}
    return client.post(SIGN, data={**data, "password": password})


def test_wrong_signing_passwords_count_towards_the_address_limit(limited: Flask) -> None:
    client = limited.test_client()
    assert login(client, "reader").status_code == 302
    for _ in range(3):
        response = _sign(client, limited, "a guess at it")
        assert response.status_code == 400 and b"nothing was signed" in response.data
    # The address has used its 3 failures: the next failed login is refused with 429 …
    refused = login(limited.test_client(), "admin", "another guess")
    assert refused.status_code == 429
    assert b"too many failed logins from this address (at most 3 per minute)" in refused.data
    # … while a correct password still goes through (the account is not locked).
    assert _user(limited, "reader").failed_logins == 3
    assert login(limited.test_client(), "reader2").status_code == 302
    failed = records(limited.extensions["recist_sessions"](), action="login_failed")
    assert [r.field for r in failed] == ["review.sign"] * 3 + ["auth.login"]


def test_signing_through_the_api_counts_towards_the_account_lock(limited: Flask) -> None:
    db = limited.extensions["recist_sessions"]()
    token = create_token(db, SYSTEM, username="reader", name="tests")
    db.close()
    client = limited.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.1.1.1"
    body = {"meaning": "read complete", "version": limited.config["W8_VERSION"]}
    for _ in range(5):
        response = client.post(
            f"/api/v1{SIGN}", json={**body, "password": "guess"}, headers=bearer(token)
        )
        assert response.status_code == 400
    assert _user(limited, "reader").locked_until is not None
    assert login(limited.test_client(), "reader").status_code == 401  # locked


def test_authenticate_itself_counts_the_address_of_the_request(limited: Flask) -> None:
    db = limited.extensions["recist_sessions"]()
    try:
        for _ in range(2):
            with limited.test_request_context("/x", environ_base={"REMOTE_ADDR": "10.9.9.9"}):
                assert authenticate(db, "reader", "wrong password") is None
        assert authenticate(db, "reader", "wrong password") is None  # outside a request
        addresses = db.scalars(select(LoginFailure.address)).all()
        assert addresses == ["10.9.9.9", "10.9.9.9"]
    finally:
        db.close()


def test_the_counts_survive_a_restart(limited: Flask, database: dict[str, Any]) -> None:
    for name in ("alice", "bob", "carol"):
        assert login(limited.test_client(), name, "guess").status_code == 401
    config = {k: limited.config[k] for k in ("DATABASE_URL", "DATABASE_SCHEMA", "SECRET_KEY")}
    restarted = create_app(
        {**config, "TESTING": True, "WTF_CSRF_ENABLED": False, "LOGIN_RATE_LIMIT": "3 per minute"}
    )
    try:
        assert login(restarted.test_client(), "dave", "guess").status_code == 429
        assert login(restarted.test_client(), "reader").status_code == 302
    finally:
        dispose(restarted)


def test_over_the_limit_a_guess_locks_an_account_never_used_from_that_address(
    limited: Flask,
) -> None:
    """A spray of one guess over many accounts gets one guess per account; a colleague of
    the same ward (a session from the address before) keeps five tries for a typo."""
    assert login(limited.test_client(), "reader").status_code == 302  # reader: known here
    for name in ("x1", "x2", "x3"):
        login(limited.test_client(), name, "guess")
    assert login(limited.test_client(), "admin", "guess").status_code == 429
    admin = _user(limited, "admin")
    assert admin.locked_until is not None
    assert login(limited.test_client(), "admin").status_code == 429  # locked now: refused
    assert login(limited.test_client(), "reader", "typo").status_code == 429
    reader = _user(limited, "reader")
    assert reader.locked_until is None and reader.failed_logins == 1
    assert login(limited.test_client(), "reader").status_code == 302
    (lock,) = records(limited.extensions["recist_sessions"](), action="lock")
    assert (lock.entity_key, lock.reason) == (
        "admin",
        "a failed login from an address over its limit",
    )


def test_failures_older_than_the_window_no_longer_count(limited: Flask, monkeypatch: Any) -> None:
    from web.services import access

    now = access.clock()
    for name in ("x1", "x2", "x3"):
        login(limited.test_client(), name, "guess")
    monkeypatch.setattr(access, "clock", lambda: now + timedelta(seconds=61))
    assert login(limited.test_client(), "x4", "guess").status_code == 401


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20 per 15 minutes", (20, timedelta(minutes=15))),
        ("3 per minute", (3, timedelta(minutes=1))),
        ("100/hour", (100, timedelta(hours=1))),
        ("5 per 2 days", (5, timedelta(days=2))),
    ],
)
def test_the_limit_is_read_in_flask_limiters_notation(
    text: str, expected: tuple[int, timedelta]
) -> None:
    assert parse_limit(text) == expected


def test_a_malformed_limit_stops_the_start(database: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'twenty a minute' is not like '20 per 15 minutes'"):
        make_test_app(database, LOGIN_RATE_LIMIT="twenty a minute")
