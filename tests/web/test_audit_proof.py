"""An audit trail that proves what happened (issue 11): signatures bound to the values they
signed, anchors of the chain head kept outside the database (HMAC), and a reconciliation
that replays the trail against the measurements, locks, signatures, central-review
settings and cached results — each detecting what the hash chain alone cannot."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from recist.cli import main
from tests.web.helpers import READER, follow_up, read_subject
from web.models import AuditRecord, Lesion, LesionRecord, Subject, Timepoint, utcnow
from web.services import (
    SYSTEM,
    Actor,
    create_trial,
    create_user,
    delete_timepoint,
    get_subject,
    get_timepoint,
    import_case,
    save_baseline,
    save_timepoint,
    timepoint_as_dict,
)
from web.services.audit import drop_triggers, hash_of, install_triggers
from web.services.audit_replay import reconcile
from web.services.central import set_central_review
from web.services.signing import sign_timepoint, unlock_timepoint
from web.testing import PASSWORD, baseline_lesions, bearer, owner_engine

MANAGER = Actor("trial_manager", "trial_manager")
KEY = "k" * 40  # an anchor key given in RECIST_AUDIT_KEY


def _version(session: Session, subject: str, tp: str) -> int:
    session.expunge_all()
    session.rollback()
    return get_timepoint(get_subject(session, "TRIAL-1", subject), tp).version


def _sign(session: Session, subject: str, tp: str) -> None:
    version = _version(session, subject, tp)
    sign_timepoint(
        session, READER, "TRIAL-1", subject, tp,
        password=PASSWORD, meaning="read complete", expected_version=version,
    )  # fmt: skip


IMPORTED = {
    "subject_id": "S-002",
    "lesions": [
        {"id": "T01", "site": "liver", "kind": "target"},
        {"id": "T02", "site": "lung", "kind": "target"},
        {"id": "NT01", "site": "bone", "kind": "non-target"},
    ],
    "timepoints": [
        {"id": "BL", "date": "2021-01-04", "targets": {"T01": 30, "T02": 20},
         "non_targets": {"NT01": "present"}},
        {"id": "W8", "date": "2021-03-01",
         "targets": {"T01": {"fragments": [10, 8.5]}, "T02": "too_small"},
         "non_targets": {"NT01": "present"}},
    ],
}  # fmt: skip


@pytest.fixture
def history(session: Session, trial: str, users: dict[str, str]) -> None:
    """A varied history, every change through the services:

    * S-001 (entered by ``reader``): W8 re-measured, W16 renamed W24, W32 added and
      deleted, W8 signed, unlocked, re-measured and signed again (locked now);
    * S-002: imported as a whole case (one audit record), then W8 changed;
    * S-003: a baseline lesion (NT01) removed after a follow-up recorded it; W8 signed and
      unlocked (not signed now);
    * trial ICR-1: independent central review switched on, then off (unblinded).
    """
    read_subject(
        session, trial, "S-001",
        follow_up("W8", "2021-03-01", 21.0, 14.0), follow_up("W16", "2021-04-26", 30.0, 14.0),
    )  # fmt: skip
    save_timepoint(
        session, READER, trial, "S-001", follow_up("W8", "2021-03-01", 23.0, 14.0),
        expected_version=_version(session, "S-001", "W8"), reason="re-measured",
    )  # fmt: skip
    save_timepoint(
        session, READER, trial, "S-001", follow_up("W24", "2021-04-26", 30.0, 14.0),
        expected_version=_version(session, "S-001", "W16"), original_code="W16",
        reason="visit renamed",
    )  # fmt: skip
    save_timepoint(session, READER, trial, "S-001", follow_up("W32", "2021-06-21", 31.0, 14.0))
    delete_timepoint(
        session, READER, trial, "S-001", "W32",
        expected_version=_version(session, "S-001", "W32"), reason="duplicate entry",
    )  # fmt: skip
    _sign(session, "S-001", "W8")
    unlock_timepoint(session, MANAGER, trial, "S-001", "W8", reason="T02 re-read")
    save_timepoint(
        session, READER, trial, "S-001", follow_up("W8", "2021-03-01", 23.0, 15.0),
        expected_version=_version(session, "S-001", "W8"), reason="T02 re-read",
    )  # fmt: skip
    _sign(session, "S-001", "W8")
    import_case(session, READER, trial, IMPORTED)
    save_timepoint(
        session, READER, trial, "S-002",
        {**IMPORTED["timepoints"][1], "targets": {"T01": 19.0, "T02": "too_small"}},
        expected_version=_version(session, "S-002", "W8"), reason="fragments merged",
    )  # fmt: skip
    read_subject(session, trial, "S-003", follow_up("W8", "2021-03-01", 25.0, 18.0))
    save_baseline(
        session, READER, trial, "S-003", date_value="2021-01-04",
        lesions=baseline_lesions()[:2], expected_version=_version(session, "S-003", "BL"),
        reason="NT01 was a bone island",
    )  # fmt: skip
    _sign(session, "S-003", "W8")
    unlock_timepoint(session, MANAGER, trial, "S-003", "W8", reason="signed too early")
    create_trial(session, SYSTEM, code="ICR-1", title="icr", arms=[("A", "arm A")])
    set_central_review(session, MANAGER, "ICR-1", on=True)
    set_central_review(
        session, MANAGER, "ICR-1", on=False, reason="wrong trial", confirmed=True
    )  # fmt: skip
    session.expunge_all()
    session.rollback()


@pytest.fixture
def engine(app: Flask, database: dict[str, Any]) -> Iterator[Engine]:
    """The database as its owner (the application's own role may not edit the trail)."""
    owner = owner_engine(database)
    yield owner
    owner.dispose()


@pytest.fixture
def unprotected(engine: Engine) -> Iterator[Engine]:
    """The database with the append-only triggers dropped, as a table owner could."""
    with engine.begin() as conn:
        drop_triggers(conn)
    yield engine
    with engine.begin() as conn:
        install_triggers(conn)


def _db(database: dict[str, Any]) -> list[str]:
    args = ["--database-url", database["DATABASE_URL"]]
    if database["DATABASE_SCHEMA"]:
        args += ["--schema", database["DATABASE_SCHEMA"]]
    return args


def _verify(database: dict[str, Any], capsys: Any, *extra: str) -> tuple[int, list[str]]:
    status = main(["audit", "verify", *_db(database), *extra])
    captured = capsys.readouterr()
    return status, (captured.out + captured.err).splitlines()


def _anchor(database: dict[str, Any], capsys: Any, *extra: str) -> tuple[int, str]:
    status = main(["audit", "anchor", *_db(database), *extra])
    captured = capsys.readouterr()
    return status, (captured.out + captured.err).strip()


def _record_id(engine: Engine, subject: str, tp: str, lesion: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(LesionRecord.id)
                .join(Timepoint, LesionRecord.timepoint_id == Timepoint.id)
                .join(Subject, Timepoint.subject_id == Subject.id)
                .join(Lesion, LesionRecord.lesion_id == Lesion.id)
                .where(Subject.code == subject, Timepoint.code == tp, Lesion.code == lesion)
            ).scalar_one()
        )


