"""Signing several reads of a subject in one signature, and signing a read as it is saved.

*Sign all* (issue 14): the reader lists the subject's unsigned reads they entered
(:func:`signable_reads`: visit, date, response, version), enters the password once and
signs exactly the reads listed, each with the meaning "read complete", in one
transaction: every read gets its own ``sign`` and ``lock`` audit records (the same
manifestation as a single signature, :func:`web.services.signing.apply_signature`), and
one refused read — signed meanwhile, changed since the version listed, entered by
someone else, unknown — refuses the whole batch, naming the timepoint; nothing is signed.

*Sign on save*: :func:`web.services.timepoints.save_timepoint` and
:func:`web.services.baseline.save_baseline` go through :func:`save_then_sign`: the save is
rehearsed and rolled back, then the signer is asked for (:func:`signer_for_save`, the
password counted like a login), then the read is saved and signed in one transaction; a
wrong password saves nothing. The API does the same with a ``sign`` member in the save's
body (:func:`sign_password`); both ask for the signer through
:func:`signer_for_stored_read`, which refuses another reader's read before the password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import InvalidInput
from web.models import Subject, Timepoint, User
from web.services.common import (
    Actor,
    check_unlocked,
    check_version,
    flush,
    get_subject,
    get_timepoint,
)
from web.services.signing import (
    READ_COMPLETE,
    NotYourRead,
    SignatureRefused,
    apply_signature,
    check_password,
    entered_by,
)

# At most this many reads in one signature (a subject has far fewer visits).
MAX_BATCH = 200


@dataclass(frozen=True)
class SignableRead:
    """An unsigned read the user entered, as the sign-all form lists it."""

    code: str
    date: date
    version: int
    response: str | None


def _response(subject: Subject, code: str) -> str | None:
    """The overall response the engine gave the timepoint (the stored result)."""
    for item in (subject.result_json or {}).get("timepoints") or []:
        if item.get("id") == code:
            return item.get("overall_response") or None
    return None


def signable_reads(session: Session, actor: Actor, subject: Subject) -> list[SignableRead]:
    """The subject's unsigned reads that ``actor`` entered (so signs as "read complete"),
    by date; another reader's read is signed one by one (acting as adjudicator)."""
    out = []
    for tp in subject.timepoints:
        if tp.locked:
            continue
        key = f"{subject.trial.code}/{subject.code}/{tp.code}"
        if entered_by(session, key, tp) != actor.username:
            continue
        out.append(SignableRead(tp.code, tp.date, tp.version, _response(subject, tp.code)))
    return out


def clean_batch(reads: Any) -> list[tuple[str, int]]:
    """The reads to sign as ``[(timepoint, version), …]``: a non-empty list of
    ``{"timepoint": code, "version": whole number}``, no timepoint twice."""
    if not isinstance(reads, list) or not reads:
        raise InvalidInput(
            "list the reads you sign: 'reads' is a non-empty list of "
            '{"timepoint": …, "version": …} as you saw them',
            field="reads",
            pointer="/reads",
        )
    if len(reads) > MAX_BATCH:
        raise InvalidInput(
            f"at most {MAX_BATCH} reads in one signature", field="reads", pointer="/reads"
        )
    out: list[tuple[str, int]] = []
    for index, item in enumerate(reads):
        where = f"/reads/{index}"
        if not isinstance(item, dict) or set(item) - {"timepoint", "version"}:
            raise InvalidInput(
                f"reads[{index}] is an object with 'timepoint' and 'version' only",
                field="reads",
                pointer=where,
            )
        code, version = item.get("timepoint"), item.get("version")
        if not isinstance(code, str) or not code:
            raise InvalidInput(
                f"reads[{index}]: 'timepoint' is the visit id, e.g. \"W8\"",
                field="reads",
                pointer=where + "/timepoint",
            )
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidInput(
                f"reads[{index}] (timepoint {code}): 'version' is the version you checked, "
                "a whole number, so that you never sign changes you have not seen",
                field="version",
                pointer=where + "/version",
            )
        if any(code == seen for seen, _ in out):
            raise InvalidInput(
                f"timepoint {code} is listed twice", field="reads", pointer=where + "/timepoint"
            )
        out.append((code, version))
    return out


