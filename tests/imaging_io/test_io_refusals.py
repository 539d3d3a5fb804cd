"""`recist measure` refusals (issue 11): one line naming the file at fault, exit 2.

Every case is generated in a temporary folder from the synthetic study
``sample_dicom/W8`` (no DICOM is committed for these tests): a series folder holding an
SQLite file, slices truncated at 1–99 % of their bytes, Rows of 65535 over 160 × 160
pixel data, ImageOrientationPatient / ImagePositionPatient / PixelSpacing with the wrong
number of values, and a NIfTI whose sform makes ITK print its own WARNING lines.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from recist.cli import main

ROOT = Path(__file__).resolve().parents[2]
W8 = ROOT / "sample_dicom" / "W8"
VICTIM = "CT0005.dcm"


def _study(tmp_path: Path) -> Path:
    shutil.copytree(W8 / "CT", tmp_path / "CT")
    shutil.copy(W8 / "SEG.dcm", tmp_path / "SEG.dcm")
    return tmp_path


def _measure(capsys: pytest.CaptureFixture[str], image: Path, seg: Path) -> tuple[int, str, str]:
    code = main(["measure", str(image), "--seg", str(seg)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_one_line_refusal(code: int, out: str, err: str, names: Path) -> str:
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("recist measure: ")
    assert str(names) in line, line
    assert "Traceback" not in err and "WARNING" not in err
    assert "cannot read the input" not in line  # the anonymous fallback
    return line


def _mutate(study: Path, change: Callable[[Any], None], *, every: bool = False) -> Path:
    files = sorted((study / "CT").glob("*.dcm")) if every else [study / "CT" / VICTIM]
    for file in files:
        ds = pydicom.dcmread(file)
        change(ds)
        ds.save_as(file)
    return files[0]


def test_sqlite_file_in_the_series_folder_is_ignored(tmp_path, capsys):
    study = _study(tmp_path)
    con = sqlite3.connect(study / "CT" / "index.db")
    con.execute("create table t (x)")
    con.commit()
    con.close()
    code, _out, err = _measure(capsys, study / "CT", study / "SEG.dcm")
    assert code == 0, err


def test_sqlite_file_given_as_segmentation_is_refused_naming_it(tmp_path, capsys):
    study = _study(tmp_path)
    db = study / "seg.db"
    con = sqlite3.connect(db)
    con.execute("create table t (x)")
    con.commit()
    con.close()
    _assert_one_line_refusal(*_measure(capsys, study / "CT", db), db)


@pytest.mark.parametrize("percent", [1, 2, 5, 10, 50, 95, 99])
def test_truncated_slice_is_refused_naming_it(tmp_path, capsys, percent):
    study = _study(tmp_path)
    victim = study / "CT" / VICTIM
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * percent // 100])
    line = _assert_one_line_refusal(*_measure(capsys, study / "CT", study / "SEG.dcm"), victim)
    assert "truncated" in line


@pytest.mark.parametrize("every", [False, True])
def test_rows_disagreeing_with_pixel_data_is_refused_with_both_sizes(tmp_path, capsys, every):
    study = _study(tmp_path)
    first = _mutate(study, lambda ds: setattr(ds, "Rows", 65535), every=every)
    line = _assert_one_line_refusal(*_measure(capsys, study / "CT", study / "SEG.dcm"), first)
    assert "65535×160" in line and "160×160" in line
    assert '"size"' not in line


def test_rows_65535_single_file_is_not_reported_as_image_size(tmp_path, capsys):
    study = _study(tmp_path)
    victim = _mutate(study, lambda ds: setattr(ds, "Rows", 65535))
    _assert_one_line_refusal(*_measure(capsys, victim, study / "SEG.dcm"), victim)


@pytest.mark.parametrize(
    ("keyword", "value", "every"),
    [
        ("ImageOrientationPatient", [1, 0, 0, 0, 1], False),  # numpy broadcast error
        ("ImageOrientationPatient", [1, 0, 0, 0, 1], True),  # numpy matmul error
        ("ImagePositionPatient", [1, 0], False),  # inhomogeneous array
        ("ImagePositionPatient", [1, 0], True),  # matmul error
        ("PixelSpacing", [1, 1, 1], True),  # was "has no PixelSpacing"
        ("ImageOrientationPatient", [0, 0, 0, 0, 0, 0], True),  # zero vectors: NaN grid
    ],
)
def test_malformed_geometry_is_refused_naming_the_file(tmp_path, capsys, keyword, value, every):
    study = _study(tmp_path)
    first = _mutate(study, lambda ds: setattr(ds, keyword, value), every=every)
    line = _assert_one_line_refusal(*_measure(capsys, study / "CT", study / "SEG.dcm"), first)
    assert keyword in line


def _write_nifti(path: Path, data: np.ndarray, sform: list[list[float]]) -> None:
    """A minimal NIfTI-1 file (uint8) whose pixdim disagrees with its sform."""
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, *data.shape[::-1], 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 2, 8)  # DT_UINT8, 8 bits
    struct.pack_into("<8f", hdr, 76, 1, 1, 1, 1, 0, 0, 0, 0)
    struct.pack_into("<ff", hdr, 108, 352.0, 1.0)  # vox_offset, scl_slope
    struct.pack_into("<hh", hdr, 252, 0, 1)  # qform_code 0, sform_code 1
    for k in range(3):
        struct.pack_into("<4f", hdr, 280 + 16 * k, *sform[k])
    hdr[344:348] = b"n+1\0"
    path.write_bytes(bytes(hdr) + b"\0" * 4 + data.astype(np.uint8).tobytes())


@pytest.mark.parametrize("role", ["image", "seg"])
def test_itk_warnings_do_not_reach_the_terminal(tmp_path, role):
    # ITK writes its WARNING lines to the C-level stderr: only a subprocess sees them.
    data = np.zeros((14, 160, 160))
    data[5:8, 50:60, 50:60] = 1
    sheared = tmp_path / "sheared.nii"
    _write_nifti(sheared, data, [[2, 0.5, 0, 0], [0, 2, 0, 0], [0, 0, 5, 0]])
    args = ([str(sheared), "--seg", str(sheared)] if role == "image"
            else [str(W8 / "CT"), "--seg", str(sheared)])
    proc = subprocess.run([sys.executable, "-m", "recist", "measure", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"recist measure: {sheared}: ")
    assert "WARNING" not in proc.stderr


def test_good_series_still_measures(tmp_path, capsys):
    study = _study(tmp_path)
    code, out, err = _measure(capsys, study / "CT", study / "SEG.dcm")
    assert code == 0, err
    assert '"size"' in out
