"""The baseline: lesions selected with their baseline values; findings (R-MEAS, R-SEL,
R-PLAUS-BLWINDOW, a protocol's R-ELIG) need a reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from recist.lesions import length_to_mm, mm_to_length
from recist.settings import MAX_VOLUME_ML
from web.errors import ConcurrentEdit, InvalidInput, ReasonRequired
from web.models import (
    SITES,
    Lesion,
    Subject,
    Timepoint,
    User,
    utcnow,
)
from web.services.annotations import (
    IMAGE_KEYS,
    check_annotations,
    split_annotations,
    write_annotations,
)
from web.services.cases import (
    VOLUME_KEYS,
    engine_assess,
    imaging_volumes,
    parse_date,
    recompute,
    validated,
)
from web.services.common import (
    Actor,
    Audit,
    check_code,
    check_unlocked,
    check_version,
    clean_reason,
    echo,
    flush,
    get_subject,
    touch,
)
from web.services.timepoints import target_values, write_records

BASELINE_KEYS = ("id", "date", "lesions", "version", "reason")


_LESION_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def baseline_lesions(
    items: Any, subject_code: str | None = None, annotations: dict[str, Any] | None = None
) -> list[Any]:
    """The ``lesions`` of a baseline entry (form or API), validated by the contract's
    model (``recist.jsonio.BaselineLesionIn``: a lesion plus its baseline ``size`` or
    ``state``), then the web's own storage rules: ids of 1–32 letters, digits, ``_`` or
    ``-``, used once, and a site of the controlled list.

    A lesion may also carry the web's annotations (``location``, ``series``, ``image``:
    :mod:`web.services.annotations`), split off before the contract validates it; they
    are checked and put in ``annotations`` by lesion id."""
    from recist.jsonio import BaselineLesionIn

    if not isinstance(items, list):
        raise InvalidInput("lesions must be an array", field="lesions", pointer="/lesions")
    out = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        pointer = f"/lesions/{index}"
        named = item.get("id") if isinstance(item, dict) else None
        item, notes = split_annotations(item)
        le = validated(
            BaselineLesionIn,
            item,
            subject=subject_code,
            lesion=named if isinstance(named, str) and named else f"#{index + 1}",
            base=("lesions", index),
        )
        if not _LESION_CODE.match(le.id):
            raise InvalidInput(
                f"subject {subject_code or 'new'}, lesion {index + 1}: id {echo(le.id)} must be "
                "1–32 letters, digits, '_' or '-'",
                field="id",
                pointer=f"{pointer}/id",
            )
        if le.id in seen:
            raise InvalidInput(
                f"subject {subject_code or 'new'}, lesion {le.id}: the id is used twice; give "
                "each lesion its own id",
                field="id",
                pointer=f"{pointer}/id",
            )
        seen.add(le.id)
        if le.site not in SITES:
            raise InvalidInput(
                f"subject {subject_code or 'new'}, lesion {le.id}: site {echo(le.site)} is not in "
                "the controlled list "
                f"({', '.join(SITES)})",
                field="site",
                pointer=f"{pointer}/site",
            )
        checked = check_annotations(
            notes,
            where=f"subject {subject_code or 'new'}, baseline, lesion {le.id}",
            field_prefix="",
            pointer_prefix=pointer,
        )
        if annotations is not None:
            annotations[le.id] = checked
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
    # The volumes imaging supplied stay with the lesions; the entry's typed ones join
    # them (R-ELIG-VOLUME; imaging wins: _check_volumes refuses another value).
    volumes = imaging_volumes(subject) if subject is not None else {}
    case: dict[str, Any] = {
        "subject_id": subject.code if subject is not None else "new",
        "settings": _baseline_settings(subject, settings),
        "lesions": [
            {**lesion_json(le), **({"volume_ml": volumes[le.id]} if le.id in volumes else {})}
            for le in lesions
        ],
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
    result = engine_assess(case)
    return list(result.get("warnings") or [])


def check_baseline_input(
    subject_code: str,
    code: str,
    date_value: Any,
    lesions: Any,
    notes: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[Any], date]:
    """The checks of a baseline entry that need nothing stored: the visit code, the
    lesions by the contract, a date and at least one lesion (R-SEL-3). Returns the
    validated lesions and the date; :func:`save_baseline` runs them first, and a form
    that signs on save runs them before it asks for the password."""
    check_code(code, "visit", "id")
    checked = baseline_lesions(lesions, subject_code, {} if notes is None else notes)
    bl_date = parse_date(date_value, "date")
    if bl_date is None:
        raise InvalidInput("the baseline needs a date", field="date", pointer="/date")
    if not checked:
        raise InvalidInput(
            "a baseline needs at least one lesion (R-SEL-3)", field="lesions", pointer="/lesions"
        )
    return checked, bl_date


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
    ask_signer: Callable[[], User | None] | None = None,
) -> Subject:
    """Select the baseline lesions and record their baseline sizes and states.

    ``ask_signer``: sign on save, as for a follow-up
    (:func:`web.services.sign_all.save_then_sign`): asked once the save passed every
    check, :func:`check_baseline_input` and then those against the stored subject in a
    rehearsal rolled back (so an entry that cannot be saved never counts a password
    failure), for the signer (``None``: the box was not ticked). A wrong password raises
    there: nothing is saved. The baseline read is then signed "read complete" and locked
    in the save's transaction.

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
    notes: dict[str, dict[str, Any]] = {}
    lesions, bl_date = check_baseline_input(subject_code, code, date_value, lesions, notes)
    reason = clean_reason(reason)

    def save() -> Subject:
        subject = get_subject(session, trial_code, subject_code, lock=True)
        _check_volumes(subject, lesions)
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
        audit = Audit(session, actor, reason)
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
            check_version(baseline, expected_version, subject_code)
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
            write_lesion(audit, lkey, row, le)
            location = notes.get(le.id, {}).get("location")
            write_annotations(audit, "lesion", lkey, row, {"location": location})
            rows[le.id] = row
        flush(session)
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
        targets = target_values(timepoint["targets"], subject_code, code)
        write_records(
            session, audit, subject, baseline, rows, targets, timepoint["non_targets"], {}
        )
        for rec in baseline.records:
            images = {k: notes.get(rec.lesion.code, {}).get(k) for k in IMAGE_KEYS}
            write_annotations(audit, "measurement", f"{key}/{code}/{rec.lesion.code}", rec, images)
        _write_volumes(audit, key, baseline, lesions, imaging_volumes(subject))
        touch(baseline, actor)
        subject.updated_at = utcnow()
        recompute(subject, focus=code)
        flush(session)
        return subject

    from web.services.sign_all import save_then_sign, sign_saved

    def sign(signer: User, subject: Subject) -> None:
        sign_saved(session, actor, signer, subject, subject.timepoints[0])

    return save_then_sign(session, save, ask_signer, sign)


