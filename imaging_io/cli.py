"""``recist measure IMAGE --seg SEG``: lesion sizes as JSON (docs/contracts.md).

Only :mod:`argparse` is imported at module level: building the ``recist`` parser must not
load numpy, pydicom or highdicom.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

# The help line of this command in `recist --help` (read without importing this module).
HELP = "measure lesions in a DICOM series + segmentation"

# Errors third-party readers raise on malformed files that our own checks did not
# anticipate; reported as bad input in one line rather than as a traceback.
READER_ERRORS: tuple[type[Exception], ...] = (
    ValueError, RuntimeError, KeyError, IndexError, TypeError, AttributeError, OSError,
    sqlite3.Error,  # highdicom indexes SEG frames in SQLite
)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``recist measure``."""
    parser.add_argument("image", metavar="IMAGE",
                        help="DICOM series folder, one DICOM file, or NIfTI/NRRD/MetaImage")
    parser.add_argument("--seg", required=True, metavar="SEG",
                        help="DICOM SEG, DICOM RTSTRUCT, or label map (NIfTI/NRRD/MetaImage)")
    parser.add_argument("--components", action="store_true",
                        help="split each segment into connected components")
    parser.add_argument("--resample", action="store_true",
                        help="resample a label map that is off the image grid (nearest "
                             "neighbour) instead of refusing it")
    parser.add_argument("--fractional-threshold", type=float, default=0.5, metavar="F",
                        help="fractional SEG values >= F are lesion (default 0.5)")


def report_error(command: str, exc: BaseException) -> int:
    """Print one line for bad input and return exit status 2."""
    from imaging_io.errors import ImagingInputError

    if isinstance(exc, ImagingInputError):
        text = str(exc)
    else:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        text = f"cannot read the input ({type(exc).__name__}: {detail})"
    print(f"recist {command}: {text}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Measure and print the JSON; bad input exits 2 with one line on stderr."""
    import warnings

    from imaging_io.errors import ImagingInputError
    from imaging_io.measure import measure_study

    if not 0.0 < args.fractional_threshold <= 1.0:
        print(f"recist measure: --fractional-threshold {args.fractional_threshold} is not "
              "in (0, 1]", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            # pydicom/highdicom warn about harmless quirks of real files (e.g. a missing
            # preamble); the result is what matters on stdout.
            warnings.simplefilter("ignore")
            result = measure_study(args.image, args.seg, components=args.components,
                                   resample=args.resample,
                                   fractional_threshold=args.fractional_threshold)
    except ImagingInputError as exc:
        return report_error("measure", exc)
    except READER_ERRORS as exc:
        return report_error("measure", exc)
    json.dump(result.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0
