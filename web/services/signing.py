"""Electronic signatures on timepoint reads (21 CFR 11.50/11.200 style).

A reader signs a completed read by re-entering the password, with a stated meaning; the
signed read is locked: the service layer refuses to change or delete it
(:func:`web.services.check_unlocked`). Unlocking needs an adjudicator or trial manager and
a reason. Signing, locking and unlocking are audit records in the same transaction, so the
signature's manifestation (who, when in UTC, meaning) and its history are in the trail.

Who may sign: the reader who entered the read (the user who last saved the timepoint's
values, ``Timepoint.updated_by``; for older rows, the trail's last writer of it). An
adjudicator may sign another reader's read only *acting as adjudicator*, with that
meaning (:data:`ADJUDICATOR_MEANING`), recorded as such. Everyone else is refused (403).

A signature is bound to what was signed: the ``sign`` record's ``new`` is
``"<signer> · <meaning> · sha256:<digest>"`` where ``digest`` is the SHA-256 of the
canonical JSON (:func:`canonical_json`) of the timepoint's values as stored
(:func:`signed_content`); ``recist audit verify`` recomputes it for every locked read.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, ServiceError
from web.models import AuditRecord, Subject, Timepoint, User, utcnow
from web.services.cases import timepoint_as_dict
from web.services.common import (
    Actor,
    Audit,
    check_unlocked,
    check_version,
    flush,
    get_subject,
    get_timepoint,
)

# The meaning a reader states when signing their own read …
READ_COMPLETE = "read complete"
# … and the one an adjudicator states when signing a read another reader entered.
ADJUDICATOR_MEANING = "read complete (acting as adjudicator)"
SIGN_MEANINGS = (READ_COMPLETE, ADJUDICATOR_MEANING)
# Who may unlock a signed read (the issue: an adjudicator or a trial manager).
UNLOCK_ROLES = frozenset({"adjudicator", "trial_manager"})


class SignatureRefused(ServiceError):
    """The re-entered password does not match the signer's."""

    status = 400
    code = "signature_refused"


class NotYourRead(ServiceError):
    """Only the reader who entered a read signs it (or an adjudicator, acting as such)."""

    status = 403
    code = "not_your_read"


def check_password(session: Session, actor: Actor, password: str) -> User:
    """The signature's password check, counted like a login (its own transaction, before
    the signed write): a wrong password counts towards the account lock
    (``services.MAX_FAILED_LOGINS``), so that a stolen session or API token cannot be used
    to guess its owner's password through signing. Returns the signer."""
    from web.services.users import authenticate

    user = authenticate(session, actor.username, password)
    if user is None:
        raise SignatureRefused(
            f"the password does not match {actor.username}'s (or the account is locked after "
            "repeated failures); nothing was signed",
            field="password",
            pointer="/password",
        )
    return user


def printed_name(user: Any) -> str:
    """The signer as the manifestation shows them (21 CFR 11.50): "Full Name (username)"
    when the user has a full name, else the user name."""
    full = getattr(user, "full_name", None)
    full = full.strip() if isinstance(full, str) else ""
    return f"{full} ({user.username})" if full else str(user.username)


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON: keys sorted, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def signed_content(subject: Subject, tp: Timepoint) -> dict[str, Any]:
    """What a signature of ``tp`` signs: its values as stored, in the case contract's shape
    (:func:`web.services.cases.timepoint_as_dict`), without the version."""
    values = timepoint_as_dict(subject, tp)
    values.pop("version", None)
    return values


def content_digest(subject: Subject, tp: Timepoint) -> str:
    """SHA-256 (hex) of the canonical JSON of :func:`signed_content`."""
    return hashlib.sha256(canonical_json(signed_content(subject, tp))).hexdigest()


@dataclass(frozen=True)
class SignRecord:
    """A ``sign`` record's ``new`` read back: signer (printed name), meaning, digest."""

    signer: str
    meaning: str
    digest: str | None


