"""Turn a measured study into a timepoint of a case (the JSON contract of docs/contracts.md).

Matching: a measured lesion (SEG segment, RTSTRUCT ROI, or SR measurement group) belongs
to the case lesion whose ``id`` equals its tracking identifier, else its label (exact,
then ignoring case). The case says whether a lesion is nodal and whether it is a target:

- target, non-nodal: its longest diameter (R-SEL-3); nodal: its short axis (R-NODE),
  both rounded to 0.1 mm (R-EXACT);
- target whose segment is empty: ``"absent"`` (R-SMALL: disappeared, 0 mm);
- target measured by several segments: ``{"fragments": [...]}`` (R-SPLIT);
- non-target: ``"present"`` when its segment holds voxels, ``"absent"`` when empty
  (unequivocal progression, R-NT-PD, is a reader's call and never inferred);
- a case lesion with nothing in the study: ``"not_evaluated"`` (R-TGT-NE, R-NT-NE);
- a measurement that matches no lesion is refused, or with ``unmatched="new"`` recorded
  as an unequivocal new lesion (R-NEW-1), or with ``unmatched="ignore"`` dropped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaging_io.errors import ImagingInputError

UNMATCHED_POLICIES = ("refuse", "new", "ignore")


@dataclass(frozen=True)
class Finding:
    """One lesion as found in a study: from a segmentation or an SR report."""

    key: str  # tracking identifier, else label
    label: str
    empty: bool
    longest_diameter_mm: float | None
    short_axis_mm: float | None


def _match(case_ids: dict[str, str], finding: Finding, label: str) -> str | None:
    for candidate in (finding.key, label):
        if candidate in case_ids.values():
            return candidate
    for candidate in (finding.key, label):
        hit = case_ids.get(candidate.lower())
        if hit is not None:
            return hit
    return None


def findings_from_measurements(result: Any) -> list[Finding]:
    """Findings of a :class:`imaging_io.measure.MeasureResult`."""
    return [
        Finding(
            key=le.tracking_id or le.label,
            label=le.label,
            empty=le.voxel_count == 0,
            longest_diameter_mm=le.longest_diameter_mm,
            short_axis_mm=le.short_axis_mm,
        )
        for le in result.lesions
    ]


def findings_from_report(measurements: list[Any]) -> list[Finding]:
    """Findings of SR linear measurements, grouped by tracking identifier.

    Long axis, length and diameter give the longest diameter (the largest of them);
    short axis gives the short axis.
    """
    grouped: dict[str, dict[str, float]] = defaultdict(dict)
    for m in measurements:
        key = m.tracking_identifier or m.tracking_uid or "?"
        slot = "short" if m.kind == "short axis" else "long"
        grouped[key][slot] = max(grouped[key].get(slot, 0.0), m.value_mm)
    return [Finding(key, key, False, sizes.get("long"), sizes.get("short"))
            for key, sizes in grouped.items()]


def build_timepoint(
    case: dict[str, Any],
    findings: list[Finding],
    *,
    timepoint_id: str,
    date: str,
    source: str,
    unmatched: str = "refuse",
) -> dict[str, Any]:
    """The timepoint JSON (docs/contracts.md) for ``findings`` against ``case``'s lesions.

    Raises
    ------
    ImagingInputError
        A finding that matches no lesion (with ``unmatched="refuse"``), or a target whose
        needed diameter is missing (an SR without the axis the lesion is judged on).
    """
    lesions = case.get("lesions") or []
    case_ids = {str(le["id"]).lower(): str(le["id"]) for le in lesions}
    by_lesion: dict[str, list[Finding]] = defaultdict(list)
    new_lesions = []
    for finding in findings:
        lesion_id = _match(case_ids, finding, finding.label)
        if lesion_id is not None:
            by_lesion[lesion_id].append(finding)
        elif unmatched == "new" and not finding.empty:
            new_lesions.append({"id": finding.key, "site": finding.label, "equivocal": False})
        elif unmatched == "refuse":
            raise ImagingInputError(
                source,
                f"timepoint {timepoint_id}: {finding.label!r} (tracking id {finding.key!r}) "
                "matches no lesion of the case; give segments the lesion ids as tracking "
                "identifiers or labels, or pass --unmatched new / ignore",
            )
    targets: dict[str, Any] = {}
    non_targets: dict[str, str] = {}
    for lesion in lesions:
        lesion_id = str(lesion["id"])
        found = by_lesion.get(lesion_id, [])
        kind = lesion.get("kind", "target")
        if kind == "non-target":
            if not found:
                non_targets[lesion_id] = "not_evaluated"
            else:
                non_targets[lesion_id] = "absent" if all(f.empty for f in found) else "present"
            continue
        if not found:
            targets[lesion_id] = "not_evaluated"
            continue
        nodal = bool(lesion.get("nodal", False))
        sizes = []
        for f in found:
            if f.empty:
                continue
            value = f.short_axis_mm if nodal else f.longest_diameter_mm
            if value is None:
                axis = "short axis" if nodal else "longest diameter"
                raise ImagingInputError(
                    source, f"timepoint {timepoint_id}: target {lesion_id} has no {axis} "
                    f"({'R-MEAS-2' if nodal else 'R-SEL-3'})",
                )
            sizes.append(round(value, 1))
        if not sizes:
            targets[lesion_id] = "absent"
        elif len(sizes) == 1:
            targets[lesion_id] = sizes[0]
        else:
            targets[lesion_id] = {"fragments": sizes}  # R-SPLIT
    return {"id": timepoint_id, "date": date, "targets": targets,
            "non_targets": non_targets, "new_lesions": new_lesions}


def ingest_study(
    case: dict[str, Any],
    study_dir: str | Path,
    *,
    timepoint_id: str,
    date: str | None = None,
    replace: bool = False,
    unmatched: str = "refuse",
) -> dict[str, Any]:
    """Measure a study folder and return ``case`` with the new timepoint appended.

    Segmentations (SEG/RTSTRUCT) are measured when present; otherwise the linear
    measurements of the folder's TID 1500 SR reports are used. The result is validated
    with :func:`recist.jsonio.parse_case` (ready for ``recist assess``). At the first
    timepoint (baseline), lesions without ``modality``/``slice_thickness_mm`` get the
    series' values, which R-MEAS-1 needs.

    Raises
    ------
    ImagingInputError
        Unreadable study, unmatched findings, no date, an existing timepoint id without
        ``replace``, or a case that the engine refuses (its message, naming the field).
    """
    from imaging_io.measure import MeasureResult
    from imaging_io.sr import read_measurement_report
    from imaging_io.study import measure_study_folder, read_study
    from recist.errors import CaseInputError
    from recist.jsonio import parse_case

    if unmatched not in UNMATCHED_POLICIES:
        raise ImagingInputError(None, f"unmatched policy {unmatched!r} is not one of "
                                f"{', '.join(UNMATCHED_POLICIES)}")
    study = read_study(study_dir)
    if study.segmentations:
        result: MeasureResult = measure_study_folder(study_dir)
        findings = findings_from_measurements(result)
    elif study.reports:
        measurements = [m for report in study.reports for m in read_measurement_report(report)]
        if not measurements:
            raise ImagingInputError(study_dir, "its SR reports hold no linear measurement")
        findings = findings_from_report(measurements)
    else:
        raise ImagingInputError(study_dir, "holds no SEG, RTSTRUCT or SR report to ingest")
    when = date or study.series.info.study_date
    if when is None:
        raise ImagingInputError(study_dir, "has no StudyDate; pass --date YYYY-MM-DD")
    timepoint = build_timepoint(case, findings, timepoint_id=timepoint_id, date=when,
                                source=str(study_dir), unmatched=unmatched)
    out = dict(case)
    timepoints = [dict(tp) for tp in case.get("timepoints", [])]
    existing = [i for i, tp in enumerate(timepoints) if tp.get("id") == timepoint_id]
    if existing and not replace:
        raise ImagingInputError(
            None, f"subject {case.get('subject_id')}: timepoint {timepoint_id} is already in "
            "the case; pass --replace to measure it again",
        )
    if existing:
        timepoints[existing[0]] = timepoint
    else:
        timepoints.append(timepoint)
    out["timepoints"] = timepoints
    if len(timepoints) == 1:
        series = study.series
        out["lesions"] = [
            {**le, **({} if "modality" in le or not series.info.modality
                      else {"modality": series.info.modality}),
             **({} if "slice_thickness_mm" in le or series.slice_thickness_mm is None
                else {"slice_thickness_mm": round(series.slice_thickness_mm, 1)})}
            for le in case.get("lesions", [])
        ]
    try:
        parse_case(out)
    except CaseInputError as exc:
        raise ImagingInputError(None, f"the case with timepoint {timepoint_id} is not valid: "
                                f"{exc}") from exc
    return out
