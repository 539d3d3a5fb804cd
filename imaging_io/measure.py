"""Measure lesions: an image series plus its segmentation in, RECIST sizes out.

:func:`measure_study` is the Python face of ``recist measure`` (docs/contracts.md): its
:class:`MeasureResult` ``.to_dict()`` is exactly the command's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from imaging_io.diameters import Chord, mask_diameters
from imaging_io.errors import refusing
from imaging_io.grid import Grid
from imaging_io.masks import LesionMask
from imaging_io.segmentation import FRACTIONAL_THRESHOLD, read_segmentation
from imaging_io.series import ImageSeries, SeriesInfo, read_image

# End points are given to 1/10 000 mm (the engine's precision, R-EXACT): their distance
# then equals the unrounded diameter to within 0.0002 mm, well inside the 0.1 mm to which
# the diameters are rounded in the JSON.
POINT_DECIMALS = 4

PatientPoint = tuple[float, float, float]
"""A point in the patient coordinate system (DICOM LPS), in mm."""
Axis = tuple[PatientPoint, PatientPoint]
"""The two end points of a diameter, in patient coordinates."""


@dataclass(frozen=True)
class LesionMeasurement:
    """RECIST sizes of one segment / ROI / label value.

    ``longest_diameter_mm`` and ``short_axis_mm`` are 0.0 and ``slice_index`` is ``None``
    for an empty segment (nothing left to measure: RECIST's "disappeared"). ``long_axis``
    and ``short_axis`` are the diameters' end points in patient coordinates (mm, DICOM LPS)
    on the slice ``slice_index``, ``None`` for an empty segment.
    """

    label: str
    label_value: int
    longest_diameter_mm: float
    short_axis_mm: float
    slice_index: int | None
    volume_ml: float
    measurable: bool
    reasons: tuple[str, ...]
    nodal: bool = False
    tracking_id: str | None = None
    voxel_count: int = 0
    long_axis: Axis | None = None
    short_axis: Axis | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "label_value": self.label_value,
            "longest_diameter_mm": round(self.longest_diameter_mm, 1),
            "short_axis_mm": round(self.short_axis_mm, 1),
            "slice_index": self.slice_index,
            "long_axis": _axis_dict(self.long_axis),
            "short_axis": _axis_dict(self.short_axis),
            "volume_ml": round(self.volume_ml, 2),
            "measurable": self.measurable,
            "reasons": list(self.reasons),
            "nodal": self.nodal,
            "tracking_id": self.tracking_id,
            "voxel_count": self.voxel_count,
        }


def _axis_dict(axis: Axis | None) -> dict[str, list[float]] | None:
    if axis is None:
        return None
    start, end = axis
    return {"from": [round(v, POINT_DECIMALS) for v in start],
            "to": [round(v, POINT_DECIMALS) for v in end]}


def patient_axis(grid: Grid, slice_index: int, chord: Chord,
                 offset: tuple[int, int] = (0, 0)) -> Axis:
    """A diameter's end points, ``(row, column)`` pixel indices on ``slice_index``, in
    patient coordinates (mm, DICOM LPS).

    ``offset`` is the grid ``(row, column)`` of the mask's pixel ``(0, 0)``. The grid's
    affine maps a continuous index ``(slice, row, column)`` — integers at pixel centres —
    to LPS, as SimpleITK's ``TransformContinuousIndexToPhysicalPoint`` maps ``(column, row,
    slice)``.
    """
    index = np.array([[slice_index, row + offset[0], col + offset[1], 1.0]
                      for row, col in chord])
    start, end = (index @ grid.affine.T)[:, :3]
    return ((float(start[0]), float(start[1]), float(start[2])),
            (float(end[0]), float(end[1]), float(end[2])))


@dataclass(frozen=True)
class MeasureResult:
    """The ``recist measure`` output: the image summary and one entry per lesion."""

    image: dict[str, Any]
    lesions: tuple[LesionMeasurement, ...]
    info: SeriesInfo = field(default_factory=SeriesInfo)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON of ``recist measure`` (docs/contracts.md)."""
        return {"image": dict(self.image), "lesions": [le.to_dict() for le in self.lesions]}


def split_components(lesion: LesionMask) -> list[LesionMask]:
    """Split a mask into 3-D connected components (26-connectivity), largest first.

    Components are labelled ``"<label> #n"``; each keeps the segment's value.
    """
    from scipy import ndimage

    if lesion.mask.size == 0:
        return [lesion]
    labels, count = ndimage.label(lesion.mask, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())[1:]
    parts = []
    for rank, index in enumerate(np.argsort(-sizes, kind="stable"), start=1):
        part = LesionMask.from_full(
            f"{lesion.label} #{rank}", lesion.label_value, labels == index + 1, lesion.offset,
            tracking_id=lesion.tracking_id, nodal=lesion.nodal,
        )
        parts.append(part)
    return parts if count else [lesion]


