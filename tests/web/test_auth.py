"""Users and access: the whole permission matrix, CSRF, CSP, cookies, tokens, login."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from web.auth import PERMISSIONS, allowed
from web.services import SYSTEM, Actor
from web.testing import (
    ROLES,
    TRIAL,
    bearer,
    dispose,
    login,
    make_test_app,
    seed_subject_with_follow_up,
)

PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.logout", "api.openapi"}
SAMPLE_ARGS = {
    "trial_code": TRIAL,
    "subject_code": "S-001",
    "tp_code": "W8",
    "kind": "waterfall",
    "domain": "adrs",
    "username": "reader",
    "lesion": "T1",
    "k": "0",
    "study_id": "1",
    "job_id": "1",
}


@pytest.fixture
def subject_with_follow_up(session: Session, trial: str) -> str:
    seed_subject_with_follow_up(session, trial)
    return "S-001"


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every route and method of the application."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = re.sub(rf"<(?:\w+:)?{arg}>", SAMPLE_ARGS[arg], url)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, url))
    return out


def test_every_route_declares_a_permission_or_is_explicitly_public(app: Flask) -> None:
    missing = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "required_permission", "undeclared")
        if rule.endpoint == "static":
            continue
        if permission == "undeclared":
            missing.append(rule.endpoint)
        elif permission is None:
            assert rule.endpoint in PUBLIC_ENDPOINTS, f"{rule.endpoint} is public by accident"
        else:
            assert permission in PERMISSIONS
    assert missing == []


def test_permission_matrix_is_enforced_on_every_route_for_every_role(
    app: Flask, users: dict[str, str], subject_with_follow_up: str
) -> None:
    routes = _routes(app)
    assert len(routes) > 25  # the whole application, not a sample
    failures = []
    for role in ROLES:
        client = app.test_client()
        assert login(client, role).status_code == 302
        for endpoint, method, url in routes:
            permission = app.view_functions[endpoint].required_permission
            if url.startswith("/api/"):
                response = client.open(url, method=method, headers=bearer(users[role]))
            else:
                response = client.open(url, method=method)
            expect_allowed = allowed(role, permission)
            denied = response.status_code == 403
            if expect_allowed == denied or response.status_code in (401, 500):
                failures.append((role, method, url, permission, response.status_code))
    assert failures == []


def test_reviewer_is_read_only_and_reader_cannot_manage_subjects(
    app: Flask, users: dict[str, str], trial: str
) -> None:
    # The reviewer reads everything (and the audit trail) but writes no clinical data.
    clinical_writes = {"enter_measurements", "manage_subjects", "manage_trials", "import_cases"}
    assert not any(allowed("reviewer", p) for p in clinical_writes)
    assert not any(allowed("reviewer", p) for p in ("manage_users", "unlock_reads"))
    client = app.test_client()
    response = client.post(
        f"/api/v1/trials/{trial}/subjects",
        json={"subject_id": "X-1"},
        headers=bearer(users["reader"]),
    )
    assert response.status_code == 403
    assert re.search(
        r"role 'reader' does not allow this \(manage subjects\)",
        response.get_json()["error"]["message"],
    )
    response = client.post(
        f"/api/v1/trials/{trial}/subjects",
        json={"subject_id": "X-1"},
        headers=bearer(users["trial_manager"]),
    )
    assert response.status_code == 201


def test_anonymous_requests_get_401_json_from_the_api_and_a_login_redirect_from_pages(
    app: Flask, subject_with_follow_up: str
) -> None:
    client = app.test_client()
    for endpoint, method, url in _routes(app):
        response = client.open(url, method=method)
        if url.startswith("/api/"):
            assert response.status_code == 401, (endpoint, method)
            assert response.get_json()["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            assert response.status_code == 302, (endpoint, method)
            assert "/login" in response.headers["Location"]


def test_the_api_ignores_the_session_cookie_and_bad_tokens(
    app: Flask, users: dict[str, str]
) -> None:
    client = app.test_client()
    login(client, "admin")
    assert client.get("/").status_code == 200
    response = client.get("/api/v1/trials")
    assert response.status_code == 401
    assert "Bearer" in response.get_json()["error"]["message"]
    assert client.get("/api/v1/trials", headers=bearer("not-a-token")).status_code == 401
    assert client.get("/api/v1/trials", headers=bearer(users["reviewer"])).status_code == 200


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(
    app: Flask, users: dict[str, str]
) -> None:
    client = app.test_client()
    for name, password in (("admin", "wrong password"), ("nobody", "whatever pass")):
        response = client.post("/login", data={"username": name, "password": password})
        assert response.status_code == 401
        assert b"unknown user name or wrong password" in response.data


def test_login_never_redirects_to_another_site(app: Flask, users: dict[str, str]) -> None:
    client = app.test_client()
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.post(
            f"/login?next={target}", data={"username": "admin", "password": "correct horse battery"}
        )
        assert response.status_code == 302
        assert response.headers["Location"] == "/"
        client.post("/logout")
    response = login(app.test_client(), "admin")
    assert response.headers["Location"] == "/"


def test_pages_carry_a_strict_content_security_policy(app: Flask, users: dict[str, str]) -> None:
    client = app.test_client()
    login(client, "reviewer")
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # No inline script or style anywhere (the CSP would block them).
    assert b"<script>" not in response.data and b"style=" not in response.data


def _login_with_csrf(client: Any, name: str) -> None:
    page = client.get("/login").data.decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login", data={"username": name, "password": "correct horse battery", "csrf_token": token}
    )
    assert response.status_code == 302


def test_forms_without_the_csrf_token_are_refused(
    database: dict[str, Any], users: dict[str, str], trial: str
) -> None:
    csrf_app = make_test_app(database, WTF_CSRF_ENABLED=True)
    try:
        # make_test_app empties the tables: recreate the users and trial on this app.
        from web.services import create_trial, create_user

        db = csrf_app.extensions["recist_sessions"]()
        create_user(
            db, SYSTEM, username="manager", password="correct horse battery", role="trial_manager"
        )
        # The trial manager who creates a trial is its first member.
        create_trial(db, Actor("manager", "trial_manager"), code=trial, title="t")
        db.close()
        client = csrf_app.test_client()
        response = client.post(
            "/login", data={"username": "manager", "password": "correct horse battery"}
        )
        assert response.status_code == 400
        assert b"security token is missing" in response.data
        _login_with_csrf(client, "manager")
        response = client.post(f"/trials/{trial}/subjects", data={"code": "S-77"})
        assert response.status_code == 400
        assert b"security token is missing" in response.data
        page = client.get(f"/trials/{trial}").data.decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = client.post(
            f"/trials/{trial}/subjects", data={"code": "S-77", "csrf_token": token}
        )
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/subjects/S-77")  # a manager: its page
    finally:
        dispose(csrf_app)


def test_session_cookie_is_secure_httponly_and_samesite(database: dict[str, Any]) -> None:
    secure_app = make_test_app(database, SESSION_COOKIE_SECURE=True)
    try:
        from web.services import create_user

        db = secure_app.extensions["recist_sessions"]()
        create_user(db, SYSTEM, username="reader", password="correct horse battery", role="reader")
        db.close()
        response = login(secure_app.test_client(), "reader")
        cookie = next(
            c for c in response.headers.getlist("Set-Cookie") if c.startswith("recist_session=")
        )
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        dispose(secure_app)


def test_passwords_are_stored_as_scrypt_hashes(session: Session, users: dict[str, str]) -> None:
    from sqlalchemy import select

    from web.models import ApiToken, User

    hashes = session.scalars(select(User.password_hash)).all()
    assert hashes and all(h.startswith("scrypt:") for h in hashes)
    assert all("correct horse" not in h for h in hashes)
    stored = session.scalars(select(ApiToken.token_sha256)).all()
    assert set(stored).isdisjoint(users.values())


def test_five_failed_logins_lock_the_account_for_fifteen_minutes(
    session: Session, users: dict[str, str]
) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from web.models import AuditRecord, utcnow
    from web.services import LOGIN_LOCK, MAX_FAILED_LOGINS, authenticate

    now = utcnow()
    for _ in range(MAX_FAILED_LOGINS):
        assert authenticate(session, "reader", "wrong guess", now=now) is None
    # Locked: even the right password is refused, exactly like a wrong one.
    assert authenticate(session, "reader", "correct horse battery", now=now) is None
    later = now + LOGIN_LOCK - timedelta(seconds=1)
    assert authenticate(session, "reader", "correct horse battery", now=later) is None
    after = now + LOGIN_LOCK + timedelta(seconds=1)
    user = authenticate(session, "reader", "correct horse battery", now=after)
    assert user is not None and user.failed_logins == 0 and user.locked_until is None
    lock = session.scalars(select(AuditRecord).where(AuditRecord.action == "lock")).one()
    assert (lock.entity_key, lock.reason) == ("reader", "too many failed logins")


def test_a_successful_login_resets_the_failure_count(
    session: Session, users: dict[str, str]
) -> None:
    from web.services import MAX_FAILED_LOGINS, authenticate

    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate(session, "admin", "wrong guess")
    assert authenticate(session, "admin", "correct horse battery") is not None
    for _ in range(MAX_FAILED_LOGINS - 1):
        authenticate(session, "admin", "wrong guess")
    assert authenticate(session, "admin", "correct horse battery") is not None


def test_failed_logins_from_one_address_are_limited_across_user_names(
    database: dict[str, Any],
) -> None:
    from web.services import create_user

    limited = make_test_app(database, LOGIN_RATE_LIMIT="3 per minute")
    try:
        db = limited.extensions["recist_sessions"]()
        create_user(db, SYSTEM, username="reader", password="correct horse battery", role="reader")
        db.close()
        client = limited.test_client()
        for _ in range(5):  # successful logins never count against the address
            assert login(client, "reader", "correct horse battery").status_code == 302
        for name in ("alice", "bob", "carol"):  # guessing across names: each a 401
            assert login(client, name, "123456").status_code == 401
        refused = login(client, "dave", "123456")
        assert refused.status_code == 429
        assert "too many failed logins from this address (at most 3 per minute)" in (
            refused.get_data(as_text=True)
        )
        # Behind one NAT address, a correct password still logs in (failures only count).
        assert login(client, "reader", "correct horse battery").status_code == 302
        other = limited.test_client()
        other.environ_base["REMOTE_ADDR"] = "10.0.0.7"
        assert login(other, "alice", "123456").status_code == 401  # another address: its own
    finally:
        dispose(limited)


def test_a_failed_login_shows_one_error_and_keeps_the_user_name(
    client: Any, users: dict[str, str]
) -> None:
    """Issue 14: no second, empty red box after a failed login; the name stays typed and
    the cursor goes to the password."""
    page = client.post("/login", data={"username": "reader", "password": "not it at all"})
    assert page.status_code == 401
    text = page.data.decode()
    assert text.count('class="error"') == 1
    assert 'id="login-error">unknown user name or wrong password</p>' in text
    assert 'name="username" autocomplete="username" required value="reader">' in text
    assert 'type="password" autocomplete="current-password" required autofocus>' in text
