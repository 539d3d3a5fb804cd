"""Independent central review: two blinded reads per subject, adjudication, reader metrics.

A trial with ``central_review`` on takes two independent reads per subject. A reader
submits a read as a case of the ``docs/contracts.md`` contract (lesions and timepoints);
the engine assesses it and the read is signed with the reader's password and stored beside
the site read, never mixed into it. Readers only ever see their own read (no other read, no
arm, no site read). When both reads are in:

* they *agree* when the engine gives them the same progression (same date, or no
  progression in both) and the same best overall response; read 1 is then the accepted
  read (``RSACPTFL``/``TRACPTFL`` = Y);
* otherwise the subject goes to adjudication: the adjudicator sees both reads side by side
  and accepts one with a rationale, signed with the adjudicator's password.

Exports carry both reads with the reader (``RSEVALID``) and the accepted flag through the
ADaM exporter of :mod:`cdisc_io`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, ReasonRequired, ServiceError
from web.models import Adjudication, CentralRead, Subject, Trial, User, role_set, utcnow
from web.services.cases import engine_assess
from web.services.common import (
    Actor,
    Audit,
    clean_reason,
    flush,
    get_subject,
    get_trial,
    list_subjects,
    reload_subject,
)
from web.services.signing import (
    READ_COMPLETE,
    canonical_json,
    check_password,
    printed_name,
    signature_text,
)

CASE_KEYS = ("lesions", "timepoints")


# Who may sign an unblinding while the trial holds signed blinded reads.
UNBLIND_SIGNERS = frozenset({"adjudicator", "admin"})
UNBLIND_CONFIRMATION = (
    "I understand that switching independent central review off unblinds the trial: "
    "readers will see the arms, the site reads and the results"
)


class UnblindingRefused(ServiceError):
    """The signer of an unblinding is not an adjudicator or admin."""

    status = 403
    code = "unblinding_refused"


def blinded_reads(session: Session, trial: Trial) -> int:
    """How many signed blinded central reads the trial holds."""
    query = select(func.count(CentralRead.id)).join(Subject).where(Subject.trial_id == trial.id)
    return int(session.scalar(query) or 0)


def set_central_review(
    session: Session,
    actor: Actor,
    trial_code: str,
    *,
    on: bool,
    reason: str | None = None,
    confirmed: bool = False,
    signer: str | None = None,
    password: str | None = None,
) -> Trial:
    """Switch independent central review on or off for a trial (audited).

    Off unblinds the trial: it needs a ``reason`` (else ``ReasonRequired``) and
    ``confirmed``, the caller's explicit confirmation of :data:`UNBLIND_CONFIRMATION`
    (else ``InvalidInput``); while the trial holds signed blinded reads, also the password
    signature of an adjudicator or admin (``signer``, default the caller; else
    ``UnblindingRefused`` or ``SignatureRefused``). All of it is audited with the change.
    """
    reason = clean_reason(reason)
    approval = None
    if not on:
        session.rollback()  # the latest committed rows
        try:
            trial = get_trial(session, trial_code)
            reads = blinded_reads(session, trial) if trial.central_review else 0
            switching = trial.central_review
        finally:
            session.rollback()
        what = f"switching independent central review off in trial {trial_code} unblinds it"
        if switching and reason is None:
            raise ReasonRequired(f"{what}; it needs a reason", field="reason", pointer="/reason")
        if switching and not confirmed:
            raise InvalidInput(
                f"{what}; confirm it: {UNBLIND_CONFIRMATION}", field="confirm", pointer="/confirm"
            )
        if reads:
            approval = _unblinding_signature(session, actor, trial_code, reads, signer, password)
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        if trial.central_review == on:
            return trial
        audit = Audit(session, actor, reason or "independent central review setting")
        audit.log("create" if on else "update", "trial", trial.code, "central_review", not on, on)
        if not on:
            if approval is None and blinded_reads(session, trial):
                raise UnblindingRefused(
                    f"trial {trial_code} received a blinded read meanwhile; try again: the "
                    "unblinding now needs an adjudicator's or admin's signature",
                    field="signer",
                )
            audit.log("update", "trial", trial.code, "unblinding", None, UNBLIND_CONFIRMATION)
            if approval is not None:
                Audit(session, approval[0], reason).log(
                    "sign", "trial", trial.code, "signature", None, approval[1]
                )
        trial.central_review = on
        flush(session)
        return trial


def _unblinding_signature(
    session: Session, actor: Actor, trial: str, reads: int, signer: str | None, password: Any
) -> tuple[Actor, str]:
    """An adjudicator's or admin's password signature approving an unblinding: the signer
    and the manifestation ("<signer> · unblinding approved (<n> blinded reads)")."""
    name = (signer or "").strip() or actor.username
    role = session.scalar(select(User.role).where(User.username == name))
    session.rollback()
    needs = f"trial {trial} holds {reads} signed blinded read(s): switching central review off"
    if not role_set(role) & UNBLIND_SIGNERS:
        what = "no user" if role is None else f"a {role}"
        raise UnblindingRefused(
            f"{needs} needs the signature of an adjudicator or admin, and {name} is {what}",
            field="signer",
            pointer="/signer",
        )
    if not password:
        raise InvalidInput(
            f"{needs} needs {name}'s password, entered again", field="password", pointer="/password"
        )
    who = Actor(name, str(role))
    user = check_password(session, who, password)
    return who, f"{printed_name(user)} · unblinding approved ({reads} blinded reads)"


def blinded_case(subject: Subject, read: dict[str, Any]) -> dict[str, Any]:
    """A submitted read as a whole case: the reader's lesions and timepoints, the trial's
    settings, and the subject id — never the arm or the site read."""
    return {
        "subject_id": subject.code,
        "settings": dict(subject.trial.settings or {}),
        "lesions": read.get("lesions"),
        "timepoints": read.get("timepoints"),
    }


def _progression_key(result: dict[str, Any]) -> str | None:
    prog = result.get("progression")
    return None if not prog else str(prog["date"])


def disagreement(first: dict[str, Any], second: dict[str, Any]) -> str | None:
    """Why two reads' results need adjudication, ``None`` when they agree.

    The reads disagree on the date of progression (a different date, or PD in one read
    only) or on the best overall response (R-BOR-1).
    """
    reasons = []
    p1, p2 = _progression_key(first), _progression_key(second)
    if p1 != p2:
        reasons.append(f"progression: read 1 {p1 or 'none'}, read 2 {p2 or 'none'}")
    b1, b2 = first["best_overall_response"], second["best_overall_response"]
    if b1 != b2:
        reasons.append(f"best overall response: read 1 {b1}, read 2 {b2}")
    return "; ".join(reasons) or None


def reads_of(session: Session, subject: Subject) -> list[CentralRead]:
    return list(
        session.scalars(
            select(CentralRead)
            .where(CentralRead.subject_id == subject.id)
            .order_by(CentralRead.slot)
        )
    )


def check_read_shape(read: Any) -> dict[str, Any]:
    """Refuse what is not a blinded read: a JSON object with only ``lesions`` and
    ``timepoints`` (the arm, dates and reader come from the subject, never the reader)."""
    if not isinstance(read, dict) or not isinstance(read.get("timepoints"), list):
        raise InvalidInput(
            "a read is a JSON object with 'lesions' and 'timepoints' (docs/contracts.md)",
            field="read",
        )
    extra = sorted(set(read) - set(CASE_KEYS))
    if extra:
        raise InvalidInput(
            f"a read holds only lesions and timepoints, not {extra[0]!r} (reads are blinded)",
            field=extra[0],
        )
    return read


def read_digest(case: dict[str, Any]) -> str:
    """The SHA-256 of a blinded read as stored (``CentralRead.case_json``, canonical JSON):
    what its ``sign`` record binds the reader's signature to."""
    return hashlib.sha256(canonical_json(case)).hexdigest()


