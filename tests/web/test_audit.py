"""The audit trail: append-only (application and database), hash-chained, verifiable."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from recist.cli import main
from web.db import make_engine, upgrade
from web.models import AuditRecord
from web.services import create_subject
from web.services.audit import (
    GENESIS,
    AuditTamperError,
    drop_triggers,
    install_triggers,
    verify_chain,
)
from web.testing import owner_engine, seed_subject_with_follow_up


@pytest.fixture
def trail(session: Session, trial: str) -> list[AuditRecord]:
    """A trial with one subject, its baseline and a follow-up: a few dozen records."""
    seed_subject_with_follow_up(session, trial)
    records = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
    # End the read transaction: on PostgreSQL its lock would make the tests' DDL and
    # TRUNCATE on other connections wait for ever.
    session.expunge_all()
    session.rollback()
    return records


@pytest.fixture
def engine(app: Flask, database: dict[str, Any]) -> Iterator[Engine]:
    """The database as its owner (the application's own role may not edit the trail)."""
    owner = owner_engine(database)
    yield owner
    owner.dispose()


def _cli_args(database: dict[str, Any]) -> list[str]:
    args = ["audit", "verify", "--database-url", database["DATABASE_URL"]]
    if database["DATABASE_SCHEMA"]:
        args += ["--schema", database["DATABASE_SCHEMA"]]
    return args


@pytest.fixture
def unprotected(engine: Engine) -> Iterator[Engine]:
    """The database with the triggers dropped, as an attacker with owner rights could."""
    with engine.begin() as conn:
        drop_triggers(conn)
    yield engine
    with engine.begin() as conn:
        install_triggers(conn)


def test_every_service_write_extends_one_gapless_chain_that_verifies(
    trail: list[AuditRecord], engine: Engine
) -> None:
    assert len(trail) > 10
    assert [r.seq for r in trail] == list(range(1, len(trail) + 1))
    assert trail[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(trail))
    assert len({r.hash for r in trail}) == len(trail)
    with engine.connect() as conn:
        report = verify_chain(conn, batch=7)  # several batches
    assert report.intact and report.records == len(trail)
    assert report.last_hash == trail[-1].hash


def test_changing_an_audit_record_through_the_orm_is_refused(
    trail: list[AuditRecord], session: Session
) -> None:
    record = session.get(AuditRecord, trail[3].id)
    record.new = "99"
    with pytest.raises(AuditTamperError, match=r"audit record 4 cannot be changed: .*append-only"):
        session.flush()
    session.rollback()


def test_deleting_an_audit_record_through_the_orm_is_refused(
    trail: list[AuditRecord], session: Session
) -> None:
    session.delete(session.get(AuditRecord, trail[0].id))
    with pytest.raises(AuditTamperError, match=r"audit record 1 cannot be deleted"):
        session.flush()
    session.rollback()


def test_orm_bulk_update_and_delete_are_refused_by_the_database_triggers(
    trail: list[AuditRecord], session: Session, engine: Engine
) -> None:
    # Bulk statements bypass the session's flush, so only the database can stop them: the
    # triggers, even for the tables' owner (``engine``) ...
    with Session(engine) as owner:
        with pytest.raises(DBAPIError, match=r"append-only: UPDATE refused"):
            owner.execute(update(AuditRecord).values(reason="tidied"))
        owner.rollback()
        with pytest.raises(DBAPIError, match=r"append-only: DELETE refused"):
            owner.execute(delete(AuditRecord).where(AuditRecord.seq == 2))
        owner.rollback()
    # ... and on PostgreSQL first the privileges: the application's role (web.testing)
    # holds neither UPDATE nor DELETE on audit_record.
    refusal = (
        r"permission denied for table audit_record"
        if session.get_bind().dialect.name == "postgresql"
        else r"append-only: UPDATE refused"
    )
    with pytest.raises(DBAPIError, match=refusal):
        session.execute(update(AuditRecord).values(reason="tidied"))
    session.rollback()
    assert session.scalar(select(AuditRecord.reason).where(AuditRecord.seq == 2)) is None
    assert len(session.scalars(select(AuditRecord)).all()) == len(trail)


def test_raw_sql_update_delete_and_truncate_are_refused_by_the_database(
    trail: list[AuditRecord], engine: Engine
) -> None:
    statements = [
        ("UPDATE audit_record SET new = 'x' WHERE seq = 1", "UPDATE"),
        ("DELETE FROM audit_record", "DELETE"),
    ]
    if engine.dialect.name == "postgresql":
        statements.append(("TRUNCATE audit_record", "TRUNCATE"))
    for statement, verb in statements:
        with pytest.raises(DBAPIError, match=rf"append-only: {verb} refused"):
            with engine.begin() as conn:
                conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_record")).scalar() == len(trail)
        assert verify_chain(conn).intact


def test_verify_names_an_edited_record(trail: list[AuditRecord], unprotected: Engine) -> None:
    with unprotected.begin() as conn:
        conn.execute(text("UPDATE audit_record SET old = 'forged' WHERE seq = 5"))
        report = verify_chain(conn)
    assert not report.intact and report.broken_seq == 5 and report.records == 4
    assert "audit record seq 5" in report.problem
    assert "hash does not match the record's content" in report.problem


def test_verify_names_the_link_after_a_record_rehashed_to_hide_an_edit(
    trail: list[AuditRecord], unprotected: Engine
) -> None:
    from web.services.audit import hash_of

    with Session(unprotected) as session:
        record = session.scalars(select(AuditRecord).where(AuditRecord.seq == 3)).one()
        record.reason = "forged reason"
        forged = hash_of(record, record.prev_hash)
    with unprotected.begin() as conn:
        conn.execute(
            text("UPDATE audit_record SET reason = 'forged reason', hash = :h WHERE seq = 3"),
            {"h": forged},
        )
        report = verify_chain(conn)
    assert report.broken_seq == 4
    assert "prev_hash does not match the hash of record 3" in report.problem


def test_verify_names_a_removed_record(trail: list[AuditRecord], unprotected: Engine) -> None:
    with unprotected.begin() as conn:
        conn.execute(text("DELETE FROM audit_record WHERE seq = 7"))
        report = verify_chain(conn)
    assert report.broken_seq == 8
    assert "expected seq 7 — a record is missing" in report.problem


def test_recist_audit_verify_exits_0_when_intact_and_1_naming_the_first_break(
    trail: list[AuditRecord],
    database: dict[str, Any],
    unprotected: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(_cli_args(database)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"audit chain intact: {len(trail)} records, last hash {trail[-1].hash}")
    with unprotected.begin() as conn:
        conn.execute(text("UPDATE audit_record SET username = 'mallory' WHERE seq = 2"))
        conn.execute(text("UPDATE audit_record SET username = 'mallory' WHERE seq = 9"))
    assert main(_cli_args(database)) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "BROKEN after 1 good records: audit record seq 2" in out


def test_recist_audit_verify_exits_2_with_one_line_on_an_unreadable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    url = f"sqlite:///{empty}"
    assert main(["audit", "verify", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("recist audit: cannot read the audit trail at sqlite:///")
    assert "no such table: audit_record" in err


def test_recist_audit_verify_of_a_missing_sqlite_file_creates_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///missing", f"sqlite:///{tmp_path / 'gone' / 'x.sqlite3'}"):
        assert main(["audit", "verify", "--database-url", url]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"recist audit: cannot read the audit trail at {url}: ")
        assert err.endswith("no such database file\n")
    assert list(tmp_path.iterdir()) == []


def test_upgrading_a_0002_database_chains_its_existing_records_and_protects_them(
    database: dict[str, Any], tmp_path: Path
) -> None:
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
        upgrade(engine, "0002")
        with engine.begin() as conn:
            for n in range(3):
                conn.execute(
                    text(
                        "INSERT INTO audit_record (at, username, action, entity, entity_key) "
                        "VALUES (CURRENT_TIMESTAMP, :u, 'create', 'user', :u)"
                    ),
                    {"u": f"user{n}"},
                )
        upgrade(engine)
        with engine.connect() as conn:
            report = verify_chain(conn)
            seqs = conn.execute(text("SELECT seq FROM audit_record ORDER BY id")).scalars().all()
        assert report.intact and report.records == 3 and seqs == [1, 2, 3]
        with pytest.raises(DBAPIError, match="append-only: DELETE refused"):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM audit_record"))
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


# --------------------------------------------------------------------------- the view


@pytest.fixture
def two_subjects(trail: list[AuditRecord], session: Session, trial: str) -> str:
    """S-001 written by "system", S-002 created by the trial manager."""
    from web.services import Actor

    create_subject(session, Actor("trial_manager", "trial_manager"), trial, code="S-002")
    session.expunge_all()
    session.rollback()
    return trial


def _csv_rows(body: bytes) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(body.decode())))


def test_trial_audit_view_filters_by_user_entity_action_and_date(
    app: Flask, users: dict[str, str], two_subjects: str
) -> None:
    from web.testing import login

    client = app.test_client()
    login(client, "reviewer")
    page = client.get(f"/trials/{two_subjects}/audit").data.decode()
    assert "TRIAL-1/S-001/W8/T01" in page and "TRIAL-1/S-002" in page
    page = client.get(f"/trials/{two_subjects}/audit?user=trial_manager").data.decode()
    assert "TRIAL-1/S-002" in page and "TRIAL-1/S-001" not in page
    page = client.get(f"/trials/{two_subjects}/audit?entity=measurement&action=create").data
    keys = set(re.findall(r"<td>(TRIAL-1/[^<]*)</td>", page.decode()))
    assert keys == {
        f"TRIAL-1/S-001/{tp}/{le}" for tp in ("BL", "W8") for le in ("T01", "T02", "NT01")
    }
    page = client.get(f"/trials/{two_subjects}/audit?to=2000-01-01").data.decode()
    assert "No audit records match." in page
    response = client.get(f"/trials/{two_subjects}/audit?from=yesterday")
    assert response.status_code == 400
    assert b"from: &#39;yesterday&#39; is not a date (YYYY-MM-DD)" in response.data
    response = client.get(f"/trials/{two_subjects}/audit?from=2024-01-01&to=2023-01-01")
    assert response.status_code == 400
    assert b"from: 2024-01-01 is after to (2023-01-01), so no record can match" in response.data


def test_audit_csv_export_holds_every_matching_record_with_its_hash(
    app: Flask, users: dict[str, str], two_subjects: str, trail: list[AuditRecord]
) -> None:
    from web.testing import login

    client = app.test_client()
    login(client, "adjudicator")
    response = client.get(f"/trials/{two_subjects}/subjects/S-001/audit.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="TRIAL-1_S-001_audit.csv"' in response.headers["Content-Disposition"]
    rows = _csv_rows(response.data)
    subject_records = [r for r in trail if r.entity_key.startswith("TRIAL-1/S-001")]
    assert [int(r["seq"]) for r in rows] == sorted((r.seq for r in subject_records), reverse=True)
    by_seq = {r.seq: r for r in trail}
    for row in rows:
        record = by_seq[int(row["seq"])]
        assert (row["user"], row["entity_key"], row["hash"]) == (
            record.username,
            record.entity_key,
            record.hash,
        )
        assert row["at_utc"].endswith("Z")
    rows = _csv_rows(client.get(f"/trials/{two_subjects}/audit.csv?user=trial_manager").data)
    assert {r["entity_key"] for r in rows} == {"TRIAL-1/S-002"}


def test_readers_cannot_see_the_audit_trail(
    app: Flask, users: dict[str, str], two_subjects: str
) -> None:
    from web.testing import login

    client = app.test_client()
    login(client, "reader")
    for url in (
        f"/trials/{two_subjects}/audit",
        f"/trials/{two_subjects}/audit.csv",
        f"/trials/{two_subjects}/subjects/S-001/audit",
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"does not allow this (view audit)" in response.data


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted() -> None:
    from datetime import UTC, datetime

    from web.services.audit import to_csv

    record = AuditRecord(
        seq=1,
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        username="u",
        action="update",
        entity="subject",
        entity_key="T/S",
        field="reason",
        old='=HYPERLINK("x")',
        new="plain",
        reason="+1",
        hash="h",
    )
    rows = _csv_rows(to_csv([record]).encode())
    assert rows[0]["old"] == '\'=HYPERLINK("x")' and rows[0]["reason"] == "'+1"
    assert rows[0]["new"] == "plain" and rows[0]["at_utc"] == "2026-01-02T03:04:05.000000Z"
