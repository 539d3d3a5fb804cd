"""Turn a measured study into a timepoint of a case (the JSON contract of docs/contracts.md).

Matching (:mod:`imaging_io.matching`, the web upload's matcher too): a measured lesion
(SEG segment, RTSTRUCT ROI, or SR measurement group) belongs to the case lesion its
tracking identifier names, else its label (exactly, then loosely: ``T1`` ≙ ``T01``). A
match whose anatomy contradicts the lesion (a node on a non-nodal lesion, a ``lung
lesion`` on a nodal or a liver lesion) is a conflict and refused, unless
``accept_conflicts``. Ingest never matches by anatomy alone: no reader checks its output
before it is assessed, and a target with no segment plus a new lesion of its organ would
look exactly like that target. The case says whether a lesion is nodal and whether it is
a target:

- target, non-nodal: its longest diameter (R-SEL-3); nodal: its short axis (R-NODE),
  both rounded to 0.1 mm (R-EXACT);
- target whose segment is empty: ``"absent"`` (R-SMALL: disappeared, 0 mm);
- target measured by several segments: ``{"fragments": [...]}`` (R-SPLIT);
- non-target: ``"present"`` when its segment holds voxels, ``"absent"`` when empty
  (unequivocal progression, R-NT-PD, is a reader's call and never inferred);
- a case lesion with nothing in the study: ``"not_evaluated"`` (R-TGT-NE, R-NT-NE);
- a measurement that matches no lesion is refused, or with ``unmatched="new"`` recorded
  as an unequivocal new lesion (R-NEW-1), or with ``unmatched="ignore"`` dropped;
- at the baseline, a lesion that segments measured gets their volume (``volume_ml``, a
  protocol's eligibility reads it: R-ELIG-VOLUME) unless the case gives one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaging_io.errors import ImagingInputError
from imaging_io.matching import Conflict, Segment, match_to_lesions

UNMATCHED_POLICIES = ("refuse", "new", "ignore")


@dataclass(frozen=True)
class Finding:
    """One lesion as found in a study: from a segmentation or an SR report."""

    key: str  # tracking identifier, else label
    label: str
    empty: bool
    longest_diameter_mm: float | None
    short_axis_mm: float | None
    nodal: bool = False  # the segment says it is a lymph node (an SR cannot say)
    volume_ml: float | None = None  # a segmentation's volume (an SR gives none)

    def segment(self) -> Segment:
        """What :mod:`imaging_io.matching` matches."""
        return Segment(self.label, self.key if self.key != self.label else None, self.nodal)


def conflict_message(timepoint_id: str, finding: Finding, conflict: Conflict) -> str:
    """One sentence naming the timepoint, segment, lesion and why they disagree."""
    return (
        f"timepoint {timepoint_id}: segment {finding.segment().describe()} names lesion "
        f"{conflict.lesion_id}, but {conflict.reason}; correct the segment's tracking "
        "identifier or label, or the lesion's site or nodal flag in the case (or, having "
        "checked the images, pass --accept-conflicts)"
    )


def findings_from_measurements(result: Any) -> list[Finding]:
    """Findings of a :class:`imaging_io.measure.MeasureResult`."""
    return [
        Finding(
            key=le.tracking_id or le.label,
            label=le.label,
            empty=le.voxel_count == 0,
            longest_diameter_mm=le.longest_diameter_mm,
            short_axis_mm=le.short_axis_mm,
            nodal=le.nodal,
            volume_ml=le.volume_ml if le.voxel_count else None,
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
    accept_conflicts: bool = False,
) -> dict[str, Any]:
    """The timepoint JSON (docs/contracts.md) for ``findings`` against ``case``'s lesions.

    With ``accept_conflicts`` a finding whose name and anatomy disagree
    (:class:`imaging_io.matching.Conflict`) is recorded on the lesion its name gives.

    Raises
    ------
    ImagingInputError
        A conflict (without ``accept_conflicts``: the first, naming the others), a finding
        that matches no lesion (with ``unmatched="refuse"``), or a target whose needed
        diameter is missing (an SR without the axis the lesion is judged on).
    """
    lesions = case.get("lesions") or []
    matching = match_to_lesions(lesions, [f.segment() for f in findings])
    if matching.conflicts and not accept_conflicts:
        first, *more = matching.conflicts
        message = conflict_message(timepoint_id, findings[first.segment], first)
        if more:
            others = ", ".join(f"{findings[c.segment].label!r} on {c.lesion_id}" for c in more)
            message += f" (also in conflict: {others})"
        raise ImagingInputError(source, message)
    chosen = _chosen(matching, accept_conflicts)
    by_lesion: dict[str, list[Finding]] = defaultdict(list)
    new_lesions = []
    for index, finding in enumerate(findings):
        if index in chosen:
            by_lesion[chosen[index]].append(finding)
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


def _chosen(matching: Any, accept_conflicts: bool) -> dict[int, str]:
    """Finding index → the lesion it is recorded on."""
    chosen = {i: lesion_id for lesion_id, found in matching.lesions.items() for i in found}
    if accept_conflicts:
        chosen.update({c.segment: c.lesion_id for c in matching.conflicts})
    return chosen


def with_volumes(
    case: dict[str, Any], findings: list[Finding], *, accept_conflicts: bool = False
) -> list[dict[str, Any]]:
    """``case``'s lesions, each that ``findings`` measured with ``volume_ml`` (the sum of
    its segments', 0.01 mL; a split lesion's fragments add up) unless it has one: the
    baseline volume a protocol's eligibility reads (R-ELIG-VOLUME). Findings are matched
    as :func:`build_timepoint` matches them; SR findings carry no volume."""
    lesions = case.get("lesions") or []
    matching = match_to_lesions(lesions, [f.segment() for f in findings])
    volumes: dict[str, float] = defaultdict(float)
    for index, lesion_id in _chosen(matching, accept_conflicts).items():
        volume = findings[index].volume_ml
        if volume is not None:
            volumes[lesion_id] += volume
    return [
        {**le, "volume_ml": round(volumes[str(le.get("id"))], 2)}
        if str(le.get("id")) in volumes and le.get("volume_ml") is None
        else le
        for le in lesions
    ]


def ingest_study(
    case: dict[str, Any],
    study_dir: str | Path,
    *,
    timepoint_id: str,
    date: str | None = None,
    replace: bool = False,
    unmatched: str = "refuse",
    accept_conflicts: bool = False,
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
        Unreadable study, a segment whose name and anatomy disagree (without
        ``accept_conflicts``; naming the segmentation file when the study holds one),
        unmatched findings, no date, an existing timepoint id without ``replace``, or a
        case that the engine refuses (its message, naming the field).
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
        read = study.segmentations
    elif study.reports:
        measurements = [m for report in study.reports for m in read_measurement_report(report)]
        if not measurements:
            raise ImagingInputError(study_dir, "its SR reports hold no linear measurement")
        findings = findings_from_report(measurements)
        read = study.reports
    else:
        raise ImagingInputError(study_dir, "holds no SEG, RTSTRUCT or SR report to ingest")
    when = date or study.series.info.study_date
    if when is None:
        raise ImagingInputError(study_dir, "has no StudyDate; pass --date YYYY-MM-DD")
    # A refusal of a finding names the file it came from when the study has only one.
    source = str(read[0]) if len(read) == 1 else str(study_dir)
    timepoint = build_timepoint(case, findings, timepoint_id=timepoint_id, date=when,
                                source=source, unmatched=unmatched,
                                accept_conflicts=accept_conflicts)
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
    if timepoints[0] is timepoint:
        # The baseline: its segmentations' volumes go with the lesions (R-ELIG-VOLUME).
        out["lesions"] = with_volumes(out, findings, accept_conflicts=accept_conflicts)
    if len(timepoints) == 1:
        series = study.series
        out["lesions"] = [
            {**le, **({} if "modality" in le or not series.info.modality
                      else {"modality": series.info.modality}),
             **({} if "slice_thickness_mm" in le or series.slice_thickness_mm is None
                else {"slice_thickness_mm": round(series.slice_thickness_mm, 1)})}
            for le in out.get("lesions", [])
        ]
    try:
        parse_case(out)
    except CaseInputError as exc:
        raise ImagingInputError(None, f"the case with timepoint {timepoint_id} is not valid: "
                                f"{exc}") from exc
    return out
