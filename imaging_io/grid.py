"""The voxel grid of an image series: where every voxel sits in the patient frame.

A :class:`Grid` is valid once built: slices are stacked along their normal, evenly spaced,
with orthogonal row and column directions. :func:`grid_from_planes` builds one from the
per-slice geometry of a DICOM series (classic single-frame files or the frames of an
enhanced multi-frame file) and refuses, with a message naming the file, any geometry the
in-plane measurement cannot honour: no pixel spacing, mixed orientations, gantry tilt,
non-orthogonal axes, duplicate or unevenly spaced slices.

Index convention: arrays are ``[slice, row, column]``. Slices are ordered by increasing
position along the slice normal (row direction × column direction), never by
InstanceNumber; for an axial CT this is feet to head, the order SimpleITK uses, so a
``slice_index`` here is the ``z`` index SimpleITK gives for the same series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from imaging_io.errors import ImagingInputError

# Slices whose gaps differ from the median gap by more than this fraction (or absolute
# amount) are not evenly spaced: averaging them away would give wrong volumes.
SPACING_RTOL = 0.01
SPACING_ATOL_MM = 0.01
# In-plane drift of slice origins allowed as slices advance, as a fraction of a pixel;
# beyond it the stack is sheared (gantry tilt) and in-plane diameters are not honest.
TILT_DRIFT_PIXELS = 0.05
# Row/column direction cosines whose dot product exceeds this are not orthogonal.
ORTHOGONAL_TOL = 1e-3
# RECIST measures on axial slices: a slice normal further than this from the patient's
# head-feet axis is not an axial series.
MAX_AXIAL_TILT_DEG = 45.0


@dataclass(frozen=True, eq=False)
class Grid:
    """A regular voxel grid in the patient coordinate system (DICOM LPS, mm).

    Attributes
    ----------
    shape
        ``(slices, rows, columns)``.
    affine
        4 × 4 matrix mapping ``(slice, row, column, 1)`` to patient coordinates in mm.
    frame_of_reference_uid
        The DICOM Frame of Reference UID, ``None`` for NIfTI/NRRD/MetaImage files.
    """

    shape: tuple[int, int, int]
    affine: NDArray[np.float64]
    frame_of_reference_uid: str | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(slice, row, column)``."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    def to_index(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Patient coordinates ``(n, 3)`` to fractional ``(slice, row, column)`` indices."""
        inverse = np.linalg.inv(self.affine)
        homogeneous = np.c_[points, np.ones(len(points))]
        return np.asarray((homogeneous @ inverse.T)[:, :3], dtype=np.float64)

    def matches(self, other: Grid, *, tol_mm: float = 1e-3) -> bool:
        """Whether both grids have the same shape and the same voxel centres."""
        if self.shape != other.shape:
            return False
        corners = np.array(
            [[k, r, c, 1.0] for k in (0, self.shape[0] - 1) for r in (0, self.shape[1] - 1)
             for c in (0, self.shape[2] - 1)]
        )
        mine = corners @ self.affine.T
        theirs = corners @ other.affine.T
        return bool(np.max(np.abs(mine - theirs)) <= tol_mm)


@dataclass(frozen=True)
class PlaneGeometry:
    """The geometry of one image plane as its header states it (DICOM PS3.3 C.7.6.2)."""

    source: str  # file name, or "file frame N", for messages
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns)
    rows: int
    columns: int


