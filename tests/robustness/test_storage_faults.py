"""Storage faults (issue 11): a read-only, full or lost database answers 503
``storage_unavailable`` (the request was not applied and may be retried), in the API's
error shape and on an HTML page with the same words; never a generic 500, nothing written.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

import tests.web.conftest as web_fixtures
from web import STORAGE_UNAVAILABLE, create_app
from web.db import is_storage_fault, make_engine, make_session_factory, upgrade
from web.demo import synthetic_case
from web.models import AuditRecord, Subject
from web.services import SYSTEM, create_token, create_trial, create_user
from web.testing import PASSWORD, TRIAL, bearer, login

# The web suite's fixtures: every test below runs on SQLite and on PostgreSQL.
app, client, database = web_fixtures.app, web_fixtures.client, web_fixtures.database
session, trial, users = web_fixtures.session, web_fixtures.trial, web_fixtures.users

NEW_SUBJECT = {"subject_id": "S-NEW", "arm": "A"}


def assert_storage_unavailable_json(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json() == {"error": STORAGE_UNAVAILABLE}
    message = STORAGE_UNAVAILABLE["message"]
    assert "was not applied" in message and "may be retried" in message
    assert response.headers["Retry-After"].isdigit()


def assert_storage_unavailable_page(response: Any) -> None:
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "503: storage unavailable" in page
    assert "the request was not applied and may be retried" in page
    assert "Traceback" not in page


def counts(session: Session) -> tuple[int, int]:
    session.rollback()
    subjects = session.scalar(select(func.count()).select_from(Subject))
    records = session.scalar(select(func.count()).select_from(AuditRecord))
    return int(subjects or 0), int(records or 0)


def lost_connection(*_args: Any, **_kwargs: Any) -> None:
    raise OperationalError(
        "COMMIT",
        None,
        Exception("server closed the connection unexpectedly"),
        connection_invalidated=True,
    )


# --------------------------------------------------------------------------- classification


def test_storage_faults_are_told_from_bugs() -> None:
    full = OperationalError("INSERT", None, sqlite3.OperationalError("database or disk is full"))
    assert is_storage_fault(full)
    assert is_storage_fault(lost_connection_error())
    # A programming error is a bug (500), not a storage fault.
    assert not is_storage_fault(ProgrammingError("SELECT", None, Exception("no such column")))
    assert not is_storage_fault(ValueError("x"))


def lost_connection_error() -> OperationalError:
    try:
        lost_connection()
    except OperationalError as error:
        return error
    raise AssertionError("not raised")  # pragma: no cover


# --------------------------------------------------------------------------- both databases


def test_a_lost_connection_at_commit_answers_503_and_applies_nothing(
    client: FlaskClient,
    session: Session,
    trial: str,
    users: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = counts(session)
    monkeypatch.setattr(Session, "commit", lost_connection)
    response = client.post(
        f"/api/v1/trials/{trial}/subjects", json=NEW_SUBJECT, headers=bearer(users["trial_manager"])
    )
    monkeypatch.undo()
    assert_storage_unavailable_json(response)
    assert counts(session) == before
    # Retried once the database is back, the same request is applied.
    response = client.post(
        f"/api/v1/trials/{trial}/subjects", json=NEW_SUBJECT, headers=bearer(users["trial_manager"])
    )
    assert response.status_code == 201
    assert counts(session)[0] == before[0] + 1


def test_a_form_answers_an_error_page_with_the_same_words(
    client: FlaskClient,
    session: Session,
    trial: str,
    users: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login(client, "trial_manager")
    before = counts(session)
    monkeypatch.setattr(Session, "commit", lost_connection)
    response = client.post(f"/trials/{trial}/subjects", data={"code": "S-NEW", "arm": "A"})
    monkeypatch.undo()
    assert_storage_unavailable_page(response)
    assert counts(session) == before


def test_the_error_page_needs_no_database_when_the_layout_cannot_read_it(
    client: FlaskClient,
    session: Session,
    trial: str,
    users: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import web

    login(client, "trial_manager")
    before = counts(session)
    monkeypatch.setattr(Session, "commit", lost_connection)
    # The layout reads the logged-in user: with the database gone, that fails too.
    monkeypatch.setattr(web, "render_template", lost_connection)
    response = client.post(f"/trials/{trial}/subjects", data={"code": "S-NEW", "arm": "A"})
    monkeypatch.undo()
    assert_storage_unavailable_page(response)
    assert counts(session) == before


def test_a_bug_stays_a_500_not_a_storage_fault(
    client: FlaskClient, trial: str, users: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(*_args: Any, **_kwargs: Any) -> None:
        raise ProgrammingError("INSERT", None, Exception("column does not exist"))

    monkeypatch.setattr(Session, "commit", bug)
    response = client.post(
        f"/api/v1/trials/{trial}/subjects", json=NEW_SUBJECT, headers=bearer(users["trial_manager"])
    )
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"


# --------------------------------------------------------------------------- real SQLite faults


@pytest.fixture
def sqlite_file(tmp_path: Path) -> tuple[Path, str]:
    """A migrated SQLite file with TRIAL-1 and a trial manager; returns (path, token)."""
    path = tmp_path / "faults.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    db = make_session_factory(engine)()
    create_trial(db, SYSTEM, code=TRIAL, title="t", arms=[("A", "arm A"), ("B", "arm B")])
    create_user(db, SYSTEM, username="tm", password=PASSWORD, role="trial_manager", trials=[TRIAL])
    token = create_token(db, SYSTEM, username="tm", name="tests")
    db.close()
    engine.dispose()
    return path, token


def _app(url: str) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-not-for-production",
            "DATABASE_URL": url,
            "SESSION_COOKIE_SECURE": False,
            "WTF_CSRF_ENABLED": False,
        }
    )


def _subjects(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM subject").fetchone()[0])


def test_a_read_only_database_answers_503(sqlite_file: tuple[Path, str]) -> None:
    path, token = sqlite_file
    application = _app(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        client = application.test_client()
        # Reading still works…
        assert client.get(f"/api/v1/trials/{TRIAL}", headers=bearer(token)).status_code == 200
        # …writing answers 503 and writes nothing.
        response = client.post(
            f"/api/v1/trials/{TRIAL}/subjects", json=NEW_SUBJECT, headers=bearer(token)
        )
        assert_storage_unavailable_json(response)
    finally:
        application.extensions["recist_engine"].dispose()
    assert _subjects(path) == 0


def test_a_full_disk_answers_503(sqlite_file: tuple[Path, str]) -> None:
    path, token = sqlite_file
    with sqlite3.connect(path) as connection:
        connection.execute("VACUUM")  # no free pages left for the insert to reuse
    application = _app(f"sqlite:///{path}")
    engine = application.extensions["recist_engine"]

    @event.listens_for(engine, "connect")
    def _no_room(dbapi_connection: Any, _record: Any) -> None:
        # SQLite's own "database or disk is full" (SQLITE_FULL), as on a full disk.
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    # A whole case (ten timepoints: dozens of rows and audit records) needs new pages.
    case = {**synthetic_case(random.Random(11), "S-BIG", timepoints=10), "arm": "A"}
    try:
        response = application.test_client().post(
            f"/api/v1/trials/{TRIAL}/cases", json=case, headers=bearer(token)
        )
        assert_storage_unavailable_json(response)
    finally:
        engine.dispose()
    assert _subjects(path) == 0
