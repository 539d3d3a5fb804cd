"""What every service shares: who acts (:class:`Actor`), the audit records of a write
(:class:`Audit`), reading trials and subjects, version and lock checks, and the flush that
turns a race into a refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError

from web.errors import ConcurrentEdit, Conflict, InvalidInput, Locked, NotFound, ReasonRequired
from web.models import (
    AuditRecord,
    Subject,
    Timepoint,
    Trial,
    role_set,
    utcnow,
)


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass
class Actor:
    """Who is writing; ``username`` goes into every audit record."""

    username: str
    role: str = "admin"

    def holds(self, role: str) -> bool:
        """Whether the actor holds ``role`` (an actor may hold two: ``"admin+reader"``)."""
        return role in role_set(self.role)


SYSTEM = Actor("system", "admin")


# Clinical data: changing or deleting any of it after first entry needs a reason.
CLINICAL_ENTITIES = frozenset(
    {"trial", "arm", "subject", "lesion", "timepoint", "measurement", "new_lesion"}
)


@dataclass
class Audit:
    session: Session
    actor: Actor
    reason: str | None
    enabled: bool = True
    records: list[AuditRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        # What is hashed is what is stored: a reason is text or nothing, never a number
        # that the database would turn into text after the chain hashed it.
        if self.reason is not None and not isinstance(self.reason, str):
            clean_reason(self.reason)  # refuses it, naming the field

    def log(
        self,
        action: str,
        entity: str,
        key: str,
        field_name: str | None = None,
        old: Any = None,
        new: Any = None,
    ) -> None:
        if not self.enabled:
            return
        if action in ("update", "delete") and entity in CLINICAL_ENTITIES and not self.reason:
            # 21 CFR 11.10(e) / Annex 11 §9: a change after first entry says why.
            what = f"{entity} {key}" + (f" ({field_name})" if field_name else "")
            raise ReasonRequired(
                f"{'deleting' if action == 'delete' else 'changing'} {what} after its first "
                "entry needs a reason (kept in the audit trail)",
                field="reason",
                pointer="/reason",
            )
        record = AuditRecord(
            at=utcnow(),
            username=self.actor.username,
            action=action,
            entity=entity,
            entity_key=key,
            field=field_name,
            old=_text(old),
            new=_text(new),
            reason=self.reason,
        )
        self.session.add(record)
        self.records.append(record)

    def change(self, entity: str, key: str, field_name: str, old: Any, new: Any) -> bool:
        if old == new:
            return False
        self.log("update" if old is not None else "create", entity, key, field_name, old, new)
        return True


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


# A subject with everything the engine reads, by trial and subject code. Built once: a
# statement caches its own cache key, so a request finds its compiled form without
# walking the nested loader options again (that walk was a third of loading a subject).
_SUBJECT = (
    select(Subject)
    .join(Trial)
    .where(Trial.code == bindparam("trial_code"), Subject.code == bindparam("subject_code"))
    .options(
        selectinload(Subject.lesions),
        selectinload(Subject.timepoints).selectinload(Timepoint.records),
        selectinload(Subject.timepoints).selectinload(Timepoint.new_lesions),
        joinedload(Subject.arm),
        joinedload(Subject.trial),
    )
)
_SUBJECT_LOCKED = _SUBJECT.with_for_update(of=Subject)


def get_trial(session: Session, code: str) -> Trial:
    trial = session.scalar(select(Trial).where(Trial.code == code))
    if trial is None:
        raise NotFound(f"trial {code!r} does not exist", field="trial")
    return trial


def list_trials(session: Session) -> list[Trial]:
    return list(session.scalars(select(Trial).order_by(Trial.code)))


def subject_counts(session: Session) -> dict[int, int]:
    """Number of subjects per trial id (without loading the subjects)."""
    rows = session.execute(select(Subject.trial_id, func.count()).group_by(Subject.trial_id))
    return {trial_id: count for trial_id, count in rows}


def list_subjects(session: Session, trial: Trial) -> list[Subject]:
    return list(
        session.scalars(
            select(Subject)
            .where(Subject.trial_id == trial.id)
            .options(selectinload(Subject.arm))
            .order_by(Subject.code)
        )
    )


def get_subject(
    session: Session, trial_code: str, subject_code: str, *, lock: bool = False
) -> Subject:
    """A subject with its lesions and timepoints loaded; ``lock`` takes its row lock."""
    subject: Subject | None = session.scalar(
        _SUBJECT_LOCKED if lock else _SUBJECT,
        {"trial_code": trial_code, "subject_code": subject_code},
    )
    if subject is None:
        get_trial(session, trial_code)
        raise NotFound(
            f"subject {subject_code!r} does not exist in trial {trial_code!r}", field="subject"
        )
    return subject


def get_timepoint(subject: Subject, code: str) -> Timepoint:
    for tp in subject.timepoints:
        if tp.code == code:
            return tp
    raise NotFound(f"subject {subject.code}: timepoint {code!r} does not exist", field="timepoint")


def reload_subject(session: Session, trial_code: str, subject_code: str) -> Subject:
    """:func:`get_subject` as committed now: the session's loaded rows are expired first,
    so that a read after a write of this request shows what the write stored."""
    session.expire_all()
    return get_subject(session, trial_code, subject_code)


def audit_trail(session: Session, key: str, limit: int = 200) -> list[AuditRecord]:
    """Audit records of ``key`` (e.g. ``TRIAL/0101-004``) and everything under it.

    ``TRIAL/S-1`` matches ``TRIAL/S-1`` and ``TRIAL/S-1/W8/T01`` but not ``TRIAL/S-10``.
    Newest first.
    """
    return list(
        session.scalars(
            select(AuditRecord)
            .where(
                or_(
                    AuditRecord.entity_key == key,
                    AuditRecord.entity_key.startswith(key + "/", autoescape=True),
                )
            )
            .order_by(AuditRecord.id.desc())
            .limit(limit)
        )
    )


_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_code(value: Any, what: str, field_name: str) -> str:
    if not isinstance(value, str) or not _CODE.match(value):
        raise InvalidInput(
            f"{what} {echo(value)} must be 1–64 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit",
            field=field_name,
            pointer=f"/{field_name}",
        )
    return value


ECHO_CHARS = 60  # characters of user input quoted back in an error message


def echo(value: Any, limit: int = ECHO_CHARS) -> str:
    """User input quoted in an error message, cut to ``limit`` characters with "…" so that
    a pasted page never floods the error banner."""
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + "…"
    return repr(value if len(value) <= limit else value[:limit] + "…")


MAX_REASON = 2000  # characters of a reason, comment or rationale kept in the audit trail


def clean_reason(value: Any, field_name: str = "reason") -> str | None:
    """A reason as given (text, stripped; ``None`` when empty). Anything but text is
    refused: the audit trail stores and hashes exactly this string."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field_name} must be text, not {type(value).__name__} ({echo(value)})",
            field=field_name,
            pointer=f"/{field_name}",
        )
    text = value.strip()
    if len(text) > MAX_REASON:
        raise InvalidInput(
            f"{field_name} is {len(text)} characters long; at most {MAX_REASON}",
            field=field_name,
            pointer=f"/{field_name}",
        )
    return text or None


