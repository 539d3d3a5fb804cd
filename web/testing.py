"""Test support: one migrated database per test worker, on SQLite or PostgreSQL.

The web tests and the end-to-end test run the same suite on both databases. SQLite gets
a file per worker; PostgreSQL (``TEST_DATABASE_URL``, set by CI) gets a schema per
worker, so that ``pytest -n 2`` never shares tables between workers. Every test starts
from empty tables (:func:`delete_all_rows`).

On PostgreSQL the application runs as it should in production: as a login role that does
not own the tables (``recist_app_<worker>``: rows only, no DDL, and neither UPDATE nor
DELETE on ``audit_record``), while ``TEST_DATABASE_URL``'s role owns the schema and runs
the migrations and the per-test reset (``OWNER_DATABASE_URL`` in the settings; tests that
play an attacker with owner rights use :func:`owner_engine`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Engine, delete, text

from web import create_app
from web.db import make_engine, upgrade

TEST_DATABASE_URL_ENV = "TEST_DATABASE_URL"
ROLES = ("reader", "adjudicator", "trial_manager", "reviewer", "admin")
PASSWORD = "correct horse battery"  # noqa: S105 - test users only
TRIAL = "TRIAL-1"


def postgres_url() -> str | None:
    """``TEST_DATABASE_URL`` normalised to the psycopg 3 driver, or ``None``."""
    url = os.environ.get(TEST_DATABASE_URL_ENV)
    if not url:
        return None
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@contextmanager
def migrated_database(backend: str, folder: Path) -> Iterator[dict[str, Any]]:
    """A freshly migrated database for one test worker; dropped afterwards.

    Yields the ``DATABASE_URL`` / ``DATABASE_SCHEMA`` settings for :func:`create_app`.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'web-{worker}.sqlite3'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield {"DATABASE_URL": url, "DATABASE_SCHEMA": None, "OWNER_DATABASE_URL": url}
        return
    pg_url = postgres_url()
    if pg_url is None:
        raise RuntimeError(f"{TEST_DATABASE_URL_ENV} is not set")
    schema = f"test_{worker}_{uuid.uuid4().hex[:10]}".lower()
    url = pg_url
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, schema=schema)
    try:
        upgrade(engine)
        engine.dispose()
        app_url = _application_role(admin, schema, worker)
        yield {"DATABASE_URL": app_url, "DATABASE_SCHEMA": schema, "OWNER_DATABASE_URL": url}
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _application_role(owner: Engine, schema: str, worker: str) -> str:
    """A login role for the application on ``schema``: rows only, never DDL, and the audit
    trail append-only by privilege as well as by trigger; returns its URL."""
    role = f"recist_app_{worker}".lower()
    with owner.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if exists.first() is None:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'))
        for sql in (
            f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
            f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
            f'REVOKE UPDATE, DELETE, TRUNCATE ON "{schema}".audit_record FROM "{role}"',
        ):
            conn.execute(text(sql))
    return owner.url.set(username=role, password=None).render_as_string(hide_password=False)


def owner_engine(database: dict[str, Any]) -> Engine:
    """An engine as the owner of the test tables (the migrations' role)."""
    return make_engine(
        database.get("OWNER_DATABASE_URL") or database["DATABASE_URL"],
        schema=database.get("DATABASE_SCHEMA"),
    )


def delete_all_rows(session: Any) -> None:
    """Empty every table (tests and benchmarks reuse one migrated schema)."""
    from web.db import write_transaction
    from web.models import Base
    from web.services.audit import drop_triggers, install_triggers

    with write_transaction(session):
        connection = session.connection()
        # The audit trail is append-only: its triggers refuse DELETE. A test reset removes
        # them for this one transaction (DDL is transactional on both databases), so a
        # crash half-way leaves them in place.
        drop_triggers(connection)
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))
        install_triggers(connection)


def make_test_app(database: dict[str, Any], **overrides: Any) -> Flask:
    """An application on the test database with emptied tables."""
    config: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SESSION_COOKIE_SECURE": False,
        "REMEMBER_COOKIE_SECURE": False,
        "WTF_CSRF_ENABLED": False,
        **database,
        **overrides,
    }
    app = create_app(config)
    from sqlalchemy.orm import Session

    owner = owner_engine(database)
    try:
        with Session(owner) as session:
            delete_all_rows(session)
    finally:
        owner.dispose()
    return app


def dispose(app: Flask) -> None:
    engine: Engine = app.extensions["recist_engine"]
    engine.dispose()


def assign_everyone(session: Any) -> None:
    """Every fixture user who is not an admin joins every trial, whichever was made first."""
    from web.services.membership import assign_everyone as assign

    assign(session)
    session.rollback()  # end the read transaction: later reads see later writes


def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    """Log a Flask test client in through the login form."""
    return client.post("/login", data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    """The API's authentication header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def baseline_lesions() -> list[dict[str, Any]]:
    """Two targets (liver 30 mm, node 20 mm SA) and a bone non-target: sum 50 mm."""
    return [
        {"id": "T01", "kind": "target", "site": "liver", "size": 30.0},
        {"id": "T02", "kind": "target", "site": "lymph node", "nodal": True, "size": 20.0},
        {"id": "NT01", "kind": "non-target", "site": "bone"},
    ]


def seed_subject_with_follow_up(session: Any, trial: str) -> str:
    """Subject S-001 (arm A) with the :func:`baseline_lesions` baseline on 2021-01-04 and a
    follow-up W8 on 2021-03-01; returns the subject id."""
    from web.services import (
        SYSTEM,
        create_subject,
        save_baseline,
        save_timepoint,
    )

    create_subject(session, SYSTEM, trial, code="S-001", arm="A")
    save_baseline(
        session,
        SYSTEM,
        trial,
        "S-001",
        date_value="2021-01-04",
        lesions=baseline_lesions(),
    )
    save_timepoint(
        session,
        SYSTEM,
        trial,
        "S-001",
        {
            "id": "W8",
            "date": "2021-03-01",
            "targets": {"T01": 21.0, "T02": 14.0},
            "non_targets": {"NT01": "present"},
        },
    )
    return "S-001"
