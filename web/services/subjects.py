"""Subjects: registration, arm and dates, and a whole case imported at once."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import ConcurrentEdit, Conflict, InvalidInput, Locked
from web.models import (
    SITES,
    Arm,
    Lesion,
    NewLesion,
    Subject,
    Timepoint,
    Trial,
    utcnow,
)
from web.services.baseline import write_lesion
from web.services.cases import (
    build_case,
    check_origin,
    engine_assess,
    new_lesion_columns,
    parse_date,
    recompute,
    validated,
)
from web.services.common import (
    Actor,
    Audit,
    check_code,
    clean_reason,
    flush,
    get_subject,
    get_trial,
)
from web.services.timepoints import target_values, write_records
from web.services.trials import check_settings


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
    check_code(code, "subject id", "code")
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        _refuse_existing_subject(session, trial, code, "code")
        subject = Subject(
            trial=trial,
            code=code,
            arm=_arm(trial, arm),
            randomized_on=parse_date(randomized_on, "randomized_on"),
            died_on=parse_date(died_on, "died_on"),
            new_therapy_on=parse_date(new_therapy_on, "new_therapy_on"),
        )
        check_origin(subject)
        session.add(subject)
        audit = Audit(session, actor, None)
        key = f"{trial_code}/{code}"
        audit.log("create", "subject", key)
        for name in SUBJECT_FIELDS:
            value = getattr(subject, name)
            if name == "arm":
                value = arm or None
            if value is not None:
                audit.log("create", "subject", key, name, None, value)
        flush(session)
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
    reason = clean_reason(reason)
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
        audit = Audit(session, actor, reason)
        key = f"{trial_code}/{subject_code}"
        for name, raw in values.items():
            if name == "arm":
                new_arm = _arm(subject.trial, raw)
                old_code = subject.arm.code if subject.arm else None
                if audit.change("subject", key, "arm", old_code, raw or None):
                    subject.arm = new_arm
            else:
                new = parse_date(raw, name)
                old_date = getattr(subject, name)
                if name == "randomized_on" and new != old_date:
                    _refuse_under_signed_reads(subject, subject_code)
                if audit.change("subject", key, name, old_date, new):
                    setattr(subject, name, new)
        subject.updated_at = utcnow()
        check_origin(subject)
        recompute(subject)
        flush(session)
    return subject


def _refuse_under_signed_reads(subject: Subject, subject_code: str) -> None:
    """The randomisation date is the origin of the signed reads' assessment (R-BOR-SDMIN,
    §8 PFS, R-PLAUS-ORIGIN): it cannot move under a signed read; unlock first."""
    signed = [tp for tp in subject.timepoints if tp.locked]
    if signed:
        first = min(signed, key=lambda tp: tp.date)
        raise Locked(
            f"subject {subject_code}: the randomisation date is the origin of signed reads "
            f"({', '.join(tp.code for tp in sorted(signed, key=lambda t: t.date))}, first "
            f"signed by {first.signed_by}); an adjudicator or trial manager must unlock them, "
            "with a reason, before it can change",
            field="randomized_on",
            pointer="/randomized_on",
        )


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
    contract's model (``recist.jsonio.CaseIn``) and assessed by the engine (with the
    trial's settings when it gives none) before anything is written; the rows are written
    from the validated values, and the audit trail keeps the case as stored (its canonical
    JSON, read back from the rows).
    """
    from recist.jsonio import CaseIn

    if not isinstance(case, dict):
        raise InvalidInput("a case must be a JSON object", pointer="")
    model = validated(
        CaseIn,
        case,
        subject=case["subject_id"] if isinstance(case.get("subject_id"), str) else None,
    )
    code = check_code(model.subject_id, "subject id", "subject_id")
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        # A case without settings is assessed with its trial's protocol (an iRECIST
        # trial's new-lesion follow-up, I-NEW-4, is refused by RECIST 1.1's defaults).
        engine_assess({"settings": trial.settings, **case})
        _refuse_existing_subject(session, trial, code, "subject_id")
        if "settings" in case and check_settings(case["settings"]) != check_settings(
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
        audit = Audit(session, actor, "imported from a case file")
        key = f"{trial_code}/{code}"
        # The rows' values need no per-field records: the whole case is one record below.
        silent = Audit(session, actor, None, enabled=False)
        rows: dict[str, Lesion] = {}
        for position, item in enumerate(model.lesions):
            site = controlled_site(
                item.site, nodal=item.nodal, lesion=item.id, pointer=f"/lesions/{position}/site"
            )
            row = Lesion(code=item.id, position=position, kind=item.kind, site=site)
            write_lesion(silent, f"{key}/{item.id}", row, item)
            row.site = site
            subject.lesions.append(row)
            rows[row.code] = row
        # Baseline volumes imaging supplied (recist ingest's volume_ml) are kept with the
        # baseline's imaging evidence, where the web keeps every lesion volume (R-ELIG-VOLUME).
        volumes = {le.id: le.volume_ml for le in model.lesions if le.volume_ml is not None}
        first: dict[str, NewLesion] = {}  # each new lesion's first listing
        for tp_index, tp_item in enumerate(model.timepoints):
            tp = Timepoint(code=tp_item.id, date=tp_item.date)
            tp.updated_by = actor.username
            if tp_index == 0 and volumes:
                tp.imaging_json = {"volumes": volumes}
            subject.timepoints.append(tp)
            scans = dict(tp_item.scan_dates)
            targets = target_values(tp_item.targets, code, tp_item.id)
            write_records(
                session, silent, subject, tp, rows, targets, dict(tp_item.non_targets), scans
            )
            for index, nl in enumerate(tp_item.new_lesions):
                # A later listing may leave out site and nodal: they are the first's (I-NEW-4).
                columns = new_lesion_columns(nl, first.get(nl.id))
                if first.get(nl.id) is None or nl.site:
                    columns["site"] = controlled_site(
                        nl.site,
                        nodal=columns["nodal"],
                        lesion=nl.id,
                        pointer=f"/timepoints/{tp_index}/new_lesions/{index}/site",
                    )
                new_row = NewLesion(code=nl.id, scan_date=scans.get(nl.id), **columns)
                tp.new_lesions.append(new_row)
                first.setdefault(nl.id, new_row)
        flush(session)
        recompute(subject)
        audit.log("create", "subject", key, "case", None, build_case(subject))
        flush(session)
    return subject
