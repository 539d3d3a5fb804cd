"""``recist export-sr IMAGE --seg SEG -o OUT.dcm``: measured lesions as a DICOM SR TID 1500.

The lesions are measured by :func:`imaging_io.measure.measure_study` — the numbers
``recist measure`` prints — and written with highdicom as a Measurement Report (DICOM
PS3.16 TID 1500) in a Comprehensive SR document. Per lesion, one Measurement and
Qualitative Evaluation group (TID 1501) holds:

- its Tracking Identifier, the lesion id ``recist ingest`` matches (the segment's Tracking
  ID, else its label), and Tracking Unique Identifier (:func:`tracking_uid`);
- the time point context (TID 1502, ``--timepoint``);
- the finding (the segment's segmented property type, else "Lesion"), its category, and
  the finding site when the segment states an anatomic region;
- Long Axis and Short Axis (TID 300) in mm, each INFERRED FROM the 2-D SCOORD POLYLINE of
  its two end points on the source image of slice ``slice_index``;
- its sources: that image and, for a DICOM SEG, the segment (SEG instance and Referenced
  Segment Number).

Why TID 1501 and not a planar ROI group (TID 1410): a TID 1410 group has one region and
its measurements may not carry coordinates of their own (highdicom refuses them), while a
bidirectional measurement is two lines. A lesion whose segment is empty (RECIST's
"disappeared") has no slice and no line: its group holds the qualitative evaluation
Presence of property = Absent and no measurement, because a 0 mm measurement would be
read back as a lesion that is present (``recist ingest`` reads only the linear
measurements of an SR, so it takes such a lesion as not evaluated).

The observer context (TID 1002) names the person ``--observer`` gives, if any, and always
the device that measured ("recist measure"): without ``--observer`` no person has looked
at the numbers, so none is claimed. Procedure reported: CT or MRI "unspecified body
region" (LOINC, CID 100) by the series' modality, else "Imaging procedure". The document
joins the image's patient and study. It is written to a new file beside ``OUT`` and
renamed, so a refusal or a crash never leaves a partial ``OUT``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imaging_io.measure import Axis, LesionMeasurement, MeasureResult

# The help line of this command in `recist --help` (read without importing this module).
HELP = "write measured lesions as a DICOM SR TID 1500 measurement report"

DEFAULT_OBSERVER = "recist measure"
MANUFACTURER = "recist-service"
SR_SERIES_NUMBER = 900
# A SCOORD point must lie on its source image: an end point further than this from the
# slice plane means the geometry read back does not match the grid it was measured on.
MAX_OFF_PLANE_MM = 0.01
_LATERALITY = {"24028007", "7771000", "51440002", "66459002"}  # right, left, both, unilateral


@dataclass(frozen=True)
class SourceFrame:
    """One image plane of the series, as a SCOORD refers to it.

    Attributes
    ----------
    dataset
        The header of its file (the evidence the SR cites).
    frame_number
        1-based frame of a multi-frame image, ``None`` for a single-frame image.
    position, row_direction, column_direction
        ImagePositionPatient (the centre of the first pixel) and the unit vectors along a
        row (increasing column) and along a column (increasing row), LPS.
    pixel_spacing
        ``(between rows, between columns)`` in mm, as DICOM's PixelSpacing.
    """

    dataset: Any
    frame_number: int | None
    position: tuple[float, float, float]
    row_direction: tuple[float, float, float]
    column_direction: tuple[float, float, float]
    pixel_spacing: tuple[float, float]

    @property
    def sop_class_uid(self) -> str:
        return str(self.dataset.SOPClassUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    def pixel_points(self, axis: Axis) -> list[tuple[float, float]]:
        """The end points of a diameter as SCOORD ``(column, row)`` pairs on this plane.

        SCOORD pixel coordinates put (0, 0) at the outer corner of the first pixel, so
        the centre of pixel (row r, column c) is (c + 0.5, r + 0.5) (PS3.3 C.18.6.1.2).

        Raises
        ------
        ValueError
            An end point off this plane (by more than ``MAX_OFF_PLANE_MM``).
        """
        import numpy as np

        origin = np.array(self.position)
        along_row = np.array(self.row_direction)
        along_column = np.array(self.column_direction)
        normal = np.cross(along_row, along_column)
        points = []
        for point in axis:
            offset = np.array(point) - origin
            off_plane = abs(float(offset @ normal))
            if off_plane > MAX_OFF_PLANE_MM:
                raise ValueError(f"end point {point} is {off_plane:.3f} mm off the plane of "
                                 f"image {self.sop_instance_uid}")
            column = float(offset @ along_row) / self.pixel_spacing[1]
            row = float(offset @ along_column) / self.pixel_spacing[0]
            points.append((column + 0.5, row + 0.5))
        return points


def tracking_uid(scope: str, lesion_key: str) -> str:
    """The Tracking Unique Identifier of a lesion, the same at every export.

    ``scope`` is ``"subject <KEY>"`` (``--subject``: the lesion keeps its UID at every
    timepoint of the subject, as a tracking UID is meant to) or ``"study <UID>"`` (the
    default: one UID per study and lesion). Derived with pydicom's ``generate_uid`` from
    these entropy sources (a SHA-512 hash under pydicom's UID root).
    """
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["recist export-sr tracking", scope, lesion_key]))


def lesion_key(lesion: LesionMeasurement) -> str:
    """The lesion id written as Tracking Identifier: what ``recist ingest`` matches."""
    return lesion.tracking_id or lesion.label


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _frames_of(ds: Any) -> list[SourceFrame]:
    """Every plane of an image file, with the geometry a SCOORD on it needs."""
    from imaging_io.series import functional_group_value

    count = int(ds.get("NumberOfFrames", 1) or 1)
    frames = []
    for index in range(count):
        position = _floats(functional_group_value(ds, index, "PlanePositionSequence",
                                                  "ImagePositionPatient"), 3)
        orientation = _floats(functional_group_value(ds, index, "PlaneOrientationSequence",
                                                     "ImageOrientationPatient"), 6)
        spacing = _floats(functional_group_value(ds, index, "PixelMeasuresSequence",
                                                 "PixelSpacing"), 2)
        if position is None or orientation is None or spacing is None:
            continue  # measure_study has already refused a series without geometry
        frames.append(SourceFrame(
            ds, index + 1 if "NumberOfFrames" in ds else None,
            (position[0], position[1], position[2]),
            (orientation[0], orientation[1], orientation[2]),
            (orientation[3], orientation[4], orientation[5]),
            (spacing[0], spacing[1]),
        ))
    return frames


def read_source_headers(image_path: Path, wanted: set[str]) -> dict[str, Any]:
    """SOP Instance UID -> header of the image files among ``wanted``, below
    ``image_path`` (a folder or one file)."""
    from imaging_io.series import is_image_dataset, is_sitk_file, iter_files, read_dicom_header

    files = [image_path] if image_path.is_file() else list(iter_files(image_path))
    found: dict[str, Any] = {}
    for file in files:
        if is_sitk_file(file):
            continue
        ds = read_dicom_header(file)
        if ds is not None and is_image_dataset(ds) and str(ds.get("SOPInstanceUID")) in wanted:
            found[str(ds.SOPInstanceUID)] = ds
    return found


def source_frame(headers: dict[str, Any], sop_instance_uid: str, axis: Axis) -> SourceFrame:
    """The plane of image ``sop_instance_uid`` that a diameter lies on (for a multi-frame
    image, the frame nearest to its end points)."""
    import numpy as np

    frames = _frames_of(headers[sop_instance_uid])
    middle = np.mean(np.array(axis), axis=0)

    def distance(frame: SourceFrame) -> float:
        normal = np.cross(np.array(frame.row_direction), np.array(frame.column_direction))
        return abs(float((middle - np.array(frame.position)) @ normal))

    return min(frames, key=distance)


@dataclass(frozen=True)
class _Segment:
    """What a DICOM SEG says about one segment, beyond what measuring needs."""

    finding_type: Any | None
    finding_category: Any | None
    finding_sites: tuple[Any, ...]


def _code(item: Any) -> Any:
    import highdicom as hd

    return hd.sr.CodedConcept.from_dataset(item)


def _finding_sites(item: Any) -> tuple[Any, ...]:
    """FindingSite of a segment's AnatomicRegionSequence (modifiers: laterality if one
    of right/left/bilateral/unilateral, else a topographical modifier)."""
    import highdicom as hd

    sites = []
    for region in item.get("AnatomicRegionSequence", None) or []:
        laterality = modifier = None
        for mod in region.get("AnatomicRegionModifierSequence", None) or []:
            if str(mod.CodeValue) in _LATERALITY:
                laterality = laterality or _code(mod)
            else:
                modifier = modifier or _code(mod)
        sites.append(hd.sr.FindingSite(_code(region), laterality=laterality,
                                       topographical_modifier=modifier))
    return tuple(sites)


def read_seg_segments(seg: Any) -> dict[int, _Segment]:
    """Segment number -> its segmented property type and category, and anatomic region."""
    segments: dict[int, _Segment] = {}
    for item in seg.get("SegmentSequence", None) or []:
        prop = item.get("SegmentedPropertyTypeCodeSequence")
        category = item.get("SegmentedPropertyCategoryCodeSequence")
        segments[int(item.SegmentNumber)] = _Segment(
            _code(prop[0]) if prop else None, _code(category[0]) if category else None,
            _finding_sites(item),
        )
    return segments


def procedure_code(modality: str | None) -> Any:
    """Procedure Reported (CID 100) for the series' modality."""
    from pydicom.sr.codedict import codes

    if modality == "CT":
        return codes.LN.CTUnspecifiedBodyRegion
    if modality == "MR":
        return codes.LN.MRIUnspecifiedBodyRegion
    return codes.SCT.ImagingProcedure


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recist-service")
    except PackageNotFoundError:
        return "unknown"


