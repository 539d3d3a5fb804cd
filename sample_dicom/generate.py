"""Generate the synthetic demo subject of sample_dicom/ (see README.md here).

A small axial CT (160 × 160 pixels of 2 mm, 14 slices of 5 mm) at baseline and two
follow-ups, each with a DICOM SEG of four lesions: a liver lesion (T1), a lung lesion (T2)
and a mediastinal lymph node (T3) whose sizes give PR then PD, and a bone lesion (NT1,
non-target). Every lesion is an ellipsoid, tilted in-plane. Then each study is measured
and ingested (``imaging_io.ingest``) into ``demo_case.json``, which ``recist assess`` and
the web demo use.

Run from the repository root::

    .venv/bin/python sample_dicom/generate.py

UIDs are derived from fixed seeds, so regenerating gives the same UIDs.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from imaging_io.ingest import ingest_study
from imaging_io.phantoms import (
    AxialGrid,
    Ellipsoid,
    SegmentSpec,
    ellipsoid_mask,
    write_ct_series,
    write_seg,
)

HERE = Path(__file__).resolve().parent
SUBJECT = "DEMO-001"
GRID = AxialGrid(rows=160, columns=160, slices=14, pixel_mm=2.0, spacing_mm=5.0,
                 origin_mm=(-159.0, -159.0, -35.0))
VISITS = {  # timepoint id -> study date
    "BL": dt.date(2024, 1, 8),
    "W8": dt.date(2024, 3, 4),
    "W16": dt.date(2024, 4, 29),
}
# Semi-axes (mm) per visit: T1 LD 40 → 24 → 32; T2 LD 25 → 15 → 20; T3 short axis
# 20 → 12 → 15. Sum 85 → 51 (−40 %, PR) → 67 (+31 % and +16 mm over the nadir, PD).
LESIONS = {
    "T1": ("liver lesion", (-60.0, 25.0, 0.0), 30.0, ("108369006", "Neoplasm"),
           {"BL": (20.0, 14.0, 15.0), "W8": (12.0, 8.5, 9.0), "W16": (16.0, 11.0, 12.0)}),
    "T2": ("lung lesion", (60.0, -35.0, 0.0), -20.0, ("108369006", "Neoplasm"),
           {"BL": (12.5, 9.0, 10.0), "W8": (7.5, 5.5, 6.0), "W16": (10.0, 7.0, 8.0)}),
    "T3": ("lymph node", (5.0, -10.0, 0.0), 15.0, ("59441001", "Lymph node"),
           {"BL": (14.0, 10.0, 9.0), "W8": (10.0, 6.0, 6.0), "W16": (11.0, 7.5, 7.0)}),
    "NT1": ("bone lesion", (3.0, 68.0, 0.0), 0.0, ("108369006", "Neoplasm"),
            {"BL": (6.0, 5.0, 6.0), "W8": (6.0, 5.0, 6.0), "W16": (6.0, 5.0, 6.0)}),
}
CASE_SKELETON = {
    "subject_id": SUBJECT,
    "arm": "demo",
    "randomized_on": "2024-01-05",
    "lesions": [
        {"id": "T1", "site": "liver", "kind": "target", "nodal": False},
        {"id": "T2", "site": "lung", "kind": "target", "nodal": False},
        {"id": "T3", "site": "lymph node", "kind": "target", "nodal": True},
        {"id": "NT1", "site": "bone", "kind": "non-target"},
    ],
    "timepoints": [],
}


def anatomy() -> np.ndarray:
    """A crude chest/abdomen in HU: body, two lungs, liver, spine (same at every visit)."""
    hu = np.full((GRID.slices, GRID.rows, GRID.columns), -1000.0)
    xx, yy = GRID.patient_coordinates(0)

    def inside(cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
        return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1

    plane = np.full(xx.shape, -1000.0)
    plane[inside(0, 0, 150, 110)] = 35.0
    plane[inside(-62, -35, 50, 55)] = -850.0
    plane[inside(62, -35, 50, 55)] = -850.0
    plane[inside(-60, 30, 70, 50)] = 60.0
    plane[inside(0, 70, 16, 16)] = 700.0
    hu[:] = plane
    return hu


def lesion_hu() -> dict[str, float]:
    return {"T1": 20.0, "T2": 30.0, "T3": 45.0, "NT1": 250.0}


def main() -> None:
    warnings.simplefilter("ignore")  # highdicom notes optional attributes it fills in
    case = json.loads(json.dumps(CASE_SKELETON))
    for visit, date in VISITS.items():
        folder = HERE / visit
        if folder.exists():
            shutil.rmtree(folder)
        hu = anatomy()
        specs = []
        for lesion_id, (label, centre, angle, prop, axes) in LESIONS.items():
            mask = ellipsoid_mask(GRID, Ellipsoid(centre, axes[visit], angle))
            hu[mask] = lesion_hu()[lesion_id]
            specs.append(SegmentSpec(label, lesion_id, mask, prop))
        datasets = write_ct_series(folder / "CT", hu, GRID, patient_id=SUBJECT,
                                   study_date=date, uid_seed=f"{SUBJECT}/{visit}",
                                   frame_of_reference_uid=None)
        write_seg(folder / "SEG.dcm", datasets, specs, uid_seed=f"{SUBJECT}/{visit}/seg")
        case = ingest_study(case, folder, timepoint_id=visit)
    (HERE / "demo_case.json").write_text(json.dumps(case, indent=2) + "\n", encoding="utf-8")

    from recist.jsonio import assess_json

    result = assess_json(case)
    for tp in result["timepoints"]:
        print(tp["id"], tp["date"], tp["sum_mm"], tp.get("overall_response"))
    print("best overall response:", result["best_overall_response"])


if __name__ == "__main__":
    main()
