"""The service layer: every write of the web application goes through one function here.

Each public write function is one transaction (:func:`web.db.write_transaction`): it
locks the subject row, changes rows, writes one append-only :class:`AuditRecord` per
changed field (who, when in UTC, entity, field, old, new, reason), recomputes the
subject's result with the engine (``recist.jsonio.assess_json`` on a case built from the
rows) and commits — or changes nothing. Views and API handlers only parse and render.

Timepoint input uses the case contract of ``docs/interfaces.md``: targets map a lesion id
to a size in mm, ``"too_small"``, ``"absent"``, ``"not_evaluated"``,
``{"fragments": [...]}`` or ``{"merged_into": id}``; non-targets to a state; new lesions
are ``{"id", "site", "equivocal"}``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.security import check_password_hash, generate_password_hash

import web.audit  # noqa: F401 - registers the audit chain on every session
from web.db import write_transaction
from web.models import (
    ROLES,
    SITES,
    ApiToken,
    Arm,
    AuditRecord,
    Lesion,
    LesionRecord,
    NewLesion,
    Subject,
    Timepoint,
    Trial,
    User,
    utcnow,
)

# --------------------------------------------------------------------------- errors


class ServiceError(Exception):
    """A refused request: ``code`` for machines, ``message`` (one sentence) for people.

    ``field`` names the input field and ``pointer`` is a JSON pointer into the request
    body when the API can tell; ``status`` is the HTTP status the handlers answer with.
    """

    status = 400
    code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        pointer: str | None = None,
        rule: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.pointer = pointer
        self.rule = rule
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        out["field"] = self.field
        out["pointer"] = self.pointer
        if self.rule:
            out["rule"] = self.rule
        if self.details:
            out["details"] = self.details
        return out


class InvalidInput(ServiceError):
    """The input cannot be stored or assessed as given."""


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class ConcurrentEdit(ServiceError):
    """Someone saved the same record after the caller loaded it (version mismatch)."""

    status = 409
    code = "concurrent_edit"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class ReasonRequired(ServiceError):
    """The baseline breaks R-MEAS/R-SEL rules: saving anyway needs a written reason."""

    status = 422
    code = "reason_required"


# --------------------------------------------------------------------------- engine


def _engine_assess(case: dict[str, Any]) -> dict[str, Any]:
    """Assess a case dict with the engine, turning its refusals into InvalidInput."""
    from recist.errors import RecistError
    from recist.jsonio import assess_json
    from web.clock import today

    try:
        return assess_json(case, today=today())
    except RecistError as error:
        field_name = error.field
        pointer = case_pointer(case, error)
        if field_name in ("targets", "non_targets", "new_lesions") and error.lesion:
            # The form field of the lesion: targets.T01, new_lesions.NL01.short_axis_mm…
            field_name = f"{field_name}.{error.lesion}"
            if error.field == "new_lesions" and pointer is not None:
                news = next(
                    (
                        tp.get("new_lesions") or []
                        for tp in case.get("timepoints") or []
                        if isinstance(tp, dict) and tp.get("id") == error.timepoint
                    ),
                    [],
                )
                index = next((i for i, n in enumerate(news) if n.get("id") == error.lesion), None)
                if index is not None:
                    pointer += f"/{index}"
                    if error.rule == "R-NEW-1":
                        field_name += ".short_axis_mm"
                        pointer += "/short_axis_mm"
        raise InvalidInput(str(error), field=field_name, pointer=pointer, rule=error.rule) from None


def _pointer(loc: tuple[Any, ...]) -> str:
    return "".join("/" + _escape(str(part)) for part in loc)


def _form_field(obj: Any, loc: tuple[Any, ...]) -> str:
    """The field a form marks for an error at ``loc`` in a timepoint: ``targets.T01``,
    ``non_targets.NT01``, ``new_lesions.NL01.site``…"""
    if len(loc) >= 2 and loc[0] in ("targets", "non_targets", "scan_dates"):
        return f"{loc[0]}.{loc[1]}"
    if len(loc) >= 2 and loc[0] == "new_lesions" and isinstance(loc[1], int):
        items = obj.get("new_lesions") if isinstance(obj, dict) else None
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        new_id = item.get("id") if isinstance(item, dict) else None
        label = new_id if isinstance(new_id, str) and new_id else f"#{loc[1] + 1}"
        return ".".join(["new_lesions", label, *[str(p) for p in loc[2:]]])
    return ".".join(str(part) for part in loc) or "body"


def _lesion_at(obj: Any, loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] in ("targets", "non_targets", "scan_dates"):
        return str(loc[1])
    if len(loc) >= 2 and loc[0] in ("new_lesions", "lesions") and isinstance(loc[1], int):
        items = obj.get(loc[0]) if isinstance(obj, dict) else None
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        item_id = item.get("id") if isinstance(item, dict) else None
        return item_id if isinstance(item_id, str) and item_id else f"#{loc[1] + 1}"
    return None


def validated(
    model: Any,
    obj: Any,
    *,
    subject: str | None = None,
    timepoint: str | None = None,
    lesion: str | None = None,
    base: tuple[Any, ...] = (),
) -> Any:
    """``obj`` validated by one of the contract's models (:mod:`recist.jsonio`), or an
    :class:`InvalidInput` translated from the model's located error: the message names
    subject, timepoint, lesion and field, ``pointer`` points into the request body and
    ``field`` names the form field. Every way in (form, worksheet, API, import) uses it,
    so the web refuses exactly what the engine's contract refuses."""
    from pydantic import ValidationError

    from recist.jsonio import validation_error

    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        loc = tuple(exc.errors()[0]["loc"])
        error = validation_error(exc, obj).located(
            subject=subject, timepoint=timepoint, lesion=lesion or _lesion_at(obj, loc)
        )
        error.field = _form_field(obj, loc)
        if base[:1] == ("settings",):
            error.field = ".".join(str(part) for part in base + loc)
        raise InvalidInput(
            str(error), field=error.field, pointer=_pointer(base + loc), rule=error.rule
        ) from None


_ABSOLUTE_FIELD = re.compile(r"^(lesions|timepoints)\[(\d+)\](?:\.(.*))?$")
_INDEXED = re.compile(r"^(\w+)\[(\d+)\]$")


def _absolute_pointer(fld: str) -> str | None:
    """``timepoints[1].non_targets.NT1`` (a path into the case, as the contract's
    validation names fields) → ``/timepoints/1/non_targets/NT1``; ``None`` for a field
    named relative to its timepoint (``targets``)."""
    match = _ABSOLUTE_FIELD.match(fld)
    if match is None:
        return None
    pointer = f"/{match[1]}/{match[2]}"
    rest = match[3]
    if rest:
        head, _, tail = rest.partition(".")
        indexed = _INDEXED.match(head)
        pointer += f"/{indexed[1]}/{indexed[2]}" if indexed else f"/{_escape(head)}"
        if tail:  # a lesion id may itself contain dots (T01.1), so the tail stays whole
            pointer += f"/{_escape(tail)}"
    return pointer


