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
    NON_TARGET_STATES,
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

    try:
        return assess_json(case)
    except RecistError as error:
        raise InvalidInput(
            str(error), field=error.field, pointer=case_pointer(case, error), rule=error.rule
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


# No lesion is a metre across: a larger value is a unit or typing slip (µm, an extra digit)
# that would otherwise pass as a huge progression and flatten every plot of the trial.
MAX_PLAUSIBLE_MM = 1000


def _tenths(value: Any, where: str, *, label: str | None = None, pointer: str | None = None) -> int:
    """mm → integer tenths (R-EXACT), refusing what is not a finite size ≥ 0 or is not a
    plausible lesion size. ``where`` is the field, ``label`` names it for people."""
    from recist.errors import CaseInputError
    from recist.lesions import mm_to_tenths

    named = f"{label}:" if label else where
    try:
        tenths = mm_to_tenths(value, where=named)
    except CaseInputError as error:
        raise InvalidInput(str(error), field=where, pointer=pointer) from None
    if tenths > MAX_PLAUSIBLE_MM * 10:
        raise InvalidInput(
            f"{named} {value} mm is not a plausible lesion size (more than {MAX_PLAUSIBLE_MM} "
            "mm); sizes are entered in millimetres",
            field=where,
            pointer=pointer,
        )
    return tenths


def _mm(tenths: int) -> float:
    return tenths / 10


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
        if le.slice_thickness_tenths is not None:
            item["slice_thickness_mm"] = _mm(le.slice_thickness_tenths)
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
                if nl.short_axis_tenths is not None:
                    new_item["short_axis_mm"] = _mm(nl.short_axis_tenths)
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
    if rec.state == "measured":
        return _mm(rec.size_tenths or 0)
    if rec.state == "fragments":
        return {"fragments": [_mm(t) for t in rec.fragments_tenths or []]}
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
    from recist.errors import RecistError
    from recist.settings import Settings

    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InvalidInput("settings must be an object", field="settings", pointer="/settings")
    try:
        return Settings.from_dict(values).to_dict()
    except RecistError as error:
        raise InvalidInput(
            str(error),
            field=error.field,
            pointer="/" + (error.field or "settings").replace(".", "/"),
        ) from None
    except TypeError as error:
        raise InvalidInput(f"settings: {error}", field="settings", pointer="/settings") from None


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
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field_name} {value!r} is not a date (YYYY-MM-DD)",
            field=field_name,
            pointer=pointer or f"/{field_name}",
        )
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field_name} {value!r} is not a date (YYYY-MM-DD)",
            field=field_name,
            pointer=pointer or f"/{field_name}",
        ) from None


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
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        if expected_version is not None and (
            isinstance(expected_version, bool) or not isinstance(expected_version, int)
        ):
            raise InvalidInput(
                f"version {expected_version!r} is not a whole number",
                field="version",
                pointer="/version",
            )
        if expected_version is not None and expected_version != subject.version:
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
        _recompute(subject)
        _flush(session)
    return subject


# --------------------------------------------------------------------------- baseline


@dataclass
class LesionInput:
    """One baseline lesion as entered: size in mm (LD, or SA for a node)."""

    code: str
    kind: str
    site: str
    nodal: bool = False
    size: Any = None  # mm, or "too_small" for a target (R-SMALL)
    state: str | None = None  # non-target state at baseline (default "present")
    treated_on: Any = None
    treatment: str | None = None
    modality: str | None = None
    slice_thickness_mm: Any = None


