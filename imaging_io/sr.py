"""Linear measurements from DICOM SR TID 1500 measurement reports (via highdicom).

A reader may have measured lesions by hand on a workstation that exports a TID 1500
Measurement Report. Its measurement groups (TID 1410 planar ROI, TID 1411 volumetric ROI,
TID 1501 image measurements) carry a tracking identifier, the images or segment they
refer to, and measurements. We import the linear ones, as measurement records that
:mod:`imaging_io.ingest` matches to a case's lesions by tracking identifier:

============ =============== ===========
measurement  SNOMED CT (SCT) SNOMED RT (SRT, older reports)
============ =============== ===========
long axis    103339001       G-A185
short axis   103340004       G-A186
length       410668003       G-A22A
diameter     81827009        M-02550
============ =============== ===========

Other measurements (area, volume, SUV…) are not RECIST diameters and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imaging_io.errors import ImagingInputError, refusing

# (scheme, code) -> kind; both the SNOMED CT codes and the retired SRT ones (DICOM CP 1850
# moved TID 1500 to SCT, so reports written before it use SRT).
LINEAR_CODES: dict[tuple[str, str], str] = {
    ("SCT", "103339001"): "long axis",
    ("SRT", "G-A185"): "long axis",
    ("SCT", "103340004"): "short axis",
    ("SRT", "G-A186"): "short axis",
    ("SCT", "410668003"): "length",
    ("SRT", "G-A22A"): "length",
    ("SCT", "81827009"): "diameter",
    ("SRT", "M-02550"): "diameter",
}
_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001}


@dataclass(frozen=True)
class LinearMeasurement:
    """One linear measurement of a TID 1500 report, in mm.

    Attributes
    ----------
    tracking_identifier, tracking_uid
        The measurement group's tracking identifier (e.g. ``"T1"``) and UID.
    kind
        ``"long axis"``, ``"short axis"``, ``"length"`` or ``"diameter"``.
    value_mm
        The value converted to mm.
    referenced_images
        SOP Instance UIDs the group refers to (source images of its ROI).
    referenced_segments
        Segment numbers the group refers to (volumetric groups over a SEG).
    """

    tracking_identifier: str | None
    tracking_uid: str | None
    kind: str
    value_mm: float
    referenced_images: tuple[str, ...] = ()
    referenced_segments: tuple[int, ...] = ()


def _walk_references(items: Any, images: list[str], segments: list[int]) -> None:
    """Collect referenced SOP instances and segment numbers under content items."""
    for child in items:
        if "ReferencedSOPInstanceUID" in child:
            uid = str(child.ReferencedSOPInstanceUID)
            if uid not in images:
                images.append(uid)
        numbers = child.get("ReferencedSegmentNumber")
        for number in (numbers if isinstance(numbers, list | tuple) else [numbers]) or []:
            if number is not None and int(number) not in segments:
                segments.append(int(number))
        for element in child:
            if element.VR == "SQ":
                _walk_references(element.value, images, segments)


def read_measurement_report(path: str | Path) -> list[LinearMeasurement]:
    """The linear measurements of a DICOM SR TID 1500 measurement report
    (:func:`_read_measurement_report`); whatever the file holds, the answer is
    measurements or an :class:`ImagingInputError`."""
    with refusing(path, "is not a readable DICOM SR measurement report"):
        return _read_measurement_report(path)


def _read_measurement_report(path: str | Path) -> list[LinearMeasurement]:
    """Import the linear measurements of a DICOM SR TID 1500 measurement report.

    Parameters
    ----------
    path
        The SR file.

    Returns
    -------
    list of LinearMeasurement
        In document order; empty if the report holds no linear measurement.

    Raises
    ------
    ImagingInputError
        Not a TID 1500 measurement report, or a linear measurement with a unit that is
        not a length.
    """
    import highdicom as hd

    p = Path(path)
    try:
        report = hd.sr.srread(p)
    except (ValueError, AttributeError, KeyError, TypeError, OSError) as exc:
        raise ImagingInputError(p, f"is not a readable DICOM SR document ({exc})") from exc
    content = report.content
    if not isinstance(content, hd.sr.MeasurementReport):
        raise ImagingInputError(p, "is an SR document but not a TID 1500 measurement report")
    groups: list[Any] = []
    for getter in ("get_planar_roi_measurement_groups", "get_volumetric_roi_measurement_groups",
                   "get_image_measurement_groups"):
        groups.extend(getattr(content, getter)())
    found = []
    for group in groups:
        images: list[str] = []
        segments: list[int] = []
        _walk_references(group, images, segments)
        for measurement in group.get_measurements():
            name = measurement.name
            kind = LINEAR_CODES.get((str(name.scheme_designator), str(name.value)))
            if kind is None:
                continue
            unit = str(measurement.unit.value)
            if unit not in _TO_MM:
                raise ImagingInputError(
                    p, f"measurement group {group.tracking_identifier!r}: {kind} in unit "
                    f"{unit!r} is not a length in mm, cm or m",
                )
            found.append(
                LinearMeasurement(
                    tracking_identifier=str(group.tracking_identifier)
                    if group.tracking_identifier else None,
                    tracking_uid=str(group.tracking_uid) if group.tracking_uid else None,
                    kind=kind,
                    value_mm=float(measurement.value) * _TO_MM[unit],
                    referenced_images=tuple(images),
                    referenced_segments=tuple(segments),
                )
            )
    return found
