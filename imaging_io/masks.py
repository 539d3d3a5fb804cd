"""Lesion masks on an image grid: the record every segmentation reader returns.

A leaf module (numpy only) so that :mod:`imaging_io.segmentation` (which dispatches
RTSTRUCT files to :mod:`imaging_io.rtstruct`) and :mod:`imaging_io.rtstruct` (which
builds these masks) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, eq=False)
class LesionMask:
    """One segment / ROI / label value placed on the image grid.

    Attributes
    ----------
    label
        Segment label, ROI name, or ``"label N"`` for a label map.
    label_value
        Segment number, ROI number, or the label value.
    mask
        Boolean voxels ``[slice, row, column]`` of the bounding box (empty for an empty
        segment).
    offset
        Grid index of ``mask[0, 0, 0]``.
    tracking_id
        DICOM Tracking ID of the segment, if any.
    nodal
        Whether the segment is a lymph node (its label or segmented property says so).
    """

    label: str
    label_value: int
    mask: NDArray[np.bool_]
    offset: tuple[int, int, int]
    tracking_id: str | None = None
    nodal: bool = False

    @classmethod
    def from_full(cls, label: str, value: int, full: NDArray[np.bool_], offset: tuple[int, int, int]
                  = (0, 0, 0), **extra: Any) -> LesionMask:
        """Crop a mask to its bounding box (``offset`` locates ``full`` on the grid)."""
        if not full.any():
            return cls(label, value, np.zeros((0, 0, 0), dtype=bool), offset, **extra)
        lo = [int(np.flatnonzero(full.any(axis=tuple(a for a in range(3) if a != axis)))[0])
              for axis in range(3)]
        hi = [int(np.flatnonzero(full.any(axis=tuple(a for a in range(3) if a != axis)))[-1])
              + 1 for axis in range(3)]
        crop = full[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        return cls(label, value, np.ascontiguousarray(crop),
                   (offset[0] + lo[0], offset[1] + lo[1], offset[2] + lo[2]), **extra)


