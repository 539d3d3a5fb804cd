"""A short, bounded coverage-guided fuzz run of the SEG, RTSTRUCT and SR readers in every
``make test`` (the longer run is documented in ``fuzz_imaging.py``): each mutated file is
read or refused with ImagingInputError, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).with_name("fuzz_imaging.py")
RUNS = 400


def test_mutated_dicom_files_are_read_or_refused_never_a_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    run = subprocess.run(
        [sys.executable, str(HARNESS), str(corpus), "--seeds", str(corpus), f"-runs={RUNS}",
         "-max_len=90000", "-timeout=30", "-seed=1"],
        capture_output=True, text=True, check=False, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"Done {RUNS} runs" in run.stderr
    assert not list(tmp_path.glob("crash-*"))
    # The seeds really reached the readers (four seeds, one per reader family).
    assert len(list(corpus.glob("seed-*"))) == 4