def _check_batch(
    session: Session, actor: Actor, subject: Subject, batch: list[tuple[str, int]]
) -> list[Timepoint]:
    """Every listed read exists, is unsigned, has the version listed and was entered by
    ``actor``; the first that is not refuses the batch (its error names the timepoint)."""
    out = []
    for code, version in batch:
        tp = get_timepoint(subject, code)
        what = f"subject {subject.code}: timepoint {code}"
        key = f"{subject.trial.code}/{subject.code}/{code}"
        reader = entered_by(session, key, tp)
        if reader != actor.username:
            raise NotYourRead(
                f"{what} was entered by {reader or 'no recorded reader'}, not by you: "
                "'sign all' signs only your own reads (an adjudicator signs another "
                "reader's read on its own, acting as adjudicator); nothing was signed",
                field="reads",
            )
        check_unlocked(tp, subject.code)
        check_version(tp, version, subject.code)
        out.append(tp)
    return out


def sign_all(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    password: str,
    reads: Any,
    meaning: str = READ_COMPLETE,
) -> list[Timepoint]:
    """Sign the listed reads of a subject with one password, all or nothing.

    ``reads`` is what the signer saw: ``[{"timepoint": code, "version": n}, …]``. Each read
    is signed "read complete" and locked, audited as a single signature would be.

    Raises
    ------
    InvalidInput
        No password, or a malformed or empty list.
    NotFound
        A listed timepoint does not exist.
    NotYourRead
        A listed read was entered by someone else (checked before the password).
    SignatureRefused
        The password does not match the signer's.
    Conflict
        A listed read is already signed (``Locked``) or changed since its listed version
        (``ConcurrentEdit``).
    """
    if meaning != READ_COMPLETE:
        raise InvalidInput(
            f"'sign all' signs your own reads with the meaning {READ_COMPLETE!r}, not {meaning!r}",
            field="meaning",
            pointer="/meaning",
        )
    batch = clean_batch(reads)
    if not password:
        raise InvalidInput(
            "signing needs your password, entered again", field="password", pointer="/password"
        )
    # Refusals that need no password come first: no password guess through a batch
    # that could not be signed anyway (as for a single signature).
    session.rollback()
    try:
        _check_batch(session, actor, get_subject(session, trial_code, subject_code), batch)
    finally:
        session.rollback()
    user = check_password(session, actor, password)
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        timepoints = _check_batch(session, actor, subject, batch)
        for tp in timepoints:
            apply_signature(
                session, actor, user, subject, tp, meaning=READ_COMPLETE, reader=actor.username
            )
        flush(session)
    return timepoints


def signer_for_save(
    session: Session,
    actor: Actor,
    password: str | None,
    *,
    field: str = "sign_password",
    pointer: str = "/password",
) -> User:
    """The signer of a read signed as it is saved: ``actor`` after the password check
    (counted like a login, in its own transaction, before anything is saved). ``field``
    and ``pointer`` name the password where the request has it (the form's
    ``sign_password``, the API's ``sign.password``)."""
    if not password:
        raise InvalidInput(
            "signing on save needs your password, entered again; nothing was saved",
            field=field,
            pointer=pointer,
        )
    try:
        return check_password(session, actor, password)
    except SignatureRefused:
        raise SignatureRefused(
            f"the password does not match {actor.username}'s (or the account is locked after "
            "repeated failures); nothing was saved or signed",
            field=field,
            pointer=pointer,
        ) from None


# The members of the API's ``sign`` object (sign on save) and the longest password taken.
SIGN_KEYS = ("password", "meaning")
MAX_PASSWORD = 1024


def sign_password(sign: Any) -> str:
    """The password of an API save's ``sign`` member, ``{"password": …, "meaning"?: …}``:
    an object with a non-empty string password and, if given, the meaning
    ``"read complete"`` (what is saved by the request is the caller's own read). Anything
    else is refused naming ``sign`` or its member, before any password is checked."""
    if not isinstance(sign, dict):
        raise InvalidInput(
            'sign on save: \'sign\' is an object {"password": …, "meaning": '
            f'"{READ_COMPLETE}"}}, not {type(sign).__name__}; nothing was saved',
            field="sign",
            pointer="/sign",
        )
    extra = sorted(str(key) for key in set(sign) - set(SIGN_KEYS))
    if extra:
        raise InvalidInput(
            f"sign on save: unknown key {extra[0][:64]!r} in 'sign'; it takes "
            f"{', '.join(SIGN_KEYS)}; nothing was saved",
            field="sign",
            pointer="/sign",
        )
    meaning = sign.get("meaning")
    if meaning is not None and meaning != READ_COMPLETE:
        shown = repr(meaning[:64]) if isinstance(meaning, str) else type(meaning).__name__
        raise InvalidInput(
            f"sign on save signs the read you save, your own, with the meaning "
            f"{READ_COMPLETE!r}, not {shown}; an adjudicator signs another reader's read "
            "on its own (POST …/sign); nothing was saved",
            field="sign.meaning",
            pointer="/sign/meaning",
        )
    password = sign.get("password")
    if password is not None and not isinstance(password, str):
        raise InvalidInput(
            f"sign.password must be a string, not {type(password).__name__}; nothing was saved",
            field="sign.password",
            pointer="/sign/password",
        )
    if password is not None and len(password) > MAX_PASSWORD:
        raise InvalidInput(
            f"sign.password is {len(password):,} characters long; at most {MAX_PASSWORD:,}",
            field="sign.password",
            pointer="/sign/password",
        )
    if not password:
        raise InvalidInput(
            "signing on save needs your password in sign.password, entered again; nothing "
            "was saved",
            field="sign.password",
            pointer="/sign/password",
        )
    return password


