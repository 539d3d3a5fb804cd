"""Fixtures for imaging_io tests: small synthetic CT studies written to a temp folder.

Phantoms are ellipsoids with known diameters (imaging_io.phantoms); no patient data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imaging_io.phantoms import (
    AxialGrid,
    Ellipsoid,
    SegmentSpec,
    ellipsoid_mask,
    write_ct_series,
    write_seg,
)


@dataclass
class PhantomStudy:
    ct: Path
    seg: Path
    grid: AxialGrid
    lesions: dict[str, Ellipsoid]
    masks: dict[str, np.ndarray]
    datasets: list[Any]


@pytest.fixture(autouse=True)
def _quiet_dicom_warnings():
    # highdicom/pydicom warn about optional attributes of synthetic files; not under test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> PhantomStudy:
    """A 96 × 96 × 16 CT (0.78 mm pixels, 2.5 mm slices) with a tilted liver lesion and a
    lymph node, and a binary SEG of both."""
    root = tmp_path_factory.mktemp("phantom")
    grid = AxialGrid(rows=96, columns=96, slices=16, pixel_mm=0.78, spacing_mm=2.5,
                     origin_mm=(-37.0, -37.0, -20.0))
    lesions = {
        "liver lesion": Ellipsoid((-10.3, 4.1, 0.0), (14.0, 7.0, 9.0), 35.0),
        "lymph node": Ellipsoid((18.2, -15.6, -2.5), (9.0, 8.0, 8.0), -20.0),
    }
    masks = {name: ellipsoid_mask(grid, e) for name, e in lesions.items()}
    hu = np.full((grid.slices, grid.rows, grid.columns), 40.0)
    for mask in masks.values():
        hu[mask] = 90.0
    datasets = write_ct_series(root / "ct", hu, grid)
    specs = [
        SegmentSpec("liver lesion", "T1", masks["liver lesion"]),
        SegmentSpec("lymph node", "T2", masks["lymph node"], ("59441001", "Lymph node")),
    ]
    write_seg(root / "seg.dcm", datasets, specs)
    return PhantomStudy(root / "ct", root / "seg.dcm", grid, lesions, masks, datasets)
