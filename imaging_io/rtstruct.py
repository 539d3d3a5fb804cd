"""RTSTRUCT regions of interest rasterised onto an image grid.

Each ROI's CLOSED_PLANAR contours are mapped into pixel coordinates of the grid and
filled with the even-odd rule over all contours of the ROI on a slice: a pixel belongs to
the ROI when a ray from its centre crosses the ROI's contours an odd number of times, so
an inner contour cuts a hole (a ring stays a ring) and nothing is filled twice. Pixel
centres inside are lesion (the outline convention of :mod:`imaging_io.diameters` then
measures the filled pixels). POINT and OPEN_PLANAR contours outline nothing and are
ignored; an ROI without closed contours is reported empty.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging_io.errors import ImagingInputError, refusing
from imaging_io.grid import Grid
from imaging_io.masks import LesionMask
from recist.lesions import names_a_node

# A contour must lie within this fraction of a slice spacing of an image slice.
_SLICE_TOL = 0.25


def fill_even_odd(polygons: list[NDArray[np.float64]], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Rasterise closed polygons (``(n, 2)`` arrays of ``(row, column)``) by the even-odd rule.

    A pixel is set when its centre lies inside an odd number of polygons' crossings
    (scanline rule, half-open in rows so that a vertex on a scanline counts once).
    """
    rows_n, cols_n = shape
    starts, ends = [], []
    for poly in polygons:
        if len(poly) < 3:
            continue
        starts.append(poly)
        ends.append(np.roll(poly, -1, axis=0))
    out = np.zeros(shape, dtype=bool)
    if not starts:
        return out
    a = np.concatenate(starts)
    b = np.concatenate(ends)
    r_lo = np.minimum(a[:, 0], b[:, 0])
    r_hi = np.maximum(a[:, 0], b[:, 0])
    first = np.clip(np.ceil(r_lo), 0, rows_n).astype(int)  # scanlines r with r_lo <= r < r_hi
    last = np.clip(np.ceil(r_hi), 0, rows_n).astype(int)
    counts = np.maximum(last - first, 0)
    edge = np.repeat(np.arange(len(a)), counts)
    if edge.size == 0:
        return out
    row = first[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts))
    ar, ac, br, bc = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
    col = ac + (row - ar) * (bc - ac) / (br - ar)
    order = np.lexsort((col, row))
    row, col = row[order], col[order]
    # Crossings pair up within each scanline (closed polygons cross each line evenly).
    enter, leave = col[0::2], col[1::2]
    line = row[0::2]
    diff = np.zeros((rows_n, cols_n + 1), dtype=np.int32)
    c0 = np.clip(np.ceil(enter), 0, cols_n).astype(int)
    c1 = np.clip(np.ceil(leave), 0, cols_n).astype(int)
    np.add.at(diff, (line, c0), 1)
    np.add.at(diff, (line, c1), -1)
    return np.cumsum(diff, axis=1)[:, :cols_n] > 0


def referenced_series_uids(ds: Any) -> set[str]:
    """Series UIDs an RTSTRUCT's ReferencedFrameOfReferenceSequence points at."""
    uids = set()
    for ref in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in ref.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                uids.add(str(series.get("SeriesInstanceUID", "")))
    return uids


def read_rtstruct(path: str | Path, grid: Grid, *, image_series_uid: str | None = None
                  ) -> list[LesionMask]:
    """Read every ROI of an RTSTRUCT onto ``grid`` (:func:`_read_rtstruct`); whatever the
    file holds, the answer is lesions or an :class:`ImagingInputError`."""
    with refusing(path, "is not a readable DICOM RTSTRUCT"):
        return _read_rtstruct(path, grid, image_series_uid=image_series_uid)


def _read_rtstruct(path: str | Path, grid: Grid, *, image_series_uid: str | None
                   ) -> list[LesionMask]:
    """Read every ROI of an RTSTRUCT onto ``grid``.

    An ROI stated on another frame of reference is refused, unless the structure set
    references the image series itself (some writers put a fresh frame-of-reference UID
    in StructureSetROISequence while contouring on the referenced series: a quirk read
    tolerantly, since the contours then are in that series' patient frame).

    Raises
    ------
    ImagingInputError
        Not an RTSTRUCT, another frame of reference, or contours off the image slices.
    """
    import pydicom

    p = Path(path)
    try:
        ds = pydicom.dcmread(p, force=True)
    except (OSError, ValueError, EOFError) as exc:
        raise ImagingInputError(p, f"is not a readable DICOM file ({exc})") from exc
    if "ROIContourSequence" not in ds and "StructureSetROISequence" not in ds:
        raise ImagingInputError(p, "has no StructureSetROISequence/ROIContourSequence")
    names: dict[int, tuple[str, str | None]] = {}
    for item in ds.get("StructureSetROISequence", []):
        names[int(item.ROINumber)] = (
            str(item.get("ROIName", f"ROI {item.ROINumber}")),
            str(item.get("ReferencedFrameOfReferenceUID", "")) or None,
        )
    same_series = image_series_uid is not None and image_series_uid in referenced_series_uids(ds)
    masks = []
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        name, for_uid = names.get(number, (f"ROI {number}", None))
        if (for_uid and grid.frame_of_reference_uid and for_uid != grid.frame_of_reference_uid
                and not same_series):
            raise ImagingInputError(
                p, f"ROI {name!r} is on frame of reference {for_uid} but the image is on "
                f"{grid.frame_of_reference_uid}",
            )
        masks.append(_roi_mask(p, name, number, roi, grid))
    return masks


def _roi_mask(path: Path, name: str, number: int, roi: Any, grid: Grid) -> LesionMask:
    by_slice: dict[int, list[NDArray[np.float64]]] = defaultdict(list)
    for contour in roi.get("ContourSequence", []):
        if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
            continue
        data = np.asarray([float(v) for v in contour.get("ContourData", [])], dtype=float)
        if data.size < 9 or data.size % 3:
            continue
        index = grid.to_index(data.reshape(-1, 3))
        k = float(np.mean(index[:, 0]))
        if np.ptp(index[:, 0]) > 2 * _SLICE_TOL or abs(k - round(k)) > _SLICE_TOL:
            raise ImagingInputError(
                path, f"ROI {name!r} has a contour that does not lie on an image slice "
                f"(slice index {k:.2f})",
            )
        if not 0 <= round(k) < grid.shape[0]:
            raise ImagingInputError(path, f"ROI {name!r} has a contour outside the image slices")
        by_slice[round(k)].append(index[:, 1:])
    if not by_slice:
        return LesionMask(name, number, np.zeros((0, 0, 0), dtype=bool), (0, 0, 0),
                          nodal=names_a_node(name))
    k_lo, k_hi = min(by_slice), max(by_slice) + 1
    full = np.zeros((k_hi - k_lo, grid.shape[1], grid.shape[2]), dtype=bool)
    for k, polygons in by_slice.items():
        full[k - k_lo] = fill_even_odd(polygons, grid.shape[1:])
    return LesionMask.from_full(name, number, full, (k_lo, 0, 0), nodal=names_a_node(name))
