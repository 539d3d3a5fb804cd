"""Annotations of a read that the rules never read: a lesion's free-text location
("segment VII", "right lower lobe") beside its coarse site, and the key image of a
measurement (DICOM series and image number).

They are kept web-side, not in the case contract (``docs/contracts.md`` stays closed and
the engine's input unchanged): a request carries them beside the contract's members and
they are split off here before the contract validates the rest. Every change is audited
like any other field; the SDTM export carries the location as ``TU.TULOC``.
"""

from __future__ import annotations

from typing import Any

from web.errors import InvalidInput
from web.services.common import Audit, echo, escape_pointer

MAX_LOCATION = 120  # characters (the column's length)
MAX_IMAGE_NUMBER = 999_999  # a DICOM series or instance number beyond this is a typo
ANNOTATION_KEYS = ("location", "series", "image")
IMAGE_KEYS = ("series", "image")


def split_annotations(
    item: Any, keys: tuple[str, ...] = ANNOTATION_KEYS
) -> tuple[Any, dict[str, Any]]:
    """``item`` without the annotation members (what the contract validates) and those
    members; anything but an object is returned as it is (the contract refuses it)."""
    if not isinstance(item, dict):
        return item, {}
    rest = {k: v for k, v in item.items() if k not in keys}
    return rest, {k: item[k] for k in keys if k in item}


