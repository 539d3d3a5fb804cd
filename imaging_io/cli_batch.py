"""``recist batch MANIFEST --out RESULTS``: measure and assess many studies on Dask.

Each study is measured in a Dask task (a local cluster of ``--workers`` processes, or the
cluster of ``--scheduler``), each subject's case built as ``recist ingest`` builds it and
assessed; outputs stream to RESULTS/ and the same command resumes a stopped batch
(:mod:`imaging_io.batch`). Only :mod:`argparse` is imported at module level (fast
``recist --help``).
"""

from __future__ import annotations

import argparse
import os
import sys

# The help line of this command in `recist --help` (read without importing this module).
HELP = "measure and assess many studies on Dask (resumable)"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``recist batch``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("manifest", nargs="?", metavar="MANIFEST",
                        help="CSV or JSON Lines: subject, timepoint, image, seg[, date] per "
                             "study (relative paths from the manifest's folder)")
    source.add_argument("--discover", metavar="DIR",
                        help="find the studies in DIR/<subject>/<timepoint>/ (a series "
                             "folder and SEG.dcm, as in sample_dicom/<visit>/)")
    parser.add_argument("--out", required=True, metavar="RESULTS",
                        help="results folder (made if missing; an earlier run's is resumed)")
    parser.add_argument("--cases", metavar="CASES.jsonl",
                        help="starting cases (baseline lesions) by subject_id; without one, "
                             "a subject's first timepoint defines its lesions")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of the local Dask cluster (default: the "
                            "number of cores); 0 measures in this process")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="use a running Dask cluster instead of a local one")
    parser.add_argument("--unmatched", choices=("refuse", "new", "ignore"), default="refuse",
                        help="segments matching no lesion of the case: refuse the subject "
                             "(default), record them as new lesions, or ignore them")
    parser.add_argument("--retry-refused", action="store_true",
                        help="measure again the studies an earlier run refused")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress; report only refused and failed studies")


def run(args: argparse.Namespace) -> int:
    """Run the batch; bad input exits 2 with one line on stderr, as does a batch in which
    a study was refused or failed or a subject could not be assessed (the summary says
    which)."""
    from imaging_io.batch import (
        Progress,
        discover,
        progress_mode,
        read_manifest,
        read_start_cases,
        run_batch,
    )
    from imaging_io.errors import ImagingInputError

    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 0:
        print(f"recist batch: --workers {workers}: give 0 (in this process) or more",
              file=sys.stderr)
        return 2
    try:
        rows = discover(args.discover) if args.discover else read_manifest(args.manifest)
        starts = read_start_cases(args.cases) if args.cases else None
    except ImagingInputError as exc:
        print(f"recist batch: {exc}", file=sys.stderr)
        return 2
    progress = Progress(sys.stderr, progress_mode(args.quiet))
    try:
        summary = run_batch(rows, args.out, start_cases=starts, workers=workers,
                            scheduler=args.scheduler, unmatched=args.unmatched,
                            retry_refused=args.retry_refused, progress=progress)
    except ImagingInputError as exc:
        print(f"recist batch: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the results folder, or a scheduler that cannot be reached
        print(f"recist batch: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nrecist batch: interrupted; run the same command again to resume "
              f"(finished studies are in {args.out}/done.jsonl)", file=sys.stderr)
        return 130
    print(f"recist batch: {summary['studies']} studies: {summary['measured']} measured, "
          f"{summary['refused']} refused, {summary['failed']} failed; "
          f"{summary['assessed']} of {summary['subjects']} subjects assessed; "
          f"results in {args.out}")
    clean = not (summary["refused"] or summary["failed"] or summary["not_assessed"])
    return 0 if clean else 2
