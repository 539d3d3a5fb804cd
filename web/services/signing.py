"""Electronic signatures on timepoint reads (21 CFR 11.50/11.200 style).

A reader signs a completed read by re-entering the password, with a stated meaning; the
signed read is locked: the service layer refuses to change or delete it
(:func:`web.services.check_unlocked`). Unlocking needs an adjudicator or trial manager and
a reason. Signing, locking and unlocking are audit records in the same transaction, so the
signature's manifestation (who, when in UTC, meaning) and its history are in the trail.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, ServiceError
from web.models import Timepoint, utcnow
from web.services.common import (
    Actor,
    Audit,
    check_unlocked,
    check_version,
    flush,
    get_subject,
    get_timepoint,
)

# The meanings a reader can state when signing a read.
SIGN_MEANINGS = ("read complete",)
# Who may unlock a signed read (the issue: an adjudicator or a trial manager).
UNLOCK_ROLES = frozenset({"adjudicator", "trial_manager"})


class SignatureRefused(ServiceError):
    """The re-entered password does not match the signer's."""

    status = 400
    code = "signature_refused"


def check_password(session: Session, actor: Actor, password: str) -> None:
    """The signature's password check, counted like a login (its own transaction, before
    the signed write): a wrong password counts towards the account lock
    (``services.MAX_FAILED_LOGINS``), so that a stolen session or API token cannot be used
    to guess its owner's password through signing."""
    from web.services.users import authenticate

    if authenticate(session, actor.username, password) is None:
        raise SignatureRefused(
            f"the password does not match {actor.username}'s (or the account is locked after "
            "repeated failures); nothing was signed",
            field="password",
            pointer="/password",
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
    check_password(session, actor, password)
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        tp = get_timepoint(subject, tp_code)
        check_unlocked(tp, subject_code)
        check_version(tp, expected_version, subject_code)
        now = utcnow()
        key = f"{trial_code}/{subject_code}/{tp_code}"
        audit = Audit(session, actor, meaning)
        audit.log("sign", "timepoint", key, "signature", None, f"{actor.username} · {meaning}")
        audit.log("lock", "timepoint", key, "locked", False, True)
        tp.locked = True
        tp.signed_by = actor.username
        tp.signed_at = now
        tp.sign_meaning = meaning
        flush(session)
    return tp


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
    if actor.role not in UNLOCK_ROLES:
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
