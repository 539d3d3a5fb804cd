"""Durability and recovery (issue 11): SQLite commits with ``synchronous=FULL``,
``recist db backup`` / ``recist db restore`` (SQLite online backup API; pg_dump/pg_restore)
restore equal data and verify the audit chain, and a PostgreSQL role that owns
``audit_record`` is warned about at start."""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from recist.cli import main
from web import cli_db, create_app
from web.db import make_engine, make_session_factory, upgrade
from web.models import Base
from web.services import SYSTEM, create_token, create_trial, create_user
from web.services.audit import drop_triggers
from web.testing import (
    PASSWORD,
    TRIAL,
    migrated_database,
    postgres_url,
    seed_subject_with_follow_up,
)


def seed(url: str, schema: str | None = None) -> None:
    """A trial, a user with a token, and S-001 with a baseline and a follow-up."""
    engine = make_engine(url, schema=schema)
    db = make_session_factory(engine)()
    create_trial(db, SYSTEM, code=TRIAL, title="t", arms=[("A", "arm A"), ("B", "arm B")])
    create_user(db, SYSTEM, username="reader", password=PASSWORD, role="reader")
    create_token(db, SYSTEM, username="reader", name="tests")
    seed_subject_with_follow_up(db, TRIAL)
    db.close()
    engine.dispose()