def check_version(tp: Timepoint, expected: Any, subject_code: str) -> None:
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        raise InvalidInput(
            f"version {echo(expected)} is not a whole number", field="version", pointer="/version"
        )
    if expected is not None and expected != tp.version:
        # A signature or an unlock moves the version too, without a save: say that the
        # read changed, and who last saved its values.
        raise ConcurrentEdit(
            f"subject {subject_code}: timepoint {tp.code} changed after you opened it "
            f"(version {tp.version}, yours {expected}; last saved by "
            f"{tp.updated_by or 'someone'} at {tp.updated_at:%Y-%m-%d %H:%M} UTC); reload to "
            "see the changes, then enter yours again",
            field="version",
            pointer="/version",
        )


def check_unlocked(tp: Timepoint, subject_code: str) -> None:
    """Refuse to change a signed (locked) read."""
    if tp.locked:
        raise Locked(
            f"subject {subject_code}: timepoint {tp.code} was signed by {tp.signed_by} "
            f"({tp.sign_meaning}) and is locked; an adjudicator or trial manager must unlock "
            "it, with a reason, before it can change",
            field="timepoint",
        )


def check_no_later_lock(
    subject: Subject, changed: Timepoint | None, when: date, code: str, subject_code: str
) -> None:
    """Refuse a change dated on or before a signed read of another timepoint.

    A timepoint's response depends on every earlier one (baseline, nadir, confirmation,
    R-TGT-PD/PR), so inserting, editing or deleting a follow-up before a signed read would
    change what was signed. ``when`` is the earliest date the change touches.
    """
    for signed in subject.timepoints:
        if signed is changed or not signed.locked or signed.date < when:
            continue
        raise Locked(
            f"subject {subject_code}: timepoint {code} ({when.isoformat()}) comes before "
            f"{signed.code} ({signed.date.isoformat()}), which was signed by {signed.signed_by} "
            f"({signed.sign_meaning}) and is locked; a change before a signed read would "
            f"change its response, so an adjudicator or trial manager must unlock "
            f"{signed.code}, with a reason, first",
            field="date",
            pointer="/date",
        )


def touch(tp: Timepoint, actor: Actor) -> None:
    # Changing a column makes the ORM issue the UPDATE that bumps the version
    # (version_id_col), so a save that only changed child rows still moves the version.
    tp.updated_at = utcnow()
    tp.updated_by = actor.username


def flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:
        raise ConcurrentEdit(
            "the record was changed by someone else while you were saving; reload and retry",
            field="version",
            pointer="/version",
        ) from None
    except IntegrityError:
        # Ids are checked before writing; this is a race with another save. The database's
        # own message would name tables and constraints, so it is not shown.
        raise Conflict(
            "the change conflicts with data saved at the same moment (a duplicate id?); "
            "reload and retry",
            field=None,
        ) from None
