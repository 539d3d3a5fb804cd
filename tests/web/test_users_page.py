"""Users are managed on a page by administrators (issue 14): ``/users`` lists them and adds
one, ``/users/NAME`` sets the full name, the role, the trials, the state and resets the
password. Every write goes through the services and is audited; nobody else may open it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.web.access_helpers import records
from web.services import SYSTEM, create_trial
from web.testing import PASSWORD, ROLES, bearer, dispose, login, make_test_app

OTHER = "OTHER-1"


@pytest.fixture
def admin(app: Flask, users: dict[str, str], trial: str) -> FlaskClient:
    """A logged-in administrator; every role's user exists and is a member of TRIAL-1."""
    client = app.test_client()
    assert login(client, "admin").status_code == 302
    return client


@pytest.fixture
def other(session: Session, trial: str) -> str:
    create_trial(session, SYSTEM, code=OTHER, title="other", arms=[("A", "arm A")])
    session.rollback()
    return OTHER


def _text(response: Any) -> str:
    return str(response.data.decode())


def _shown_password(page: str) -> str:
    match = re.search(r'<code id="password-value">([^<]+)</code>', page)
    assert match is not None, "no password shown"
    return match.group(1)


def _invalid(page: str) -> list[str]:
    """The names of the fields marked invalid on ``page``."""
    return re.findall(r'name="(\w+)"[^>]*aria-invalid="true"', page)


def _users_routes(app: Flask) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule == "/users" or rule.rule.startswith("/users/"):
            url = rule.rule.replace("<username>", "reader")
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                out.append((method, url))
    return out


def test_an_admin_adds_a_reader_to_trials_and_the_password_is_shown_once(
    app: Flask, admin: FlaskClient, session: Session, other: str, trial: str
) -> None:
    page = _text(admin.get("/users"))
    assert 'id="users-link"' in page and 'id="user-create"' in page
    response = admin.post(
        "/users",
        data={
            "username": "alice",
            "full_name": "Alice  Example",
            "role": "reader",
            "trial": [trial, other],
        },
    )
    assert response.status_code == 200
    created = _text(response)
    password = _shown_password(created)
    assert len(password) >= 16
    assert "only this once" in created and "cannot force a change" in created
    assert response.headers["Cache-Control"] == "no-store"
    # Shown once: the user's page and the list never show it again.
    assert password not in _text(admin.get("/users/alice"))
    row = re.search(r'<tr data-user="alice".*?</tr>', _text(admin.get("/users")), re.S)
    assert row is not None
    for shown in ("Alice Example", "reader", "active", f"{other}, {trial}", "never"):
        assert shown in row.group(0), shown
    # The user logs in with it, reaches both trials and is audited as created by the admin.
    alice = app.test_client()
    assert login(alice, "alice", password).status_code == 302
    assert alice.get(f"/trials/{other}").status_code == 200
    made = records(session, entity_key="alice", action="create")
    assert [(r.username, r.field, r.new) for r in made] == [
        ("admin", "role", "reader"),
        ("admin", "full_name", "Alice Example"),
    ]
    members = records(session, entity="trial_member", action="create", username="admin")
    assert {r.entity_key for r in members} == {f"{trial}/alice", f"{other}/alice"}
    # The list shows the last login once the user has logged in.
    row = re.search(r'<tr data-user="alice".*?</tr>', _text(admin.get("/users")), re.S)
    assert row is not None and "never" not in row.group(0)


def test_the_list_shows_every_user_with_role_state_and_trials(
    admin: FlaskClient, trial: str
) -> None:
    page = _text(admin.get("/users"))
    for role in ROLES:
        assert f'<tr data-user="{role}"' in page, role
    admin_row = re.search(r'<tr data-user="admin".*?</tr>', page, re.S)
    assert admin_row is not None and "all: admin" in admin_row.group(0)
    reader_row = re.search(r'<tr data-user="reader".*?</tr>', page, re.S)
    assert reader_row is not None and trial in reader_row.group(0)
    # Admins are not offered trials they reach already; others are offered the missing ones.
    assert 'id="trial-add-form"' not in _text(admin.get("/users/admin"))


def test_an_admin_sets_the_full_name_and_the_role_audited(
    app: Flask, admin: FlaskClient, session: Session
) -> None:
    response = admin.post("/users/reader/full-name", data={"full_name": "Rita Reader"})
    assert response.status_code == 302
    assert "Rita Reader (reader)" in _text(admin.get("/users/reader"))
    response = admin.post("/users/reader/role", data={"role": "adjudicator"})
    assert response.status_code == 302
    assert "now has the role adjudicator" in _text(admin.get("/users/reader"))
    changes = records(session, entity="user", entity_key="reader", action="update")
    assert [(r.username, r.field, r.old, r.new) for r in changes] == [
        ("admin", "full_name", None, "Rita Reader"),
        ("admin", "role", "reader", "adjudicator"),
    ]
    # An administrator who also reads.
    assert admin.post("/users/reviewer/role", data={"role": "admin+reader"}).status_code == 302
    assert "admin+reader" in _text(admin.get("/users/reviewer"))


