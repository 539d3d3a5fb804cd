"""A SEG must be what it says (issue 12), and 1-bit RLE Lossless SEGs decode.

Every SEG here is made in a temporary folder from the project's own synthetic study
``sample_dicom/`` (or a phantom of ``imaging_io.phantoms``) and then edited with pydicom:
NumberOfFrames that disagrees with the pixel data (native and encapsulated), a
SegmentSequence that is missing, empty or does not describe a frame's segment, and
frames or a ReferencedSeriesSequence that reference images outside the series being
measured. Each is refused in one line naming the file and the fault, by ``recist
measure`` and ``recist ingest`` alike: none may be measured as "every lesion absent".

The RLE SEGs are the same frames encoded frame by frame with pydicom's RLE encoder, in
the two layouts found in files: one byte per pixel (PS3.5 G.2's padded composite pixel
code) and 8 pixels per byte (as DCMTK writes it; pydicom-data's ``liver_rle.dcm``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from highdicom.frame import encode_frame
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.pixels.utils import pack_bits, unpack_bits
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from imaging_io.errors import ImagingInputError
from imaging_io.measure import measure_study
from imaging_io.phantoms import (
    AxialGrid,
    Ellipsoid,
    SegmentSpec,
    ellipsoid_mask,
    write_ct_series,
    write_seg,
)
from imaging_io.segmentation import read_seg
from imaging_io.series import read_image
from imaging_io.study import measure_study_folder
from recist.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_dicom"
_BESIDE = ROOT.parent / "shared" / "testdata" / "dicom-real"
REAL = Path(os.environ.get("RECIST_DICOM_REAL", _BESIDE if _BESIDE.is_dir()
                           else "/work/shared/testdata/dicom-real"))
Change = Callable[[Any], None]


# --- making the SEGs ---------------------------------------------------------------------

def _study(tmp_path: Path, visit: str = "W8") -> Path:
    """A copy of a sample study (CT folder + SEG.dcm) to edit."""
    study = tmp_path / visit
    shutil.copytree(SAMPLE / visit / "CT", study / "CT")
    shutil.copy(SAMPLE / visit / "SEG.dcm", study / "SEG.dcm")
    return study


def _native_frames(ds: Any) -> np.ndarray:
    """A native 1-bit SEG's frames: the bits run on across frames (PS3.5 8.1.1)."""
    n, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
    return unpack_bits(ds.PixelData)[: n * rows * cols].reshape(n, rows, cols)


def _rle_bytes(frame: np.ndarray, *, bit_packed: bool) -> bytes:
    """One 1-bit frame RLE-encoded by pydicom as 8-bit data: a byte per pixel, or the
    frame's own bits packed 8 to a byte (then a 1 × N image of bytes)."""
    data = pack_bits(frame.ravel()) if bit_packed else frame.astype(np.uint8).tobytes()
    rows, cols = (1, len(data)) if bit_packed else frame.shape
    return RLELosslessEncoder.encode(
        data, rows=rows, columns=cols, samples_per_pixel=1, bits_allocated=8,
        bits_stored=8, photometric_interpretation="MONOCHROME2", pixel_representation=0,
        number_of_frames=1,
    )


def _j2k_bytes(frame: np.ndarray) -> bytes:
    return encode_frame(frame.astype(np.uint8), transfer_syntax_uid=JPEG2000Lossless,
                        bits_allocated=1, bits_stored=1,
                        photometric_interpretation="MONOCHROME2", pixel_representation=0)


def _encapsulated(ds: Any, syntax: str, encode: Callable[[np.ndarray], bytes], *,
                  has_bot: bool = True) -> Any:
    """``ds`` with its native 1-bit frames re-encoded one fragment per frame."""
    items = [encode(frame) for frame in _native_frames(ds)]
    ds.PixelData = encapsulate(items, has_bot=has_bot)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _rle(bit_packed: bool = False, has_bot: bool = True) -> Change:
    def change(ds: Any) -> None:
        _encapsulated(ds, RLELossless, lambda f: _rle_bytes(f, bit_packed=bit_packed),
                      has_bot=has_bot)
    return change


def _j2k(ds: Any) -> None:
    _encapsulated(ds, JPEG2000Lossless, _j2k_bytes)


def _edit(seg: Path, *changes: Change) -> Path:
    ds = pydicom.dcmread(seg)
    for change in changes:
        change(ds)
    ds.save_as(seg)
    return seg


def _set(keyword: str, value: Any) -> Change:
    return lambda ds: setattr(ds, keyword, value)


def _delete(keyword: str) -> Change:
    return lambda ds: delattr(ds, keyword)


def _keep_per_frame(count: int) -> Change:
    def change(ds: Any) -> None:
        ds.PerFrameFunctionalGroupsSequence = Sequence(
            list(ds.PerFrameFunctionalGroupsSequence)[:count])
    return change