def _check_volumes(subject: Subject, lesions: list[Any]) -> None:
    """A lesion's baseline volume comes from imaging where imaging gave one (an attached
    study, an imported case: :func:`web.services.cases.imaging_volumes`), and that value
    wins: a baseline entry may send it back as stored, or leave it out, but another value
    is refused. For the other lesions the entry may type a volume, a finite number of mL
    above 0 and at most 1,000,000 (R-PLAUS-SIZE), for a protocol's limit (R-ELIG-VOLUME).
    """
    imaging = imaging_volumes(subject)
    for index, le in enumerate(lesions):
        if le.volume_ml is None:
            continue
        pointer = f"/lesions/{index}/volume_ml"
        if le.id in imaging and le.volume_ml != imaging[le.id]:
            raise InvalidInput(
                f"subject {subject.code}, lesion {le.id}: volume_ml {le.volume_ml:g} is not "
                f"the volume imaging gave ({imaging[le.id]:g} mL); imaging's volume wins and "
                "cannot be typed over (R-ELIG-VOLUME)",
                field="volume_ml",
                pointer=pointer,
            )
        if not math.isfinite(le.volume_ml) or not 0 < le.volume_ml <= MAX_VOLUME_ML:
            raise InvalidInput(
                f"subject {subject.code}, lesion {le.id}: volume_ml {le.volume_ml:g} is not a "
                f"plausible lesion volume (above 0 and at most {MAX_VOLUME_ML:,} mL; "
                "R-PLAUS-SIZE)",
                field="volume_ml",
                pointer=pointer,
                rule="R-PLAUS-SIZE",
            )


def _write_volumes(
    audit: Audit, key: str, baseline: Timepoint, lesions: list[Any], imaging: dict[str, float]
) -> None:
    """Keep the entry's typed volumes with the baseline's imaging evidence (``volumes``,
    the codes under ``typed_volumes``), beside the volumes imaging gave, which stay; one
    audit record per lesion whose typed volume changed (R-ELIG-VOLUME)."""
    evidence = dict(baseline.imaging_json or {})
    stored = evidence.get("volumes") or {}
    old_typed = {
        code: stored[code] for code in evidence.get("typed_volumes") or [] if code in stored
    }
    typed = {
        le.id: float(le.volume_ml)
        for le in lesions
        if le.volume_ml is not None and le.id not in imaging
    }
    changed = False
    for code in sorted(set(old_typed) | set(typed)):
        changed |= audit.change(
            "lesion", f"{key}/{code}", "volume_ml", old_typed.get(code), typed.get(code)
        )
    if not changed:
        return
    volumes = {k: v for k, v in stored.items() if k not in old_typed} | typed
    for name in VOLUME_KEYS:
        evidence.pop(name, None)
    if volumes:
        evidence["volumes"] = volumes
    if typed:
        evidence["typed_volumes"] = sorted(typed)
    baseline.imaging_json = evidence or None


def write_lesion(audit: Audit, key: str, row: Lesion, le: Any) -> None:
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
    units = None if le.slice_thickness_mm is None else mm_to_length(le.slice_thickness_mm)
    old = None if row.slice_thickness_units is None else length_to_mm(row.slice_thickness_units)
    if audit.change(
        "lesion", key, "slice_thickness_mm", old, None if units is None else length_to_mm(units)
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