def check_annotations(
    raw: Any,
    *,
    where: str,
    field_prefix: str,
    pointer_prefix: str,
    keys: tuple[str, ...] = ANNOTATION_KEYS,
) -> dict[str, Any]:
    """Validated annotations: ``location`` printable text of at most
    :data:`MAX_LOCATION` characters (``None`` when blank); ``series`` and ``image`` whole
    numbers from 1 (a form's digits are accepted). ``where`` names subject, timepoint and
    lesion for the message; the error names the field and points into the request."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput(
            f"{where}: the image reference must be an object {{series, image}}",
            field=field_prefix.rstrip("."),
            pointer=pointer_prefix,
        )
    out: dict[str, Any] = {}
    for key in raw:
        if key not in keys:
            raise InvalidInput(
                f"{where}: unknown annotation {echo(key)}; allowed: {', '.join(keys)}",
                field=f"{field_prefix}{key}",
                pointer=f"{pointer_prefix}/{escape_pointer(str(key))}",
            )
    for key in keys:
        value = raw.get(key)
        field_name = f"{field_prefix}{key}"
        pointer = f"{pointer_prefix}/{key}"
        if key == "location":
            out[key] = _location(value, where, field_name, pointer)
        else:
            out[key] = _number(value, where, key, field_name, pointer)
    return out


def _location(value: Any, where: str, field_name: str, pointer: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"{where}: location must be text, not {type(value).__name__}",
            field=field_name,
            pointer=pointer,
        )
    text = " ".join(value.split())  # one line: tabs and newlines become spaces
    if len(text) > MAX_LOCATION:
        raise InvalidInput(
            f"{where}: location is {len(text)} characters long; at most {MAX_LOCATION}",
            field=field_name,
            pointer=pointer,
        )
    if not text.isprintable():
        raise InvalidInput(
            f"{where}: location {echo(text)} holds a control character; type plain text",
            field=field_name,
            pointer=pointer,
        )
    return text or None


def _number(value: Any, where: str, key: str, field_name: str, pointer: str) -> int | None:
    if value is None or value == "":
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip()) if len(value.strip()) <= 9 else None
    if number is None or not 1 <= number <= MAX_IMAGE_NUMBER:
        raise InvalidInput(
            f"{where}: {key} number {echo(value)} is not a whole number from 1 to "
            f"{MAX_IMAGE_NUMBER:,}",
            field=field_name,
            pointer=pointer,
        )
    return number


def write_annotations(
    audit: Audit, entity: str, key: str, row: Any, values: dict[str, Any]
) -> None:
    """Store validated annotations on ``row`` (a lesion, a record, a new lesion), one
    audit record per changed field."""
    for name, value in values.items():
        if audit.change(entity, key, name, getattr(row, name, None), value):
            setattr(row, name, value)


def image_refs_of(tp: Any) -> dict[str, dict[str, int | None]]:
    """A stored timepoint's key images by lesion id (records and new lesions), only the
    lesions that have one: ``{"T01": {"series": 3, "image": 41}}``."""
    out: dict[str, dict[str, int | None]] = {}
    for row in [*tp.records, *tp.new_lesions]:
        if row.series is not None or row.image is not None:
            code = row.lesion.code if hasattr(row, "lesion") else row.code
            out[code] = {"series": row.series, "image": row.image}
    return out


def locations_of(subject: Any) -> dict[str, str]:
    """Every located lesion of a subject by id (baseline and new lesions)."""
    out = {le.code: le.location for le in subject.lesions if le.location}
    for tp in subject.timepoints:
        for nl in tp.new_lesions:
            if nl.location:
                out.setdefault(nl.code, nl.location)
    return out


def annotate_timepoint(tp: Any, item: dict[str, Any]) -> dict[str, Any]:
    """A timepoint of the case contract (``timepoint_as_dict``) with the web's
    annotations beside it, as the API reads and writes them: ``images`` for baseline
    lesions, ``location``/``series``/``image`` on each new lesion (only those set)."""
    out = dict(item)
    records = {rec.lesion.code: rec for rec in tp.records}
    images = {
        code: {"series": rec.series, "image": rec.image}
        for code, rec in records.items()
        if rec.series is not None or rec.image is not None
    }
    if images:
        out["images"] = images
    news = {nl.code: nl for nl in tp.new_lesions}
    annotated = []
    for new in item.get("new_lesions", []):
        row = news.get(new["id"])
        extra = {} if row is None else {k: getattr(row, k) for k in ANNOTATION_KEYS}
        annotated.append({**new, **{k: v for k, v in extra.items() if v is not None}})
    out["new_lesions"] = annotated
    return out


def split_timepoint_notes(body: dict[str, Any], images: Any, where: str) -> dict[str, Any]:
    """Take the web's annotations out of a timepoint body before the contract validates it
    (:mod:`web.services.annotations`): ``images`` maps a baseline lesion's id to its key
    image ``{series, image}``; a new lesion carries ``location``, ``series`` and ``image``
    among its members. Returns them validated: ``{"images": {id: …}, "new": {id: …}}``."""
    out: dict[str, Any] = {"images": {}, "new": {}}
    if images is not None and not isinstance(images, dict):
        raise InvalidInput(
            f"{where}: images must map lesion ids to {{series, image}}",
            field="images",
            pointer="/images",
        )
    for lesion_code, ref in (images or {}).items():
        out["images"][lesion_code] = check_annotations(
            ref,
            where=f"{where}, lesion {lesion_code}",
            field_prefix=f"images.{lesion_code}.",
            pointer_prefix=f"/images/{escape_pointer(str(lesion_code))}",
            keys=IMAGE_KEYS,
        )
    items = body.get("new_lesions")
    if isinstance(items, list):
        kept = []
        for index, item in enumerate(items):
            item, raw = split_annotations(item)
            new_id = item.get("id") if isinstance(item, dict) else None
            label = new_id if isinstance(new_id, str) and new_id else f"#{index + 1}"
            checked = check_annotations(
                raw,
                where=f"{where}, new lesion {label}",
                field_prefix=f"new_lesions.{label}.",
                pointer_prefix=f"/new_lesions/{index}",
            )
            if isinstance(new_id, str):
                out["new"][new_id] = checked
            kept.append(item)
        body["new_lesions"] = kept
    return out


def write_image_refs(
    audit: Audit, tp: Any, key: str, images: dict[str, dict[str, Any]], lesions: set[str]
) -> None:
    """Store a follow-up's key images (``images`` by baseline lesion id) on its records,
    audited; ``key`` is the timepoint's audit key. A lesion the subject does not have is
    refused naming it (a new lesion carries its own series and image)."""
    for lesion_code in images:
        if lesion_code not in lesions:
            raise InvalidInput(
                f"subject {key.split('/', 1)[-1].replace('/', ', timepoint ', 1)}: images names "
                f"{echo(lesion_code)}, which is not a baseline lesion of this subject (a new "
                "lesion carries its own series and image)",
                field=f"images.{lesion_code}",
                pointer=f"/images/{escape_pointer(lesion_code)}",
            )
    for rec in tp.records:
        ref = images.get(rec.lesion.code, {})
        values = {k: ref.get(k) for k in IMAGE_KEYS}
        write_annotations(audit, "measurement", f"{key}/{rec.lesion.code}", rec, values)