def _keep_segments(count: int) -> Change:
    return lambda ds: setattr(ds, "SegmentSequence", Sequence(list(ds.SegmentSequence)[:count]))


FOREIGN = generate_uid(entropy_srcs=["an image of another series"])


def _foreign_frame_source(ds: Any) -> None:
    item = ds.PerFrameFunctionalGroupsSequence[3]
    item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID = FOREIGN


def _foreign_listed_instance(ds: Any) -> None:
    ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[2].ReferencedSOPInstanceUID = \
        FOREIGN


def _foreign_series(ds: Any) -> None:
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = FOREIGN


# --- running the commands ----------------------------------------------------------------

def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_refusal(result: tuple[int, str, str], command: str, names: Path) -> str:
    code, out, err = result
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"recist {command}: {names}: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


def _case_at_baseline(tmp_path: Path) -> Path:
    """The demo case with its baseline only, ready to ingest W8."""
    case = json.loads((SAMPLE / "demo_case.json").read_text())
    case["timepoints"] = case["timepoints"][:1]
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    return path


# --- 1. refusals -------------------------------------------------------------------------

# (changes to the sample SEG, what the refusal must say). The W8 SEG holds 12 frames over
# 4 segments.
REFUSED: dict[str, tuple[tuple[Change, ...], str]] = {
    "native NumberOfFrames 0": ((_set("NumberOfFrames", 0),),
                                r"NumberOfFrames is 0 but its pixel data holds 12 frames"),
    "native NumberOfFrames 11": ((_set("NumberOfFrames", 11),),
                                 r"NumberOfFrames says 11 but its pixel data holds 12 frames"),
    "native NumberOfFrames 13": ((_set("NumberOfFrames", 13),),
                                 r"NumberOfFrames says 13 but its pixel data holds 12 frames"),
    "no pixel data, NumberOfFrames 0": (
        (_set("NumberOfFrames", 0), _delete("PixelData"), _keep_per_frame(0)),
        r"NumberOfFrames is 0 and it holds no pixel data: a SEG without frames says "
        r"nothing about its segments"),
    "JPEG 2000 NumberOfFrames 0": ((_j2k, _set("NumberOfFrames", 0)),
                                   r"NumberOfFrames is 0 but its pixel data holds 12 frames"),
    "JPEG 2000 NumberOfFrames 11": ((_j2k, _set("NumberOfFrames", 11)),
                                    r"NumberOfFrames says 11 but its pixel data holds 12 "
                                    r"frames \(counted by its Basic Offset Table\)"),
    "RLE without offset table, NumberOfFrames 13": (
        (_rle(has_bot=False), _set("NumberOfFrames", 13)),
        r"NumberOfFrames says 13 but its pixel data holds 12 frames \(one per encapsulated "
        r"fragment\)"),
    "per-frame groups short of a frame": (
        (_keep_per_frame(11),),
        r"NumberOfFrames says 12 but its PerFrameFunctionalGroupsSequence describes 11 "
        r"frames"),
    "empty SegmentSequence": ((_set("SegmentSequence", Sequence([])),),
                              r"has 12 frames but an empty SegmentSequence"),
    "no SegmentSequence": ((_delete("SegmentSequence"),),
                           r"has 12 frames but no SegmentSequence"),
    "empty SegmentSequence, JPEG 2000": ((_j2k, _set("SegmentSequence", Sequence([]))),
                                         r"has 12 frames but an empty SegmentSequence"),
    "a frame's segment not described": (
        (_keep_segments(3),),
        r"frame 10 belongs to segment 4, which its SegmentSequence does not describe "
        r"\(it describes segments 1, 2, 3\)"),
    "a frame over an image of another series": (
        (_foreign_frame_source,),
        rf"frame 4 \(segment 2\) references image {FOREIGN} \(its DerivationImageSequence\), "
        r"which is not in series [\d.]+ being measured \(14 images\)"),
    "ReferencedSeriesSequence lists another image": (
        (_foreign_listed_instance,),
        rf"its ReferencedSeriesSequence lists image {FOREIGN}, which is not in series"),
    "ReferencedSeriesSequence names another series": (
        (_foreign_series,),
        rf"its ReferencedSeriesSequence names series {FOREIGN}, not the series being "
        r"measured"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_seg_that_is_not_what_it_says_is_refused_by_measure_naming_it(tmp_path, capsys, case):
    changes, message = REFUSED[case]
    study = _study(tmp_path)
    seg = _edit(study / "SEG.dcm", *changes)
    line = _one_line_refusal(_run(capsys, "measure", str(study / "CT"), "--seg", str(seg)),
                             "measure", seg)
    assert re.search(message, line), line
    with pytest.raises(ImagingInputError, match=message):
        measure_study(study / "CT", seg)


# A study folder keeps only the SEGs that reference its series (imaging_io.study), so the
# foreign series is refused by `measure`, not met by `ingest`.
INGESTED = sorted(set(REFUSED) - {"ReferencedSeriesSequence names another series"})


@pytest.mark.parametrize("case", INGESTED)
def test_seg_that_is_not_what_it_says_is_refused_by_ingest_naming_it(tmp_path, capsys, case):
    changes, message = REFUSED[case]
    study = _study(tmp_path)
    seg = _edit(study / "SEG.dcm", *changes)
    case_json = _case_at_baseline(tmp_path)
    before = case_json.read_text()
    result = _run(capsys, "ingest", str(study), "--case", str(case_json), "--timepoint", "W8",
                  "--in-place")
    line = _one_line_refusal(result, "ingest", seg)
    assert re.search(message, line), line
    assert case_json.read_text() == before  # nothing written, no lesion made "absent"


def test_seg_with_no_frames_is_not_measured_as_every_lesion_absent(tmp_path) -> None:
    # The web upload measures each SEG of the zip with measure_study; the study folder
    # API is measure_study_folder. Before issue 12 this SEG gave four 0.0 mm lesions.
    study = _study(tmp_path)
    seg = _edit(study / "SEG.dcm", _j2k, _set("NumberOfFrames", 0))
    with pytest.raises(ImagingInputError, match=r"SEG\.dcm: NumberOfFrames is 0"):
        measure_study(study / "CT", seg)
    with pytest.raises(ImagingInputError, match=r"SEG\.dcm: NumberOfFrames is 0"):
        measure_study_folder(study)
    with pytest.raises(ImagingInputError, match=r"SEG\.dcm: NumberOfFrames is 0"):
        measure_study(None, seg)


def test_seg_read_without_its_image_still_checks_frames_and_segments(tmp_path) -> None:
    study = _study(tmp_path)
    seg = _edit(study / "SEG.dcm", _set("NumberOfFrames", 13))
    with pytest.raises(ImagingInputError, match="NumberOfFrames says 13 but its pixel data "
                       "holds 12 frames"):
        measure_study(None, seg)


def test_good_encodings_of_the_sample_seg_still_measure(tmp_path, capsys) -> None:
    study = _study(tmp_path)
    code, reference, err = _run(capsys, "measure", str(study / "CT"), "--seg",
                                str(study / "SEG.dcm"))
    assert code == 0, err
    _edit(study / "SEG.dcm", _j2k)
    code, out, err = _run(capsys, "measure", str(study / "CT"), "--seg", str(study / "SEG.dcm"))
    assert code == 0, err
    assert out == reference


# --- 2. 1-bit RLE Lossless ---------------------------------------------------------------

def _masks(seg: Path, ct: Path) -> list[tuple[str, int, tuple[int, int, int], bytes, tuple]]:
    series = read_image(ct)
    masks = read_seg(seg, series.grid, image_sop_uids=series.info.sop_instance_uids,
                     image_series_uid=series.info.series_instance_uid)
    return [(m.label, m.label_value, m.offset, m.mask.tobytes(), m.mask.shape) for m in masks]


@pytest.mark.parametrize("bit_packed", [False, True], ids=["byte per pixel", "8 per byte"])
def test_rle_seg_of_the_sample_study_decodes_and_measures_as_its_native_twin(
    tmp_path, capsys, bit_packed
) -> None:
    study = _study(tmp_path)
    native = study / "SEG.dcm"
    rle = study / "SEG_rle.dcm"
    shutil.copy(native, rle)
    _edit(rle, _rle(bit_packed=bit_packed))
    assert str(pydicom.dcmread(rle).file_meta.TransferSyntaxUID) == RLELossless
    assert _masks(rle, study / "CT") == _masks(native, study / "CT")
    code, expected, err = _run(capsys, "measure", str(study / "CT"), "--seg", str(native))
    assert code == 0, err
    code, out, err = _run(capsys, "measure", str(study / "CT"), "--seg", str(rle))
    assert code == 0, err
    assert out == expected
    assert [le["longest_diameter_mm"] for le in json.loads(out)["lesions"]] == \
        [le["longest_diameter_mm"] for le in json.loads(expected)["lesions"]]


@pytest.fixture(scope="module")
def odd_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 13 × 11-pixel CT of 6 slices and a native SEG of two lesions over it: 143 pixels
    a frame, so native frames start mid-byte (every RLE frame starts on its own byte)."""
    root = tmp_path_factory.mktemp("odd")
    grid = AxialGrid(rows=13, columns=11, slices=6, pixel_mm=2.0, spacing_mm=3.0,
                     origin_mm=(-10.0, -12.0, 0.0))
    one = ellipsoid_mask(grid, Ellipsoid((-2.0, -3.0, 7.5), (7.0, 4.0, 6.0), 30.0))
    two = ellipsoid_mask(grid, Ellipsoid((6.0, 8.0, 4.0), (3.0, 3.0, 4.0)))
    datasets = write_ct_series(root / "CT", np.where(one | two, 80.0, 20.0), grid)
    write_seg(root / "SEG.dcm", datasets, [SegmentSpec("liver lesion", "T1", one),
                                           SegmentSpec("lung lesion", "T2", two)])
    return root


@pytest.mark.parametrize("bit_packed", [False, True], ids=["byte per pixel", "8 per byte"])
def test_rle_frames_not_byte_aligned_when_native_decode_like_the_native_seg(
    odd_study, tmp_path, capsys, bit_packed
) -> None:
    native = odd_study / "SEG.dcm"
    ds = pydicom.dcmread(native)
    assert (ds.Rows * ds.Columns) % 8 != 0 and int(ds.NumberOfFrames) > 1
    rle = tmp_path / "SEG_rle.dcm"
    shutil.copy(native, rle)
    _edit(rle, _rle(bit_packed=bit_packed))
    assert _masks(rle, odd_study / "CT") == _masks(native, odd_study / "CT")
    assert sum(m[3].count(1) for m in _masks(rle, odd_study / "CT")) > 0
    results = [_run(capsys, "measure", str(odd_study / "CT"), "--seg", str(seg))
               for seg in (native, rle)]
    assert [code for code, _, _ in results] == [0, 0], results
    assert results[0][1] == results[1][1]


def _frame_edit(index: int, edit: Callable[[bytes], bytes]) -> Change:
    """Re-encapsulate an RLE SEG with frame ``index`` (0-based) edited."""
    from pydicom.encaps import generate_frames

    def change(ds: Any) -> None:
        items = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
        items[index] = edit(items[index])
        ds.PixelData = encapsulate(items)
    return change


def _two_segments(item: bytes) -> bytes:
    return struct.pack("<L", 2) + item[4:]


def _value_two(item: bytes) -> bytes:
    frame = np.zeros((160, 160), dtype=np.uint8)
    frame[5, 5] = 2
    return RLELosslessEncoder.encode(
        frame.tobytes(), rows=160, columns=160, samples_per_pixel=1, bits_allocated=8,
        bits_stored=8, photometric_interpretation="MONOCHROME2", pixel_representation=0,
        number_of_frames=1)


def _short_frame(item: bytes) -> bytes:
    return _rle_bytes(np.zeros((100, 160), dtype=np.uint8), bit_packed=False)


def _cut_literal(item: bytes) -> bytes:
    # The header, then a literal run of 128 bytes cut after 10 of them.
    return item[:64] + bytes([127]) + bytes(10) + b"\0"


BAD_RLE = {
    "two segments": (_two_segments, r"frame 3: its RLE header declares 2 segments; a 1-bit "
                     r"frame has one"),
    "pixel value 2": (_value_two, r"frame 3: holds pixel value 2; a 1-bit pixel is 0 or 1"),
    "frame too short": (_short_frame, r"frame 3: its RLE segment decodes to 16000 bytes; a "
                        r"1-bit frame of 160×160 pixels needs 25600 \(a byte per pixel\) or "
                        r"3200 \(8 pixels per byte\)"),
    "literal run cut": (_cut_literal, r"frame 3: its RLE segment ends inside a literal run"),
}


@pytest.mark.parametrize("case", sorted(BAD_RLE))
def test_malformed_rle_frame_is_refused_naming_the_frame(tmp_path, capsys, case) -> None:
    edit, message = BAD_RLE[case]
    study = _study(tmp_path)
    seg = _edit(study / "SEG.dcm", _rle(), _frame_edit(2, edit))
    line = _one_line_refusal(_run(capsys, "measure", str(study / "CT"), "--seg", str(seg)),
                             "measure", seg)
    assert re.search(message, line), line


LIVER = REAL / "pydicom_data"


@pytest.mark.skipif(not (LIVER / "liver_rle.dcm").is_file(), reason="no dicom-real data")
def test_real_1bit_rle_seg_measures_like_its_uncompressed_twin() -> None:
    # pydicom-data's liver_rle.dcm (8 pixels per byte) and liver.dcm hold the same frames.
    ct = REAL / "dcmqi" / "data" / "segmentations" / "ct-3slice"
    rle = measure_study(ct, LIVER / "liver_rle.dcm").to_dict()
    assert rle == measure_study(ct, LIVER / "liver.dcm").to_dict()
    assert rle["lesions"][0]["voxel_count"] > 0
