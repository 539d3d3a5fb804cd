"""Reconciliation of the reviews (:mod:`web.services.audit_replay`): blinded central reads,
adjudications and progression-call reviews against what the audit trail says of them.

* A central read (``TRIAL/S/readN``): its ``sign`` record's user is its reader and, when
  the record holds one, its digest is the SHA-256 of the read as stored now
  (:func:`web.services.central.read_digest`); its accepted flag is the trail's (concordant
  reads, adjudications); its result is a fresh engine run of the read.
* An adjudication (``TRIAL/S``): who accepted which read, with what rationale.
* A subject's progression-call reviews: every event (agreed, queried, answered,
  overridden) in order, with who, the call, the override and the comment.

Rows the trail does not know, and trail records whose rows are gone, are named.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.errors import InvalidInput
from web.models import Adjudication, CentralRead, ProgressionReview, Subject, Trial
from web.services.audit_replay import Check, first_difference, plain
from web.services.cases import engine_assess
from web.services.central import read_digest
from web.services.progression import review_texts


def check_reviews(check: Check, session: Session) -> None:
    """Compare the review rows of ``session``'s database with ``check``'s replay."""
    events: dict[str, list[ProgressionReview]] = {}
    for row, trial, subject in _of_subjects(session, ProgressionReview, ProgressionReview.id):
        events.setdefault(f"{trial}/{subject}", []).append(row)
    for key in sorted(set(events) | set(check.state.reviews)):
        _reviews(check, events.get(key, []), key)
    for read, trial, subject in _of_subjects(session, CentralRead, CentralRead.slot):
        _central_read(check, read, f"{trial}/{subject}")
    for row, trial, subject in _of_subjects(session, Adjudication, Adjudication.id):
        _adjudication(check, row, f"{trial}/{subject}")
    for key, sig in sorted(check.state.reads.items()):
        check.out.append(
            f"central read {key}: the audit trail (seq {sig.seq}) says {sig.username} "
            "signed it but the database has no such read — removed outside the application"
        )
    for key, (who, what, seq, _why) in sorted(check.state.adjudications.items()):
        check.out.append(
            f"adjudication {key}: the audit trail (seq {seq}) says {who} accepted {what} "
            "but the database has no such adjudication — removed outside the application"
        )


def _of_subjects(session: Session, model: Any, order: Any) -> Any:
    """The rows of ``model`` (central reads, adjudications, review events) with their
    trial's and subject's codes, in the order subjects are listed."""
    return session.execute(
        select(model, Trial.code, Subject.code)
        .join(Subject, model.subject_id == Subject.id)
        .join(Trial, Subject.trial_id == Trial.id)
        .order_by(Trial.code, Subject.code, order)
    ).all()


def _central_read(check: Check, read: CentralRead, subject_key: str) -> None:
    key = f"{subject_key}/read{read.slot}"
    check.central_reads += 1
    accepted, seq = check.state.accepted.pop(key, (False, None))
    sig = check.state.reads.pop(key, None)
    if sig is None:
        check.out.append(
            f"central read {key}: read by {read.reader} in the database but the audit "
            "trail holds no signature of it — written outside the application"
        )
        return
    digest = sig.record.digest if sig.record is not None else None
    now = read_digest(read.case_json)
    if read.reader != sig.username:
        check.out.append(
            f"central read {key}: the database says read by {read.reader} but the sign "
            f"record (seq {sig.seq}) says {sig.username}"
        )
    elif digest is not None and digest != now:
        check.out.append(
            f"central read {key}: the read signed at seq {sig.seq} (sha256 {digest[:16]}…) "
            f"is not the read stored now (sha256 {now[:16]}…) — a signed read was changed"
        )
    elif bool(read.accepted) != accepted:
        said = f"seq {seq}" if seq else "no record: not accepted"
        check.out.append(
            f"central read {key}: {'accepted' if read.accepted else 'not accepted'} in "
            f"the database but {'accepted' if accepted else 'not accepted'} in the audit "
            f"trail ({said}) — changed outside the application"
        )
    else:
        _read_result(check, read, key)


def _read_result(check: Check, read: CentralRead, key: str) -> None:
    try:
        fresh = plain(engine_assess(read.case_json))
    except InvalidInput as error:
        check.out.append(f"central read {key}: the engine refuses the read as stored: {error}")
        return
    if plain(read.result_json) != fresh:
        check.out.append(
            f"central read {key}: the stored result is not a fresh engine run's at "
            f"{first_difference(plain(read.result_json), fresh)} — changed outside the "
            "application"
        )


def _reviews(check: Check, rows: list[ProgressionReview], key: str) -> None:
    said = check.state.reviews.pop(key, [])
    for index, row in enumerate(rows):
        old, new = review_texts(row)
        stored = (row.username, row.action, old, new, row.comment or None)
        if index >= len(said):
            check.out.append(
                f"progression review {key}: {row.action} by {row.username} ({new}) in the "
                "database but not in the audit trail — written outside the application"
            )
            return
        if stored != said[index][:5]:
            check.out.append(
                f"progression review {key}: event {index + 1} is {row.action} by "
                f"{row.username} ({new}) in the database but the audit trail (seq "
                f"{said[index][5]}) says {said[index][1]} by {said[index][0]} "
                f"({said[index][3]}) — changed outside the application"
            )
            return
    if len(said) > len(rows):
        event = said[len(rows)]
        check.out.append(
            f"progression review {key}: the audit trail (seq {event[5]}) says {event[1]} by "
            f"{event[0]} ({event[3]}) but the database has no such event — removed outside "
            "the application"
        )


def _adjudication(check: Check, row: Adjudication, key: str) -> None:
    said = check.state.adjudications.pop(key, None)
    if said is None:
        check.out.append(
            f"adjudication {key}: read {row.accepted_slot} accepted by {row.adjudicator} "
            "in the database but the audit trail holds no adjudication — written outside "
            "the application"
        )
    elif (row.adjudicator, f"read {row.accepted_slot}") != said[:2]:
        check.out.append(
            f"adjudication {key}: read {row.accepted_slot} accepted by {row.adjudicator} in "
            f"the database but the audit trail (seq {said[2]}) says {said[1]} by {said[0]}"
        )
    elif row.rationale != said[3]:
        check.out.append(
            f"adjudication {key}: the rationale in the database is not the one the audit "
            f"trail (seq {said[2]}) records — changed outside the application"
        )