def build_report(
    result: MeasureResult,
    headers: dict[str, Any],
    *,
    seg: Any | None = None,
    timepoint: str | None = None,
    observer: str | None = None,
    subject: str | None = None,
) -> Any:
    """The TID 1500 Measurement Report of measured lesions, as a Comprehensive SR.

    Parameters
    ----------
    result
        The lesions as :func:`imaging_io.measure.measure_study` measured them on a DICOM
        image series.
    headers
        SOP Instance UID -> header of every image the lesions lie on.
    seg
        The DICOM SEG's header when the lesions are its segments (each group then cites
        its segment), else ``None``.
    timepoint, observer, subject
        As ``--timepoint``, ``--observer`` and ``--subject``.

    Returns
    -------
    highdicom.sr.ComprehensiveSR

    Raises
    ------
    ValueError
        An end point off its source image (the geometry disagrees with the grid).
    """
    import highdicom as hd
    import numpy as np
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    info = result.info
    scope = f"subject {subject}" if subject else f"study {info.study_instance_uid}"
    segments = read_seg_segments(seg) if seg is not None else {}
    time_point = hd.sr.TimePointContext(time_point=timepoint) if timepoint else None
    algorithm = hd.sr.AlgorithmIdentification(name=DEFAULT_OBSERVER,
                                              version=_software_version())
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["recist export-sr device", DEFAULT_OBSERVER]),
            name=DEFAULT_OBSERVER, manufacturer_name=MANUFACTURER,
        ),
    )
    person = None if not observer else hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=observer),
    )
    groups: list[Any] = []
    cited: dict[str, Any] = {}
    for lesion in result.lesions:
        key = lesion_key(lesion)
        identifier = hd.sr.TrackingIdentifier(uid=tracking_uid(scope, key), identifier=key)
        segment = segments.get(lesion.label_value)
        finding_type = (segment.finding_type if segment and segment.finding_type
                        else codes.SCT.Lesion)
        common: dict[str, Any] = {
            "tracking_identifier": identifier,
            "time_point_context": time_point,
            "finding_type": finding_type,
            "finding_category": segment.finding_category if segment else None,
            "finding_sites": list(segment.finding_sites) if segment else None,
        }
        if lesion.slice_index is None or lesion.long_axis is None or lesion.short_axis is None:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                **common,
                qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                    codes.DCM.PresenceOfProperty, codes.SCT.Absent)],
            ))
            continue
        frame = source_frame(headers, info.sop_instance_uids[lesion.slice_index],
                             lesion.long_axis)
        cited[frame.sop_instance_uid] = frame.dataset
        frames = None if frame.frame_number is None else [frame.frame_number]

        measurements = []
        for name, value, axis in (
            (codes.SCT.LongAxis, lesion.longest_diameter_mm, lesion.long_axis),
            (codes.SCT.ShortAxis, lesion.short_axis_mm, lesion.short_axis),
        ):
            coordinates = hd.sr.CoordinatesForMeasurement(
                hd.sr.GraphicTypeValues.POLYLINE,
                np.array(frame.pixel_points(axis), dtype=np.float64),
                hd.sr.SourceImageForRegion(frame.sop_class_uid, frame.sop_instance_uid,
                                           frames),
            )
            measurements.append(hd.sr.Measurement(
                name=name, value=round(value, 1), unit=codes.UCUM.Millimeter,
                algorithm_id=algorithm, referenced_coordinates=[coordinates],
            ))
        sources = [hd.sr.SourceImageForMeasurementGroup(frame.sop_class_uid,
                                                        frame.sop_instance_uid, frames)]
        if seg is not None and segment is not None:
            source = hd.sr.SourceImageForMeasurementGroup(str(seg.SOPClassUID),
                                                          str(seg.SOPInstanceUID))
            # Image Reference Macro (PS3.3 C.18.3.1): the segment measured. Not with a
            # frame number too: the macro allows one or the other.
            source.ReferencedSOPSequence[0].ReferencedSegmentNumber = lesion.label_value
            sources.append(source)
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            **common, measurements=measurements, source_images=sources,
        ))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person,
                                                     observer_device_context=device),
        procedure_reported=procedure_code(info.modality),
        imaging_measurements=groups,
        referenced_images=list(cited.values()) or None,
    )
    evidence = list(cited.values()) or [next(iter(headers.values()))]
    if seg is not None:
        evidence.append(seg)
    return hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=report,
        series_instance_uid=generate_uid(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
    )