def snapshot(url: str, schema: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the models, in primary-key order."""
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- synchronous


def test_sqlite_commits_with_synchronous_full_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECIST_SQLITE_SYNCHRONOUS", raising=False)

    def level() -> int:
        engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
        try:
            with engine.connect() as connection:
                return int(connection.exec_driver_sql("PRAGMA synchronous").scalar_one())
        finally:
            engine.dispose()

    assert level() == 2  # FULL (NORMAL is 1)
    monkeypatch.setenv("RECIST_SQLITE_SYNCHRONOUS", "normal")
    assert level() == 1
    monkeypatch.setenv("RECIST_SQLITE_SYNCHRONOUS", "OFF")  # could corrupt on a power cut
    with pytest.raises(ArgumentError, match="RECIST_SQLITE_SYNCHRONOUS='OFF' is not one of"):
        level()


# --------------------------------------------------------------------------- SQLite


def test_sqlite_backup_and_restore_give_equal_data_and_an_intact_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    engine = make_engine(source)
    upgrade(engine)
    engine.dispose()
    seed(source)
    before = snapshot(source)
    assert before["audit_record"] and before["subject"]

    backup = tmp_path / "backup.sqlite3"
    assert main(["db", "backup", str(backup), "--database-url", source]) == 0
    out = capsys.readouterr().out
    records = len(before["audit_record"])
    assert f"audit chain intact: {records} records" in out and "integrity ok" in out
    # No temporary file left beside the backup, and no -wal beside it: one file.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".backup", "backup.sqlite3-"))]
    with sqlite3.connect(backup) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    target = f"sqlite:///{tmp_path / 'new' / 'restored.sqlite3'}"
    assert main(["db", "restore", str(backup), "--database-url", target]) == 0
    out = capsys.readouterr().out
    assert f"audit chain intact: {records} records" in out
    assert "reconciliation: the data agrees with the trail (1 subjects" in out
    assert snapshot(target) == before

    # A restore never overwrites data unless told to.
    assert main(["db", "restore", str(backup), "--database-url", source]) == 2
    err = one_line(capsys.readouterr().err)
    assert "is not empty" in err and "--force" in err
    assert snapshot(source) == before
    assert main(["db", "restore", str(backup), "--database-url", source, "--force"]) == 0
    assert snapshot(source) == before


def test_a_restore_reports_a_broken_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    engine = make_engine(source)
    upgrade(engine)
    seed(source)
    with engine.begin() as connection:  # someone with the file edits the trail
        drop_triggers(connection)
        connection.execute(text("UPDATE audit_record SET reason = 'edited' WHERE seq = 2"))
    engine.dispose()
    backup = tmp_path / "backup.sqlite3"
    assert main(["db", "backup", str(backup), "--database-url", source]) == 0
    assert "audit chain BROKEN" in capsys.readouterr().out
    target = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    assert main(["db", "restore", str(backup), "--database-url", target]) == 1
    out = capsys.readouterr().out
    assert "audit chain BROKEN after 1 good records: audit record seq 2" in out


def test_a_restore_reports_data_changed_behind_the_trail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    engine = make_engine(source)
    upgrade(engine)
    seed(source)
    with engine.begin() as connection:  # a measurement edited in the database, not the app
        connection.execute(text("UPDATE lesion_record SET size_units = size_units + 10000"))
    engine.dispose()
    backup = tmp_path / "backup.sqlite3"
    assert main(["db", "backup", str(backup), "--database-url", source]) == 0
    capsys.readouterr()
    target = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    assert main(["db", "restore", str(backup), "--database-url", target]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("audit chain intact")  # the chain alone cannot tell
    assert out[2].startswith("reconciliation FAILED")


def test_backup_refusals_are_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.sqlite3"
    out = tmp_path / "b.sqlite3"
    assert main(["db", "backup", str(out), "--database-url", f"sqlite:///{missing}"]) == 2
    assert "no SQLite database at" in one_line(capsys.readouterr().err)
    assert not missing.exists() and not out.exists()  # nothing created

    source = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    engine = make_engine(source)
    upgrade(engine)
    engine.dispose()
    out.write_text("an older backup")
    assert main(["db", "backup", str(out), "--database-url", source]) == 2
    assert "exists; give --force" in one_line(capsys.readouterr().err)
    assert out.read_text() == "an older backup"

    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("hello")
    target = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    assert main(["db", "restore", str(not_a_backup), "--database-url", target]) == 2
    assert "is not a SQLite database" in one_line(capsys.readouterr().err)
    assert main(["db", "restore", str(tmp_path / "nope"), "--database-url", target]) == 2
    assert "no such file" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r.sqlite3").exists()


def test_missing_postgresql_tools_give_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(cli_db, "PG_LIBDIR", tmp_path)
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    out = tmp_path / "b.dump"
    assert main(["db", "backup", str(out), "--database-url", url]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith("recist db backup: pg_dump was not found")
    assert "postgresql-client" in err
    assert not out.exists()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_source(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if postgres_url() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL")
    with migrated_database("postgresql", tmp_path) as settings:
        yield settings


@pytest.fixture
def throwaway_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; its URL (dropped afterwards)."""
    import psycopg

    url = make_url(postgres_url() or "")
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"recist_restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgresql_backup_and_restore_give_equal_data_and_an_intact_chain(
    pg_source: dict[str, Any],
    throwaway_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, schema = pg_source["DATABASE_URL"], pg_source["DATABASE_SCHEMA"]
    seed(url, schema)
    before = snapshot(url, schema)
    records = len(before["audit_record"])
    backup = tmp_path / "backup.dump"
    assert main(["db", "backup", str(backup), "--database-url", url, "--schema", schema]) == 0
    assert "pg_dump custom format" in capsys.readouterr().out
    assert backup.read_bytes().startswith(b"PGDMP")

    restore = ["db", "restore", str(backup), "--database-url", throwaway_database]
    assert main([*restore, "--schema", schema]) == 0
    out = capsys.readouterr().out
    assert f"audit chain intact: {records} records" in out
    assert "reconciliation: the data agrees with the trail (1 subjects" in out
    assert snapshot(throwaway_database, schema) == before

    # The restored database is not empty any more: a second restore is refused…
    assert main([*restore, "--schema", schema]) == 2
    assert "is not empty" in one_line(capsys.readouterr().err)
    # …unless forced, which replaces it with the same data.
    assert main([*restore, "--schema", schema, "--force"]) == 0
    assert snapshot(throwaway_database, schema) == before
    # The append-only triggers came back with the table.
    engine = make_engine(throwaway_database, schema=schema)
    try:
        with engine.connect() as connection:
            triggers = connection.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass('audit_record') "
                    "AND NOT tgisinternal ORDER BY tgname"
                )
            ).scalars()
            assert list(triggers) == ["audit_record_no_truncate", "audit_record_no_update_delete"]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_an_owner_of_audit_record_is_warned_about_at_start(
    pg_source: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # The migrations' role created the schema's tables, so it owns audit_record.
    config = {"SECRET_KEY": "k", **pg_source, "DATABASE_URL": pg_source["OWNER_DATABASE_URL"]}
    with caplog.at_level(logging.WARNING):
        app = create_app(config)
    app.extensions["recist_engine"].dispose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(
        "SECURITY WARNING" in w
        and "table audit_record" in w
        and "rests on those triggers alone" in w
        for w in warnings
    ), warnings
    # The application's own role (rows only; web.testing) is not warned about.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        app = create_app({"SECRET_KEY": "k", **pg_source})
    app.extensions["recist_engine"].dispose()
    assert not [r for r in caplog.records if "SECURITY WARNING" in r.getMessage()]


def test_sqlite_has_no_owner_to_warn_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    with caplog.at_level(logging.WARNING):
        app = create_app({"SECRET_KEY": "k", "DATABASE_URL": url})
    app.extensions["recist_engine"].dispose()
    assert not [r for r in caplog.records if "SECURITY WARNING" in r.getMessage()]
    with sqlite3.connect(tmp_path / "x.sqlite3") as connection:  # the app wrote nothing
        assert connection.execute("SELECT count(*) FROM audit_record").fetchone() == (0,)


@pytest.mark.postgres
def test_recist_serve_warns_on_the_first_request_when_it_migrated_after_start(
    pg_source: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # `recist serve` builds the app, then migrates: the table is not there at start.
    url = pg_source["OWNER_DATABASE_URL"]  # migrating needs the owner's rights
    schema = f"{pg_source['DATABASE_SCHEMA']}_late"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with caplog.at_level(logging.WARNING):
            app = create_app({"SECRET_KEY": "k", "DATABASE_URL": url, "DATABASE_SCHEMA": schema})
            assert not [r for r in caplog.records if "SECURITY WARNING" in r.getMessage()]
            upgrade(app.extensions["recist_engine"])
            app.test_client().get("/login")
        app.extensions["recist_engine"].dispose()
        assert [r for r in caplog.records if "SECURITY WARNING" in r.getMessage()]
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