_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


def signature_text(signer: str, meaning: str, digest: str) -> str:
    return f"{signer} · {meaning} · sha256:{digest}"


def parse_signature(text: str | None) -> SignRecord | None:
    """A ``sign`` record's ``new`` (``None`` when it is not a signature). Records written
    before signatures were bound to content have no digest."""
    if not text:
        return None
    parts = text.rsplit(" · ", 2)
    if len(parts) == 3 and (match := _DIGEST.match(parts[2])):
        return SignRecord(parts[0], parts[1], match[1])
    signer, sep, meaning = text.rpartition(" · ")
    return SignRecord(signer, meaning, None) if sep else None


def entered_by(session: Session, key: str, tp: Timepoint) -> str | None:
    """The reader who entered the read: the user who last saved its values
    (``Timepoint.updated_by``), else the trail's last writer of the timepoint or its
    measurements (rows from before ``updated_by`` was kept)."""
    if tp.updated_by:
        return tp.updated_by
    record = session.scalar(
        select(AuditRecord)
        .where(
            AuditRecord.action.in_(("create", "update", "delete")),
            or_(
                AuditRecord.entity_key == key,
                AuditRecord.entity_key.startswith(key + "/", autoescape=True),
            ),
        )
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    )
    return None if record is None else record.username


def meanings_for(actor: Actor, reader: str | None) -> tuple[str, ...]:
    """The meanings ``actor`` may sign a read entered by ``reader`` with (none: may not)."""
    if reader is not None and actor.username == reader:
        return (READ_COMPLETE,)
    if actor.holds("adjudicator"):
        return (ADJUDICATOR_MEANING,)
    return ()


def check_signer(actor: Actor, reader: str | None, meaning: str, what: str) -> None:
    """Refuse a signature by anyone but the read's reader, or an adjudicator acting as
    such (403, naming who entered the read and who may sign it)."""
    allowed = meanings_for(actor, reader)
    if meaning in allowed:
        return
    entered = f"was entered by {reader}" if reader else "has no recorded reader"
    if allowed == (READ_COMPLETE,):
        raise NotYourRead(
            f"{what} is your own read: sign it with the meaning {READ_COMPLETE!r}",
            field="meaning",
            pointer="/meaning",
        )
    if allowed == (ADJUDICATOR_MEANING,):
        raise NotYourRead(
            f"{what} {entered}; an adjudicator signs another reader's read only acting as "
            f"adjudicator: choose the meaning {ADJUDICATOR_MEANING!r}",
            field="meaning",
            pointer="/meaning",
        )
    raise NotYourRead(
        f"{what} {entered}; only {reader or 'its reader'} can sign it (or an adjudicator, "
        f"acting as adjudicator), not {actor.username}; nothing was signed",
        field="signer",
    )


def sign_timepoint(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    tp_code: str,
    *,
    password: str,
    meaning: str,
    expected_version: int | None,
) -> Timepoint:
    """Sign a timepoint read with the signer's password and a meaning, and lock it.

    Raises
    ------
    SignatureRefused
        The password does not match the signer's.
    InvalidInput
        No password, an unknown meaning, or no version.
    NotYourRead
        The signer did not enter the read and is not an adjudicator acting as such.
    Conflict
        The read is already signed (``Locked``) or changed since ``expected_version``.
    """
    if meaning not in SIGN_MEANINGS:
        raise InvalidInput(
            f"meaning {meaning!r} is not one of: {', '.join(SIGN_MEANINGS)}",
            field="meaning",
            pointer="/meaning",
        )
    if not password:
        raise InvalidInput(
            "signing needs your password, entered again", field="password", pointer="/password"
        )
    if expected_version is None:
        raise InvalidInput(
            "signing needs the version of the read you checked, so that you never sign "
            "changes you have not seen",
            field="version",
            pointer="/version",
        )
    key = f"{trial_code}/{subject_code}/{tp_code}"
    what = f"subject {subject_code}: timepoint {tp_code}"
    # Who may sign is decided before the password is checked: someone who may not sign
    # this read gets no password guess through it either.
    session.rollback()  # the latest committed rows
    try:
        tp = get_timepoint(get_subject(session, trial_code, subject_code), tp_code)
        check_signer(actor, entered_by(session, key, tp), meaning, what)
    finally:
        session.rollback()
    user = check_password(session, actor, password)
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        tp = get_timepoint(subject, tp_code)
        check_unlocked(tp, subject_code)
        check_version(tp, expected_version, subject_code)
        reader = entered_by(session, key, tp)
        check_signer(actor, reader, meaning, what)
        apply_signature(session, actor, user, subject, tp, meaning=meaning, reader=reader)
        flush(session)
    return tp