def test_an_admin_assigns_and_removes_a_trial_with_a_reason(
    app: Flask, admin: FlaskClient, session: Session, other: str
) -> None:
    reader = app.test_client()
    login(reader, "reader")
    assert reader.get(f"/trials/{other}").status_code == 403
    assert admin.post("/users/reader/trials", data={"trial": other}).status_code == 302
    assert f"is now a member of {other}" in _text(admin.get("/users/reader"))
    assert reader.get(f"/trials/{other}").status_code == 200
    response = admin.post(
        "/users/reader/trials/remove", data={"trial": other, "reason": "left the site"}
    )
    assert response.status_code == 302
    assert reader.get(f"/trials/{other}").status_code == 403
    trail = records(session, entity="trial_member", entity_key=f"{other}/reader")
    assert [(r.action, r.username, r.reason) for r in trail] == [
        ("create", "admin", None),
        ("delete", "admin", "left the site"),
    ]


def test_removing_a_trial_without_a_reason_is_refused_naming_the_field(
    admin: FlaskClient, session: Session, trial: str
) -> None:
    response = admin.post("/users/reader/trials/remove", data={"trial": trial, "reason": "  "})
    assert response.status_code == 400
    page = _text(response)
    assert f"say why reader leaves trial {trial}" in page
    assert 'data-field="reason"' in page and _invalid(page) == ["reason"]
    assert records(session, entity="trial_member", action="delete") == []


def test_deactivation_ends_sessions_and_revokes_tokens_and_activation_lets_the_user_in(
    app: Flask, admin: FlaskClient, users: dict[str, str], session: Session
) -> None:
    reader = app.test_client()
    login(reader, "reader")
    assert reader.get("/").status_code == 200
    response = admin.post("/users/reader/active", data={"active": "0"})
    assert response.status_code == 302
    page = _text(admin.get("/users/reader"))
    assert "sessions ended and their API tokens revoked" in page
    assert '<dd id="state">inactive</dd>' in page
    assert reader.get("/").status_code == 302  # back to the login page
    assert (
        app.test_client().get("/api/v1/trials", headers=bearer(users["reader"])).status_code == 401
    )
    assert login(app.test_client(), "reader").status_code == 401  # refused
    assert admin.post("/users/reader/active", data={"active": "1"}).status_code == 302
    assert login(app.test_client(), "reader").status_code == 302
    changes = records(session, entity="user", entity_key="reader", field="active")
    assert [(r.username, r.old, r.new) for r in changes] == [
        ("admin", "true", "false"),
        ("admin", "false", "true"),
    ]
    assert records(session, entity="api_token", action="revoke")


def test_a_password_reset_shows_a_new_password_once_and_ends_the_users_sessions(
    app: Flask, admin: FlaskClient, session: Session
) -> None:
    reader = app.test_client()
    login(reader, "reader")
    response = admin.post("/users/reader/password")
    assert response.status_code == 200
    page = _text(response)
    password = _shown_password(page)
    assert "1 session(s) of theirs ended" in page
    assert "only this once" in page
    assert reader.get("/").status_code == 302
    assert login(app.test_client(), "reader").status_code == 401  # the old one is gone
    assert login(app.test_client(), "reader", password).status_code == 302
    assert password not in _text(admin.get("/users/reader"))
    (changed,) = records(session, entity="user", entity_key="reader", field="password")
    assert (changed.username, changed.new) == ("admin", "(changed)")
    assert password not in {r.new for r in records(session)}


@pytest.mark.parametrize(
    ("data", "status", "field", "message"),
    [
        ({"username": "bad name!", "role": "reader"}, 400, "username", "must be 1–64 letters"),
        ({"username": "reader", "role": "reader"}, 409, "username", "already exists"),
        ({"username": "bob", "role": "boss"}, 400, "role", "is not one of"),
        ({"username": "bob", "role": "reader", "full_name": "x" * 201}, 400, "full_name", "200"),
        ({"username": "bob", "role": "admin"}, 409, "trial", "reaches every trial already"),
    ],
)
def test_a_refused_new_user_names_the_field_and_keeps_what_was_typed(
    admin: FlaskClient,
    session: Session,
    trial: str,
    data: dict[str, str],
    status: int,
    field: str,
    message: str,
) -> None:
    typed = {"full_name": "Bob Builder", **data, "trial": [trial]}
    response = admin.post("/users", data=typed)
    assert response.status_code == status
    page = _text(response)
    assert message in page and f'data-field="{field}"' in page
    assert _invalid(page) == [field]
    assert f'name="username" value="{typed["username"]}"' in page
    assert f'value="{typed["full_name"]}"' in page
    if data["role"] in ("reader", "admin"):
        assert f"<option selected>{data['role']}</option>" in page
    assert f'value="{trial}" checked' in page
    assert "password-value" not in page
    assert records(session, entity_key="bob") == []


