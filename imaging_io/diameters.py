"""RECIST diameters of a lesion mask: longest diameter, perpendicular short axis, volume.

Outline convention
------------------
A lesion's outline on a slice is the marching-squares iso-contour at 0.5 of the binary
mask. Its vertices are the midpoints of the pixel edges that separate a lesion pixel from
a non-lesion 4-neighbour, half-way between the last pixel centre inside and the first
outside, so a one-pixel lesion measures one pixel across and a disc measures its diameter
without the one-pixel bias of centre-to-centre or corner-to-corner conventions. Between
its vertices the outline runs straight, cutting each convex pixel corner by a half-pixel
diagonal. Two lesion pixels that touch only at a corner are not joined (the saddle cell
is split between them, as scikit-image's ``find_contours`` does by default): a chord may
not squeeze through a point where two background pixels meet. The region enclosed by the
outline (even-odd over all its loops, so separate parts and holes are kept) is *inside*
the lesion.

- ``longest_diameter_mm``: the longest distance between two outline points on a slice,
  over every axial slice of the lesion (RECIST 1.1 §4.2; R-SEL-3). It is found between
  vertices of the outline's convex hull, the two points a calliper opened widest would
  touch; on a concave outline the line may cross background, as a reader's would.
- ``short_axis_mm``: on that slice, the longest chord *inside* the outline perpendicular
  to the long axis (nodes are judged on it, R-MEAS-2): every line perpendicular to the long
  axis is cut by the outline into intervals inside the lesion, and the longest single
  interval over all positions along the long axis is the short axis. It is where a reader
  puts the short calliper, or OHIF's bidirectional tool draws it from a segmentation; on a
  lobulated or concave lesion it is shorter than the width of its convex hull, and it
  never crosses background (a notch, a hole, the gap between two parts).

Both are measured in mm: pixel coordinates are scaled by the pixel spacing first, so
"perpendicular" holds in the patient's plane even for non-square pixels.

Algorithm and accuracy
----------------------
Long axis: the convex hull of the outline points (Qhull via SciPy) has few vertices
(O(n^(2/3)) for n outline points of a digital convex shape), so every pair of hull
vertices is compared — equivalent to rotating callipers at this size and simpler.

Short axis, exactly: put ``t`` along the long axis and ``s`` across it. Between two
consecutive values of ``t`` at which an outline vertex lies, the same outline segments
cross every perpendicular line in the same order, each at an ``s`` that is linear in
``t``; every interval's length is therefore linear in ``t`` there and is largest at one
end. The longest inside chord is thus found by evaluating, at each vertex's ``t``, the
crossings of the line just after it (segments with ``t0 <= t < t1``) and just before it
(``t0 < t <= t1``) — the half-open rules of the even-odd point-in-polygon test, which also
keep a line through a vertex from counting it twice. The answer is the supremum over all
lines, exact up to floating-point rounding: no sampling step, no tolerance on the length.
A line through outline vertices is taken as the lines beside it see it: a chord running
along an outline segment (background all along one side), or one kept whole only by
passing exactly through two pinch points of the outline, is not counted, while a chord
tangent to a hole is (as the limit of the chords beside it).

Cost: the long axis on every slice; the short axis on the chosen slice only, with every
(line, segment) crossing generated at once with NumPy. Its work is the number of outline
segments plus the number of crossings — about twice the number of vertex positions for a
convex lesion, a few times it for a lobulated one — never the number of lesion pixels
squared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Hull-vertex pairs are compared in blocks of this many rows to bound memory.
_PAIR_BLOCK = 2048
# Perpendicular lines are intersected with the outline this many at a time (bounds memory
# on pathological outlines, whose lines cross hundreds of segments).
_LINE_BLOCK = 4096

# Outline vertices closer than this along the long axis lie on one perpendicular line:
# their positions differ by rounding only (~1e-13 mm); merging two that truly differed by
# less would move a chord's length by about as little.
_SAME_POSITION_MM = 1e-9

Point = tuple[float, float]
"""A point of a slice as ``(row, column)`` pixel indices; integers are pixel centres."""
Chord = tuple[Point, Point]
"""The two end points of a diameter."""

# Midpoints of the four edges of a marching-squares cell whose corners are the pixel
# centres (i, j), (i, j+1), (i+1, j+1), (i+1, j): top, right, bottom, left.
_EDGE_MIDPOINTS = np.array([[0.0, 0.5], [0.5, 1.0], [1.0, 0.5], [0.5, 0.0]])


@dataclass(frozen=True)
class SliceDiameters:
    """The RECIST diameters on one slice (mm) and their end points (pixels)."""

    longest_mm: float
    short_axis_mm: float
    long_axis: Chord
    short_axis: Chord

    @property
    def endpoints(self) -> Chord:
        """The long axis's end points (the name used before the short axis had its own)."""
        return self.long_axis


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


