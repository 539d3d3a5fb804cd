"""The one contract from form to engine: input validated by ``recist.jsonio``'s models
(:func:`validated`), a subject's rows as the engine's case (:func:`build_case`; a new
lesion both ways, :func:`stored_new_lesion` and :func:`new_lesion_columns`), the stored
result recomputed by the engine (:func:`recompute`), and plausible dates
(R-PLAUS-DATE, R-PLAUS-ORIGIN) against the application's clock.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from recist.lesions import length_to_mm, mm_to_length
from web.errors import InvalidInput, NotFound
from web.models import (
    LesionRecord,
    NewLesion,
    Subject,
    Timepoint,
)
from web.services.common import echo, escape_pointer


def engine_assess(case: dict[str, Any]) -> dict[str, Any]:
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
    return "".join("/" + escape_pointer(str(part)) for part in loc)


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
        error = validation_error(exc, obj, base).located(
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
        pointer += f"/{indexed[1]}/{indexed[2]}" if indexed else f"/{escape_pointer(head)}"
        if tail:  # a lesion id may itself contain dots (T01.1), so the tail stays whole
            pointer += f"/{escape_pointer(tail)}"
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
                    return f"{base}/{fld}/{escape_pointer(lesion)}"
                if fld:
                    return f"{base}/{escape_pointer(fld.split('.')[0])}"
                return base
    if lesion is not None:
        for index, le in enumerate(case.get("lesions") or []):
            if isinstance(le, dict) and le.get("id") == lesion:
                return f"/lesions/{index}" + (f"/{escape_pointer(fld)}" if fld else "")
    if fld:
        return "/" + "/".join(escape_pointer(part) for part in fld.split("."))
    return None


def ordered_timepoints(subject: Subject) -> list[Timepoint]:
    """Timepoints by date (the first is the baseline), including unsaved ones."""
    return sorted(subject.timepoints, key=lambda t: (t.date, t.id if t.id is not None else 2**62))


def baseline_volumes(subject: Subject) -> dict[str, float]:
    """Lesion code → its baseline volume in mL, where imaging supplied it or a reader typed
    it on the baseline entry: the ``volumes`` of the baseline timepoint's imaging evidence
    (R-ELIG-VOLUME; see :func:`web.services.studies.attach_imaging`, the case import and
    :func:`web.services.baseline.save_baseline`)."""
    timepoints = ordered_timepoints(subject)
    evidence = (timepoints[0].imaging_json if timepoints else None) or {}
    volumes = evidence.get("volumes") or {}
    return {
        str(code): float(value)
        for code, value in volumes.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


# The baseline timepoint's imaging evidence keeps the lesions' baseline volumes under
# "volumes" (code → mL) and, under "typed_volumes", the codes whose volume a reader typed
# on the baseline entry rather than imaging supplying it (R-ELIG-VOLUME).
VOLUME_KEYS = ("volumes", "typed_volumes")


def typed_volume_codes(subject: Subject) -> set[str]:
    """The lesions whose baseline volume was typed on the baseline entry (not imaging)."""
    timepoints = ordered_timepoints(subject)
    evidence = (timepoints[0].imaging_json if timepoints else None) or {}
    return {str(code) for code in evidence.get("typed_volumes") or []}


def imaging_volumes(subject: Subject) -> dict[str, float]:
    """The baseline volumes imaging supplied (an attached study, an imported case): these
    win over the baseline entry, which may not type another value for them."""
    typed = typed_volume_codes(subject)
    return {k: v for k, v in baseline_volumes(subject).items() if k not in typed}


def build_case(subject: Subject) -> dict[str, Any]:
    """The case contract (``docs/contracts.md``) for a subject, from its rows."""
    lesions: list[dict[str, Any]] = []
    volumes = baseline_volumes(subject)
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
            item["slice_thickness_mm"] = length_to_mm(le.slice_thickness_units)
        if le.code in volumes:
            item["volume_ml"] = volumes[le.code]
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
                targets[code] = stored_target(rec)
            else:
                non_targets[code] = rec.state
            if rec.scan_date is not None:
                scan_dates[code] = rec.scan_date.isoformat()
        new_lesions = []
        for nl in tp.new_lesions:
            new_lesions.append(stored_new_lesion(nl))
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


def stored_target(rec: LesionRecord) -> Any:
    """A stored target record in the contract's form (what the engine assesses)."""
    if rec.state == "measured":
        return length_to_mm(rec.size_units or 0)
    if rec.state == "fragments":
        return {"fragments": [length_to_mm(t) for t in rec.fragments_units or []]}
    if rec.state == "merged":
        return {"merged_into": rec.merged_into}
    return rec.state


