"""Per-trial membership and segregation of duties (issue 11).

* Everyone but an admin reaches only the trials they are members of: every page and API
  route naming another trial answers 403, and the trial lists leave it out.
* ``admin`` administers and never enters, signs or reviews clinical data unless it holds
  a clinical role too (``admin+reader``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.web.access_helpers import cli
from web.db import make_engine, upgrade
from web.models import AuditRecord, TrialMember
from web.services import SYSTEM, Actor, create_token, create_trial, create_user
from web.services.membership import add_member, reaches
from web.testing import PASSWORD, bearer, login, seed_subject_with_follow_up

__all__ = ["cli"]

OTHER = "OTHER-1"


@pytest.fixture
def other(session: Session, trial: str, users: dict[str, str]) -> str:
    """A second trial with a subject; nobody is assigned to it. ``users`` (every role) are
    members of TRIAL-1 only."""
    create_trial(session, SYSTEM, code=OTHER, title="other", arms=[("A", "arm A")])
    seed_subject_with_follow_up(session, OTHER)
    session.rollback()
    return OTHER


def _get(client: FlaskClient, token: str, path: str) -> Any:
    return client.get("/api/v1" + path, headers=bearer(token))


def _trial_routes(app: Flask, trial: str) -> list[tuple[str, str]]:
    """(method, url) of every GET route naming a trial, filled in for ``trial``."""
    sample = {
        "trial_code": trial,
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
    out = []
    for rule in app.url_map.iter_rules():
        if "trial_code" not in rule.arguments or "GET" not in (rule.methods or set()):
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = re.sub(rf"<(?:\w+:)?{arg}>", sample[arg], url)
        out.append(("GET", url))
    return out


@pytest.mark.parametrize("role", ["reader", "adjudicator", "trial_manager", "reviewer"])
def test_a_non_member_gets_403_from_every_route_of_the_trial_and_does_not_see_it_listed(
    app: Flask, client: FlaskClient, users: dict[str, str], other: str, role: str
) -> None:
    routes = _trial_routes(app, other)
    assert len(routes) > 20
    login(client, role)
    for method, url in routes:
        headers = bearer(users[role]) if url.startswith("/api/") else None
        response = client.open(url, method=method, headers=headers)
        assert response.status_code == 403, url
        assert f"not a member of trial {other}" in response.data.decode(), url
    listed = [t["code"] for t in _get(client, users[role], "/trials").get_json()["trials"]]
    assert listed == ["TRIAL-1"]
    assert other not in client.get("/").data.decode()
    # The same routes of their own trial answer (the guard is about membership only).
    assert client.get("/trials/TRIAL-1").status_code in (200, 302)


def test_assigning_and_removing_a_member_is_audited_and_takes_effect_at_once(
    client: FlaskClient, session: Session, users: dict[str, str], other: str
) -> None:
    path = f"/trials/{other}/subjects/S-001"
    assert _get(client, users["reader"], path).status_code == 403
    # The trial manager of TRIAL-1 is not a member of OTHER-1: may not assign to it.
    refused = client.post(
        f"/api/v1/trials/{other}/members",
        json={"username": "reader"},
        headers=bearer(users["trial_manager"]),
    )
    assert refused.status_code == 403
    added = client.post(
        f"/api/v1/trials/{other}/members",
        json={"username": "reader"},
        headers=bearer(users["admin"]),
    )
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["added_by"] == "admin"
    again = client.post(
        f"/api/v1/trials/{other}/members",
        json={"username": "reader"},
        headers=bearer(users["admin"]),
    )
    assert again.status_code == 200  # already a member: nothing written
    assert _get(client, users["reader"], path).status_code == 200
    gone = client.delete(
        f"/api/v1/trials/{other}/members/reader",
        json={"reason": "left the reading team"},
        headers=bearer(users["admin"]),
    )
    assert gone.status_code == 200, gone.get_json()
    assert _get(client, users["reader"], path).status_code == 403
    session.rollback()
    trail = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity == "trial_member", AuditRecord.entity_key == f"{other}/reader")
        .order_by(AuditRecord.seq)
    ).all()
    assert [(r.action, r.username, r.old, r.new, r.reason) for r in trail] == [
        ("create", "admin", None, "reader", None),
        ("delete", "admin", "reader", None, "left the reading team"),
    ]


def test_member_requests_name_what_is_wrong(
    client: FlaskClient, users: dict[str, str], trial: str
) -> None:
    admin = bearer(users["admin"])
    cases = [
        ({"username": "nobody"}, 404, "user 'nobody' does not exist"),
        ({"username": "admin"}, 409, "admin is an administrator and reaches every trial"),
        ({"user": "reader"}, 400, "unknown key 'user'"),
        ({}, 400, "username"),
    ]
    for body, status, message in cases:
        response = client.post(f"/api/v1/trials/{trial}/members", json=body, headers=admin)
        assert response.status_code == status, body
        assert message in response.get_json()["error"]["message"], body
    response = client.delete(f"/api/v1/trials/{trial}/members/admin", headers=admin)
    assert response.status_code == 404
    assert "admin is not a member of trial TRIAL-1" in response.get_json()["error"]["message"]


def test_a_trial_manager_who_creates_a_trial_is_its_member(
    client: FlaskClient, users: dict[str, str]
) -> None:
    manager = bearer(users["trial_manager"])
    response = client.post(
        "/api/v1/trials", json={"code": "NEW-1", "title": "new"}, headers=manager
    )
    assert response.status_code == 201
    members = client.get("/api/v1/trials/NEW-1/members", headers=manager).get_json()
    assert [(m["username"], m["added_by"]) for m in members["members"]] == [
        ("trial_manager", "trial_manager")
    ]
    assert client.get("/api/v1/trials/NEW-1", headers=bearer(users["reader"])).status_code == 403


def test_an_admin_reaches_every_trial_but_enters_signs_and_reviews_nothing(
    client: FlaskClient, session: Session, users: dict[str, str], other: str
) -> None:
    admin = bearer(users["admin"])
    base = f"/api/v1/trials/{other}/subjects/S-001"
    assert client.get(base, headers=admin).status_code == 200
    version = client.get(base + "/timepoints/W8", headers=admin).get_json()["version"]
    refusals = [
        ("PUT", base + "/timepoints/W8", {"date": "2021-03-01", "version": version},
         "enter measurements"),
        ("POST", base + "/timepoints/W8/sign",
         {"password": PASSWORD, "meaning": "read complete", "version": version}, "sign reads"),
        ("POST", f"/api/v1/trials/{other}/subjects", {"subject_id": "S-9"}, "manage subjects"),
        ("POST", "/api/v1/trials", {"code": "ADM-1"}, "manage trials"),
    ]  # fmt: skip
    for method, path, body, permission in refusals:
        response = client.open(path, method=method, json=body, headers=admin)
        assert response.status_code == 403, path
        assert response.get_json()["error"]["message"] == (
            f"your role 'admin' does not allow this ({permission})"
        )


def test_an_admin_given_a_clinical_role_may_do_that_role_s_work(
    client: FlaskClient, session: Session, users: dict[str, str], trial: str
) -> None:
    seed_subject_with_follow_up(session, trial)
    create_user(session, SYSTEM, username="ada", password=PASSWORD, role="admin+reader")
    token = create_token(session, SYSTEM, username="ada", name="tests")
    base = f"/api/v1/trials/{trial}/subjects/S-001/timepoints/W8"
    version = client.get(base, headers=bearer(token)).get_json()["version"]
    response = client.put(
        base,
        json={
            "date": "2021-03-01",
            "targets": {"T01": 20.0, "T02": 14.0},
            "non_targets": {"NT01": "present"},
            "version": version,
            "reason": "re-measured T01",
        },
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_json()
    # The role stays an admin's: trials are reached without membership, users managed.
    assert client.get("/api/v1/trials", headers=bearer(token)).status_code == 200
    assert client.post(
        "/api/v1/trials", json={"code": "ADA-1"}, headers=bearer(token)
    ).status_code == 403  # a reader does not manage trials either
    session.rollback()
    change = session.scalars(
        select(AuditRecord).where(
            AuditRecord.entity == "measurement", AuditRecord.username == "ada"
        )
    ).first()
    assert change is not None and change.reason == "re-measured T01"


def test_the_command_line_assigns_lists_and_removes_members(
    cli: Callable[..., int],
    session: Session,
    users: dict[str, str],
    other: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert cli("assign", "reviewer", other) == 0
    assert capsys.readouterr().out == f"reviewer: member of {other}\n"
    assert cli("assign", "reviewer", other) == 0
    assert capsys.readouterr().out == f"reviewer: already a member of {other}\n"
    assert cli("members", other) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "user\trole\tadded\tadded by"
    assert [line.split("\t")[0] for line in lines[1:]] == ["reviewer"]
    assert lines[1].split("\t")[3].startswith("cli:")
    assert cli("assign", "reviewer", "NOPE") == 2
    assert "trial 'NOPE' does not exist" in capsys.readouterr().err
    assert cli("assign", "reviewer", other, "--remove", "--reason", "study closed") == 0
    assert cli("assign", "reviewer", other, "--remove") == 2
    assert f"reviewer is not a member of trial {other}" in capsys.readouterr().err
    assert cli("set-role", "reviewer", "admin+reviewer") == 0
    assert cli("set-role", "reviewer", "root") == 2
    assert cli("list") == 0
    out = capsys.readouterr().out
    assert "reviewer\tadmin+reviewer\tactive\t\t(all: admin)" in out
    assert "reader\treader\tactive\t\tTRIAL-1" in out
    session.rollback()
    roles = session.scalars(
        select(AuditRecord.new)
        .where(AuditRecord.entity == "user", AuditRecord.field == "role")
        .order_by(AuditRecord.seq)  # without it, PostgreSQL may return any order
    ).all()
    assert roles[-1] == "admin+reviewer"


def test_reaches_answers_for_unknown_trials_so_that_the_route_can_say_404(
    session: Session, users: dict[str, str], trial: str
) -> None:
    from web.models import User

    reader = session.scalars(select(User).where(User.username == "reader")).one()
    assert reaches(session, reader, trial)
    assert reaches(session, reader, "NO-SUCH-TRIAL")  # the route then answers 404
    with pytest.raises(Exception, match="already"):
        add_member(session, SYSTEM, username="admin", trial_code=trial)
    assert Actor("x", "admin+reader").holds("reader")
    assert not Actor("x", "admin+reader").holds("adjudicator")


def test_migration_0010_keeps_existing_users_on_existing_trials(
    database: dict[str, Any], tmp_path: Any
) -> None:
    """Upgrading makes every non-admin user a member of every existing trial, so that no
    working user is locked out by the upgrade; admins reach everything anyway."""
    if database["DATABASE_SCHEMA"] is None:
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
        owner = None
    else:
        schema = f"up_{uuid.uuid4().hex[:10]}"
        owner = make_engine(database["OWNER_DATABASE_URL"])
        with owner.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(database["OWNER_DATABASE_URL"], schema=schema)
    try:
        upgrade(engine, "0009")
        with engine.begin() as conn:
            for sql in (
                "INSERT INTO trial (id, code, title, settings, created_at, central_review) "
                "VALUES (1, 'A', 'A', '{}', CURRENT_TIMESTAMP, false)",
                "INSERT INTO trial (id, code, title, settings, created_at, central_review) "
                "VALUES (2, 'B', 'B', '{}', CURRENT_TIMESTAMP, false)",
                "INSERT INTO app_user (id, username, password_hash, role, full_name, active, "
                "created_at, failed_logins) VALUES (1, 'r', 'x', 'reader', '', true, "
                "CURRENT_TIMESTAMP, 0)",
                "INSERT INTO app_user (id, username, password_hash, role, full_name, active, "
                "created_at, failed_logins) VALUES (2, 'root', 'x', 'admin', '', true, "
                "CURRENT_TIMESTAMP, 0)",
            ):
                conn.execute(text(sql))
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                select(TrialMember.trial_id, TrialMember.user_id, TrialMember.added_by)
                .order_by(TrialMember.trial_id)
            ).all()
        assert [tuple(r) for r in rows] == [(1, 1, "migration 0010"), (2, 1, "migration 0010")]
    finally:
        engine.dispose()
        if owner is not None:
            with owner.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            owner.dispose()