def outline_segments(mask2d: NDArray[np.bool_]) -> NDArray[np.float64]:
    """The straight pieces of the outline, ``(n, 2, 2)``: two ``(row, column)`` ends each.

    The marching-squares contour at 0.5 (module docstring): in each 2 × 2 cell of pixel
    centres, the edges whose two pixels differ are crossed at their midpoints and joined
    in pairs. A saddle cell (two lesion pixels touching at a corner only) cuts off each
    lesion corner separately. Segments are not oriented and not chained into loops; the
    even-odd rule needs neither.
    """
    padded = np.pad(np.asarray(mask2d, dtype=bool), 1)
    a, b = padded[:-1, :-1], padded[:-1, 1:]  # top-left, top-right
    d, c = padded[1:, :-1], padded[1:, 1:]  # bottom-left, bottom-right
    crossed = np.stack([a != b, b != c, c != d, d != a], axis=-1)
    count = crossed.sum(axis=-1)
    # Two crossed edges: one segment between them.
    ii, jj = np.nonzero(count == 2)
    edges = np.nonzero(crossed[ii, jj])[1].reshape(-1, 2)
    cells = np.c_[ii, jj].astype(float) - 1.0  # padded cell origin -> unpadded pixel index
    plain = cells[:, None, :] + _EDGE_MIDPOINTS[edges]
    # Four crossed edges (saddle): cut off the two lesion corners, top-left/bottom-right
    # (edges top+left, right+bottom) when ``a`` is lesion, else top-right/bottom-left.
    si, sj = np.nonzero(count == 4)
    lesion_a = a[si, sj]
    first = np.where(lesion_a[:, None], [0, 3], [0, 1])
    second = np.where(lesion_a[:, None], [1, 2], [2, 3])
    saddle_cells = np.c_[si, sj].astype(float) - 1.0
    saddles = np.concatenate([saddle_cells[:, None, :] + _EDGE_MIDPOINTS[first],
                              saddle_cells[:, None, :] + _EDGE_MIDPOINTS[second]])
    return np.concatenate([plain, saddles]).reshape(-1, 2, 2)


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


def _long_axis(mask2d: NDArray[np.bool_], scale: NDArray[np.float64]
               ) -> tuple[float, NDArray[np.float64], NDArray[np.float64]] | None:
    """Longest outline diameter (mm) and its two end points (mm), or ``None`` if empty."""
    points = outline_points(mask2d)
    if len(points) == 0:
        return None
    vertices = _hull(points * scale)
    i, j, longest = _longest_pair(vertices)
    return longest, vertices[i], vertices[j]


