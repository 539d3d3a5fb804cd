"""The site reader's worksheet into the subject's rows.

The worksheet (:class:`web.pages.read_sheet.Sheet`: lesion rows × visit columns, the
central reader's notation) gives a read of the case contract. Here it becomes:

* :func:`sheet_case`: the case the worksheet would produce — the subject's stored case with
  the worksheet's lesions and visits in place of the stored ones, keeping what the
  worksheet does not show (a lesion's treatment, a visit's per-lesion scan dates). The live
  check assesses it with the engine; nothing is stored.
* :func:`save_sheet`: one transaction that saves the visits the reader changed through the
  per-visit services (:func:`web.services.baseline.save_baseline`,
  :func:`web.services.timepoints.save_timepoint`): the same validation, versions (409 on a
  stale worksheet), locks (a signed visit is refused) and audit records as the per-visit
  forms. Unchanged visits are not touched; nothing is signed.
* :func:`next_visit`: the visit code and expected date of the next visit, from the
  protocol's schedule (the trial's ``visit_interval_days``) and the visits so far.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import ConcurrentEdit, InvalidInput, ServiceError
from web.models import Subject
from web.services.baseline import save_baseline
from web.services.cases import build_case
from web.services.common import Actor, check_version, escape_pointer, get_subject
from web.services.timepoints import save_timepoint

# What the worksheet writes of a visit; anything else stored with it is kept.
SHEET_KEYS = ("id", "date", "targets", "non_targets", "new_lesions")
DEFAULT_INTERVAL_DAYS = 56  # 8 weeks, when the protocol gives none and one visit exists
_CODE = re.compile(r"^([A-Za-z]*)(\d+)$")


def sheet_case(subject: Subject, read: dict[str, Any], origins: list[str | None]) -> dict[str, Any]:
    """The case the worksheet would produce for ``subject``.

    Parameters
    ----------
    read
        The worksheet as a read (:meth:`Sheet.to_read`): ``lesions`` and ``timepoints``.
    origins
        Per timepoint of ``read``, the stored visit it was laid out from (its code when
        the page was opened), ``None`` for a visit the reader adds.
    """
    stored = build_case(subject)
    old_lesions = {le["id"]: le for le in stored["lesions"]}
    lesions = [{**old_lesions.get(le["id"], {}), **le} for le in read["lesions"]]
    old_tps = {tp["id"]: tp for tp in stored["timepoints"]}
    known = {le["id"] for le in lesions}
    timepoints = []
    for tp, origin in zip(read["timepoints"], origins, strict=True):
        item = dict(tp)
        before = old_tps.get(origin) if origin else None
        for key, value in (before or {}).items():
            if key not in SHEET_KEYS:
                item.setdefault(key, value)
        scans = item.get("scan_dates")
        if scans:
            here = known | {n["id"] for n in item["new_lesions"]}
            item["scan_dates"] = {k: v for k, v in scans.items() if k in here}
            if not item["scan_dates"]:
                del item["scan_dates"]
        timepoints.append(item)
    return {**stored, "lesions": lesions, "timepoints": timepoints}


def _value(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict) and "fragments" in value:
        return {"fragments": [float(v) for v in value["fragments"]]}
    return value


def _visit(tp: dict[str, Any], lesions: list[dict[str, Any]], baseline: bool) -> Any:
    """A visit as compared for "changed": a lesion missing from a follow-up is not
    evaluated (the contract), numbers as floats, new lesions by id."""
    missing = None if baseline else "not_evaluated"
    targets = {
        le["id"]: _value(tp["targets"].get(le["id"], missing))
        for le in lesions
        if le["kind"] == "target"
    }
    non_targets = {
        le["id"]: tp["non_targets"].get(le["id"], missing)
        for le in lesions
        if le["kind"] != "target"
    }
    new = sorted((n["id"], sorted(n.items())) for n in tp.get("new_lesions") or [])
    scans = tp.get("scan_dates") or {}
    return (tp["id"], tp["date"], targets, non_targets, new, scans)


def _baseline_entry(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The baseline form's lesions (``BaselineLesionIn``): each lesion with its size
    (target) or, if not present, its state (non-target)."""
    bl = case["timepoints"][0]
    out = []
    for le in case["lesions"]:
        item = dict(le)
        if le["kind"] == "target":
            item["size"] = bl["targets"].get(le["id"])
        elif bl["non_targets"].get(le["id"], "present") != "present":
            item["state"] = bl["non_targets"][le["id"]]
        out.append(item)
    return out


