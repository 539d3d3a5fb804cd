"""The reviews under the audit trail's reconciliation (web/services/audit_review.py).

Blinded central reads and adjudications: a read's signature is bound to the read (sha256 of
the read as stored), and a read, its result, its accepted flag or an adjudication changed,
added or removed behind the application's back is named; a read that cannot be stored is
refused before the password. Progression-call reviews: an override, a query or an answer
changed, added or removed is named."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tests.recist.conftest import fu
from tests.web.helpers import SD_READ, central_read, two_reads_each
from web.models import AuditRecord, CentralRead, User
from web.services import SYSTEM, Actor, Conflict, InvalidInput, create_subject
from web.services.audit_replay import reconcile
from web.services.central import adjudicate, read_digest, submit_read
from web.testing import PASSWORD, owner_engine

R1 = Actor("reader", "reader")
R2 = Actor("reader2", "reader")
ADJ = Actor("adjudicator", "adjudicator")


@pytest.fixture
def reads(session: Session, trial: str, users: dict[str, str]) -> str:
    """S-1 read PD (reader) and SD (reader2), adjudicated for read 2; S-2 read SD by both
    (concordant: read 1 accepted)."""
    two_reads_each(session, trial)
    adjudicate(session, ADJ, trial, "S-1", accepted_slot=2, rationale="FU2", password=PASSWORD)
    session.expunge_all()
    session.rollback()
    return trial


@pytest.fixture
def owner(database: dict[str, Any]) -> Iterator[Engine]:
    """The database as the owner of its tables: what a direct SQL edit could do."""
    engine = owner_engine(database)
    yield engine
    engine.dispose()


def _problems(session: Session) -> tuple[str, ...]:
    session.expunge_all()
    session.rollback()
    report = reconcile(session)
    session.rollback()
    return report.differences


def _sql(owner: Engine, statement: str, **params: Any) -> None:
    with owner.begin() as conn:
        conn.execute(text(statement), params)


def _read_id(session: Session, reader: str, subject_code: str) -> int:
    session.rollback()
    query = text(
        "SELECT central_read.id FROM central_read JOIN subject ON subject.id = "
        "central_read.subject_id WHERE subject.code = :s AND central_read.reader = :r"
    )
    return int(session.execute(query, {"s": subject_code, "r": reader}).scalar_one())


def test_a_reads_signature_is_bound_to_the_read_and_the_data_agrees(
    session: Session, reads: str
) -> None:
    report = reconcile(session)
    assert report.differences == () and report.central_reads == 4
    session.rollback()
    signs = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity == "central_read", AuditRecord.action == "sign")
        .order_by(AuditRecord.seq)
    ).all()
    assert [s.entity_key for s in signs] == [
        f"{reads}/S-1/read1",
        f"{reads}/S-1/read2",
        f"{reads}/S-2/read1",
        f"{reads}/S-2/read2",
    ]
    stored = session.get(CentralRead, _read_id(session, "reader", "S-1"))
    assert stored is not None
    match = re.fullmatch(r"reader · read complete · sha256:([0-9a-f]{64})", signs[0].new or "")
    assert match and match[1] == read_digest(stored.case_json)


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        (
            "case",
            r"central read TRIAL-1/S-1/read1: the read signed at seq \d+ \(sha256 [0-9a-f]{16}…\) "
            r"is not the read stored now .* a signed read was changed",
        ),
        (
            "result",
            r"central read TRIAL-1/S-1/read1: the stored result is not a fresh engine run's at "
            r"/best_overall_response: cached \"CR\", engine \"SD\" — changed outside",
        ),
        (
            "accepted",
            r"central read TRIAL-1/S-1/read1: accepted in the database but not accepted in the "
            r"audit trail \(no record: not accepted\)",
        ),
        (
            "reader",
            r"central read TRIAL-1/S-1/read1: the database says read by reader3 but the sign "
            r"record \(seq \d+\) says reader",
        ),
        (
            "adjudication",
            r"adjudication TRIAL-1/S-1: read 1 accepted by adjudicator in the database but the "
            r"audit trail \(seq \d+\) says read 2 by adjudicator",
        ),
        (
            "rationale",
            r"adjudication TRIAL-1/S-1: the rationale in the database is not the one the audit "
            r"trail \(seq \d+\) records",
        ),
        (
            "delete",
            r"central read TRIAL-1/S-1/read1: the audit trail \(seq \d+\) says reader signed "
            r"it but the database has no such read — removed outside the application",
        ),
    ],
)
def test_a_central_read_changed_outside_the_application_is_reported(
    session: Session, reads: str, owner: Engine, edit: str, found: str
) -> None:
    assert _problems(session) == ()
    read = _read_id(session, "reader", "S-1")
    if edit == "case":
        case = session.get(CentralRead, read).case_json  # type: ignore[union-attr]
        case["timepoints"][2]["targets"]["T1"] = 31.0  # the PD read made SD
        update = "UPDATE central_read SET case_json = :c WHERE id = :i"
        _sql(owner, update, c=json.dumps(case), i=read)
    elif edit == "result":
        result = session.get(CentralRead, read).result_json  # type: ignore[union-attr]
        result["best_overall_response"] = "CR"
        update = "UPDATE central_read SET result_json = :r WHERE id = :i"
        _sql(owner, update, r=json.dumps(result), i=read)
    elif edit == "accepted":
        _sql(owner, "UPDATE central_read SET accepted = :t WHERE id = :i", t=True, i=read)
    elif edit == "reader":
        _sql(owner, "UPDATE central_read SET reader = 'reader3' WHERE id = :i", i=read)
    elif edit == "adjudication":
        _sql(owner, "UPDATE adjudication SET accepted_slot = 1")
    elif edit == "rationale":
        _sql(owner, "UPDATE adjudication SET rationale = 'read 2 measured the wrong lesion'")
    else:
        _sql(owner, "DELETE FROM central_read WHERE id = :i", i=read)
    problems = _problems(session)
    assert problems, f"{edit}: not found"
    assert re.search(found, problems[0]), problems


def test_a_read_written_outside_the_application_is_reported(
    session: Session, reads: str, owner: Engine
) -> None:
    create_subject(session, SYSTEM, reads, code="S-3", arm="A", randomized_on="2021-01-04")
    session.rollback()
    original = session.get(CentralRead, _read_id(session, "reader", "S-2"))
    assert original is not None
    subject = session.execute(text("SELECT id FROM subject WHERE code = 'S-3'")).scalar_one()
    _sql(
        owner,
        "INSERT INTO central_read (subject_id, slot, reader, case_json, result_json, "
        "signed_at, accepted) VALUES (:s, 1, 'reader', :c, :r, :t, :a)",
        s=subject,
        c=json.dumps(original.case_json),
        r=json.dumps(original.result_json),
        t=original.signed_at,
        a=False,
    )
    assert _problems(session)[0] == (
        "central read TRIAL-1/S-3/read1: read by reader in the database but the audit trail "
        "holds no signature of it — written outside the application"
    )


def test_a_read_that_cannot_be_stored_is_refused_before_the_password(
    session: Session, reads: str
) -> None:
    create_subject(session, SYSTEM, reads, code="S-3", arm="A", randomized_on="2021-01-04")
    refused = central_read(fu(targets={"T1": -3.0}))  # the engine refuses a negative size
    with pytest.raises(InvalidInput, match=r"T1"):
        submit_read(session, R1, reads, "S-3", read=refused, password="not the password")
    with pytest.raises(Conflict, match=r"you have already read this subject"):
        submit_read(session, R1, reads, "S-1", read=SD_READ, password="not the password")
    session.rollback()
    reader = session.scalars(select(User).where(User.username == "reader")).one()
    assert reader.failed_logins == 0  # no guess of the password through a refused read
    assert _problems(session) == ()


@pytest.fixture
def reviewed(session: Session, trial: str, users: dict[str, str]) -> str:
    """S-OVR: PD by the target sum at W16, queried by the reviewer, answered by the reader,
    then moved to W24 by the adjudicator (the call the analysis uses)."""
    from tests.web.helpers import follow_up, read_subject
    from web.services.progression import answer_query, override_call, review_call

    read_subject(
        session,
        trial,
        "S-OVR",
        follow_up("W8", "2021-03-01", 21.0, 14.0),
        follow_up("W16", "2021-04-26", 30.0, 14.0),
        follow_up("W24", "2021-06-21", 31.0, 14.0),
    )
    review_call(
        session, Actor("reviewer", "reviewer"), trial, "S-OVR", decision="queried",
        comment="is W16 within measurement error?", seen_call=None,
    )  # fmt: skip
    answer_query(session, R1, trial, "S-OVR", comment="T01 re-measured: 30 mm", seen_call=None)
    override_call(
        session, ADJ, trial, "S-OVR", timepoint="W24",
        reason="W16 growth is within measurement error", seen_call=None,
    )  # fmt: skip
    session.expunge_all()
    session.rollback()
    return trial


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        (
            "UPDATE progression_review SET override_timepoint = 'W16', override_date = "
            "'2021-04-26' WHERE action = 'overridden'",
            r"progression review TRIAL-1/S-OVR: event 3 is overridden by adjudicator \(PD W16 "
            r"2021-04-26\) in the database but the audit trail \(seq \d+\) says overridden by "
            r"adjudicator \(PD W24 2021-06-21\)",
        ),
        (
            "UPDATE progression_review SET username = 'reviewer2' WHERE action = 'queried'",
            r"event 1 is queried by reviewer2 .* says queried by reviewer",
        ),
        (
            "UPDATE progression_review SET comment = 'all fine' WHERE action = 'answered'",
            r"event 2 is answered by reader .* — changed outside the application",
        ),
        (
            "DELETE FROM progression_review WHERE action = 'overridden'",
            r"progression review TRIAL-1/S-OVR: the audit trail \(seq \d+\) says overridden by "
            r"adjudicator \(PD W24 2021-06-21\) but the database has no such event",
        ),
        (
            "INSERT INTO progression_review (subject_id, engine_timepoint, engine_date, "
            "engine_rule, engine_back_dated, action, comment, username, role, at) SELECT "
            "subject_id, engine_timepoint, engine_date, engine_rule, engine_back_dated, "
            "'agreed', '', 'reviewer', 'reviewer', at FROM progression_review WHERE "
            "action = 'queried'",
            r"progression review TRIAL-1/S-OVR: agreed by reviewer \(PD W16 2021-04-26 "
            r"\(PD_TARGET\)\) in the database but not in the audit trail",
        ),
    ],
)
def test_a_progression_review_changed_outside_the_application_is_reported(
    session: Session, reviewed: str, owner: Engine, edit: str, found: str
) -> None:
    """The override is the progression the analysis uses (R-BOR-USED): editing it, or who
    queried or answered a call, behind the trail's back is named."""
    assert _problems(session) == ()
    _sql(owner, edit)
    problems = _problems(session)
    assert problems and re.search(found, problems[0]), problems