def _assessed_read(
    session: Session, actor: Actor, trial_code: str, subject_code: str, read: Any, lock: bool
) -> tuple[Subject, list[CentralRead], dict[str, Any], dict[str, Any]]:
    """Every check of a read against the stored subject, then the engine's assessment:
    the subject, its reads so far, the blinded case and its result."""
    subject = get_subject(session, trial_code, subject_code, lock=lock)
    if not subject.trial.central_review:
        raise InvalidInput(
            f"trial {trial_code} does not use independent central review", field="trial"
        )
    reads = reads_of(session, subject)
    if any(r.reader == actor.username for r in reads):
        raise Conflict(
            f"subject {subject_code}: you have already read this subject; a read is "
            "signed and final",
            field="read",
        )
    if len(reads) >= 2:
        raise InvalidInput(
            f"subject {subject_code} already has its two independent reads", field="read"
        )
    case = blinded_case(subject, read)
    return subject, reads, case, engine_assess(case)


def submit_read(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    read: Any,
    password: str,
) -> CentralRead:
    """A reader's blinded read of a subject, assessed by the engine and signed.

    Every refusal that needs no password comes first (the read's shape, the subject's
    state, the engine's refusals), so a read that cannot be stored never counts a password
    failure. The ``sign`` record binds the signature to the read: ``"<signer> · read
    complete · sha256:<digest>"`` (:func:`read_digest`), checked by the reconciliation.

    Raises
    ------
    InvalidInput
        Not a central-review trial, a malformed read or one the engine refuses (naming the
        field), or two reads already in.
    SignatureRefused
        The password does not match the reader's.
    Conflict
        This reader has already read this subject.
    """
    check_read_shape(read)
    session.rollback()  # the latest committed rows
    try:
        _assessed_read(session, actor, trial_code, subject_code, read, lock=False)
    finally:
        session.rollback()
    user = check_password(session, actor, password)
    with write_transaction(session):
        subject, reads, case, result = _assessed_read(
            session, actor, trial_code, subject_code, read, lock=True
        )
        row = CentralRead(
            subject_id=subject.id,
            slot=len(reads) + 1,
            reader=actor.username,
            case_json=case,
            result_json=result,
            signed_at=utcnow(),
            accepted=False,
        )
        session.add(row)
        key = f"{trial_code}/{subject_code}/read{row.slot}"
        audit = Audit(session, actor, READ_COMPLETE)
        audit.log("create", "central_read", key, "result", None, _summary(result))
        signed = signature_text(printed_name(user), READ_COMPLETE, read_digest(case))
        audit.log("sign", "central_read", key, "signature", None, signed)
        if row.slot == 2 and disagreement(reads[0].result_json, result) is None:
            # Concordant reads: read 1 is the accepted read (no adjudication needed).
            reads[0].accepted = True
            audit.log(
                "update",
                "central_read",
                f"{trial_code}/{subject_code}/read1",
                "accepted",
                False,
                True,
            )
        flush(session)
        return row