def save_sheet(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    read: dict[str, Any],
    *,
    origins: list[str | None],
    versions: dict[str, int],
    reason: str | None = None,
) -> list[str]:
    """Save the visits of the worksheet that changed; returns their codes, in order.

    ``versions`` holds every stored visit the page showed (code when opened → version):
    a visit changed, added or deleted by someone else since is refused (409) before
    anything is written, as is a visit changed on a stale page. The baseline is saved
    first (lesions and baseline values: :func:`save_baseline`), then each changed
    follow-up (:func:`save_timepoint`), all in one transaction: a refusal writes nothing.

    Raises
    ------
    ConcurrentEdit
        The worksheet is stale (a visit changed, added or deleted since it was opened).
    Locked
        A change to a signed visit (or to the baseline's lesions while a visit is signed).
    InvalidInput, ReasonRequired
        What the per-visit services refuse, naming the visit, lesion and field.
    """
    saved: list[str] = []
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        for tp in subject.timepoints:
            if tp.code not in versions:
                raise ConcurrentEdit(
                    f"subject {subject_code}: visit {tp.code} was added after you opened the "
                    "worksheet; reload it (your entries are not saved)",
                    field="version",
                    pointer="/version",
                )
            check_version(tp, versions[tp.code], subject_code)
        codes = {tp.code for tp in subject.timepoints}
        gone = sorted((set(versions) | {o for o in origins if o}) - codes)
        if gone:
            raise ConcurrentEdit(
                f"subject {subject_code}: visit {gone[0]} was deleted or renamed after you "
                "opened the worksheet; reload it (your entries are not saved)",
                field="version",
                pointer="/version",
            )
        dropped = sorted(codes - {o for o in origins if o})
        if dropped:
            raise InvalidInput(
                f"subject {subject_code}, visit {dropped[0]}: its column is empty; a visit is "
                "deleted from its own page, with a reason",
                field="visit",
            )
        stored = build_case(subject)
        case = sheet_case(subject, read, origins)
        old_tps = {tp["id"]: tp for tp in stored["timepoints"]}
        baseline, origin = case["timepoints"][0], origins[0]
        if subject.timepoints and origin != stored["timepoints"][0]["id"]:
            raise InvalidInput(
                f"subject {subject_code}: the first column is the baseline "
                f"{stored['timepoints'][0]['id']}",
                field="visit_0",
            )
        if origin is None or (
            case["lesions"] != stored["lesions"]
            or _visit(baseline, case["lesions"], True)
            != _visit(old_tps[origin], stored["lesions"], True)
        ):
            try:
                save_baseline(
                    session,
                    actor,
                    trial_code,
                    subject_code,
                    date_value=baseline["date"],
                    code=baseline["id"],
                    lesions=_baseline_entry(case),
                    expected_version=None if origin is None else versions[origin],
                    reason=reason,
                )
            except ServiceError as error:
                error.pointer = _into_case(error.pointer, 0, case)
                raise
            saved.append(baseline["id"])
        for index, (tp, origin) in enumerate(zip(case["timepoints"], origins, strict=True)):
            before = old_tps.get(origin) if origin else None
            if index == 0 or (
                before is not None
                and _visit(tp, case["lesions"], False) == _visit(before, stored["lesions"], False)
            ):
                continue
            try:
                save_timepoint(
                    session,
                    actor,
                    trial_code,
                    subject_code,
                    tp,
                    expected_version=None if origin is None else versions[origin],
                    original_code=origin,
                    reason=reason,
                )
            except ServiceError as error:
                error.pointer = _into_case(error.pointer, index, case)
                raise
            saved.append(tp["id"])
    return saved


_BASELINE_VALUE = re.compile(r"^/lesions/(\d+)/(size|state)$")


def _into_case(pointer: str | None, index: int, case: dict[str, Any]) -> str | None:
    """A per-visit service's pointer (into its request body) as a pointer into the case
    of the worksheet, so that the page marks the cell: ``/targets/T01`` of visit 2 →
    ``/timepoints/2/targets/T01``; a baseline lesion's ``/lesions/0/size`` → its cell."""
    if pointer is None or pointer.startswith("/timepoints/"):
        return pointer
    value = _BASELINE_VALUE.match(pointer) if index == 0 else None
    if value is not None and int(value[1]) < len(case["lesions"]):
        lesion = case["lesions"][int(value[1])]
        group = "targets" if lesion["kind"] == "target" else "non_targets"
        return f"/timepoints/0/{group}/{escape_pointer(lesion['id'])}"
    if index == 0 and pointer.startswith("/lesions/"):
        return pointer
    return f"/timepoints/{index}{pointer}"


def next_visit(case: dict[str, Any], today: date) -> tuple[str, str]:
    """The next visit's code and expected scan date (ISO), ``("", "")`` without a baseline.

    The interval is the protocol's (``settings.visit_interval_days``), else the one between
    the last two visits, else 8 weeks; the date is the last visit's plus the interval, or
    today if that is later than today (a scan is read after it was taken). The code
    continues the visits' numbering: after ``W8`` and ``W16``, ``W24``; after ``C2``,
    ``C3``; after the baseline alone, ``W<weeks of the interval>``.
    """
    tps = case["timepoints"]
    if not tps:
        return "", ""
    dates = [date.fromisoformat(tp["date"]) for tp in tps]
    interval = (case.get("settings") or {}).get("visit_interval_days")
    if not interval:
        interval = (dates[-1] - dates[-2]).days if len(dates) > 1 else DEFAULT_INTERVAL_DAYS
    expected = min(dates[-1] + timedelta(days=max(int(interval), 1)), today)
    numbered = [m for m in (_CODE.match(tp["id"]) for tp in tps[1:]) if m]
    taken = {tp["id"] for tp in tps}
    if numbered:
        prefix, last = numbered[-1][1], int(numbered[-1][2])
        step = last - int(numbered[-2][2]) if len(numbered) > 1 else 0
        if step <= 0:
            step = max(round(interval / 7), 1) if prefix.upper() == "W" else 1
    else:
        prefix, last, step = "W", 0, max(round(interval / 7), 1)
    code = f"{prefix}{last + step}"
    while code in taken:
        last += step
        code = f"{prefix}{last + step}"
    return code, expected.isoformat()
