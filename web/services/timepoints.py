"""Follow-up timepoints: save (create, edit, rename) and delete, each one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from recist.lesions import length_to_mm
from web.db import write_transaction
from web.errors import ConcurrentEdit, Conflict, InvalidInput
from web.models import (
    SITES,
    Lesion,
    LesionRecord,
    NewLesion,
    Subject,
    Timepoint,
    User,
    utcnow,
)
from web.services.annotations import (
    ANNOTATION_KEYS,
    IMAGE_KEYS,
    split_timepoint_notes,
    write_annotations,
    write_image_refs,
)
from web.services.cases import (
    VOLUME_KEYS,
    new_lesion_columns,
    plausible_date,
    recompute,
    stored_target,
    validated,
)
from web.services.common import (
    Actor,
    Audit,
    check_code,
    check_no_later_lock,
    check_unlocked,
    check_version,
    clean_reason,
    echo,
    escape_pointer,
    flush,
    get_subject,
    get_timepoint,
    touch,
)
from web.services.sign_all import save_then_sign, sign_saved
from web.services.studies import check_binding


def target_values(raw: dict[str, Any], subject_code: str, tp_code: str) -> dict[str, Any]:
    """A timepoint's target values as the engine's ``TargetValue`` (R-EXACT), each
    checked by the contract (``recist.contract.target_value``), the error naming where."""
    from recist.contract import target_value
    from recist.errors import CaseInputError

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
                pointer=f"/targets/{escape_pointer(code)}",
                rule=error.rule,
            ) from None
    return out


def write_records(
    session: Session,
    audit: Audit,
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
    from recist.contract import target_to_json
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
                    pointer=f"/{group}/{escape_pointer(code)}",
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
            old = stored_target(rec) if group == "targets" else rec.state
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


# The columns of a new-lesion row that hold what a reader recorded of it (the contract's
# names in the audit trail: short_axis_mm, size_mm, category, state).
NEW_LESION_FIELDS = ("site", "equivocal", "nodal", "short_axis_mm", "size_mm", "category", "state")


def audited_new_lesion(row: NewLesion) -> dict[str, Any]:
    """What the audit trail keeps of a new-lesion row: site, equivocal, nodal and short axis,
    and the iRECIST fields (I-NEW-4) where stored, as the contract spells them."""
    from web.services.cases import stored_new_lesion

    stored = stored_new_lesion(row)
    out: dict[str, Any] = {
        "site": row.site,
        "equivocal": row.equivocal,
        "nodal": row.nodal,
        "short_axis_mm": None
        if row.short_axis_units is None
        else length_to_mm(row.short_axis_units),
    }
    return out | {k: stored[k] for k in ("size_mm", "category", "state") if k in stored}


def first_listings(subject: Subject, before: date) -> dict[str, NewLesion]:
    """The first row of every new lesion listed at a timepoint dated before ``before``."""
    out: dict[str, NewLesion] = {}
    for tp in sorted(subject.timepoints, key=lambda t: t.date):
        if tp.date < before:
            for nl in tp.new_lesions:
                out.setdefault(nl.code, nl)
    return out


def _new_lesion_rows(
    model: Any, first: dict[str, NewLesion], subject_code: str
) -> list[dict[str, Any]]:
    """A validated timepoint's new lesions as row values; the web adds one rule of its own:
    the site comes from the controlled list (a later listing may leave it out, I-NEW-4)."""
    out = []
    for index, item in enumerate(model.new_lesions):
        pointer = f"/new_lesions/{index}/site"
        field_name = f"new_lesions.{item.id}.site"
        columns = new_lesion_columns(item, first.get(item.id))
        if not columns["site"]:
            raise InvalidInput(
                f"subject {subject_code}, timepoint {model.id}, lesion {item.id}: new lesion "
                f"{item.id} needs its site where it is first listed (a later listing may leave "
                "it out, I-NEW-4)",
                field=field_name,
                pointer=pointer,
            )
        if columns["site"] not in SITES:
            raise InvalidInput(
                f"subject {subject_code}, timepoint {model.id}, lesion {item.id}: site "
                f"{echo(item.site)} is not in the "
                "controlled list",
                field=field_name,
                pointer=pointer,
            )
        out.append({"id": item.id, **columns})
    return out


def _write_new_lesions(
    session: Session,
    audit: Audit,
    tp: Timepoint,
    key: str,
    new_items: list[dict[str, Any]],
    scan_dates: dict[str, date],
    notes: dict[str, dict[str, Any]],
) -> None:
    """Store a timepoint's new lesions, auditing each changed field in the contract's form,
    and their annotations (``notes`` by id: location, series, image)."""
    old_new = {nl.code: nl for nl in tp.new_lesions}
    for item in new_items:
        nkey = f"{key}/{item['id']}"
        row = old_new.pop(item["id"], None)
        if row is None:
            row = NewLesion(code=item["id"], site=item["site"])
            tp.new_lesions.append(row)
            audit.log("create", "new_lesion", nkey)
            before: dict[str, Any] = {}
        else:
            before = audited_new_lesion(row)
        for name, value in item.items():
            if name != "id":
                setattr(row, name, value)
        after = audited_new_lesion(row)
        for name in NEW_LESION_FIELDS:
            audit.change("new_lesion", nkey, name, before.get(name), after.get(name))
        row.scan_date = scan_dates.get(item["id"])
        write_annotations(audit, "new_lesion", nkey, row, notes.get(item["id"], {}))
    for gone in old_new.values():
        audit.log("delete", "new_lesion", f"{key}/{gone.code}", None, gone.site, None)
        tp.new_lesions.remove(gone)
        session.delete(gone)


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
    ask_signer: Callable[[], User | None] | None = None,
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
    ask_signer
        Sign on save (:func:`web.services.sign_all.save_then_sign`): asked once the save
        passed every check in a rehearsal, for the user whose password it checked (or
        ``None``); the read is then signed "read complete" in the save's transaction.

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
    body = {k: v for k, v in data.items() if k not in ("version", "images")}
    tp_name = body.get("id") if isinstance(body.get("id"), str) else "?"
    notes = split_timepoint_notes(
        body, data.get("images"), f"subject {subject_code}, timepoint {tp_name}"
    )
    model = validated(TimepointIn, body, subject=subject_code, timepoint=body.get("id"))
    code = check_code(model.id, "visit", "id")
    tp_date = plausible_date(model.date, "date")
    targets = target_values(model.targets, subject_code, code)
    non_targets = dict(model.non_targets)
    scan_dates = {k: plausible_date(v, f"scan_dates.{k}") for k, v in model.scan_dates.items()}
    reason = clean_reason(reason)

    def save() -> tuple[Subject, Timepoint]:
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
        audit = Audit(session, actor, reason)
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
            check_version(tp, expected_version, subject_code)
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
        new_items = _new_lesion_rows(model, first_listings(subject, tp_date), subject_code)
        for lesion_code in scan_dates:
            if lesion_code not in rows and lesion_code not in {n["id"] for n in new_items}:
                raise InvalidInput(
                    f"timepoint {code}: scan_dates names {lesion_code!r}, which is neither a "
                    "lesion of this subject nor a new lesion of this timepoint",
                    field=f"scan_dates.{lesion_code}",
                    pointer=f"/scan_dates/{escape_pointer(lesion_code)}",
                )
        write_records(session, audit, subject, tp, rows, targets, non_targets, scan_dates)
        write_image_refs(audit, tp, f"{key}/{code}", notes["images"], set(rows))
        for item in new_items:
            if item["id"] in rows:
                raise InvalidInput(
                    f"subject {subject_code}, timepoint {code}: new lesion {item['id']!r} "
                    "reuses the id of a baseline lesion; give it another id",
                    field=f"new_lesions.{item['id']}.id",
                    pointer=f"/new_lesions/{new_items.index(item)}/id",
                )
        _write_new_lesions(session, audit, tp, f"{key}/{code}", new_items, scan_dates, notes["new"])
        touch(tp, actor)
        subject.updated_at = utcnow()
        # One flush, after the engine accepted the case: a refusal writes nothing.
        if imaging is not None:
            bound = check_binding(session, subject, imaging.get("image") or {})
            if bound is not None and audit.change(
                "subject", key, "imaging_key", subject.imaging_key, bound
            ):
                subject.imaging_key = bound
        kept = {k: v for k, v in (tp.imaging_json or {}).items() if k in VOLUME_KEYS}
        evidence = imaging
        if evidence is not None and kept.get("volumes") and "volumes" not in evidence:
            evidence = {**evidence, **kept}  # the baseline's volumes stay (R-ELIG-VOLUME)
        if evidence is not None and audit.change(
            "timepoint", f"{key}/{code}", "imaging", tp.imaging_json, evidence
        ):
            tp.imaging_json = evidence
        if not audit.records:
            # A save that changes nothing is still a reader's act (a re-check before
            # signing, say) and it moves the version: audited, so the trail explains it.
            audit.log("save", "timepoint", f"{key}/{code}", "unchanged", None, None)
        recompute(subject, focus=code)
        flush(session)
        return subject, tp

    return save_then_sign(
        session, save, ask_signer, lambda signer, saved: sign_saved(session, actor, signer, *saved)
    )


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
        check_version(tp, expected_version, subject_code)
        audit = Audit(session, actor, reason)
        key = f"{trial_code}/{subject_code}/{code}"
        audit.log("delete", "timepoint", key, None, tp.date, None)
        # What the read held goes into the trail with it: a deleted read must stay
        # reconstructible from the audit trail alone.
        for rec in tp.records:
            group = "targets" if rec.lesion.kind == "target" else "non_targets"
            old = stored_target(rec) if group == "targets" else rec.state
            audit.log("delete", "measurement", f"{key}/{rec.lesion.code}", group, old, None)
            for name in (n for n in IMAGE_KEYS if getattr(rec, n) is not None):
                old = getattr(rec, name)
                audit.log("delete", "measurement", f"{key}/{rec.lesion.code}", name, old, None)
        for new in tp.new_lesions:
            audit.log(
                "delete",
                "new_lesion",
                f"{key}/{new.code}",
                "new_lesions",
                {
                    **audited_new_lesion(new),
                    **{k: getattr(new, k) for k in ANNOTATION_KEYS if getattr(new, k) is not None},
                },
                None,
            )
        subject.timepoints.remove(tp)
        session.delete(tp)
        subject.updated_at = utcnow()
        flush(session)
        recompute(subject)
        flush(session)
    return subject
