"""API tokens that expire and can be revoked (CLI and /account), deactivated users, full
names, the CLI's identity and token use in the audit trail (issue 11). SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.access_helpers import Clock, cli, clock, records
from web.models import ApiToken, User
from web.services import SYSTEM
from web.services.access import create_token
from web.services.audit import verify_chain
from web.services.users import display_name
from web.testing import bearer, login

__all__ = ["cli", "clock"]  # fixtures


def _get(app: Flask, token: str, path: str = "/api/v1/trials") -> Any:
    return app.test_client().get(path, headers=bearer(token))


def _message(response: Any) -> str:
    return str(response.get_json()["error"]["message"])


def test_a_token_expires_after_90_days_by_default_with_a_clear_401(
    app: Flask, users: dict[str, str], session: Session, clock: Clock
) -> None:
    token = create_token(session, SYSTEM, username="reviewer", name="nightly")
    clock.advance(days=89, hours=23)
    assert _get(app, token).status_code == 200
    clock.advance(hours=1, seconds=1)
    response = _get(app, token)
    assert response.status_code == 401
    assert re.fullmatch(
        r"this API token \(reviewer/nightly\) expired on \d{4}-\d\d-\d\d \d\d:\d\d UTC; ask an "
        r"administrator for a new one \(`recist users token NAME`\)",
        _message(response),
    )
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_cli_issues_tokens_for_n_days_lists_them_without_secrets_and_revokes_them(
    app: Flask,
    users: dict[str, str],
    cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    clock: Clock,
) -> None:
    assert cli("token", "reader", "--label", "ci", "--days", "7") == 0
    out = capsys.readouterr()
    ci_token = out.out.strip()
    assert len(ci_token) >= 40 and "valid 7 days" in out.err
    assert cli("token", "reader", "--label", "ci") == 2  # one active token per name
    assert "reader already has an active token named 'ci'" in capsys.readouterr().err
    assert _get(app, ci_token).status_code == 200
    assert cli("tokens", "reader") == 0
    listing = capsys.readouterr().out
    assert ci_token not in listing and users["reader"] not in listing
    lines = [line.split("\t") for line in listing.strip().splitlines()]
    assert lines[0] == ["id", "name", "created", "expires", "last used", "state"]
    rows = {row[1]: row for row in lines[1:]}
    assert rows["ci"][5] == rows["tests"][5] == "active"
    assert rows["ci"][4] != "-"  # used once above
    assert cli("token", "--revoke", "ci") == 0  # by name
    assert capsys.readouterr().out == f"token {rows['ci'][0]} (reader/ci) revoked\n"
    assert "was revoked on" in _message(_get(app, ci_token))
    assert cli("token", "--revoke", rows["tests"][0]) == 0  # by id
    assert _get(app, users["reader"]).status_code == 401
    assert cli("token", "--revoke", rows["tests"][0]) == 2
    assert "is already revoked" in capsys.readouterr().err
    assert cli("token", "reader", "--days", "0") == 2
    assert "a token lasts 1 to 366 days, not 0" in capsys.readouterr().err
    clock.advance(days=8)
    assert cli("tokens", "reader") == 0
    assert [line.split("\t")[5] for line in capsys.readouterr().out.splitlines()[1:]] == [
        "revoked",
        "revoked",
    ]


def test_a_label_shared_by_two_users_needs_the_id_or_the_user(
    app: Flask, users: dict[str, str], cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("token", "--revoke", "tests") == 2
    assert "5 active tokens are named 'tests'" in capsys.readouterr().err
    assert cli("token", "admin", "--revoke", "tests") == 0
    assert _get(app, users["admin"]).status_code == 401
    assert _get(app, users["reader"]).status_code == 200


def test_the_account_page_lists_ones_own_tokens_and_revokes_them(
    app: Flask, users: dict[str, str], session: Session
) -> None:
    client = app.test_client()
    login(client, "reader")
    _get(app, users["reader"])
    page = client.get("/account").data.decode()
    mine = session.scalars(select(ApiToken).join(User).where(User.username == "reader")).one()
    theirs = session.scalars(select(ApiToken).join(User).where(User.username == "admin")).one()
    assert f'data-token="{mine.id}"' in page and f'data-token="{theirs.id}"' not in page
    assert users["reader"] not in page and mine.token_sha256 not in page
    row = re.search(rf'<tr data-token="{mine.id}">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert cells[1] == "tests" and cells[4] != "never" and cells[5] == "active"
    refused = client.post("/account/tokens/revoke", data={"token_id": str(theirs.id)})
    assert refused.status_code == 404 and f"there is no token {theirs.id}".encode() in refused.data
    assert _get(app, users["admin"]).status_code == 200
    response = client.post("/account/tokens/revoke", data={"token_id": str(mine.id)})
    assert response.status_code == 302
    assert b"Token &#39;tests&#39; revoked" in client.get("/account").data
    assert "was revoked on" in _message(_get(app, users["reader"]))
    assert client.post("/account/tokens/revoke", data={"token_id": "x"}).status_code == 400


def test_a_deactivated_users_tokens_stop_working_at_once(
    app: Flask, users: dict[str, str], cli: Callable[..., int], session: Session
) -> None:
    assert _get(app, users["trial_manager"]).status_code == 200
    assert cli("deactivate", "trial_manager") == 0
    response = _get(app, users["trial_manager"])
    assert response.status_code == 401 and "was revoked on" in _message(response)
    assert cli("activate", "trial_manager") == 0
    assert _get(app, users["trial_manager"]).status_code == 401  # activation gives none back
    revoked = records(session, entity="api_token", action="revoke")
    assert [(r.entity_key, r.reason) for r in revoked] == [
        ("trial_manager/tests", revoked[0].reason)
    ]
    assert revoked[0].reason is not None and revoked[0].reason.startswith("command line")


def test_token_use_is_audited_once_per_token_route_family_and_hour(
    app: Flask, users: dict[str, str], trial: str, session: Session, clock: Clock
) -> None:
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/v1/trials", headers=bearer(users["reviewer"])).status_code == 200
    client.get(f"/api/v1/trials/{trial}", headers=bearer(users["reviewer"]))
    client.post(
        f"/api/v1/trials/{trial}/subjects",
        json={"subject_id": "S-9"},
        headers=bearer(users["trial_manager"]),
    )
    client.post(  # refused (403), but the token was used
        f"/api/v1/trials/{trial}/subjects", json={"subject_id": "S-8"},
        headers=bearer(users["reviewer"]),
    )  # fmt: skip
    clock.advance(hours=1)
    client.get("/api/v1/trials", headers=bearer(users["reviewer"]))
    uses = [(r.username, r.entity_key, r.field) for r in records(session, action="use")]
    assert uses == [
        ("reviewer", "reviewer/tests", "trials read"),
        ("trial_manager", "trial_manager/tests", "subjects write"),
        ("reviewer", "reviewer/tests", "subjects write"),
        ("reviewer", "reviewer/tests", "trials read"),
    ]
    assert all(
        r.entity == "api_token" and r.new == "127.0.0.1" for r in records(session, action="use")
    )
    session.rollback()
    assert verify_chain(session.connection()).intact


def test_token_creation_and_revocation_are_audited(
    app: Flask, users: dict[str, str], session: Session
) -> None:
    from web.services.access import revoke_token

    token = create_token(session, SYSTEM, username="reader", name="ci", days=30)
    row = session.scalars(select(ApiToken).where(ApiToken.name == "ci")).one()
    revoke_token(session, SYSTEM, token_id=row.id)
    assert _get(app, token).status_code == 401
    trail = [(r.action, r.entity_key, r.field) for r in records(session, entity="api_token")]
    assert trail[-2:] == [
        ("create", "reader/ci", "expires_at"),
        ("revoke", "reader/ci", "revoked_at"),
    ]


def test_a_user_has_a_full_name_for_the_signature_manifestation(
    app: Flask, cli: Callable[..., int], capsys: pytest.CaptureFixture[str], session: Session
) -> None:
    assert cli("add", "alice", "--role", "reader", "--full-name", "Alice  Example") == 0
    assert cli("add", "bob", "--role", "reader") == 0
    capsys.readouterr()
    alice = session.scalars(select(User).where(User.username == "alice")).one()
    assert alice.full_name == "Alice Example"
    assert display_name(alice) == "Alice Example (alice)"
    bob = session.scalars(select(User).where(User.username == "bob")).one()
    assert display_name(bob) == "bob"
    assert cli("set-name", "bob", "Robert Roe") == 0
    assert cli("set-name", "bob", "bad\x07name") == 2
    assert "printable text" in capsys.readouterr().err
    assert cli("list") == 0
    assert capsys.readouterr().out.splitlines() == [
        "user\trole\tstate\tfull name\ttrials",
        "alice\treader\tactive\tAlice Example\t(none)",
        "bob\treader\tactive\tRobert Roe\t(none)",
    ]
    (change,) = records(session, entity="user", field="full_name", entity_key="bob")
    assert (change.old, change.new) == (None, "Robert Roe")


def test_cli_actions_name_the_environment_user_and_the_os_uid(
    app: Flask, cli: Callable[..., int], monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    monkeypatch.setenv("USER", "mallory")
    assert cli("add", "carol", "--role", "adjudicator", "--password-stdin", stdin="x" * 12) == 0
    (record,) = records(session, entity="user", entity_key="carol")
    assert record.username == f"cli:mallory (uid {os.getuid()})"
    assert record.reason == (
        "command line: the name after 'cli:' is $USER from the environment (anyone can set "
        "it); the uid is the operating system's (os.getuid)"
    )


def test_migration_0009_keeps_tokens_and_their_revocation(
    database: dict[str, Any], tmp_path: Any
) -> None:
    import uuid

    from alembic import command
    from sqlalchemy import text

    from web.db import alembic_config, make_engine, upgrade

    if database["DATABASE_SCHEMA"] is None:
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
        admin = None
    else:
        schema = f"up_{uuid.uuid4().hex[:10]}"
        admin = make_engine(database["OWNER_DATABASE_URL"])
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(database["OWNER_DATABASE_URL"], schema=schema)
    try:
        upgrade(engine, "0008")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO app_user (id, username, password_hash, role, active, "
                    "created_at, failed_logins) VALUES (1, 'old', 'scrypt:x', 'reader', true, "
                    "CURRENT_TIMESTAMP, 0)"
                )
            )
            for number, revoked in ((1, "false"), (2, "true")):
                conn.execute(
                    text(
                        "INSERT INTO api_token (id, user_id, name, token_sha256, created_at, "
                        f"revoked) VALUES ({number}, 1, 't{number}', '{number:064d}', "
                        f"CURRENT_TIMESTAMP, {revoked})"
                    )
                )
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, expires_at, revoked_at FROM api_token ORDER BY id")
            ).all()
            name = conn.execute(text("SELECT full_name FROM app_user")).scalar_one()
        assert [(r[0], r[1] is not None, r[2] is not None) for r in rows] == [
            (1, True, False),
            (2, True, True),
        ]
        assert name == ""
        command.downgrade(alembic_config(engine), "0008")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT id, revoked FROM api_token ORDER BY id")).all()
        assert [(r[0], bool(r[1])) for r in back] == [(1, False), (2, True)]
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