def inside_chord(segments_mm: NDArray[np.float64], axis: NDArray[np.float64]
                 ) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Longest chord inside an outline perpendicular to ``axis`` (module docstring).

    Parameters
    ----------
    segments_mm
        Outline segments ``(n, 2, 2)`` in mm, closed loops in any order (even-odd rule).
    axis
        Unit vector of the long axis, in the same mm frame.

    Returns
    -------
    length, start, end
        The chord's length and its two end points in mm (``(0.0, ...)`` without segments).
    """
    normal = np.array([-axis[1], axis[0]])
    t = segments_mm[..., 0] * axis[0] + segments_mm[..., 1] * axis[1]
    s = segments_mm[..., 0] * normal[0] + segments_mm[..., 1] * normal[1]
    # Vertices on one perpendicular line must share one position exactly: a vertex shared
    # by two segments, for the half-open rules to pair crossings up; and vertices that
    # only rounding sets apart, or a line could pass "just after" one and "just before"
    # the other, keeping whole a chord that touches background at both.
    flat = np.sort(t.ravel())
    positions = flat[np.r_[True, np.diff(flat) > _SAME_POSITION_MM]]
    t = positions[np.searchsorted(positions, t, side="right") - 1]
    forward = t[:, 0] <= t[:, 1]
    t0, t1 = np.where(forward, t[:, 0], t[:, 1]), np.where(forward, t[:, 1], t[:, 0])
    s0, s1 = np.where(forward, s[:, 0], s[:, 1]), np.where(forward, s[:, 1], s[:, 0])
    crossing = t0 < t1  # a segment parallel to the lines never crosses one
    t0, t1, s0, s1 = t0[crossing], t1[crossing], s0[crossing], s1[crossing]
    slope = (s1 - s0) / (t1 - t0)
    best = (0.0, 0.0, 0.0, 0.0)  # length, t, s_from, s_to
    for start in range(0, len(positions), _LINE_BLOCK):
        lines = positions[start : start + _LINE_BLOCK]
        near = (t1 >= lines[0]) & (t0 <= lines[-1])
        for side in ("left", "right"):
            # "left": t0 <= t < t1, the line just after t; "right": t0 < t <= t1, just before.
            first = np.searchsorted(lines, t0[near], side=side)
            stop = np.searchsorted(lines, t1[near], side=side)
            hits = stop - first
            total = int(hits.sum())
            if total == 0:
                continue
            segment = np.repeat(np.flatnonzero(near), hits)
            line = np.arange(total) - np.repeat(np.cumsum(hits) - hits - first, hits)
            at = lines[line]
            s_at = s0[segment] + (at - t0[segment]) * slope[segment]
            order = np.lexsort((s_at, line))
            line, s_at = line[order], s_at[order]
            # Every closed loop crosses a line an even number of times under these rules:
            # crossings pair up, in order along the line, into inside intervals.
            assert np.array_equal(line[0::2], line[1::2]), "outline is not closed"
            lengths = s_at[1::2] - s_at[0::2]
            k = int(np.argmax(lengths))
            if lengths[k] > best[0]:
                best = (float(lengths[k]), float(lines[line[2 * k]]),
                        float(s_at[2 * k]), float(s_at[2 * k + 1]))
    length, at_t, s_from, s_to = best
    return length, at_t * axis + s_from * normal, at_t * axis + s_to * normal


def _to_pixels(point_mm: NDArray[np.float64], scale: NDArray[np.float64],
               shift: tuple[int, int] = (0, 0)) -> Point:
    row, col = point_mm / scale
    return (float(row) + shift[0], float(col) + shift[1])


def _slice_diameters(mask2d: NDArray[np.bool_], scale: NDArray[np.float64],
                     long_axis: tuple[float, NDArray[np.float64], NDArray[np.float64]],
                     shift: tuple[int, int] = (0, 0)) -> SliceDiameters:
    longest, a, b = long_axis
    axis = (b - a) / longest
    short, c, d = inside_chord(outline_segments(mask2d) * scale, axis)
    return SliceDiameters(
        longest, short,
        (_to_pixels(a, scale, shift), _to_pixels(b, scale, shift)),
        (_to_pixels(c, scale, shift), _to_pixels(d, scale, shift)),
    )


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
        The diameters (module docstring: the long axis between outline points, the short
        axis inside the outline) and their end points as ``(row, column)`` indices of
        ``mask2d``; ``None`` for an empty slice.
    """
    scale = np.array(pixel_spacing, dtype=float)
    found = _long_axis(mask2d, scale)
    return None if found is None else _slice_diameters(mask2d, scale, found)


@dataclass(frozen=True)
class MaskDiameters:
    """RECIST sizes of one lesion mask over all its slices.

    ``long_axis`` and ``short_axis`` are the diameters' end points as ``(row, column)``
    indices of the mask passed (not shifted by ``slice_offset``), on ``slice_index``.
    """

    longest_diameter_mm: float
    short_axis_mm: float
    slice_index: int
    volume_ml: float
    voxel_count: int
    long_axis: Chord
    short_axis: Chord

    @property
    def endpoints(self) -> Chord:
        """The long axis's end points (the name used before the short axis had its own)."""
        return self.long_axis


def mask_diameters(
    mask: NDArray[np.bool_],
    pixel_spacing: tuple[float, float],
    voxel_volume_mm3: float,
    *,
    slice_offset: int = 0,
) -> MaskDiameters | None:
    """Measure a 3-D lesion mask ``[slice, row, column]`` slice by slice.

    The longest diameter is taken on the slice where it is longest (ties: the first such
    slice); the short axis on that same slice, inside the outline (module docstring).
    Volume is voxel count × voxel volume.

    Returns ``None`` for an empty mask.
    """
    voxels = int(np.count_nonzero(mask))
    if voxels == 0:
        return None
    scale = np.array(pixel_spacing, dtype=float)
    # The long axis on every slice; the short axis only on the slice that wins.
    best: tuple[int, tuple[int, int], NDArray[np.bool_],
                tuple[float, NDArray[np.float64], NDArray[np.float64]]] | None = None
    for k in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        sliced = mask[k]
        rows = np.flatnonzero(sliced.any(axis=1))
        cols = np.flatnonzero(sliced.any(axis=0))
        crop = sliced[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        found = _long_axis(crop, scale)
        if found is not None and (best is None or found[0] > best[3][0] + 1e-9):
            best = (int(k), (int(rows[0]), int(cols[0])), crop, found)
    assert best is not None
    index, shift, chosen, long_axis = best
    sizes = _slice_diameters(chosen, scale, long_axis, shift)
    return MaskDiameters(
        longest_diameter_mm=sizes.longest_mm,
        short_axis_mm=sizes.short_axis_mm,
        slice_index=index + slice_offset,
        volume_ml=voxels * voxel_volume_mm3 / 1000.0,
        voxel_count=voxels,
        long_axis=sizes.long_axis,
        short_axis=sizes.short_axis,
    )