def signer_for_stored_read(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    password: str | None,
    tp_code: str | None = None,
    expected_version: Any = None,
    api: bool = True,
) -> User:
    """The signer of a read saved and signed in one step (the API's ``sign`` member, the
    form's "Sign on save"), the same on both ways in.

    The refusals that need no password come first, on the read as stored (``tp_code``; the
    baseline when ``None``; a code not stored yet is a new read), as for a single
    signature: a read entered by someone else (403 ``not_your_read``: saving and signing
    it in one step would sign "read complete" over another reader's read, which only an
    adjudicator signs, acting as such, on its own), a signed read, a stale version. Then
    the password, counted like a login (:func:`signer_for_save`); the save re-checks
    everything in its own transaction. ``api`` words the refusal for the API (``sign``,
    ``POST …/sign``) or the form (``sign_on_save``, the subject page).
    """
    session.rollback()  # the latest committed rows
    try:
        subject = get_subject(session, trial_code, subject_code)
        if tp_code is None:
            tp = subject.timepoints[0] if subject.timepoints else None
        else:
            tp = next((t for t in subject.timepoints if t.code == tp_code), None)
        if tp is not None:
            key = f"{trial_code}/{subject_code}/{tp.code}"
            reader = entered_by(session, key, tp)
            if reader is not None and reader != actor.username:
                how = (
                    "save it without 'sign', then sign it with POST …/sign"
                    if api
                    else "save it with 'Sign on save' unticked, then sign it on the subject page"
                )
                raise NotYourRead(
                    f"subject {subject_code}: timepoint {tp.code} was entered by {reader}; "
                    f"sign on save signs only your own read ({how}); nothing was saved or "
                    "signed",
                    field="sign" if api else "sign_on_save",
                    pointer="/sign",
                )
            check_unlocked(tp, subject_code)
            check_version(tp, expected_version, subject_code)
    finally:
        session.rollback()
    if api:
        return signer_for_save(
            session, actor, password, field="sign.password", pointer="/sign/password"
        )
    return signer_for_save(session, actor, password)


Saved = TypeVar("Saved")


def save_then_sign(
    session: Session,
    save: Callable[[], Saved],
    ask_signer: Callable[[], User | None] | None,
    sign: Callable[[User, Saved], None],
) -> Saved:
    """``save()`` in one write transaction; with ``ask_signer`` (sign on save), the read
    it saved is signed by ``sign`` in that same transaction.

    Before the password is asked for, the save is rehearsed in full — every check against
    the stored subject (a date before the baseline, a second visit on one date, a signed
    read, a stale version) and the engine's assessment — inside a savepoint that is always
    rolled back. So an entry that cannot be saved is refused in the words it gets without
    signing, and never counts a password failure towards the account lock. Then the
    password is checked (its own transaction, as a login), and the save is done again,
    for real, and signed. Should the subject change in between, the real save refuses
    what the rehearsal passed: nothing is saved or signed either way.
    """
    signer = None
    if ask_signer is not None:
        with write_transaction(session):
            rehearsal = session.begin_nested()
            try:
                save()
            finally:
                rehearsal.rollback()
        signer = ask_signer()
    with write_transaction(session):
        saved = save()
        if signer is not None:
            sign(signer, saved)
            flush(session)
    return saved


def sign_saved(session: Session, actor: Actor, user: User, subject: Subject, tp: Timepoint) -> None:
    """Sign the read just saved by ``actor`` (so its reader), inside the save's transaction."""
    apply_signature(session, actor, user, subject, tp, meaning=READ_COMPLETE, reader=actor.username)