def case_pointer(case: dict[str, Any], error: Any) -> str | None:
    """A JSON pointer into ``case`` for an engine error naming timepoint/lesion/field."""
    timepoint = getattr(error, "timepoint", None)
    lesion = getattr(error, "lesion", None)
    fld = getattr(error, "field", None)
    absolute = _absolute_pointer(fld) if fld else None
    if absolute is not None:
        return absolute
    if timepoint is not None:
        for index, tp in enumerate(case.get("timepoints") or []):
            if isinstance(tp, dict) and tp.get("id") == timepoint:
                base = f"/timepoints/{index}"
                if fld in ("targets", "non_targets") and lesion is not None:
                    return f"{base}/{fld}/{_escape(lesion)}"
                if fld:
                    return f"{base}/{_escape(fld.split('.')[0])}"
                return base
    if lesion is not None:
        for index, le in enumerate(case.get("lesions") or []):
            if isinstance(le, dict) and le.get("id") == lesion:
                return f"/lesions/{index}" + (f"/{_escape(fld)}" if fld else "")
    if fld:
        return "/" + "/".join(_escape(part) for part in fld.split("."))
    return None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _mm(units: int) -> float:
    """A stored size (engine lengths, ``UNITS_PER_MM`` per mm: R-EXACT) in mm."""
    from recist.lesions import UNITS_PER_MM

    return units / UNITS_PER_MM


def _units(mm: float) -> int:
    """A validated size in mm as stored: the engine's exact length (R-EXACT)."""
    from recist.lesions import mm_to_length

    return mm_to_length(mm)


def ordered_timepoints(subject: Subject) -> list[Timepoint]:
    """Timepoints by date (the first is the baseline), including unsaved ones."""
    return sorted(subject.timepoints, key=lambda t: (t.date, t.id if t.id is not None else 2**62))


def build_case(subject: Subject) -> dict[str, Any]:
    """The case contract (``docs/interfaces.md``) for a subject, from its rows."""
    lesions: list[dict[str, Any]] = []
    for le in subject.lesions:
        item: dict[str, Any] = {"id": le.code, "site": le.site, "kind": le.kind}
        item["nodal"] = le.nodal
        if le.treated_on is not None:
            item["treated_on"] = le.treated_on.isoformat()
        if le.treatment:
            item["treatment"] = le.treatment
        if le.modality:
            item["modality"] = le.modality
        if le.slice_thickness_units is not None:
            item["slice_thickness_mm"] = _mm(le.slice_thickness_units)
        lesions.append(item)
    timepoints: list[dict[str, Any]] = []
    for tp in ordered_timepoints(subject):
        targets: dict[str, Any] = {}
        non_targets: dict[str, Any] = {}
        scan_dates: dict[str, str] = {}
        # rec.lesion, not rec.lesion_id: a record added in this transaction has no id yet.
        for rec in sorted(tp.records, key=lambda r: r.lesion.code):
            code = rec.lesion.code
            if rec.lesion.kind == "target":
                targets[code] = _target_value(rec)
            else:
                non_targets[code] = rec.state
            if rec.scan_date is not None:
                scan_dates[code] = rec.scan_date.isoformat()
        new_lesions = []
        for nl in tp.new_lesions:
            new_item: dict[str, Any] = {"id": nl.code, "site": nl.site, "equivocal": nl.equivocal}
            if nl.nodal:
                # R-NEW-1: a new node counts only at a short axis ≥ 10 mm.
                new_item["nodal"] = True
                if nl.short_axis_units is not None:
                    new_item["short_axis_mm"] = _mm(nl.short_axis_units)
            new_lesions.append(new_item)
            if nl.scan_date is not None:
                scan_dates[nl.code] = nl.scan_date.isoformat()
        item = {
            "id": tp.code,
            "date": tp.date.isoformat(),
            "targets": targets,
            "non_targets": non_targets,
            "new_lesions": new_lesions,
        }
        if scan_dates:
            item["scan_dates"] = scan_dates
        timepoints.append(item)
    case: dict[str, Any] = {
        "subject_id": subject.code,
        "arm": subject.arm.code if subject.arm is not None else None,
        "randomized_on": _iso(subject.randomized_on),
        "died_on": _iso(subject.died_on),
        "new_therapy_on": _iso(subject.new_therapy_on),
        "settings": dict(subject.trial.settings or {}),
        "lesions": lesions,
        "timepoints": timepoints,
    }
    return case


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _target_value(rec: LesionRecord) -> Any:
    """A stored target record in the contract's form (what the engine assesses)."""
    if rec.state == "measured":
        return _mm(rec.size_units or 0)
    if rec.state == "fragments":
        return {"fragments": [_mm(t) for t in rec.fragments_units or []]}
    if rec.state == "merged":
        return {"merged_into": rec.merged_into}
    return rec.state


def _recompute(subject: Subject, focus: str | None = None) -> None:
    """Store the engine's result for the subject (the only way results are written).

    ``focus`` is the id of the timepoint the request wrote: a refusal that points into
    it is re-pointed into the request body (``/timepoints/3/date`` becomes ``/date``).
    """
    if not subject.timepoints:
        subject.result_json = None
        return
    case = build_case(subject)
    try:
        subject.result_json = _engine_assess(case)
    except InvalidInput as error:
        if focus is not None and error.pointer:
            ids = [tp["id"] for tp in case["timepoints"]]
            prefix = f"/timepoints/{ids.index(focus)}" if focus in ids else None
            if prefix and (error.pointer == prefix or error.pointer.startswith(prefix + "/")):
                error.pointer = error.pointer.removeprefix(prefix)
        raise


def assess_case(case: Any) -> dict[str, Any]:
    """Stateless assessment of a case dict (``POST /api/v1/assess``)."""
    if not isinstance(case, dict):
        raise InvalidInput("the request body must be a JSON object (one case)", pointer="")
    return _engine_assess(case)


# --------------------------------------------------------------------------- audit


@dataclass
class Actor:
    """Who is writing; ``username`` goes into every audit record."""

    username: str
    role: str = "admin"


SYSTEM = Actor("system", "admin")


# Clinical data: changing or deleting any of it after first entry needs a reason.
CLINICAL_ENTITIES = frozenset(
    {"trial", "arm", "subject", "lesion", "timepoint", "measurement", "new_lesion"}
)