def write_atomically(dataset: Any, out: Path) -> None:
    """Save ``dataset`` to ``out`` through a new file in the same folder, renamed into
    place, so that ``out`` is never left half written."""
    part = out.with_name(f".{out.name}.{secrets.token_hex(6)}.part")
    # Created like any new file (mode 0666 less the umask), refusing to reuse a path.
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        dataset.save_as(part, enforce_file_format=True)
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def export_measurement_report(
    image_path: str | Path,
    seg_path: str | Path,
    out_path: str | Path,
    *,
    timepoint: str | None = None,
    observer: str | None = None,
    subject: str | None = None,
) -> MeasureResult:
    """Measure the lesions of ``seg_path`` on ``image_path`` and write them to
    ``out_path`` as a DICOM SR TID 1500 measurement report (see the module docstring).

    Parameters
    ----------
    image_path
        A DICOM image series: a folder, or one (multi-frame) file.
    seg_path
        DICOM SEG, RTSTRUCT or label map over it.
    out_path
        The SR file to write (replaced if it exists).
    timepoint
        Time point id (TID 1502 Time Point), e.g. ``"W8"``.
    observer
        Name of the person observer; without it only the device observer is recorded.
    subject
        A subject key: tracking UIDs then follow the lesion across timepoints.

    Returns
    -------
    MeasureResult
        What was measured and written.

    Raises
    ------
    ImagingInputError
        As :func:`imaging_io.measure.measure_study`, an image that is not DICOM, an
        output folder that does not exist, or a report that cannot be built or written,
        naming the file.
    """
    from imaging_io.errors import ImagingInputError, refusing
    from imaging_io.measure import measure_study
    from imaging_io.series import is_sitk_file, read_dicom_header

    image, segmentation, out = Path(image_path), Path(seg_path), Path(out_path)
    if not out.parent.is_dir():
        raise ImagingInputError(out, "cannot be written: its folder does not exist")
    result = measure_study(image, segmentation)
    uids = result.info.sop_instance_uids
    if not uids or not all(uids):
        raise ImagingInputError(image, "is not a DICOM image series: an SR cites the DICOM "
                                "images its coordinates are on")
    wanted = {uids[le.slice_index] for le in result.lesions if le.slice_index is not None}
    headers = read_source_headers(image, wanted or {uids[0]})
    header = None if is_sitk_file(segmentation) else read_dicom_header(segmentation)
    seg = header if header is not None and str(header.get("Modality", "")) == "SEG" else None
    with refusing(out, "cannot be built as a DICOM SR measurement report"):
        document = build_report(result, headers, seg=seg, timepoint=timepoint,
                                observer=observer, subject=subject)
    try:
        write_atomically(document, out)
    except OSError as exc:
        raise ImagingInputError(out, f"cannot be written ({exc.strerror or exc})") from exc
    return result


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``recist export-sr``."""
    parser.add_argument("image", metavar="IMAGE",
                        help="DICOM series folder or one (multi-frame) DICOM file")
    parser.add_argument("--seg", required=True, metavar="SEG",
                        help="DICOM SEG, DICOM RTSTRUCT, or label map over IMAGE")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.dcm",
                        help="the DICOM SR file to write")
    parser.add_argument("--timepoint", metavar="ID", help="time point id, e.g. W8")
    parser.add_argument("--observer", metavar="NAME",
                        help="the person observer (default: only the device "
                             f"{DEFAULT_OBSERVER!r})")
    parser.add_argument("--subject", metavar="KEY",
                        help="subject key: tracking UIDs follow a lesion across timepoints "
                             "(default: one per study and lesion)")


def run(args: argparse.Namespace) -> int:
    """Measure and write the SR; bad input exits 2 with one line on stderr."""
    import warnings

    from imaging_io.cli import READER_ERRORS, report_error
    from imaging_io.errors import ImagingInputError

    try:
        with warnings.catch_warnings():
            # pydicom/highdicom warn about harmless quirks of real files.
            warnings.simplefilter("ignore")
            export_measurement_report(args.image, args.seg, args.output,
                                      timepoint=args.timepoint, observer=args.observer,
                                      subject=args.subject)
    except ImagingInputError as exc:
        return report_error("export-sr", exc)
    except READER_ERRORS as exc:
        return report_error("export-sr", exc)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m imaging_io.sr_export …``: the command without the ``recist`` front."""
    parser = argparse.ArgumentParser(prog="recist export-sr", description=HELP)
    register(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
