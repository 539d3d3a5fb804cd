"""``recist ingest STUDY_DIR --case CASE.json --timepoint ID``: add a measured timepoint.

Prints the updated case JSON (or writes it with ``--output``; ``--in-place`` rewrites
CASE.json). Only :mod:`argparse` is imported at module level (fast ``recist --help``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# The help line of this command in `recist --help` (read without importing this module).
HELP = "add a measured timepoint from a study to a case"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``recist ingest``."""
    parser.add_argument("study", metavar="STUDY_DIR",
                        help="folder with one image series and its SEG/RTSTRUCT or SR reports")
    parser.add_argument("--case", required=True, metavar="CASE.json",
                        help="the case (one JSON object) to add the timepoint to")
    parser.add_argument("--timepoint", required=True, metavar="ID", help="timepoint id")
    parser.add_argument("--date", metavar="YYYY-MM-DD",
                        help="timepoint date (default: the series' StudyDate)")
    parser.add_argument("--unmatched", choices=("refuse", "new", "ignore"), default="refuse",
                        help="segments matching no lesion: refuse (default), record as new "
                             "lesions, or ignore")
    parser.add_argument("--replace", action="store_true",
                        help="replace a timepoint with the same id")
    parser.add_argument("--accept-conflicts", action="store_true",
                        help="record a segment whose name points at a lesion although its "
                             "anatomy disagrees (a lung segment named after a node target); "
                             "refused by default")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--output", "-o", metavar="FILE", help="write the case here")
    out.add_argument("--in-place", action="store_true", help="rewrite CASE.json")


def report_findings(case: dict[str, Any]) -> None:
    """The engine's baseline findings of the ingested case (R-MEAS, R-SEL, R-ELIG…), one
    line each on stderr: the case is written all the same (findings are not refusals)."""
    from recist.errors import RecistError
    from recist.jsonio import assess_json

    try:
        warnings = assess_json(case)["warnings"]
    except RecistError as exc:  # strict mode refusing a finding: recist assess says so too
        print(f"recist ingest: note: recist assess refuses this case: {exc}", file=sys.stderr)
        return
    for finding in warnings:
        lesion = f" {finding['lesion']}" if finding["lesion"] else ""
        print(f"recist ingest: finding {finding['rule']}{lesion}: {finding['message']}",
              file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Ingest; bad input exits 2 with one line on stderr."""
    import warnings

    from imaging_io.cli import READER_ERRORS, report_error
    from imaging_io.errors import ImagingInputError
    from imaging_io.ingest import ingest_study
    from recist.safejson import JsonInputError, loads

    case_path = Path(args.case)
    try:
        # The same limited reader as every other way in (depth, number length, NaN,
        # duplicate keys, UTF-8), naming the file, line and column.
        case = loads(case_path.read_bytes(), source=str(case_path))
    except OSError as exc:
        print(f"recist ingest: {case_path}: cannot read the case JSON ({exc.strerror or exc})",
              file=sys.stderr)  # fmt: skip
        return 2
    except JsonInputError as exc:
        print(f"recist ingest: cannot read the case JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(case, dict):
        print(f"recist ingest: {case_path}: expected one case (a JSON object)", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            updated = ingest_study(case, args.study, timepoint_id=args.timepoint,
                                   date=args.date, replace=args.replace,
                                   unmatched=args.unmatched,
                                   accept_conflicts=args.accept_conflicts)
    except ImagingInputError as exc:
        return report_error("ingest", exc)
    except READER_ERRORS as exc:
        return report_error("ingest", exc)
    report_findings(updated)
    text = json.dumps(updated, indent=2, ensure_ascii=False) + "\n"
    target = case_path if args.in_place else (Path(args.output) if args.output else None)
    if target is None:
        sys.stdout.write(text)
        return 0
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"recist ingest: {target}: cannot write the case ({exc.strerror or exc})",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0