def _append(engine: Engine, **values: Any) -> None:
    """A forged record appended with a correct hash (the chain is extended, not broken)."""
    with Session(engine) as session:
        session.add(AuditRecord(at=utcnow(), username="mallory", reason="forged", **values))
        session.commit()


# --------------------------------------------------------------------------- signatures


def test_the_sign_record_holds_the_sha256_of_the_canonical_values_it_signed(
    session: Session, history: None
) -> None:
    subject = get_subject(session, "TRIAL-1", "S-001")
    values = timepoint_as_dict(subject, get_timepoint(subject, "W8"))
    del values["version"]
    assert values["targets"] == {"T01": 23.0, "T02": 15.0}
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    signs = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.action == "sign", AuditRecord.entity_key == "TRIAL-1/S-001/W8")
        .order_by(AuditRecord.seq)
    ).all()
    first, second = (record.new or "" for record in signs)
    assert second == f"reader · read complete · sha256:{digest}"
    assert first != second  # the first signature signed T02 = 14.0


# --------------------------------------------------------------------------- reconciliation


def test_verify_replays_a_varied_history_and_finds_that_the_data_agrees(
    history: None, database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines = _verify(database, capsys)
    assert status == 0, lines
    assert lines[0].startswith("audit chain intact: ")
    assert lines[1] == (
        "reconciliation: the data agrees with the trail (3 subjects, 19 measurements, "
        "1 signatures, 0 central reads, cached results equal to a fresh engine run)"
    )


def test_a_direct_sql_edit_of_a_locked_measurement_is_reported(
    history: None, engine: Engine, database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    record = _record_id(engine, "S-001", "W8", "T01")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE lesion_record SET size_units = 990000 WHERE id = :i"), {"i": record}
        )
    status, lines = _verify(database, capsys)
    assert status == 1 and len(lines) == 2 and lines[0].startswith("audit chain intact")
    assert re.fullmatch(
        r"reconciliation FAILED \(3 difference\(s\)\); first: measurement TRIAL-1/S-001/W8/T01: "
        r"the database holds 99\.0 but the audit trail \(seq \d+\) says 23\.0 — changed "
        r"outside the application",
        lines[1],
    ), lines[1]


def test_a_forged_record_hiding_a_measurement_edit_still_breaks_the_signature(
    history: None, engine: Engine, database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The edit is "explained" by a forged record with a correct hash: the chain and the
    measurement agree, but the signature's digest no longer matches the values."""
    record = _record_id(engine, "S-001", "W8", "T01")
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE lesion_record SET size_units = 240000 WHERE id = :i"), {"i": record}
        )
    _append(
        engine, action="update", entity="measurement", entity_key="TRIAL-1/S-001/W8/T01",
        field="targets", old="23.0", new="24.0",
    )  # fmt: skip
    status, lines = _verify(database, capsys)
    assert status == 1
    assert re.search(
        r"first: timepoint TRIAL-1/S-001/W8: the values signed at seq \d+ \(sha256 "
        r"[0-9a-f]{16}…\) are not the values stored now \(sha256 [0-9a-f]{16}…\) — a signed "
        r"read was changed$",
        lines[-1],
    ), lines[-1]


@pytest.mark.parametrize(
    ("statement", "first"),
    [
        (
            "UPDATE timepoint SET locked = false, signed_by = NULL, signed_at = NULL, "
            "sign_meaning = NULL WHERE code = 'W8' AND locked",
            r"timepoint TRIAL-1/S-001/W8: not locked in the database but the audit trail says "
            r"locked \(seq \d+\) — the lock was changed outside the application",
        ),
        (
            "UPDATE timepoint SET signed_by = 'mallory' WHERE code = 'W8' AND locked",
            r"timepoint TRIAL-1/S-001/W8: the database says signed by mallory \(read complete\) "
            r"but the sign record \(seq \d+\) says reader \(read complete\)",
        ),
        (
            "UPDATE timepoint SET locked = true, signed_by = 'reader', sign_meaning = "
            "'read complete' WHERE code = 'W24'",
            r"timepoint TRIAL-1/S-001/W24: locked in the database but the audit trail says not "
            r"locked \(no lock record\)",
        ),
        (
            "DELETE FROM lesion_record WHERE id = {S-002/W8/T02}",
            r"measurement TRIAL-1/S-002/W8/T02: the audit trail \(seq \d+\) says \"too_small\" "
            r"but the database has no such record — removed outside the application",
        ),
        (
            "UPDATE lesion_record SET state = 'absent' WHERE id = {S-003/W8/T02}",
            r"measurement TRIAL-1/S-003/W8/T02: the database holds \"absent\" but the audit "
            r"trail \(seq \d+\) says 18\.0",
        ),
        (
            "UPDATE trial SET central_review = true WHERE code = 'ICR-1'",
            r"trial ICR-1: independent central review is on in the database but off in the "
            r"audit trail \(seq \d+\)",
        ),
    ],
    ids=["unlocked", "signer", "locked", "deleted", "state", "central-review"],
)
def test_direct_edits_of_locks_signatures_and_measurements_are_named(
    history: None,
    engine: Engine,
    database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    statement: str,
    first: str,
) -> None:
    for placeholder in re.findall(r"\{([^}]+)\}", statement):
        subject, tp, lesion = placeholder.split("/")
        statement = statement.replace(
            "{" + placeholder + "}", str(_record_id(engine, subject, tp, lesion))
        )
    with engine.begin() as conn:
        conn.execute(text(statement))
    status, lines = _verify(database, capsys)
    assert status == 1
    assert re.search(r"first: " + first, lines[-1]), lines[-1]


def test_a_cached_result_edited_in_the_database_differs_from_a_fresh_engine_run(
    history: None, engine: Engine, session: Session
) -> None:
    with engine.connect() as conn:
        row = conn.execute(
            select(Subject.id, Subject.result_json).where(Subject.code == "S-002")
        ).one()
    forged = {**row.result_json, "best_overall_response": "CR"}
    with engine.begin() as conn:
        conn.execute(
            update(Subject.__table__).where(Subject.id == row.id).values(result_json=forged)
        )
    report = reconcile(session)
    session.rollback()
    assert report.differences == (
        "subject TRIAL-1/S-002: the cached result is not a fresh engine run's at "
        f'/best_overall_response: cached "CR", engine "{row.result_json["best_overall_response"]}"'
        " — changed outside the application",
    )


def test_a_forged_sign_record_for_an_unsigned_read_is_reported(
    history: None, engine: Engine, session: Session
) -> None:
    _append(
        engine, action="sign", entity="timepoint", entity_key="TRIAL-1/S-002/W8",
        field="signature", new="mallory · read complete · sha256:" + "0" * 64,
    )  # fmt: skip
    report = reconcile(session)
    session.rollback()
    assert report.problem is not None and re.fullmatch(
        r"timepoint TRIAL-1/S-002/W8: not locked in the database \(signed_by empty\) but the "
        r"audit trail says signed by mallory \(seq \d+\)",
        report.problem,
    )


def test_the_api_verify_reports_the_reconciliation(
    history: None, engine: Engine, client: Any, users: dict[str, str]
) -> None:
    body = client.get("/api/v1/audit/verify", headers=bearer(users["reviewer"])).get_json()
    assert body["intact"] is True
    assert body["reconciliation"] == {
        "agree": True,
        "subjects": 3,
        "measurements": 19,
        "signatures": 1,
        "central_reads": 0,
        "differences": 0,
        "problem": None,
    }
    record = _record_id(engine, "S-001", "W24", "T02")
    with engine.begin() as conn:
        conn.execute(text("UPDATE lesion_record SET size_units = 1 WHERE id = :i"), {"i": record})
    body = client.get("/api/v1/audit/verify", headers=bearer(users["reviewer"])).get_json()
    assert body["intact"] is True and body["reconciliation"]["agree"] is False
    assert body["reconciliation"]["problem"].startswith(
        "measurement TRIAL-1/S-001/W24/T02: the database holds 0.0001 but the audit trail"
    )


# --------------------------------------------------------------------------- anchors


def test_anchor_prints_and_appends_an_hmac_of_the_chain_head_with_a_0600_key(
    history: None,
    engine: Engine,
    database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    key_file, anchors = tmp_path / "keys" / "audit_key", tmp_path / "anchors.txt"
    status, line = _anchor(database, capsys, "--key-file", str(key_file), "--append", str(anchors))
    assert status == 0, line
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with engine.connect() as conn:
        seq, head = conn.execute(
            select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
        ).one()
    match = re.fullmatch(
        rf"recist-audit-anchor v1 seq={seq} hash={head} "
        r"at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ hmac=([0-9a-f]{64})",
        line,
    )
    assert match, line
    key = key_file.read_text().strip().encode()
    message = line.rsplit(" hmac=", 1)[0].encode()
    assert match[1] == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert anchors.read_text() == line + "\n"
    with Session(engine) as session:
        create_user(session, SYSTEM, username="late", password=PASSWORD, role="reader")
    assert _anchor(database, capsys, "--key-file", str(key_file), "--append", str(anchors))[0] == 0
    assert len(anchors.read_text().splitlines()) == 2
    status, lines = _verify(
        database, capsys, "--key-file", str(key_file), "--anchors", str(anchors)
    )
    assert status == 0, lines
    assert lines[1] == f"audit anchors intact: 2 anchors, newest seq {seq + 1}"


@pytest.fixture
def anchored(
    history: None,
    engine: Engine,
    database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Path, int]:
    """Anchors (key in RECIST_AUDIT_KEY) after the history and after two more records (user
    accounts, which the reconciliation does not replay); returns the file and last seq."""
    monkeypatch.setenv("RECIST_AUDIT_KEY", KEY)
    anchors = tmp_path / "anchors.txt"
    assert _anchor(database, capsys, "--append", str(anchors))[0] == 0
    with Session(engine) as session:
        for name in ("late1", "late2"):
            create_user(session, SYSTEM, username=name, password=PASSWORD, role="reader")
    status, line = _anchor(database, capsys, "--append", str(anchors))
    assert status == 0
    return anchors, int(re.search(r"seq=(\d+)", line)[1])  # type: ignore[index]


def test_deleting_the_newest_records_passes_the_chain_but_not_the_anchors(
    anchored: tuple[Path, int],
    unprotected: Engine,
    database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    anchors, last = anchored
    with unprotected.begin() as conn:
        conn.execute(text("DELETE FROM audit_record WHERE seq > :s"), {"s": last - 2})
    status, lines = _verify(database, capsys)
    assert status == 0, lines  # the chain and the data alone cannot see it
    status, lines = _verify(database, capsys, "--anchors", str(anchors))
    assert status == 1 and len(lines) == 2
    assert (
        lines[1]
        == (
            f"audit anchors BROKEN after 1 good anchors: anchor line 2 (seq {last}, "
            + re.search(r"at=(\S+)", anchors.read_text().splitlines()[1])[1]  # type: ignore[index]
            + f"): audit record seq {last} no longer exists (the trail now ends at seq {last - 2})"
            " — records were deleted"
        )
    )


def test_an_edit_followed_by_rechaining_every_later_record_is_found_by_the_anchors(
    anchored: tuple[Path, int],
    unprotected: Engine,
    database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    anchors, _last = anchored
    with unprotected.begin() as conn:
        conn.execute(text("UPDATE audit_record SET reason = 'tidied' WHERE seq = 3"))
        rows = conn.execute(select(AuditRecord.__table__).order_by(AuditRecord.seq)).all()
        prev = rows[1].hash
        for row in rows[2:]:
            record = AuditRecord(**{c: getattr(row, c) for c in row._fields})
            new_hash = hash_of(record, prev)
            conn.execute(
                text("UPDATE audit_record SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": new_hash, "s": row.seq},
            )
            prev = new_hash
    status, lines = _verify(database, capsys)
    assert status == 0, lines  # re-chained: the chain verifies
    status, lines = _verify(database, capsys, "--anchors", str(anchors))
    assert status == 1
    assert re.search(
        r"BROKEN after 0 good anchors: anchor line 1 \(seq \d+, \S+\): audit record seq \d+ "
        r"now has hash [0-9a-f]{16}…, the anchor says [0-9a-f]{16}… — the trail was changed "
        r"and re-chained$",
        lines[-1],
    ), lines[-1]


def test_an_altered_anchor_or_another_key_fails_the_hmac(
    anchored: tuple[Path, int],
    database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    anchors, last = anchored
    assert _verify(database, capsys, "--anchors", str(anchors))[0] == 0
    lines = anchors.read_text().splitlines()
    forged = tmp_path / "forged.txt"
    forged.write_text(lines[0] + "\n" + lines[1].replace(f"seq={last} ", f"seq={last - 1} ") + "\n")
    status, out = _verify(database, capsys, "--anchors", str(forged))
    assert status == 1
    assert out[-1].endswith(
        "its HMAC does not match — the anchor was altered, or made with another key"
    )
    assert "anchor line 2" in out[-1]
    monkeypatch.setenv("RECIST_AUDIT_KEY", "z" * 40)
    status, out = _verify(database, capsys, "--anchors", str(anchors))
    assert status == 1 and "anchor line 1 " in out[-1] and "its HMAC does not match" in out[-1]


def test_an_unreadable_key_or_anchor_file_exits_2_without_making_a_key(
    history: None,
    database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("RECIST_AUDIT_KEY", raising=False)
    monkeypatch.setenv("RECIST_INSTANCE", str(tmp_path / "instance"))
    anchors = tmp_path / "anchors.txt"
    anchors.write_text("")
    status, lines = _verify(database, capsys, "--anchors", str(anchors))
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith(f"recist audit: cannot read the audit key {tmp_path}/instance")
    assert not (tmp_path / "instance" / "audit_key").exists()
    status, lines = _verify(database, capsys, "--anchors", str(tmp_path / "none.txt"))
    assert status == 2 and lines[0].startswith("recist audit: cannot read the anchor file")
    monkeypatch.setenv("RECIST_AUDIT_KEY", "short")
    status, out = _anchor(database, capsys)
    assert status == 2 and out == "recist audit: RECIST_AUDIT_KEY is shorter than 32 characters"
    # The default key file is made once, in the instance folder, readable by its owner only.
    monkeypatch.delenv("RECIST_AUDIT_KEY")
    assert _anchor(database, capsys)[0] == 0
    key = tmp_path / "instance" / "audit_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    anchors.write_text(_anchor(database, capsys)[1] + "\n")
    assert _verify(database, capsys, "--anchors", str(anchors))[0] == 0


def test_a_subjects_dates_and_arm_changed_outside_the_application_are_reported(
    history: None, engine: Engine, session: Session, database: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """PFS reads the death and new-therapy dates and the analysis the arm: a death date
    written behind the trail's back, with the cached result made to match it (so the result
    check alone would not see it), is named; so is an imported subject given an arm."""
    from web.services import build_case, engine_assess, update_subject

    subject = get_subject(session, "TRIAL-1", "S-003")
    update_subject(
        session, MANAGER, "TRIAL-1", "S-003", values={"died_on": "2021-06-01"},
        expected_version=subject.version, reason="death reported by the site",
    )  # fmt: skip
    assert _verify(database, capsys)[0] == 0  # through the application: agreed
    session.expunge_all()
    session.rollback()
    subject = get_subject(session, "TRIAL-1", "S-001")
    case = {**build_case(subject), "died_on": "2021-05-10"}
    result = engine_assess(case)
    session.rollback()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE subject SET died_on = :d, result_json = :r WHERE code = 'S-001'"),
            {"d": "2021-05-10", "r": json.dumps(result)},
        )
        conn.execute(
            text(
                "UPDATE subject SET arm_id = (SELECT arm.id FROM arm WHERE arm.code = 'A' AND "
                "arm.trial_id = subject.trial_id) WHERE code = 'S-002'"
            )
        )
    status, lines = _verify(database, capsys)
    assert status == 1
    assert lines[1] == (
        "reconciliation FAILED (3 difference(s)); first: subject TRIAL-1/S-001: died_on is "
        "2021-05-10 in the database but the audit trail has no record of it — changed outside "
        "the application"
    )
    session.rollback()
    differences = reconcile(session).differences
    # S-001's cached result matches its (forged) rows: only the replayed field shows it.
    assert [d for d in differences if "S-001" in d] == [differences[0]]
    assert re.fullmatch(
        r"subject TRIAL-1/S-002: arm is A in the database but the audit trail \(seq \d+\) "
        r"says none — changed outside the application",
        differences[1],
    ), differences


def test_protocol_settings_changed_outside_the_application_are_reported(
    history: None, engine: Engine, session: Session, database: dict[str, Any]
) -> None:
    """Every assessment is made under the trial's settings: confirmation switched on in
    the database is named by the setting, first (the cached results it changes follow)."""
    from web.services.trials import update_settings

    update_settings(session, MANAGER, "TRIAL-1", {"sd_min_days": 49}, reason="protocol v2")
    session.rollback()
    assert reconcile(session).differences == ()
    session.rollback()
    settings = {**get_subject(session, "TRIAL-1", "S-001").trial.settings, "confirmation": True}
    session.rollback()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE trial SET settings = :s WHERE code = 'TRIAL-1'"),
            {"s": json.dumps(settings)},
        )
    session.rollback()
    differences = reconcile(session).differences
    assert re.fullmatch(
        r"trial TRIAL-1: protocol setting confirmation is true in the database but the "
        r"audit trail \(seq \d+\) says false — changed outside the application",
        differences[0],
    ), differences