def check_axial(path: str | Path, normal: NDArray[np.float64]) -> None:
    """Refuse a series whose slices are not (close to) axial: RECIST measures on axial
    slices, and a sagittal or coronal "longest diameter" is not a RECIST diameter."""
    unit = normal / np.linalg.norm(normal)
    tilt = math.degrees(math.acos(min(1.0, abs(float(unit[2])))))
    if tilt > MAX_AXIAL_TILT_DEG:
        raise ImagingInputError(
            path,
            f"slice normal is {tilt:.0f}° from the head-feet axis: not an axial series "
            "(RECIST measures diameters on axial slices)",
        )


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def grid_from_planes(
    path: str | Path,
    planes: Sequence[PlaneGeometry],
    *,
    frame_of_reference_uid: str | None,
    spacing_hint_mm: float | None = None,
) -> tuple[Grid, list[int]]:
    """Build the grid of a series from its planes, or refuse it.

    Parameters
    ----------
    path
        The series folder or multi-frame file, named in error messages.
    planes
        One :class:`PlaneGeometry` per slice, in any order.
    frame_of_reference_uid
        Copied into the grid.
    spacing_hint_mm
        Slice spacing for a single-slice series (SliceThickness or SpacingBetweenSlices).

    Returns
    -------
    grid, order
        The grid, and for each grid slice the index into ``planes`` it came from.

    Raises
    ------
    ImagingInputError
        Missing PixelSpacing/position/orientation, planes of different size, spacing or
        orientation, non-orthogonal axes, a non-axial series, gantry tilt, duplicate or
        unevenly spaced slices.
    """
    if not planes:
        raise ImagingInputError(path, "holds no image slices")
    first = planes[0]
    for plane in planes:
        if plane.pixel_spacing is None:
            raise ImagingInputError(
                path,
                f"{plane.source} has no PixelSpacing (0028,0030): in-plane diameters "
                "cannot be measured in mm",
            )
        if plane.position is None or plane.orientation is None:
            raise ImagingInputError(
                path,
                f"{plane.source} has no ImagePositionPatient/ImageOrientationPatient: "
                "its slice cannot be placed in the patient frame",
            )
        if (plane.rows, plane.columns) != (first.rows, first.columns):
            raise ImagingInputError(
                path,
                f"{plane.source} is {plane.rows}×{plane.columns} pixels but "
                f"{first.source} is {first.rows}×{first.columns}: not one series",
            )
    assert first.pixel_spacing is not None and first.orientation is not None
    spacing = np.array(first.pixel_spacing, dtype=float)
    orientation = np.array(first.orientation, dtype=float)
    for plane in planes[1:]:
        assert plane.pixel_spacing is not None and plane.orientation is not None
        if not np.allclose(plane.pixel_spacing, spacing, rtol=1e-4, atol=1e-5):
            raise ImagingInputError(
                path,
                f"{plane.source} has pixel spacing {list(plane.pixel_spacing)} mm but "
                f"{first.source} has {spacing.tolist()} mm: not one series",
            )
        if not np.allclose(plane.orientation, orientation, atol=1e-4):
            raise ImagingInputError(
                path,
                f"{plane.source} and {first.source} have different orientations: "
                "not one stack of parallel slices (mixed series or a localiser?)",
            )
    if np.any(spacing <= 0):
        raise ImagingInputError(path, f"pixel spacing {spacing.tolist()} mm is not positive")
    row_dir = orientation[:3] / np.linalg.norm(orientation[:3])  # along a row: columns grow
    col_dir = orientation[3:] / np.linalg.norm(orientation[3:])  # down a column: rows grow
    dot = float(row_dir @ col_dir)
    if abs(dot) > ORTHOGONAL_TOL:
        raise ImagingInputError(
            path,
            f"row and column directions are not orthogonal (cosine {dot:.4f}): in-plane "
            "distances cannot be measured on this grid",
        )
    normal = np.cross(row_dir, col_dir)
    check_axial(path, normal)
    positions = np.array([p.position for p in planes], dtype=float)
    along = positions @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    along_sorted = along[order]
    if len(planes) > 1:
        gaps = np.diff(along_sorted)
        dup = int(np.argmin(gaps))
        if gaps[dup] <= SPACING_ATOL_MM:
            raise ImagingInputError(
                path,
                f"{planes[order[dup]].source} and {planes[order[dup + 1]].source} lie at "
                f"the same position {_fmt(along_sorted[dup])} mm along the slice normal "
                "(duplicate slices or mixed series)",
            )
        median = float(np.median(gaps))
        if np.max(np.abs(gaps - median)) > max(SPACING_ATOL_MM, SPACING_RTOL * median):
            raise ImagingInputError(
                path,
                f"slice spacing is not uniform: gaps along the slice normal range from "
                f"{_fmt(float(gaps.min()))} to {_fmt(float(gaps.max()))} mm (missing or "
                "irregular slices); refusing rather than averaging it away",
            )
        step = median
        offsets = positions[order] - positions[order[0]]
        in_plane = offsets - np.outer(offsets @ normal, normal)
        drift = float(np.max(np.linalg.norm(in_plane, axis=1)))
        if drift > TILT_DRIFT_PIXELS * float(spacing.min()):
            span = float(along_sorted[-1] - along_sorted[0])
            angle = math.degrees(math.atan2(drift, span))
            raise ImagingInputError(
                path,
                f"slices are not stacked along their normal (shifted {drift:.2f} mm "
                f"in-plane over {span:.1f} mm, gantry tilt about {angle:.1f}°); the grid "
                "would be sheared",
            )
    else:
        step = float(spacing_hint_mm) if spacing_hint_mm else 1.0
    affine = np.eye(4)
    affine[:3, 0] = normal * step
    affine[:3, 1] = col_dir * spacing[0]
    affine[:3, 2] = row_dir * spacing[1]
    affine[:3, 3] = positions[order[0]]
    grid = Grid((len(planes), first.rows, first.columns), affine, frame_of_reference_uid)
    return grid, order