def lesions_from_json(items: Any) -> list[LesionInput]:
    """Parse the ``lesions`` array of a baseline request (API)."""
    if not isinstance(items, list):
        raise InvalidInput("lesions must be an array", field="lesions", pointer="/lesions")
    out = []
    allowed = {f for f in LesionInput.__dataclass_fields__} | {"id"}
    for index, item in enumerate(items):
        pointer = f"/lesions/{index}"
        if not isinstance(item, dict):
            raise InvalidInput("a lesion must be an object", field="lesions", pointer=pointer)
        extra = sorted(set(item) - allowed - {"code"})
        if extra:
            raise InvalidInput(
                f"lesion {index}: unknown key {extra[0]!r}",
                field=extra[0],
                pointer=f"{pointer}/{_escape(extra[0])}",
            )
        code = item.get("id", item.get("code"))
        code = code if isinstance(code, str) else ""
        out.append(
            LesionInput(
                code=code,
                kind=item.get("kind", ""),
                site=item.get("site", ""),
                nodal=bool(item.get("nodal", False)),
                size=item.get("size"),
                state=item.get("state"),
                treated_on=item.get("treated_on"),
                treatment=item.get("treatment"),
                modality=item.get("modality"),
                slice_thickness_mm=item.get("slice_thickness_mm"),
            )
        )
    return out