def _summary(result: dict[str, Any]) -> str:
    prog = result.get("progression")
    pd = f"PD {prog['timepoint']} {prog['date']}" if prog else "no PD"
    return f"BOR {result['best_overall_response']}, {pd}"


def adjudicate(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    accepted_slot: int | None,
    rationale: str,
    password: str,
) -> Adjudication:
    """Accept one of two disagreeing reads with a rationale, signed with the password."""
    rationale = clean_reason(rationale, "rationale") or ""  # at most MAX_REASON
    if accepted_slot not in (1, 2):
        raise InvalidInput("choose read 1 or read 2", field="accepted")
    if not rationale:
        raise InvalidInput("an adjudication needs a rationale", field="rationale")
    check_password(session, actor, password)
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        reads = reads_of(session, subject)
        if len(reads) < 2:
            raise InvalidInput(
                f"subject {subject_code} has {len(reads)} of its 2 reads; adjudication waits "
                "for both",
                field="read",
            )
        why = disagreement(reads[0].result_json, reads[1].result_json)
        if why is None:
            raise InvalidInput(
                f"subject {subject_code}: the two reads agree; there is nothing to adjudicate",
                field="read",
            )
        if session.scalar(select(Adjudication).where(Adjudication.subject_id == subject.id)):
            raise Conflict(f"subject {subject_code} is already adjudicated", field="read")
        if any(r.reader == actor.username for r in reads):
            raise InvalidInput("an adjudicator cannot adjudicate a subject they read", field="read")
        row = Adjudication(
            subject_id=subject.id,
            accepted_slot=accepted_slot,
            disagreement=why,
            rationale=rationale,
            adjudicator=actor.username,
            signed_at=utcnow(),
        )
        session.add(row)
        reads[accepted_slot - 1].accepted = True
        key = f"{trial_code}/{subject_code}"
        audit = Audit(session, actor, rationale)
        audit.log("adjudicate", "adjudication", key, "accepted", None, f"read {accepted_slot}")
        audit.log(
            "sign",
            "adjudication",
            key,
            "signature",
            None,
            f"{actor.username} · adjudication complete",
        )
        flush(session)
        return row


