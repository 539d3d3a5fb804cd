"""Fixtures of the access tests (sessions, tokens, login limits): a clock the tests move,
and ``recist users`` run against the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from recist.cli import main
from web.models import AuditRecord


@dataclass
class Clock:
    """The time of web.services.access.clock (sessions, tokens, login limits)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    from web.services import access

    moving = Clock()
    monkeypatch.setattr(access, "clock", lambda: moving.now)
    return moving


@pytest.fixture
def cli(
    app: Flask, database: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., int]:
    """``cli("set-password", "reader", stdin="...")`` runs ``recist users …`` on the test
    database (after ``app`` emptied it)."""
    monkeypatch.setenv("DATABASE_URL", database["DATABASE_URL"])
    if database["DATABASE_SCHEMA"]:
        monkeypatch.setenv("RECIST_DATABASE_SCHEMA", database["DATABASE_SCHEMA"])
    else:
        monkeypatch.delenv("RECIST_DATABASE_SCHEMA", raising=False)

    def run(*args: str, stdin: str | None = None) -> int:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return main(["users", *args])

    return run


def records(session: Session, **where: Any) -> list[AuditRecord]:
    """Audit records matching ``where`` (column=value), oldest first, read afresh."""
    session.rollback()
    query = select(AuditRecord).order_by(AuditRecord.seq)
    for name, value in where.items():
        query = query.where(getattr(AuditRecord, name) == value)
    found = list(session.scalars(query))
    for record in found:
        session.expunge(record)  # keeps its loaded values
    session.rollback()
    return found


def cookie(client: Any) -> str:
    """The value of the client's session cookie."""
    value = client.get_cookie("recist_session")
    assert value is not None
    return str(value.value)
