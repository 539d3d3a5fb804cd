"""Fixtures of the web tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL runs when ``TEST_DATABASE_URL`` is set (CI always sets it, so there the
PostgreSQL half can never be skipped: a missing URL under ``CI=true`` is an error).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from web.services import SYSTEM, create_token, create_trial, create_user
from web.testing import (
    PASSWORD,
    ROLES,
    TRIAL,
    assign_everyone,
    dispose,
    login,
    make_test_app,
    migrated_database,
    postgres_url,
)


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    backend = request.param
    if backend == "postgresql" and postgres_url() is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but TEST_DATABASE_URL is not set: the PostgreSQL half of "
                "the web suite must run in CI"
            )
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL")
    with migrated_database(backend, tmp_path_factory.mktemp(backend)) as settings:
        yield settings


@pytest.fixture
def app(database: dict[str, Any]) -> Iterator[Flask]:
    application = make_test_app(database)
    yield application
    dispose(application)


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    db = app.extensions["recist_sessions"]()
    yield db
    db.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def logged_in(app: Flask) -> Callable[[str], FlaskClient]:
    """``logged_in(name)``: a new test client of the app, logged in as user ``name`` (a
    user of ``users``, named after its role, or one the test created)."""

    def client_of(username: str) -> FlaskClient:
        client = app.test_client()
        response = login(client, username)
        assert response.status_code == 302, f"{username} could not log in"
        return client

    return client_of


@pytest.fixture
def trial(session: Session) -> str:
    create_trial(
        session,
        SYSTEM,
        code=TRIAL,
        title="Test trial",
        settings={"visit_interval_days": 56},
        arms=[("A", "arm A"), ("B", "arm B")],
    )
    assign_everyone(session)
    return TRIAL


@pytest.fixture
def users(session: Session) -> dict[str, str]:
    """One user per role (named after the role); returns role -> API token."""
    tokens = {}
    for role in ROLES:
        create_user(session, SYSTEM, username=role, password=PASSWORD, role=role)
        tokens[role] = create_token(session, SYSTEM, username=role, name="tests")
    assign_everyone(session)
    return tokens