@dataclass(frozen=True)
class SubjectReview:
    """A subject's central-review state."""

    subject: Subject
    reads: list[CentralRead]
    disagreement: str | None
    adjudication: Adjudication | None

    @property
    def state(self) -> str:
        if len(self.reads) < 2:
            return f"{len(self.reads)} of 2 reads"
        if self.disagreement is None:
            return "agreed"
        return "adjudicated" if self.adjudication else "awaiting adjudication"


def overview(session: Session, trial: Trial) -> list[SubjectReview]:
    """Every subject's reads, disagreement and adjudication."""
    subjects = list_subjects(session, trial)
    ids = [s.id for s in subjects]
    reads: dict[int, list[CentralRead]] = {i: [] for i in ids}
    for r in session.scalars(
        select(CentralRead).where(CentralRead.subject_id.in_(ids)).order_by(CentralRead.slot)
    ):
        reads[r.subject_id].append(r)
    adjudications = {
        a.subject_id: a
        for a in session.scalars(select(Adjudication).where(Adjudication.subject_id.in_(ids)))
    }
    out = []
    for s in subjects:
        rs = reads[s.id]
        why = disagreement(rs[0].result_json, rs[1].result_json) if len(rs) == 2 else None
        out.append(SubjectReview(s, rs, why, adjudications.get(s.id)))
    return out


def subject_review(session: Session, trial_code: str, subject_code: str) -> SubjectReview:
    """One subject's reads, disagreement and adjudication (its row of :func:`overview`),
    read as committed now (after a write of this request)."""
    subject = reload_subject(session, trial_code, subject_code)
    reads = reads_of(session, subject)
    why = disagreement(reads[0].result_json, reads[1].result_json) if len(reads) == 2 else None
    adjudication = session.scalar(select(Adjudication).where(Adjudication.subject_id == subject.id))
    return SubjectReview(subject, reads, why, adjudication)


def metrics(rows: list[SubjectReview]) -> dict[str, Any]:
    """Adjudication rate and, per reader, the share of adjudications won and lost.

    The adjudication rate is the share of subjects with both reads that needed
    adjudication. A reader *wins* an adjudication when their read is accepted and *loses*
    it otherwise; the share lost is the reader disagreement index.
    """
    complete = [r for r in rows if len(r.reads) == 2]
    needing = [r for r in complete if r.disagreement is not None]
    readers: dict[str, dict[str, Any]] = {}
    for row in complete:
        for read in row.reads:
            readers.setdefault(read.reader, {"reads": 0, "adjudications": 0, "won": 0, "lost": 0})
            readers[read.reader]["reads"] += 1
    for row in needing:
        if row.adjudication is None:
            continue
        for read in row.reads:
            stats = readers[read.reader]
            stats["adjudications"] += 1
            stats["won" if read.slot == row.adjudication.accepted_slot else "lost"] += 1
    for stats in readers.values():
        n = stats["adjudications"]
        stats["won_pct"] = round(100 * stats["won"] / n, 1) if n else None
        stats["lost_pct"] = round(100 * stats["lost"] / n, 1) if n else None
    return {
        "subjects_with_two_reads": len(complete),
        "needing_adjudication": len(needing),
        "adjudication_rate_pct": round(100 * len(needing) / len(complete), 1) if complete else None,
        "readers": dict(sorted(readers.items())),
    }


def accepted_reads(session: Session, trial: Trial) -> dict[int, CentralRead]:
    """Subject id → the accepted central read (read 1 of concordant reads, or the read
    the adjudicator accepted); subjects without one are absent."""
    rows = session.scalars(
        select(CentralRead)
        .join(Subject, CentralRead.subject_id == Subject.id)
        .where(Subject.trial_id == trial.id, CentralRead.accepted.is_(True))
    )
    return {read.subject_id: read for read in rows}


def unblinded_case(subject: Subject, read: CentralRead) -> dict[str, Any]:
    """A central read as a whole case for analysis, once the reads are in: the reader's
    lesions and timepoints with the subject's arm, randomisation, death and new-therapy
    dates (never part of a blinded read), the reader and the accepted flag."""
    from web.services.cases import build_case

    return {
        **build_case(subject),
        "lesions": read.case_json["lesions"],
        "timepoints": read.case_json["timepoints"],
        "reader": read.reader,
        "accepted": read.accepted,
    }