def apply_signature(
    session: Session,
    actor: Actor,
    user: User,
    subject: Subject,
    tp: Timepoint,
    *,
    meaning: str,
    reader: str | None,
) -> None:
    """Sign and lock ``tp`` inside the caller's write transaction, once the caller has
    checked the password (:func:`check_password`), the signer (:func:`check_signer`), the
    lock and the version: the ``sign`` record (printed name, meaning, digest of the values
    as stored) and the ``lock`` record are audited with the change."""
    key = f"{subject.trial.code}/{subject.code}/{tp.code}"
    why = meaning if meaning == READ_COMPLETE else f"{meaning}; read entered by {reader}"
    audit = Audit(session, actor, why)
    signed = signature_text(printed_name(user), meaning, content_digest(subject, tp))
    audit.log("sign", "timepoint", key, "signature", None, signed)
    audit.log("lock", "timepoint", key, "locked", False, True)
    tp.locked = True
    tp.signed_by = actor.username
    tp.signed_at = utcnow()
    tp.sign_meaning = meaning


def signer_of(session: Session, trial_code: str, subject_code: str, tp: Timepoint) -> str | None:
    """The printed name of a locked read's signer as its ``sign`` record manifests it
    ("Full Name (username)"), else ``signed_by``; ``None`` when the read is not signed."""
    if not tp.locked or not tp.signed_by:
        return None
    record = session.scalar(
        select(AuditRecord)
        .where(
            AuditRecord.action == "sign",
            AuditRecord.entity == "timepoint",
            AuditRecord.entity_key == f"{trial_code}/{subject_code}/{tp.code}",
        )
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    )
    parsed = parse_signature(record.new) if record is not None else None
    return parsed.signer if parsed is not None else tp.signed_by


def unlock_timepoint(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    tp_code: str,
    *,
    reason: str,
) -> Timepoint:
    """Unlock a signed read (adjudicator or trial manager, with a reason); the signature
    is withdrawn and the read can be corrected and signed again.

    Raises
    ------
    InvalidInput
        No reason, or the caller's role may not unlock.
    Conflict
        The read is not locked.
    """
    reason = (reason or "").strip()
    if not any(actor.holds(role) for role in UNLOCK_ROLES):
        raise InvalidInput(
            f"only an adjudicator or a trial manager can unlock a signed read, not a {actor.role}",
            field="role",
        )
    if not reason:
        raise InvalidInput(
            "unlocking a signed read needs a reason", field="reason", pointer="/reason"
        )
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        tp = get_timepoint(subject, tp_code)
        if not tp.locked:
            raise Conflict(
                f"subject {subject_code}: timepoint {tp_code} is not locked", field="timepoint"
            )
        key = f"{trial_code}/{subject_code}/{tp_code}"
        audit = Audit(session, actor, reason)
        audit.log("unlock", "timepoint", key, "locked", True, False)
        audit.log(
            "unlock", "timepoint", key, "signature", f"{tp.signed_by} · {tp.sign_meaning}", None
        )
        tp.locked = False
        tp.signed_by = None
        tp.signed_at = None
        tp.sign_meaning = None
        flush(session)
    return tp