def stored_new_lesion(nl: NewLesion) -> dict[str, Any]:
    """A stored new lesion in the contract's form: a node's short axis (R-NEW-1), and under
    iRECIST its ``size_mm`` (a number or a word), ``category`` and ``state`` (I-NEW-1,
    I-NEW-4), each only when stored, so a RECIST 1.1 read keeps its exact form."""
    item: dict[str, Any] = {"id": nl.code, "site": nl.site, "equivocal": nl.equivocal}
    if nl.nodal:
        # R-NEW-1: a new node counts only at a short axis ≥ 10 mm.
        item["nodal"] = True
        if nl.short_axis_units is not None:
            item["short_axis_mm"] = length_to_mm(nl.short_axis_units)
    if nl.size_units is not None:
        item["size_mm"] = length_to_mm(nl.size_units)
    elif nl.size_state is not None:
        item["size_mm"] = nl.size_state
    if nl.category is not None:
        item["category"] = nl.category
    if nl.state is not None:
        item["state"] = nl.state
    return item


def new_lesion_columns(item: Any, first: NewLesion | None) -> dict[str, Any]:
    """A validated new lesion (``recist.jsonio.NewLesionIn``) as row values. A later listing
    (``first``: the row of its first listing, at an earlier timepoint) that leaves out
    ``site`` or ``nodal`` keeps the first's (I-NEW-4), so every row is complete."""
    size = item.size_mm
    nodal = item.nodal if first is None or "nodal" in item.model_fields_set else first.nodal
    return {
        "site": item.site or (first.site if first is not None else ""),
        "equivocal": item.equivocal,
        "nodal": nodal,
        "short_axis_units": None
        if item.short_axis_mm is None
        else mm_to_length(item.short_axis_mm),
        "size_units": None if size is None or isinstance(size, str) else mm_to_length(size),
        "size_state": size if isinstance(size, str) else None,
        "category": item.category,
        "state": item.state,
    }


def recompute(subject: Subject, focus: str | None = None) -> None:
    """Store the engine's result for the subject (the only way results are written).

    ``focus`` is the id of the timepoint the request wrote: a refusal that points into
    it is re-pointed into the request body (``/timepoints/3/date`` becomes ``/date``).
    """
    if not subject.timepoints:
        subject.result_json = None
        return
    case = build_case(subject)
    try:
        subject.result_json = engine_assess(case)
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
    return engine_assess(case)


def parse_date(value: Any, field_name: str, pointer: str | None = None) -> date | None:
    """An ISO date (YYYY-MM-DD) typed or sent for ``field_name``, checked for plausibility
    (R-PLAUS-DATE); ``None`` for an empty value."""
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return plausible_date(value, field_name, pointer)
    parsed = None
    if isinstance(value, str):
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or not isinstance(value, str) or len(value) != 10:
        raise InvalidInput(
            f"{field_name} {echo(value)} is not a date (YYYY-MM-DD)",
            field=field_name,
            pointer=pointer or f"/{field_name}",
        )
    return plausible_date(parsed, field_name, pointer)


def plausible_date(value: date, field_name: str, pointer: str | None = None) -> date:
    """Refuse a date before 1900 or after today (R-PLAUS-DATE, ``recist.lesions``'s one
    definition, against the application's clock)."""
    from recist.lesions import date_problem
    from web.clock import today

    problem = date_problem(value, today())
    if problem is not None:
        raise InvalidInput(
            f"{field_name}: {problem} (R-PLAUS-DATE)",
            field=field_name,
            pointer=pointer or "/" + "/".join(escape_pointer(p) for p in field_name.split(".")),
            rule="R-PLAUS-DATE",
        )
    return value


def check_origin(subject: Subject) -> None:
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


def timepoint_as_dict(subject: Subject, tp: Timepoint) -> dict[str, Any]:
    """A stored timepoint in the case contract's shape, with its version."""
    for item in build_case(subject)["timepoints"]:
        if item["id"] == tp.code:
            return {**item, "version": tp.version}
    raise NotFound(f"timepoint {tp.code} not found")  # pragma: no cover - defensive
