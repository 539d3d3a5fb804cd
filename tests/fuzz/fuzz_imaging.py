"""Coverage-guided fuzzing of the DICOM SEG, RTSTRUCT and SR readers (atheris, libFuzzer).

Each input is a file: its first byte chooses the reader (SEG onto the sample W8 CT grid,
RTSTRUCT onto the same grid, or an SR measurement report), the rest is the file's bytes.
A reader may return lesions or refuse with :class:`imaging_io.errors.ImagingInputError`
(one line naming the file); any other exception is a crash that libFuzzer reports, with
the input saved as ``crash-…`` to replay.

Seeds: the project's sample SEG and the RTSTRUCT and SR files of ``../shared/testdata``.
Short run (CI, ``tests/fuzz/test_fuzz_short.py``): a few hundred inputs. Longer run::

    python tests/fuzz/fuzz_imaging.py CORPUS_DIR -runs=200000 -max_len=120000 -timeout=20

with ``CORPUS_DIR`` holding the seeds (``--seeds CORPUS_DIR`` copies them there first).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "testdata" / "dicom-real"
SEEDS = {
    0: ROOT / "sample_dicom" / "W8" / "SEG.dcm",
    1: SHARED / "highdicom_pydicom" / "misc" / "rtstruct.dcm",
    2: SHARED / "highdicom_pydicom" / "sr" / "sr_document.dcm",
    3: SHARED / "dcmqi" / "data" / "sr-example" / "sr.dcm",
}
READERS = ("seg", "rtstruct", "sr", "sr")

with atheris.instrument_imports():
    from imaging_io.errors import ImagingInputError
    from imaging_io.rtstruct import read_rtstruct
    from imaging_io.segmentation import read_seg
    from imaging_io.series import read_image
    from imaging_io.sr import read_measurement_report

logging.disable(logging.WARNING)  # highdicom logs what it repairs, once per input
GRID = read_image(ROOT / "sample_dicom" / "W8" / "CT").grid
WORK = Path(tempfile.mkdtemp(prefix="recist-fuzz-"))
TARGET = WORK / "input.dcm"


def test_one_input(data: bytes) -> None:
    if not data:
        return
    reader = READERS[data[0] % len(READERS)]
    TARGET.write_bytes(data[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about what it repairs
        try:
            if reader == "seg":
                read_seg(TARGET, GRID)
            elif reader == "rtstruct":
                read_rtstruct(TARGET, GRID)
            else:
                read_measurement_report(TARGET)
        except ImagingInputError:
            pass  # refused with a message naming the file: the contract


def write_seeds(folder: Path) -> None:
    """The seed corpus: each seed file behind its reader's selector byte."""
    folder.mkdir(parents=True, exist_ok=True)
    for selector, path in SEEDS.items():
        if path.exists():
            (folder / f"seed-{selector}").write_bytes(bytes([selector]) + path.read_bytes())


def main() -> None:
    argv = list(sys.argv)
    if "--seeds" in argv:
        at = argv.index("--seeds")
        write_seeds(Path(argv[at + 1]))
        del argv[at]
    try:
        atheris.Setup(argv, test_one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