def _check_lesions(lesions: list[LesionInput]) -> None:
    seen: set[str] = set()
    for index, le in enumerate(lesions):
        pointer = f"/lesions/{index}"
        if not isinstance(le.code, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", le.code):
            raise InvalidInput(
                f"lesion {index + 1}: id {le.code!r} must be 1–32 letters or digits",
                field="id",
                pointer=f"{pointer}/id",
            )
        if le.code in seen:
            raise InvalidInput(
                f"lesion {le.code}: the id is used twice", field="id", pointer=f"{pointer}/id"
            )
        seen.add(le.code)
        if le.kind not in ("target", "non-target"):
            raise InvalidInput(
                f"lesion {le.code}: kind {le.kind!r} must be 'target' or 'non-target'",
                field="kind",
                pointer=f"{pointer}/kind",
            )
        if le.site not in SITES:
            raise InvalidInput(
                f"lesion {le.code}: site {le.site!r} is not in the controlled list "
                f"({', '.join(SITES)})",
                field="site",
                pointer=f"{pointer}/site",
            )
        if le.kind == "target" and le.size in (None, ""):
            raise InvalidInput(
                f"lesion {le.code}: a target needs its baseline size in mm (R-SEL-3)",
                field="size",
                pointer=f"{pointer}/size",
            )
        if le.kind == "non-target" and le.state not in (None, "", *NON_TARGET_STATES):
            raise InvalidInput(
                f"lesion {le.code}: state {le.state!r} is not one of "
                f"{', '.join(NON_TARGET_STATES)}",
                field="state",
                pointer=f"{pointer}/state",
            )


def baseline_case(
    subject: Subject | None,
    *,
    date_value: Any,
    code: str,
    lesions: list[LesionInput],
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A baseline-only case dict from form input (for live findings and checks)."""
    case_lesions = []
    targets: dict[str, Any] = {}
    non_targets: dict[str, Any] = {}
    for le in lesions:
        item: dict[str, Any] = {"id": le.code, "site": le.site, "kind": le.kind}
        item["nodal"] = le.nodal
        if le.treated_on:
            item["treated_on"] = le.treated_on
        if le.treatment:
            item["treatment"] = le.treatment
        if le.modality:
            item["modality"] = le.modality
        if le.slice_thickness_mm not in (None, ""):
            item["slice_thickness_mm"] = le.slice_thickness_mm
        case_lesions.append(item)
        if le.kind == "target":
            targets[le.code] = le.size
        else:
            non_targets[le.code] = le.state or "present"
    return {
        "subject_id": subject.code if subject is not None else "new",
        "settings": _baseline_settings(subject, settings),
        "lesions": case_lesions,
        "timepoints": [
            {
                "id": code,
                "date": date_value.isoformat() if isinstance(date_value, date) else date_value,
                "targets": targets,
                "non_targets": non_targets,
                "new_lesions": [],
            }
        ],
    }


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
    lesions: list[LesionInput],
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
    _check_lesions(lesions)
    bl_date = _parse_date(date_value, "date")
    if bl_date is None:
        raise InvalidInput("the baseline needs a date", field="date", pointer="/date")
    if not lesions:
        raise InvalidInput(
            "a baseline needs at least one lesion (R-SEL-3)", field="lesions", pointer="/lesions"
        )
    reason = (reason or "").strip() or None
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
        wanted = {le.code for le in lesions}
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
            row = existing.get(le.code)
            lkey = f"{key}/{le.code}"
            if row is None:
                row = Lesion(code=le.code, position=position, kind=le.kind, site=le.site)
                subject.lesions.append(row)
                audit.log("create", "lesion", lkey)
            new_values = {
                "kind": le.kind,
                "site": le.site,
                "nodal": le.nodal,
                "treated_on": _parse_date(le.treated_on, "treated_on"),
                "treatment": le.treatment or None,
                "modality": (le.modality or "").upper() or None,
                "slice_thickness_tenths": _tenths(le.slice_thickness_mm, "slice_thickness_mm")
                if le.slice_thickness_mm not in (None, "")
                else None,
            }
            row.position = position
            for name, value in new_values.items():
                if audit.change("lesion", lkey, name, getattr(row, name, None), value):
                    setattr(row, name, value)
            rows[le.code] = row
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
        targets = {le.code: le.size for le in lesions if le.kind == "target"}
        non_targets = {le.code: le.state or "present" for le in lesions if le.kind != "target"}
        _write_records(session, audit, subject, baseline, rows, targets, non_targets, {})
        _touch(baseline, actor)
        subject.updated_at = utcnow()
        _recompute(subject, focus=code)
        _flush(session)
    return subject


def _baseline_pointer(pointer: str | None, lesions: list[LesionInput]) -> str | None:
    """Re-point an engine error on a baseline-only case into the baseline request body."""
    if pointer is None:
        return None
    index = {le.code: i for i, le in enumerate(lesions)}
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


def _target_record(code: str, value: Any, pointer: str, label: str) -> dict[str, Any]:
    """A contract target value → LesionRecord columns (refusing malformed values)."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float):
        size = _tenths(value, f"targets.{code}", label=label, pointer=pointer)
        return {"state": "measured", "size_tenths": size}
    elif isinstance(value, str) and value in ("too_small", "absent", "not_evaluated"):
        return {"state": value}
    elif isinstance(value, dict) and set(value) == {"fragments"}:
        parts = value["fragments"]
        if isinstance(parts, list) and parts:
            return {
                "state": "fragments",
                "fragments_tenths": [
                    _tenths(p, f"targets.{code}.fragments", label=f"{label}, fragment")
                    for p in parts
                ],
            }
    elif isinstance(value, dict) and set(value) == {"merged_into"}:
        if isinstance(value["merged_into"], str):
            return {"state": "merged", "merged_into": value["merged_into"]}
    raise InvalidInput(
        f"target {code}: {value!r} is not a size in mm, 'too_small', 'absent', "
        "'not_evaluated', {'fragments': [mm, …]} or {'merged_into': id}",
        field=f"targets.{code}",
        pointer=pointer,
    )


def _write_records(
    session: Session,
    audit: _Audit,
    subject: Subject,
    tp: Timepoint,
    rows: dict[str, Lesion],
    targets: dict[str, Any],
    non_targets: dict[str, Any],
    scan_dates: dict[str, date],
) -> None:
    key = f"{subject.trial.code}/{subject.code}/{tp.code}"
    by_lesion = {rec.lesion_id: rec for rec in tp.records}
    kept: list[LesionRecord] = []
    for group, values in (("targets", targets), ("non_targets", non_targets)):
        for code, value in values.items():
            pointer = f"/{group}/{_escape(code)}"
            lesion = rows.get(code)
            want_kind = "target" if group == "targets" else "non-target"
            if lesion is None or lesion.kind != want_kind:
                raise InvalidInput(
                    f"subject {subject.code}, timepoint {tp.code}: {code!r} is not a "
                    f"{want_kind} lesion of this subject",
                    field=f"{group}.{code}",
                    pointer=pointer,
                )
            if group == "targets":
                columns = _target_record(
                    code,
                    value,
                    pointer,
                    f"subject {subject.code}, timepoint {tp.code}, target {code}",
                )
                shown = value
            else:
                if value not in NON_TARGET_STATES:
                    raise InvalidInput(
                        f"non-target {code}: {value!r} is not one of "
                        f"{', '.join(NON_TARGET_STATES)}",
                        field=f"non_targets.{code}",
                        pointer=pointer,
                    )
                columns = {"state": value}
                shown = value
            columns = {
                "state": columns["state"],
                "size_tenths": columns.get("size_tenths"),
                "fragments_tenths": columns.get("fragments_tenths"),
                "merged_into": columns.get("merged_into"),
                "scan_date": scan_dates.get(code),
            }
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


def _new_lesions(items: Any, tp_code: str) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidInput(
            "new_lesions must be an array", field="new_lesions", pointer="/new_lesions"
        )
    out = []
    for index, item in enumerate(items):
        pointer = f"/new_lesions/{index}"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise InvalidInput(
                f"timepoint {tp_code}: new lesion {index + 1} needs an id",
                field="new_lesions",
                pointer=pointer,
            )
        extra = sorted(set(item) - {"id", "site", "equivocal", "nodal", "short_axis_mm"})
        if extra:
            raise InvalidInput(
                f"timepoint {tp_code}: new lesion {item['id']}: unknown key {extra[0]!r}",
                field=f"new_lesions.{extra[0]}",
                pointer=f"{pointer}/{_escape(extra[0])}",
            )
        site = item.get("site", "") or ""
        if not site:
            raise InvalidInput(
                f"timepoint {tp_code}: new lesion {item['id']} needs its site",
                field="new_lesions.site",
                pointer=f"{pointer}/site",
            )
        if site not in SITES:
            raise InvalidInput(
                f"timepoint {tp_code}: new lesion {item['id']}: site {site!r} is not in the "
                "controlled list",
                field="new_lesions.site",
                pointer=f"{pointer}/site",
            )
        equivocal = item.get("equivocal", False)
        if not isinstance(equivocal, bool):
            raise InvalidInput(
                f"timepoint {tp_code}: new lesion {item['id']}: equivocal must be true or false",
                field="new_lesions.equivocal",
                pointer=f"{pointer}/equivocal",
            )
        nodal = bool(item.get("nodal", False))
        short_axis = item.get("short_axis_mm")
        if nodal and short_axis in (None, "") and not equivocal:
            raise InvalidInput(
                f"timepoint {tp_code}: new lesion {item['id']} is a lymph node: give its "
                "short_axis_mm (R-NEW-1: a new node is progression only at a short axis "
                "≥ 10 mm)",
                field="new_lesions.short_axis_mm",
                pointer=f"{pointer}/short_axis_mm",
            )
        out.append(
            {
                "id": item["id"],
                "site": site,
                "equivocal": equivocal,
                "nodal": nodal,
                "short_axis_tenths": _tenths(
                    short_axis,
                    f"new_lesions.{item['id']}.short_axis_mm",
                    label=f"timepoint {tp_code}, new lesion {item['id']}, short axis",
                    pointer=f"{pointer}/short_axis_mm",
                )
                if short_axis not in (None, "")
                else None,
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
    if not isinstance(data, dict):
        raise InvalidInput("a timepoint must be a JSON object", pointer="")
    extra = sorted(set(data) - set(TIMEPOINT_KEYS))
    if extra:
        raise InvalidInput(
            f"unknown timepoint key {extra[0]!r}; known: {', '.join(TIMEPOINT_KEYS)}",
            field=extra[0],
            pointer=f"/{_escape(extra[0])}",
        )
    code = _check_code(data.get("id"), "visit", "id")
    tp_date = _parse_date(data.get("date"), "date")
    if tp_date is None:
        raise InvalidInput(f"timepoint {code} needs a date", field="date", pointer="/date")
    targets = data.get("targets") or {}
    non_targets = data.get("non_targets") or {}
    for name, value in (("targets", targets), ("non_targets", non_targets)):
        if not isinstance(value, dict):
            raise InvalidInput(f"{name} must be an object", field=name, pointer=f"/{name}")
    new_items = _new_lesions(data.get("new_lesions"), code)
    raw_scans = data.get("scan_dates") or {}
    if not isinstance(raw_scans, dict):
        raise InvalidInput(
            "scan_dates must be an object", field="scan_dates", pointer="/scan_dates"
        )
    scan_dates: dict[str, date] = {}
    for lesion_code, value in raw_scans.items():
        parsed = _parse_date(value, f"scan_dates.{lesion_code}", f"/scan_dates/{lesion_code}")
        if parsed is not None:
            scan_dates[lesion_code] = parsed
    reason = (reason or "").strip() or None
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
            for name in ("site", "equivocal", "nodal", "short_axis_tenths"):
                if audit.change("new_lesion", nkey, name, getattr(row, name, None), item[name]):
                    setattr(row, name, item[name])
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
                    if new.short_axis_tenths is None
                    else _mm(new.short_axis_tenths),
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

    Used by the demo seed, the benchmark and ``POST …/subjects`` with a full case. The case
    is first checked by the engine, so nothing invalid is stored.
    """
    if not isinstance(case, dict):
        raise InvalidInput("a case must be a JSON object", pointer="")
    _engine_assess({k: v for k, v in case.items() if k not in ("arm",)})
    code = _check_code(case.get("subject_id"), "subject id", "subject_id")
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        _refuse_existing_subject(session, trial, code, "subject_id")
        subject = Subject(
            trial=trial,
            code=code,
            arm=_arm(trial, case.get("arm")),
            randomized_on=_parse_date(case.get("randomized_on"), "randomized_on"),
            died_on=_parse_date(case.get("died_on"), "died_on"),
            new_therapy_on=_parse_date(case.get("new_therapy_on"), "new_therapy_on"),
        )
        session.add(subject)
        audit = _Audit(session, actor, "imported from a case file")
        key = f"{trial_code}/{code}"
        audit.log("create", "subject", key, "case", None, case)
        rows: dict[str, Lesion] = {}
        for position, item in enumerate(case.get("lesions") or []):
            site = controlled_site(
                str(item.get("site", "")),
                nodal=bool(item.get("nodal", False)),
                lesion=item["id"],
                pointer=f"/lesions/{position}/site",
            )
            row = Lesion(
                code=item["id"],
                position=position,
                kind=item["kind"],
                site=site,
                nodal=bool(item.get("nodal", False)),
                treated_on=_parse_date(item.get("treated_on"), "treated_on"),
                treatment=item.get("treatment"),
                modality=item.get("modality"),
                slice_thickness_tenths=_tenths(item["slice_thickness_mm"], "slice_thickness_mm")
                if item.get("slice_thickness_mm") is not None
                else None,
            )
            subject.lesions.append(row)
            rows[row.code] = row
        # The whole case is one audit record above; rows need no per-field records.
        silent = _Audit(session, actor, None, enabled=False)
        for tp_item in case.get("timepoints") or []:
            tp = Timepoint(code=tp_item["id"], date=_parse_date(tp_item["date"], "date"))
            tp.updated_by = actor.username
            subject.timepoints.append(tp)
            scans = {
                k: d
                for k, v in (tp_item.get("scan_dates") or {}).items()
                if (d := _parse_date(v, "scan_dates")) is not None
            }
            _write_records(
                session,
                silent,
                subject,
                tp,
                rows,
                tp_item.get("targets") or {},
                tp_item.get("non_targets") or {},
                scans,
            )
            for nl in _new_lesions(tp_item.get("new_lesions"), tp.code):
                tp.new_lesions.append(
                    NewLesion(
                        code=nl["id"],
                        site=nl["site"],
                        equivocal=nl["equivocal"],
                        nodal=nl["nodal"],
                        short_axis_tenths=nl["short_axis_tenths"],
                        scan_date=scans.get(nl["id"]),
                    )
                )
        _flush(session)
        _recompute(subject)
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