@dataclass
class _Audit:
    session: Session
    actor: Actor
    reason: str | None
    enabled: bool = True
    records: list[AuditRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        # What is hashed is what is stored: a reason is text or nothing, never a number
        # that the database would turn into text after the chain hashed it.
        if self.reason is not None and not isinstance(self.reason, str):
            _reason(self.reason)  # refuses it, naming the field

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


# --------------------------------------------------------------------------- reading


def _subject_query(trial_code: str, subject_code: str) -> Any:
    return (
        select(Subject)
        .join(Trial)
        .where(Trial.code == trial_code, Subject.code == subject_code)
        .options(
            selectinload(Subject.lesions),
            selectinload(Subject.timepoints).selectinload(Timepoint.records),
            selectinload(Subject.timepoints).selectinload(Timepoint.new_lesions),
            joinedload(Subject.arm),
            joinedload(Subject.trial),
        )
    )


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
    query = _subject_query(trial_code, subject_code)
    if lock:
        query = query.with_for_update(of=Subject)
    subject: Subject | None = session.scalar(query)
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


# --------------------------------------------------------------------------- trials


_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_code(value: Any, what: str, field_name: str) -> str:
    if not isinstance(value, str) or not _CODE.match(value):
        raise InvalidInput(
            f"{what} {value!r} must be 1–64 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit",
            field=field_name,
            pointer=f"/{field_name}",
        )
    return value


def _check_settings(values: Any) -> dict[str, Any]:
    """Protocol settings validated by the contract's model (``recist.jsonio.SettingsIn``:
    known keys, strict types, finite, within bounds: R-PLAUS-SETTINGS), with every
    default filled in, as stored with the trial."""
    from recist.jsonio import SettingsIn
    from recist.settings import Settings

    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InvalidInput("settings must be an object", field="settings", pointer="/settings")
    model = validated(SettingsIn, values, base=("settings",))
    return Settings.from_dict(model.model_dump()).to_dict()


def create_trial(
    session: Session,
    actor: Actor,
    *,
    code: str,
    title: str,
    settings: dict[str, Any] | None = None,
    arms: list[tuple[str, str]] | None = None,
) -> Trial:
    """Create a trial with its protocol settings (validated by the engine) and arms."""
    _check_code(code, "trial code", "code")
    clean = _check_settings(settings)
    with write_transaction(session):
        if session.scalar(select(Trial.id).where(Trial.code == code)) is not None:
            raise Conflict(f"trial {code!r} already exists", field="code", pointer="/code")
        audit = _Audit(session, actor, None)
        trial = Trial(code=code, title=title or code, settings=clean)
        session.add(trial)
        for arm_code, name in arms or []:
            _check_code(arm_code, "arm code", "arms")
            trial.arms.append(Arm(code=arm_code, name=name or arm_code))
        audit.log("create", "trial", code, "settings", None, clean)
        for arm_code, name in arms or []:
            audit.log("create", "arm", f"{code}/{arm_code}", "name", None, name)
    return trial


# --------------------------------------------------------------------------- subjects


def _parse_date(value: Any, field_name: str, pointer: str | None = None) -> date | None:
    """An ISO date (YYYY-MM-DD) typed or sent for ``field_name``, checked for plausibility
    (R-PLAUS-DATE); ``None`` for an empty value."""
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return _plausible_date(value, field_name, pointer)
    parsed = None
    if isinstance(value, str):
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or not isinstance(value, str) or len(value) != 10:
        raise InvalidInput(
            f"{field_name} {value!r} is not a date (YYYY-MM-DD)",
            field=field_name,
            pointer=pointer or f"/{field_name}",
        )
    return _plausible_date(parsed, field_name, pointer)


def _plausible_date(value: date, field_name: str, pointer: str | None = None) -> date:
    """Refuse a date before 1900 or after today (R-PLAUS-DATE, ``recist.lesions``'s one
    definition, against the application's clock)."""
    from recist.lesions import date_problem
    from web.clock import today

    problem = date_problem(value, today())
    if problem is not None:
        raise InvalidInput(
            f"{field_name}: {problem} (R-PLAUS-DATE)",
            field=field_name,
            pointer=pointer or "/" + "/".join(_escape(p) for p in field_name.split(".")),
            rule="R-PLAUS-DATE",
        )
    return value


def _check_origin(subject: Subject) -> None:
    """R-PLAUS-ORIGIN for a subject's own dates, with or without timepoints (the engine
    checks them too once there is a case to assess)."""
    from recist.lesions import origin_problem

    problem = origin_problem(subject.randomized_on, subject.died_on, subject.new_therapy_on)
    if problem is not None:
        raise InvalidInput(
            f"subject {subject.code}: {problem[1]} (R-PLAUS-ORIGIN)",
            field=problem[0],
            pointer=f"/{problem[0]}",
            rule="R-PLAUS-ORIGIN",
        )


MAX_REASON = 2000  # characters of a reason, comment or rationale kept in the audit trail


def _reason(value: Any, field_name: str = "reason") -> str | None:
    """A reason as given (text, stripped; ``None`` when empty). Anything but text is
    refused: the audit trail stores and hashes exactly this string."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field_name} must be text, not {type(value).__name__} ({value!r})",
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


def _arm(trial: Trial, arm_code: str | None) -> Arm | None:
    if not arm_code:
        return None
    for arm in trial.arms:
        if arm.code == arm_code:
            return arm
    known = ", ".join(a.code for a in trial.arms) or "none"
    raise InvalidInput(
        f"arm {arm_code!r} is not an arm of trial {trial.code} (arms: {known})",
        field="arm",
        pointer="/arm",
    )


SUBJECT_FIELDS = ("arm", "randomized_on", "died_on", "new_therapy_on")


def _refuse_existing_subject(session: Session, trial: Trial, code: str, field: str) -> None:
    """Refuse a subject id that the trial already has, pointing at ``field``."""
    if session.scalar(select(Subject.id).where(Subject.trial_id == trial.id, Subject.code == code)):
        raise Conflict(
            f"subject {code!r} already exists in trial {trial.code}",
            field=field,
            pointer=f"/{field}",
        )


def create_subject(
    session: Session,
    actor: Actor,
    trial_code: str,
    *,
    code: str,
    arm: str | None = None,
    randomized_on: Any = None,
    died_on: Any = None,
    new_therapy_on: Any = None,
) -> Subject:
    """Register a subject in a trial (no lesions yet; the baseline form adds them)."""
    _check_code(code, "subject id", "code")
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        _refuse_existing_subject(session, trial, code, "code")
        subject = Subject(
            trial=trial,
            code=code,
            arm=_arm(trial, arm),
            randomized_on=_parse_date(randomized_on, "randomized_on"),
            died_on=_parse_date(died_on, "died_on"),
            new_therapy_on=_parse_date(new_therapy_on, "new_therapy_on"),
        )
        _check_origin(subject)
        session.add(subject)
        audit = _Audit(session, actor, None)
        key = f"{trial_code}/{code}"
        audit.log("create", "subject", key)
        for name in SUBJECT_FIELDS:
            value = getattr(subject, name)
            if name == "arm":
                value = arm or None
            if value is not None:
                audit.log("create", "subject", key, name, None, value)
        _flush(session)
    return subject


def update_subject(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    values: dict[str, Any],
    expected_version: int | None = None,
    reason: str | None = None,
) -> Subject:
    """Change a subject's arm and dates (randomisation, death, new therapy)."""
    unknown = sorted(set(values) - set(SUBJECT_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown subject field {unknown[0]!r}; known: {', '.join(SUBJECT_FIELDS)}",
            field=unknown[0],
            pointer=f"/{unknown[0]}",
        )
    reason = _reason(reason)
    if expected_version is None:
        raise ConcurrentEdit(
            f"subject {subject_code}: send the subject's version (from GET) with the change, "
            "so that a concurrent edit is never overwritten",
            field="version",
            pointer="/version",
        )
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        if isinstance(expected_version, bool) or not isinstance(expected_version, int):
            raise InvalidInput(
                f"version {expected_version!r} is not a whole number",
                field="version",
                pointer="/version",
            )
        if expected_version != subject.version:
            raise ConcurrentEdit(
                f"subject {subject_code} was changed by someone else after you opened it "
                f"(version {subject.version}, yours {expected_version}); reload and redo "
                "your change",
                field="version",
                pointer="/version",
            )
        audit = _Audit(session, actor, reason)
        key = f"{trial_code}/{subject_code}"
        for name, raw in values.items():
            if name == "arm":
                new_arm = _arm(subject.trial, raw)
                old_code = subject.arm.code if subject.arm else None
                if audit.change("subject", key, "arm", old_code, raw or None):
                    subject.arm = new_arm
            else:
                new = _parse_date(raw, name)
                if audit.change("subject", key, name, getattr(subject, name), new):
                    setattr(subject, name, new)
        subject.updated_at = utcnow()
        _check_origin(subject)
        _recompute(subject)
        _flush(session)
    return subject


# --------------------------------------------------------------------------- baseline


BASELINE_KEYS = ("id", "date", "lesions", "version", "reason")
_LESION_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def baseline_lesions(items: Any, subject_code: str | None = None) -> list[Any]:
    """The ``lesions`` of a baseline entry (form or API), validated by the contract's
    model (``recist.jsonio.BaselineLesionIn``: a lesion plus its baseline ``size`` or
    ``state``), then the web's own storage rules: ids of 1–32 letters, digits, ``_`` or
    ``-``, used once, and a site of the controlled list."""
    from recist.jsonio import BaselineLesionIn

    if not isinstance(items, list):
        raise InvalidInput("lesions must be an array", field="lesions", pointer="/lesions")
    out = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        pointer = f"/lesions/{index}"
        named = item.get("id") if isinstance(item, dict) else None
        le = validated(
            BaselineLesionIn,
            item,
            subject=subject_code,
            lesion=named if isinstance(named, str) and named else f"#{index + 1}",
            base=("lesions", index),
        )
        if not _LESION_CODE.match(le.id):
            raise InvalidInput(
                f"lesion {index + 1}: id {le.id!r} must be 1–32 letters, digits, '_' or '-'",
                field="id",
                pointer=f"{pointer}/id",
            )
        if le.id in seen:
            raise InvalidInput(
                f"lesion {le.id}: the id is used twice", field="id", pointer=f"{pointer}/id"
            )
        seen.add(le.id)
        if le.site not in SITES:
            raise InvalidInput(
                f"lesion {le.id}: site {le.site!r} is not in the controlled list "
                f"({', '.join(SITES)})",
                field="site",
                pointer=f"{pointer}/site",
            )
        out.append(le)
    return out


def baseline_case(
    subject: Subject | None,
    *,
    date_value: Any,
    code: str,
    lesions: list[Any],
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A baseline-only case from validated baseline lesions (for the live findings and
    the save): the subject's randomisation date goes with it (R-PLAUS-BLWINDOW)."""
    from recist.errors import CaseInputError
    from recist.jsonio import baseline_timepoint, lesion_json

    try:
        timepoint = baseline_timepoint(lesions, code, date_value)
    except CaseInputError as error:
        index = next((i for i, le in enumerate(lesions) if le.id == error.lesion), None)
        raise InvalidInput(
            str(error),
            field=error.field,
            pointer=None if index is None else f"/lesions/{index}/{error.field}",
            rule=error.rule,
        ) from None
    case: dict[str, Any] = {
        "subject_id": subject.code if subject is not None else "new",
        "settings": _baseline_settings(subject, settings),
        "lesions": [lesion_json(le) for le in lesions],
        "timepoints": [timepoint],
    }
    if subject is not None and subject.randomized_on is not None:
        case["randomized_on"] = subject.randomized_on.isoformat()
    return case


def _baseline_settings(subject: Subject | None, settings: dict[str, Any] | None) -> dict[str, Any]:
    if settings is not None:
        return dict(settings)
    return dict(subject.trial.settings) if subject is not None else {}


def baseline_findings(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The R-MEAS/R-SEL findings the engine reports for a baseline-only case."""
    result = _engine_assess(case)
    return list(result.get("warnings") or [])


def save_baseline(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    date_value: Any,
    lesions: Any,
    code: str = "BL",
    expected_version: int | None = None,
    reason: str | None = None,
) -> Subject:
    """Select the baseline lesions and record their baseline sizes and states.

    The engine's findings (R-MEAS, R-SEL) do not block the save, but saving a baseline
    that has findings needs a ``reason``, which is kept in the audit trail.

    Raises
    ------
    ReasonRequired
        The baseline has findings and no reason was given (``details`` lists them).
    ConcurrentEdit
        The baseline was saved by someone else after ``expected_version``.
    InvalidInput
        Unknown site or kind, a target without a size, a date after a follow-up…
    """
    _check_code(code, "visit", "id")
    lesions = baseline_lesions(lesions, subject_code)
    bl_date = _parse_date(date_value, "date")
    if bl_date is None:
        raise InvalidInput("the baseline needs a date", field="date", pointer="/date")
    reason = _reason(reason)
    if not lesions:
        raise InvalidInput(
            "a baseline needs at least one lesion (R-SEL-3)", field="lesions", pointer="/lesions"
        )
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        try:
            findings = baseline_findings(
                baseline_case(subject, date_value=bl_date, code=code, lesions=lesions)
            )
        except InvalidInput as error:
            error.pointer = _baseline_pointer(error.pointer, lesions)
            raise
        if findings and reason is None:
            raise ReasonRequired(
                f"subject {subject_code}: the baseline breaks {len(findings)} selection rule(s) "
                f"({', '.join(sorted({f['rule'] for f in findings}))}); saving anyway needs a "
                "reason",
                field="reason",
                pointer="/reason",
                details=findings,
            )
        audit = _Audit(session, actor, reason)
        key = f"{trial_code}/{subject_code}"
        baseline = subject.timepoints[0] if subject.timepoints else None
        if baseline is not None:
            if expected_version is None:
                raise ConcurrentEdit(
                    f"subject {subject_code}: the baseline already exists (version "
                    f"{baseline.version}); open it, or send its version, to change it",
                    field="version",
                    pointer="/version",
                )
            _check_version(baseline, expected_version, subject_code)
            for signed in subject.timepoints:
                # Baseline lesions reach into every follow-up's records.
                check_unlocked(signed, subject_code)
            if len(subject.timepoints) > 1 and bl_date > subject.timepoints[1].date:
                first = subject.timepoints[1]
                raise InvalidInput(
                    f"subject {subject_code}: baseline date {bl_date.isoformat()} is after the "
                    f"follow-up {first.code} ({first.date.isoformat()}); dates must not go "
                    "backwards",
                    field="date",
                    pointer="/date",
                )
        elif expected_version is not None:
            raise ConcurrentEdit(
                f"subject {subject_code}: the baseline you edited no longer exists; reload",
                field="version",
                pointer="/version",
            )
        existing = {le.code: le for le in subject.lesions}
        wanted = {le.id for le in lesions}
        for old_code, old in existing.items():
            if old_code not in wanted:
                audit.log("delete", "lesion", f"{key}/{old_code}", None, old.kind, None)
                # Its records at every timepoint go with it (the database would cascade,
                # but the loaded timepoints must not keep assessing a deleted lesion).
                for tp in subject.timepoints:
                    for rec in [r for r in tp.records if r.lesion is old]:
                        tp.records.remove(rec)
                        session.delete(rec)
                subject.lesions.remove(old)
                session.delete(old)
        rows: dict[str, Lesion] = {}
        for position, le in enumerate(lesions):
            row = existing.get(le.id)
            lkey = f"{key}/{le.id}"
            if row is None:
                row = Lesion(code=le.id, position=position, kind=le.kind, site=le.site)
                subject.lesions.append(row)
                audit.log("create", "lesion", lkey)
            row.position = position
            _write_lesion(audit, lkey, row, le)
            rows[le.id] = row
        _flush(session)
        if baseline is None:
            baseline = Timepoint(code=code, date=bl_date)
            subject.timepoints.insert(0, baseline)
            audit.log("create", "timepoint", f"{key}/{code}", "date", None, bl_date)
        else:
            if audit.change("timepoint", f"{key}/{baseline.code}", "code", baseline.code, code):
                baseline.code = code
            if audit.change("timepoint", f"{key}/{code}", "date", baseline.date, bl_date):
                baseline.date = bl_date
        from recist.jsonio import baseline_timepoint

        timepoint = baseline_timepoint(lesions, code, bl_date)
        targets = _target_values(timepoint["targets"], subject_code, code)
        _write_records(
            session, audit, subject, baseline, rows, targets, timepoint["non_targets"], {}
        )
        _touch(baseline, actor)
        subject.updated_at = utcnow()
        _recompute(subject, focus=code)
        _flush(session)
    return subject


def _write_lesion(audit: _Audit, key: str, row: Lesion, le: Any) -> None:
    """A validated lesion (``recist.jsonio.LesionIn``) into its row, one audit record per
    changed field, with the values as stored (sizes in mm at the engine's precision)."""
    values: dict[str, Any] = {
        "kind": le.kind,
        "site": le.site,
        "nodal": le.nodal,
        "treated_on": le.treated_on,
        "treatment": le.treatment or None,
        "modality": le.modality or None,
    }
    for name, value in values.items():
        if audit.change("lesion", key, name, getattr(row, name, None), value):
            setattr(row, name, value)
    units = None if le.slice_thickness_mm is None else _units(le.slice_thickness_mm)
    old = None if row.slice_thickness_units is None else _mm(row.slice_thickness_units)
    if audit.change(
        "lesion", key, "slice_thickness_mm", old, None if units is None else _mm(units)
    ):
        row.slice_thickness_units = units


def _baseline_pointer(pointer: str | None, lesions: list[Any]) -> str | None:
    """Re-point an engine error on a baseline-only case into the baseline request body."""
    if pointer is None:
        return None
    index = {le.id: i for i, le in enumerate(lesions)}
    for group, field_name in (("targets", "size"), ("non_targets", "state")):
        prefix = f"/timepoints/0/{group}/"
        if pointer.startswith(prefix):
            code = pointer.removeprefix(prefix).split("/")[0].replace("~1", "/").replace("~0", "~")
            if code in index:
                return f"/lesions/{index[code]}/{field_name}"
    if pointer.startswith("/timepoints/0/"):
        return "/" + pointer.removeprefix("/timepoints/0/")
    return pointer


def _check_version(tp: Timepoint, expected: Any, subject_code: str) -> None:
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        raise InvalidInput(
            f"version {expected!r} is not a whole number", field="version", pointer="/version"
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


class Locked(ServiceError):
    """The read was signed and is locked; it must be unlocked (with a reason) first."""

    status = 409
    code = "locked"


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


def _touch(tp: Timepoint, actor: Actor) -> None:
    # Changing a column makes the ORM issue the UPDATE that bumps the version
    # (version_id_col), so a save that only changed child rows still moves the version.
    tp.updated_at = utcnow()
    tp.updated_by = actor.username


def _flush(session: Session) -> None:
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


# --------------------------------------------------------------------------- timepoints


def _target_values(raw: dict[str, Any], subject_code: str, tp_code: str) -> dict[str, Any]:
    """A timepoint's target values as the engine's ``TargetValue`` (R-EXACT), each
    checked by the contract (``recist.jsonio.target_value``), the error naming where."""
    from recist.errors import CaseInputError
    from recist.jsonio import target_value

    out = {}
    for code, value in raw.items():
        try:
            out[code] = target_value(value)
        except CaseInputError as error:
            error.located(subject=subject_code, timepoint=tp_code, lesion=code)
            error.field = f"targets.{code}"
            raise InvalidInput(
                str(error),
                field=f"targets.{code}",
                pointer=f"/targets/{_escape(code)}",
                rule=error.rule,
            ) from None
    return out


def _write_records(
    session: Session,
    audit: _Audit,
    subject: Subject,
    tp: Timepoint,
    rows: dict[str, Lesion],
    targets: dict[str, Any],
    non_targets: dict[str, str],
    scan_dates: dict[str, date],
) -> None:
    """Store a timepoint's validated records: ``targets`` maps a lesion id to the engine's
    ``TargetValue``; ``non_targets`` to a validated state. The audit trail gets the value
    as stored, in the contract's canonical form."""
    from recist.jsonio import target_to_json
    from recist.lesions import TargetState

    key = f"{subject.trial.code}/{subject.code}/{tp.code}"
    by_lesion = {rec.lesion_id: rec for rec in tp.records}
    kept: list[LesionRecord] = []
    groups: tuple[tuple[str, dict[str, Any]], ...] = (
        ("targets", targets),
        ("non_targets", non_targets),
    )
    for group, values in groups:
        for code, value in values.items():
            lesion = rows.get(code)
            want_kind = "target" if group == "targets" else "non-target"
            if lesion is None or lesion.kind != want_kind:
                raise InvalidInput(
                    f"subject {subject.code}, timepoint {tp.code}: {code!r} is not a "
                    f"{want_kind} lesion of this subject",
                    field=f"{group}.{code}",
                    pointer=f"/{group}/{_escape(code)}",
                )
            if group == "targets":
                columns = {
                    "state": value.state.value,
                    "size_units": value.size if value.state is TargetState.MEASURED else None,
                    "fragments_units": list(value.fragments)
                    if value.state is TargetState.FRAGMENTS
                    else None,
                    "merged_into": value.merged_into,
                }
                shown = target_to_json(value)
            else:
                columns = {
                    "state": value,
                    "size_units": None,
                    "fragments_units": None,
                    "merged_into": None,
                }
                shown = value
            columns["scan_date"] = scan_dates.get(code)
            rec = by_lesion.get(lesion.id)
            if rec is None:
                rec = LesionRecord(lesion=lesion, **columns)
                tp.records.append(rec)
                kept.append(rec)
                audit.log("create", "measurement", f"{key}/{code}", group, None, shown)
                continue
            old = _target_value(rec) if group == "targets" else rec.state
            audit.change("measurement", f"{key}/{code}", group, old, shown)
            if rec.scan_date != columns["scan_date"]:
                audit.change(
                    "measurement", f"{key}/{code}", "scan_date", rec.scan_date, columns["scan_date"]
                )
            for name, col in columns.items():
                setattr(rec, name, col)
            kept.append(rec)
    for rec in list(tp.records):
        if not any(rec is k for k in kept):
            code = rec.lesion.code
            audit.log("delete", "measurement", f"{key}/{code}", None, rec.state, None)
            tp.records.remove(rec)
            session.delete(rec)


def _new_lesion_rows(model: Any) -> list[dict[str, Any]]:
    """A validated timepoint's new lesions (``recist.jsonio.NewLesionIn``) as row values;
    the web adds one rule of its own: the site comes from the controlled list."""
    out = []
    for index, item in enumerate(model.new_lesions):
        pointer = f"/new_lesions/{index}/site"
        field_name = f"new_lesions.{item.id}.site"
        if not item.site:
            raise InvalidInput(
                f"timepoint {model.id}: new lesion {item.id} needs its site",
                field=field_name,
                pointer=pointer,
            )
        if item.site not in SITES:
            raise InvalidInput(
                f"timepoint {model.id}: new lesion {item.id}: site {item.site!r} is not in the "
                "controlled list",
                field=field_name,
                pointer=pointer,
            )
        out.append(
            {
                "id": item.id,
                "site": item.site,
                "equivocal": item.equivocal,
                "nodal": item.nodal,
                "short_axis_units": None
                if item.short_axis_mm is None
                else _units(item.short_axis_mm),
            }
        )
    return out


TIMEPOINT_KEYS = ("id", "date", "targets", "non_targets", "new_lesions", "scan_dates", "version")


def save_timepoint(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    data: dict[str, Any],
    *,
    expected_version: int | None = None,
    original_code: str | None = None,
    reason: str | None = None,
    imaging: dict[str, Any] | None = None,
) -> tuple[Subject, Timepoint]:
    """Create or update a follow-up timepoint and recompute the subject's assessment.

    Parameters
    ----------
    data
        A timepoint of the case contract: ``id``, ``date``, ``targets``, ``non_targets``,
        ``new_lesions`` and optional ``scan_dates``.
    expected_version
        The version of the timepoint the caller loaded; required to change an existing
        timepoint, so that a concurrent save is refused instead of overwritten.
    original_code
        The timepoint's current id when the edit renames it.
    imaging
        What imaging_io measured when the form was pre-filled from an uploaded study
        (``{"image": …, "lesions": {id: {"mm": …, …}}}``), kept beside the reader's values
        as the evidence reviewers open; ``None`` keeps what is stored.

    Raises
    ------
    ConcurrentEdit
        The timepoint changed since ``expected_version``, or it exists and no version was
        given.
    InvalidInput
        Malformed values, unknown lesions, or anything the engine refuses (dates going
        backwards, a merge into a non-target…), naming the field.
    """
    from recist.jsonio import TimepointIn

    if not isinstance(data, dict):
        raise InvalidInput("a timepoint must be a JSON object", pointer="")
    body = {k: v for k, v in data.items() if k != "version"}
    model = validated(TimepointIn, body, subject=subject_code, timepoint=body.get("id"))
    code = _check_code(model.id, "visit", "id")
    tp_date = _plausible_date(model.date, "date")
    targets = _target_values(model.targets, subject_code, code)
    non_targets = dict(model.non_targets)
    new_items = _new_lesion_rows(model)
    scan_dates = {k: _plausible_date(v, f"scan_dates.{k}") for k, v in model.scan_dates.items()}
    reason = _reason(reason)
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        if not subject.timepoints:
            raise InvalidInput(
                f"subject {subject_code} has no baseline yet; enter the baseline first (R-SEL-3)",
                field="timepoint",
            )
        key = f"{trial_code}/{subject_code}"
        lookup = original_code or code
        tp = next((t for t in subject.timepoints if t.code == lookup), None)
        if tp is not None:
            check_unlocked(tp, subject_code)
        touched = tp_date if tp is None else min(tp_date, tp.date)
        check_no_later_lock(subject, tp, touched, code, subject_code)
        audit = _Audit(session, actor, reason)
        baseline = subject.timepoints[0]
        if tp is not baseline and tp_date < baseline.date:
            # Timepoints are ordered by date: an earlier follow-up would become the baseline.
            raise InvalidInput(
                f"subject {subject_code}, timepoint {code}: date {tp_date.isoformat()} is "
                f"before the baseline {baseline.code} ({baseline.date.isoformat()}); dates "
                "must not go backwards",
                field="date",
                pointer="/date",
            )
        twin = next((t for t in subject.timepoints if t is not tp and t.date == tp_date), None)
        if twin is not None:
            # One date is one assessment: two timepoints on it would order arbitrarily,
            # and their lesions belong in one read (scan_dates keep other scan days).
            raise InvalidInput(
                f"subject {subject_code}, timepoint {code}: {twin.code} is already dated "
                f"{tp_date.isoformat()}; enter this visit's lesions in {twin.code}, or "
                "correct the date",
                field="date",
                pointer="/date",
            )
        if tp is not None and tp is baseline:
            raise InvalidInput(
                f"subject {subject_code}: {lookup} is the baseline; edit it with the baseline form",
                field="id",
                pointer="/id",
            )
        if tp is None:
            if original_code is not None or expected_version is not None:
                raise ConcurrentEdit(
                    f"subject {subject_code}: timepoint {lookup} no longer exists (deleted or "
                    "renamed after you opened it); reload",
                    field="version",
                    pointer="/version",
                )
            tp = Timepoint(code=code, date=tp_date)
            subject.timepoints.append(tp)
            audit.log("create", "timepoint", f"{key}/{code}", "date", None, tp_date)
        else:
            if expected_version is None:
                raise ConcurrentEdit(
                    f"subject {subject_code}: timepoint {code} already exists (version "
                    f"{tp.version}); open it from the grid, or send its version, to change it",
                    field="version",
                    pointer="/version",
                )
            _check_version(tp, expected_version, subject_code)
            if code != tp.code and any(t.code == code for t in subject.timepoints):
                raise Conflict(
                    f"subject {subject_code}: timepoint {code} already exists; choose another "
                    "visit id",
                    field="id",
                    pointer="/id",
                )
            if audit.change("timepoint", f"{key}/{lookup}", "id", tp.code, code):
                tp.code = code
            if audit.change("timepoint", f"{key}/{code}", "date", tp.date, tp_date):
                tp.date = tp_date
        rows = {le.code: le for le in subject.lesions}
        for lesion_code in scan_dates:
            if lesion_code not in rows and lesion_code not in {n["id"] for n in new_items}:
                raise InvalidInput(
                    f"timepoint {code}: scan_dates names {lesion_code!r}, which is neither a "
                    "lesion of this subject nor a new lesion of this timepoint",
                    field=f"scan_dates.{lesion_code}",
                    pointer=f"/scan_dates/{_escape(lesion_code)}",
                )
        _write_records(session, audit, subject, tp, rows, targets, non_targets, scan_dates)
        old_new = {nl.code: nl for nl in tp.new_lesions}
        for item in new_items:
            nkey = f"{key}/{code}/{item['id']}"
            if item["id"] in rows:
                raise InvalidInput(
                    f"timepoint {code}: new lesion {item['id']!r} reuses the id of a baseline "
                    "lesion",
                    field="new_lesions",
                    pointer="/new_lesions",
                )
            row = old_new.pop(item["id"], None)
            if row is None:
                row = NewLesion(code=item["id"], site=item["site"])
                tp.new_lesions.append(row)
                audit.log("create", "new_lesion", nkey)
            for name in ("site", "equivocal", "nodal"):
                if audit.change("new_lesion", nkey, name, getattr(row, name, None), item[name]):
                    setattr(row, name, item[name])
            units = item["short_axis_units"]
            old_sa = None if row.short_axis_units is None else _mm(row.short_axis_units)
            if audit.change(
                "new_lesion", nkey, "short_axis_mm", old_sa, None if units is None else _mm(units)
            ):
                row.short_axis_units = units
            row.scan_date = scan_dates.get(item["id"])
        for gone in old_new.values():
            audit.log("delete", "new_lesion", f"{key}/{code}/{gone.code}", None, gone.site, None)
            tp.new_lesions.remove(gone)
            session.delete(gone)
        _touch(tp, actor)
        subject.updated_at = utcnow()
        # One flush, after the engine accepted the case: a refusal writes nothing.
        if imaging is not None and audit.change(
            "timepoint", f"{key}/{code}", "imaging", tp.imaging_json, imaging
        ):
            tp.imaging_json = imaging
        _recompute(subject, focus=code)
        _flush(session)
    return subject, tp


def delete_timepoint(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    code: str,
    *,
    expected_version: int | None,
    reason: str | None,
) -> Subject:
    """Remove a follow-up timepoint (with a reason), then reassess."""
    if not (reason or "").strip():
        raise InvalidInput("deleting a timepoint needs a reason", field="reason", pointer="/reason")
    if expected_version is None:
        raise InvalidInput(
            "deleting a timepoint needs its version (from GET), so that a concurrent edit is "
            "never deleted unseen",
            field="version",
            pointer="/version",
        )
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        tp = get_timepoint(subject, code)
        check_unlocked(tp, subject_code)
        check_no_later_lock(subject, tp, tp.date, code, subject_code)
        if tp is subject.timepoints[0] and len(subject.timepoints) > 1:
            raise InvalidInput(
                f"subject {subject_code}: the baseline cannot be deleted while follow-ups exist",
                field="id",
            )
        _check_version(tp, expected_version, subject_code)
        audit = _Audit(session, actor, reason)
        key = f"{trial_code}/{subject_code}/{code}"
        audit.log("delete", "timepoint", key, None, tp.date, None)
        # What the read held goes into the trail with it: a deleted read must stay
        # reconstructible from the audit trail alone.
        for rec in tp.records:
            group = "targets" if rec.lesion.kind == "target" else "non_targets"
            old = _target_value(rec) if group == "targets" else rec.state
            audit.log("delete", "measurement", f"{key}/{rec.lesion.code}", group, old, None)
        for new in tp.new_lesions:
            audit.log(
                "delete",
                "new_lesion",
                f"{key}/{new.code}",
                "new_lesions",
                {
                    "site": new.site,
                    "equivocal": new.equivocal,
                    "nodal": new.nodal,
                    "short_axis_mm": None
                    if new.short_axis_units is None
                    else _mm(new.short_axis_units),
                },
                None,
            )
        subject.timepoints.remove(tp)
        session.delete(tp)
        subject.updated_at = utcnow()
        _flush(session)
        _recompute(subject)
        _flush(session)
    return subject


def timepoint_as_dict(subject: Subject, tp: Timepoint) -> dict[str, Any]:
    """A stored timepoint in the case contract's shape, with its version."""
    for item in build_case(subject)["timepoints"]:
        if item["id"] == tp.code:
            return {**item, "version": tp.version}
    raise NotFound(f"timepoint {tp.code} not found")  # pragma: no cover - defensive


# --------------------------------------------------------------------------- import


def controlled_site(raw: str, *, nodal: bool, lesion: str, pointer: str) -> str:
    """A site of the controlled list for an imported lesion, or a refusal naming it.

    Case-insensitive; a paired organ or a node given another way ("left lung", "renal")
    becomes the organ R-SEL-2 counts it towards (``recist.baseline.organ_of``). Anything
    else is refused rather than silently filed under "other".
    """
    from recist.baseline import organ_of
    from recist.lesions import Lesion as EngineLesion
    from recist.lesions import LesionKind

    site = raw.strip().lower()
    if site in SITES:
        return site
    organ = organ_of(EngineLesion(lesion or "?", site, LesionKind.TARGET, nodal=nodal))
    if organ in SITES:
        return organ
    raise InvalidInput(
        f"lesion {lesion}: site {raw!r} is not in the controlled list ({', '.join(SITES)})",
        field="site",
        pointer=pointer,
    )


def import_case(session: Session, actor: Actor, trial_code: str, case: dict[str, Any]) -> Subject:
    """Create a subject with all its lesions and timepoints from a case dict, at once.

    Used by the demo seed, the benchmark and ``POST …/cases``. The case is validated by the
    contract's model (``recist.jsonio.CaseIn``) and assessed by the engine before anything
    is written; the rows are written from the validated values, and the audit trail keeps
    the case as stored (its canonical JSON, read back from the rows).
    """
    from recist.jsonio import CaseIn

    if not isinstance(case, dict):
        raise InvalidInput("a case must be a JSON object", pointer="")
    model = validated(
        CaseIn,
        case,
        subject=case["subject_id"] if isinstance(case.get("subject_id"), str) else None,
    )
    _engine_assess(case)
    code = _check_code(model.subject_id, "subject id", "subject_id")
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        _refuse_existing_subject(session, trial, code, "subject_id")
        if "settings" in case and _check_settings(case["settings"]) != _check_settings(
            trial.settings
        ):
            # A stored subject is assessed with its trial's protocol: a case carrying other
            # settings would get another answer here than from ``recist assess``.
            raise InvalidInput(
                f"subject {code}: the case's settings differ from trial {trial_code}'s "
                f"protocol settings ({json.dumps(trial.settings, sort_keys=True)}); send the "
                "trial's settings or none",
                field="settings",
                pointer="/settings",
            )
        subject = Subject(
            trial=trial,
            code=code,
            arm=_arm(trial, model.arm),
            randomized_on=model.randomized_on,
            died_on=model.died_on,
            new_therapy_on=model.new_therapy_on,
        )
        session.add(subject)
        audit = _Audit(session, actor, "imported from a case file")
        key = f"{trial_code}/{code}"
        # The rows' values need no per-field records: the whole case is one record below.
        silent = _Audit(session, actor, None, enabled=False)
        rows: dict[str, Lesion] = {}
        for position, item in enumerate(model.lesions):
            site = controlled_site(
                item.site, nodal=item.nodal, lesion=item.id, pointer=f"/lesions/{position}/site"
            )
            row = Lesion(code=item.id, position=position, kind=item.kind, site=site)
            _write_lesion(silent, f"{key}/{item.id}", row, item)
            row.site = site
            subject.lesions.append(row)
            rows[row.code] = row
        for tp_item in model.timepoints:
            tp = Timepoint(code=tp_item.id, date=tp_item.date)
            tp.updated_by = actor.username
            subject.timepoints.append(tp)
            scans = dict(tp_item.scan_dates)
            targets = _target_values(tp_item.targets, code, tp_item.id)
            _write_records(
                session, silent, subject, tp, rows, targets, dict(tp_item.non_targets), scans
            )
            for nl in tp_item.new_lesions:
                tp.new_lesions.append(
                    NewLesion(
                        code=nl.id,
                        site=controlled_site(nl.site, nodal=nl.nodal, lesion=nl.id, pointer=""),
                        equivocal=nl.equivocal,
                        nodal=nl.nodal,
                        short_axis_units=None
                        if nl.short_axis_mm is None
                        else _units(nl.short_axis_mm),
                        scan_date=scans.get(nl.id),
                    )
                )
        _flush(session)
        _recompute(subject)
        audit.log("create", "subject", key, "case", None, build_case(subject))
        _flush(session)
    return subject


# --------------------------------------------------------------------------- users


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", field="role")
    return role


def create_user(session: Session, actor: Actor, *, username: str, password: str, role: str) -> User:
    """Add a user with a scrypt password hash (werkzeug)."""
    _check_code(username, "user name", "username")
    _check_role(role)
    if len(password) < 10:
        raise InvalidInput("a password needs at least 10 characters", field="password")
    with write_transaction(session):
        if session.scalar(select(User.id).where(User.username == username)):
            raise Conflict(f"user {username!r} already exists", field="username")
        user = User(
            username=username,
            password_hash=generate_password_hash(password, method="scrypt"),
            role=role,
        )
        session.add(user)
        _Audit(session, actor, None).log("create", "user", username, "role", None, role)
    return user


def set_password(session: Session, actor: Actor, *, username: str, password: str) -> None:
    if len(password) < 10:
        raise InvalidInput("a password needs at least 10 characters", field="password")
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} does not exist", field="username")
        user.password_hash = generate_password_hash(password, method="scrypt")
        _Audit(session, actor, None).log("update", "user", username, "password", None, "(changed)")


MAX_FAILED_LOGINS = 5  # consecutive failures that lock an account …
LOGIN_LOCK = timedelta(minutes=15)  # … for this long (slows password guessing)


def authenticate(
    session: Session, username: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The active user with this name and password, else ``None``.

    Every failure looks the same to the caller (unknown name, wrong password, inactive
    or locked account) and costs one scrypt check, so that neither the answer nor its
    timing tells which user names exist. ``MAX_FAILED_LOGINS`` consecutive failures lock
    the account for ``LOGIN_LOCK``; the lock is written to the audit trail.
    """
    now = now or utcnow()
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username).with_for_update())
        if user is None or not user.active or _after(user.locked_until, now):
            check_password_hash(_dummy_hash(), password)
            return None
        if check_password_hash(user.password_hash, password):
            if user.failed_logins or user.locked_until is not None:
                user.failed_logins = 0
                user.locked_until = None
            return user
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.failed_logins = 0
            user.locked_until = now + LOGIN_LOCK
            _Audit(session, Actor(username, user.role), "too many failed logins").log(
                "lock", "user", username, "locked_until", None, user.locked_until.isoformat()
            )
        return None


def _after(moment: datetime | None, now: datetime) -> bool:
    """Whether ``moment`` is still in the future (SQLite returns naive UTC datetimes)."""
    if moment is None:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment > now


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("not a password", method="scrypt")


def create_token(session: Session, actor: Actor, *, username: str, name: str) -> str:
    """Create an API token for a user; the token is returned once, only its hash kept."""
    token = secrets.token_urlsafe(32)
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} does not exist", field="username")
        session.add(ApiToken(user=user, name=name, token_sha256=_sha256(token)))
        _Audit(session, actor, None).log("create", "api_token", f"{username}/{name}")
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(
        select(ApiToken)
        .where(ApiToken.token_sha256 == _sha256(token), ApiToken.revoked.is_(False))
        .options(selectinload(ApiToken.user))
    )
    if row is None or not row.user.active:
        return None
    return row.user


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
