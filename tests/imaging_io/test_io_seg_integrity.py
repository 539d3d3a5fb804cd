"""A SEG must be what it says (issue 12).

Every SEG here is made in a temporary folder from the project's own synthetic study
``sample_dicom/`` (or a phantom of ``imaging_io.phantoms``) and then edited with pydicom:
NumberOfFrames that disagrees with the pixel data (native and encapsulated), a
SegmentSequence that is missing, empty or does not describe a frame's segment, and
frames or a ReferencedSeriesSequence that reference images outside the series being
measured. Each is refused in one line naming the file and the fault, by ``recist
measure`` and ``recist ingest`` alike: none may be measured as "every lesion absent".
"""

from __future__ import annotations

import json
import re
import shutil
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
from imaging_io.study import measure_study_folder
from recist.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_dicom"
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