def test_a_refused_change_names_the_field_and_keeps_what_was_typed(
    admin: FlaskClient, session: Session
) -> None:
    response = admin.post("/users/reader/full-name", data={"full_name": "Rita\tReader" + "x" * 200})
    assert response.status_code == 400
    page = _text(response)
    assert _invalid(page) == ["full_name"] and "x" * 200 in page
    response = admin.post("/users/reader/role", data={"role": "admin+admin"})
    assert response.status_code == 400
    assert _invalid(_text(response)) == ["role"] and "is not one of" in _text(response)
    response = admin.post("/users/reader/trials", data={"trial": "NOPE"})
    assert response.status_code == 404
    assert "trial &#39;NOPE&#39; does not exist" in _text(response)
    assert admin.get("/users/nobody").status_code == 404
    assert admin.post("/users/nobody/role", data={"role": "reader"}).status_code == 404
    assert records(session, entity="user", entity_key="reader", action="update") == []


def test_an_admin_cannot_deactivate_themselves_or_remove_their_own_admin_role(
    app: Flask, admin: FlaskClient, session: Session
) -> None:
    page = _text(admin.get("/users/admin"))
    assert "You cannot deactivate your own account" in page
    assert 'id="password-form"' not in page  # their own password: the account page
    response = admin.post("/users/admin/active", data={"active": "0"})
    assert response.status_code == 409
    assert "you cannot deactivate your own account (admin)" in _text(response)
    response = admin.post("/users/admin/role", data={"role": "reader"})
    assert response.status_code == 409
    page = _text(response)
    assert "you cannot remove the admin role from your own account" in page
    assert _invalid(page) == ["role"] and "<option selected>reader</option>" in page
    response = admin.post("/users/admin/password")
    assert response.status_code == 400 and "your account page" in _text(response)
    assert admin.get("/users").status_code == 200  # still an active admin
    assert records(session, entity="user", entity_key="admin", action="update") == []
    # Keeping the admin role while adding a clinical one is fine.
    assert admin.post("/users/admin/role", data={"role": "admin+reader"}).status_code == 302
    # Another administrator may do what one may not do to oneself.
    second = app.test_client()
    assert admin.post("/users", data={"username": "root2", "role": "admin"}).status_code == 200
    assert login(second, "admin").status_code == 302
    assert second.post("/users/root2/active", data={"active": "0"}).status_code == 302


@pytest.mark.parametrize("role", ["reader", "adjudicator", "trial_manager", "reviewer"])
def test_everyone_but_an_admin_gets_403_from_every_users_route(
    app: Flask, users: dict[str, str], trial: str, session: Session, role: str
) -> None:
    routes = _users_routes(app)
    assert len(routes) >= 8
    client = app.test_client()
    login(client, role)
    assert 'id="users-link"' not in _text(client.get("/"))
    for method, url in routes:
        data = {"username": "x1", "role": "admin", "active": "0", "trial": trial, "reason": "r"}
        response = client.open(url, method=method, data=data)
        assert response.status_code == 403, (role, method, url)
    assert records(session, entity="user", username=role) == []
    assert records(session, entity="trial_member", username=role) == []


def test_the_users_forms_need_the_csrf_token(database: dict[str, Any]) -> None:
    csrf_app = make_test_app(database, WTF_CSRF_ENABLED=True)
    try:
        from web.services import create_user

        db = csrf_app.extensions["recist_sessions"]()
        create_user(db, SYSTEM, username="admin", password=PASSWORD, role="admin")
        db.close()
        client = csrf_app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', _text(client.get("/login")))
        assert token is not None
        data = {"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)}
        assert client.post("/login", data=data).status_code == 302
        response = client.post("/users", data={"username": "eve", "role": "admin"})
        assert response.status_code == 400 and b"security token is missing" in response.data
        page = _text(client.get("/users"))
        assert page.count('name="csrf_token"') >= 2
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        response = client.post(
            "/users", data={"username": "eve", "role": "admin", "csrf_token": token.group(1)}
        )
        assert response.status_code == 200 and "password-value" in _text(response)
    finally:
        dispose(csrf_app)
