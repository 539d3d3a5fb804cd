"""RECIST diameters of a lesion mask: longest diameter, perpendicular short axis, volume.

Outline convention
------------------
A lesion's outline on a slice is the boundary between its pixels and the others, taken
at the midpoints of the pixel edges that separate a lesion pixel from a non-lesion
4-neighbour. These are exactly the vertices of the marching-squares iso-contour at 0.5
of the binary mask: the outline lies half-way between the last pixel centre inside and
the first outside, so a one-pixel lesion measures one pixel across and a disc measures
its diameter without the one-pixel bias of centre-to-centre or corner-to-corner
conventions. Diameters are measured like a calliper on that outline: between points of
its convex hull (a calliper spans concavities).

- ``longest_diameter_mm``: the longest distance between two outline points on a slice,
  over every axial slice of the lesion (RECIST 1.1 §4.2; R-SEL-3).
- ``short_axis_mm``: on that slice, the longest chord of the outline's convex hull
  perpendicular to the longest diameter (nodes are judged on it, R-MEAS-2).

Algorithm: the convex hull of the outline points (Qhull via SciPy) has few vertices
(O(n^(2/3)) for n outline points of a digital convex shape), so every pair of hull
vertices is compared — equivalent to rotating callipers at this size and simpler — and
the perpendicular chord is the largest vertical extent of the hull at a hull vertex's
abscissa (the extent of a convex polygon is concave along the axis, so its maximum sits
at a vertex). Nothing here is quadratic in the number of lesion pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Hull-vertex pairs are compared in blocks of this many rows to bound memory.
_PAIR_BLOCK = 2048


@dataclass(frozen=True)
class SliceDiameters:
    """The RECIST diameters on one slice (mm) and the longest diameter's end points."""

    longest_mm: float
    short_axis_mm: float
    endpoints: tuple[tuple[float, float], tuple[float, float]]  # (row, col) in pixels


def outline_points(mask2d: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Outline points of a 2-D mask, as ``(row, column)`` pixel coordinates.

    Points sit at the midpoints of the pixel edges between a lesion pixel and a
    non-lesion 4-neighbour (the marching-squares contour at 0.5; see module docstring).
    """
    padded = np.pad(np.asarray(mask2d, dtype=bool), 1)
    # Edge between (r, c) and (r, c+1) in padded coordinates -> point (r-1, c-0.5).
    rr, cc = np.nonzero(padded[:, :-1] != padded[:, 1:])
    horizontal = np.c_[rr - 1.0, cc - 0.5]
    rr, cc = np.nonzero(padded[:-1, :] != padded[1:, :])
    vertical = np.c_[rr - 0.5, cc - 1.0]
    return np.concatenate([horizontal, vertical])


def _hull(points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    from scipy.spatial import ConvexHull

    # Outline points of any non-empty mask include the four edge midpoints of a pixel (a
    # diamond), so they are never all collinear and Qhull always has a 2-D hull to build.
    hull = ConvexHull(points_mm)
    return np.asarray(points_mm[hull.vertices], dtype=np.float64)  # counter-clockwise


def _longest_pair(vertices: NDArray[np.float64]) -> tuple[int, int, float]:
    best = (0, 0, -1.0)
    for start in range(0, len(vertices), _PAIR_BLOCK):
        block = vertices[start : start + _PAIR_BLOCK]
        d2 = np.sum((block[:, None, :] - vertices[None, :, :]) ** 2, axis=-1)
        i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[i, j] > best[2]:
            best = (start + int(i), int(j), float(d2[i, j]))
    return best[0], best[1], float(np.sqrt(best[2]))


def _perpendicular_chord(vertices: NDArray[np.float64], axis: NDArray[np.float64]) -> float:
    """Longest chord of a convex polygon perpendicular to ``axis`` (a unit vector)."""
    normal = np.array([-axis[1], axis[0]])
    t = vertices @ axis
    s = vertices @ normal
    t_next, s_next = np.roll(t, -1), np.roll(s, -1)
    best = 0.0
    for start in range(0, len(t), _PAIR_BLOCK):
        tq = t[start : start + _PAIR_BLOCK, None]
        span = t_next - t
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = (tq - t) / span
        crosses = (span != 0) & (frac >= 0) & (frac <= 1)
        s_at = np.where(crosses, s + frac * (s_next - s), np.nan)
        # A vertex lies on the line itself even where the adjacent edges are parallel to it.
        s_at = np.where(np.isclose(t, tq), s, s_at)
        extent = np.nanmax(s_at, axis=1) - np.nanmin(s_at, axis=1)
        best = max(best, float(np.nanmax(extent)))
    return best


def slice_diameters(
    mask2d: NDArray[np.bool_], pixel_spacing: tuple[float, float]
) -> SliceDiameters | None:
    """Longest diameter and perpendicular short axis of the outline on one slice.

    Parameters
    ----------
    mask2d
        Lesion pixels of one slice, ``[row, column]``.
    pixel_spacing
        ``(between rows, between columns)`` in mm; rows and columns are orthogonal.

    Returns
    -------
    SliceDiameters or None
        ``None`` for an empty slice.
    """
    points = outline_points(mask2d)
    if len(points) == 0:
        return None
    scale = np.array(pixel_spacing, dtype=float)
    points_mm = points * scale
    vertices = _hull(points_mm)
    i, j, longest = _longest_pair(vertices)
    axis = (vertices[j] - vertices[i]) / longest
    short = _perpendicular_chord(vertices, axis)
    a, b = vertices[i] / scale, vertices[j] / scale
    return SliceDiameters(longest, short, ((float(a[0]), float(a[1])),
                                           (float(b[0]), float(b[1]))))


@dataclass(frozen=True)
class MaskDiameters:
    """RECIST sizes of one lesion mask over all its slices."""

    longest_diameter_mm: float
    short_axis_mm: float
    slice_index: int
    volume_ml: float
    voxel_count: int
    endpoints: tuple[tuple[float, float], tuple[float, float]]


def mask_diameters(
    mask: NDArray[np.bool_],
    pixel_spacing: tuple[float, float],
    voxel_volume_mm3: float,
    *,
    slice_offset: int = 0,
) -> MaskDiameters | None:
    """Measure a 3-D lesion mask ``[slice, row, column]`` slice by slice.

    The longest diameter is taken on the slice where it is longest (ties: the first such
    slice); the short axis on that same slice. Volume is voxel count × voxel volume.

    Returns ``None`` for an empty mask.
    """
    voxels = int(np.count_nonzero(mask))
    if voxels == 0:
        return None
    best: tuple[int, SliceDiameters] | None = None
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        sliced = mask[k]
        rows = np.flatnonzero(sliced.any(axis=1))
        cols = np.flatnonzero(sliced.any(axis=0))
        crop = sliced[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        found = slice_diameters(crop, pixel_spacing)
        if found is None:
            continue
        if best is None or found.longest_mm > best[1].longest_mm + 1e-9:
            (a, b) = found.endpoints
            shifted = SliceDiameters(
                found.longest_mm,
                found.short_axis_mm,
                ((a[0] + rows[0], a[1] + cols[0]), (b[0] + rows[0], b[1] + cols[0])),
            )
            best = (int(k), shifted)
    assert best is not None
    best_slice, found = best
    return MaskDiameters(
        longest_diameter_mm=found.longest_mm,
        short_axis_mm=found.short_axis_mm,
        slice_index=best_slice + slice_offset,
        volume_ml=voxels * voxel_volume_mm3 / 1000.0,
        voxel_count=voxels,
        endpoints=found.endpoints,
    )