def measure_lesion(
    lesion: LesionMask,
    grid: Grid,
    *,
    slice_thickness_mm: float | None,
    modality: str | None,
) -> LesionMeasurement:
    """Diameters, their end points, volume and measurability (R-MEAS-1/2) of one lesion
    mask on ``grid``."""
    from recist.baseline import measurability

    _, dr, dc = grid.spacing
    sizes = mask_diameters(lesion.mask, (dr, dc), grid.voxel_volume_mm3,
                           slice_offset=lesion.offset[0])
    if sizes is None:
        return LesionMeasurement(
            lesion.label, lesion.label_value, 0.0, 0.0, None, 0.0, False,
            ("segment is empty: nothing to measure",), lesion.nodal, lesion.tracking_id, 0,
        )
    longest = round(sizes.longest_diameter_mm, 1)
    short = round(sizes.short_axis_mm, 1)
    verdict = measurability(
        nodal=lesion.nodal,
        longest_diameter_mm=longest,
        short_axis_mm=short,
        slice_thickness_mm=slice_thickness_mm,
        modality=modality,
        site=lesion.label,
    )
    in_plane = (lesion.offset[1], lesion.offset[2])
    return LesionMeasurement(
        lesion.label, lesion.label_value, sizes.longest_diameter_mm, sizes.short_axis_mm,
        sizes.slice_index, sizes.volume_ml, verdict.measurable, verdict.reasons,
        lesion.nodal, lesion.tracking_id, sizes.voxel_count,
        long_axis=patient_axis(grid, sizes.slice_index, sizes.long_axis, in_plane),
        short_axis=patient_axis(grid, sizes.slice_index, sizes.short_axis, in_plane),
    )


def measure_masks(series: ImageSeries, masks: list[LesionMask], *,
                  components: bool = False) -> MeasureResult:
    """Measure lesion masks already placed on ``series.grid``."""
    if components:
        masks = [part for lesion in masks for part in split_components(lesion)]
    lesions = tuple(
        measure_lesion(le, series.grid, slice_thickness_mm=series.slice_thickness_mm,
                       modality=series.info.modality)
        for le in masks
    )
    return MeasureResult(series.to_dict(), lesions, series.info)


def measure_study(
    image_path: str | Path | None,
    seg_path: str | Path,
    *,
    components: bool = False,
    resample: bool = False,
    fractional_threshold: float = FRACTIONAL_THRESHOLD,
) -> MeasureResult:
    """Measure every lesion of a segmentation on its image series.

    Parameters
    ----------
    image_path
        DICOM series folder, one (multi-frame) DICOM file, or a NIfTI/NRRD/MetaImage
        file. ``None`` measures a DICOM SEG on its own grid (its frames' positions and
        pixel measures), for a SEG whose image series is not at hand.
    seg_path
        DICOM SEG, RTSTRUCT or label map.
    components
        Split each segment into connected components (``--components``).
    resample
        Resample a label map that is off the image grid (nearest neighbour).
    fractional_threshold
        Fractional SEG values ≥ this are lesion (default 0.5).

    Returns
    -------
    MeasureResult
        ``.to_dict()`` is the ``recist measure`` JSON.

    Raises
    ------
    imaging_io.errors.ImagingInputError
        Any unreadable or inconsistent input, naming the file.
    """
    # Our readers refuse what they anticipate with a message naming the file; anything
    # else a third-party parser raises (sqlite3, numpy, struct…) is still refused in one
    # line naming the input it came from, never as an anonymous error.
    if image_path is None:
        from imaging_io.segmentation import load_seg, seg_grid

        with refusing(seg_path, "is not a readable DICOM SEG"):
            seg = load_seg(Path(seg_path))
            grid, thickness = seg_grid(Path(seg_path), seg)
        series = ImageSeries(str(seg_path), grid, thickness or grid.spacing[0],
                             SeriesInfo(modality=None))
    else:
        with refusing(image_path, "cannot be read as an image series"):
            series = read_image(image_path)
    with refusing(seg_path, "cannot be read as a segmentation"):
        masks = read_segmentation(
            seg_path, series.grid, image_sop_uids=series.info.sop_instance_uids,
            image_series_uid=series.info.series_instance_uid, resample=resample,
            fractional_threshold=fractional_threshold,
        )
    return measure_masks(series, masks, components=components)


def with_label(measurement: LesionMeasurement, label: str) -> LesionMeasurement:
    """A copy under another label (used when matching lesions to a case)."""
    return replace(measurement, label=label)
