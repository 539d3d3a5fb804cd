"""The RTSTRUCT even-odd scanline fill against matplotlib's point-in-polygon test, on
random polygons (hypothesis), and the empty/degenerate cases."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path as MplPath

from imaging_io.rtstruct import fill_even_odd

SHAPE = (24, 30)


def _reference(polygons: list[np.ndarray]) -> np.ndarray:
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    centres = np.c_[rows.ravel(), cols.ravel()].astype(float)
    out = np.zeros(SHAPE, dtype=bool)
    for poly in polygons:
        out ^= MplPath(poly).contains_points(centres).reshape(SHAPE)
    return out


# Rows and columns are shifted by different irrational offsets, so that no edge passes
# exactly through a pixel centre, where "inside" would depend on the tie-break
# convention rather than on the even-odd rule.
quarter = st.integers(-8, 4 * 32).map(lambda v: v / 4)
vertex = st.tuples(quarter.map(lambda v: v + 0.1 * 2**0.5), quarter.map(lambda v: v + 0.1 * 3**0.5))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(vertex, min_size=3, max_size=9), min_size=1, max_size=3))
def test_even_odd_fill_matches_matplotlib_xor_of_polygons(raw) -> None:
    polygons = [np.array(p, dtype=float) for p in raw]
    assert np.array_equal(fill_even_odd(polygons, SHAPE), _reference(polygons))


def test_nested_squares_leave_a_hole_whatever_their_winding() -> None:
    outer = np.array([[2.5, 2.5], [2.5, 20.5], [20.5, 20.5], [20.5, 2.5]])
    inner = np.array([[8.5, 8.5], [14.5, 8.5], [14.5, 14.5], [8.5, 14.5]])
    filled = fill_even_odd([outer, inner], SHAPE)
    assert filled[5, 5] and not filled[11, 11]
    assert filled.sum() == 18 * 18 - 6 * 6


def test_polygons_with_fewer_than_three_points_fill_nothing() -> None:
    assert not fill_even_odd([np.array([[1.0, 1.0], [5.0, 5.0]])], SHAPE).any()
