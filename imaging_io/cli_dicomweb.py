"""``recist pull`` and ``recist push``: studies from and DICOM files to a PACS over DICOMweb.

::

    recist pull --dicomweb URL --out DIR [--since YYYY-MM-DD] [--subject KEY ...]
                [--visit ID=YYYY-MM-DD ...] [--visit-window DAYS] [--timeout S] [--retries N]
    recist push --dicomweb URL FILE_OR_FOLDER ... [--timeout S] [--retries N]

One module serves both commands (each is an entry point of ``recist.commands``): the
command's name is the last word of the parser's ``prog`` when registering, and
``args.command`` when running. Only :mod:`argparse` is imported at module level.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imaging_io.dicomweb import Pacs, VisitSchedule

# The help line of both commands in `recist --help` (read without importing this module).
HELP = "DICOMweb PACS: pull retrieves and measures studies, push stores DICOM files"


class _Refusal(Exception):
    """Bad input on the command line: one line, exit status 2."""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``recist pull`` or ``recist push`` (from the parser's name)."""
    command = parser.prog.split()[-1]
    parser.add_argument("--dicomweb", required=True, metavar="URL",
                        help="base URL of the PACS's DICOMweb service "
                             "(e.g. http://pacs:8042/dicom-web)")
    if command == "push":
        parser.add_argument("files", nargs="+", metavar="FILE",
                            help="DICOM files (an SR, a SEG…) or folders of them to store")
    else:
        parser.add_argument("--out", required=True, metavar="DIR",
                            help="folder of the pulled studies: DIR/<subject>/<timepoint>/ "
                                 "and DIR/pull-manifest.json")
        parser.add_argument("--since", metavar="YYYY-MM-DD",
                            help="only studies dated on or after this day")
        parser.add_argument("--subject", nargs="+", action="extend", default=[], metavar="KEY",
                            help="only these subjects: PatientID or Clinical Trial Subject ID")
        parser.add_argument("--visit", nargs="+", action="extend", default=[],
                            metavar="ID=YYYY-MM-DD",
                            help="planned visits: a study without a Clinical Trial Time Point "
                                 "ID is named after the visit whose window holds its date")
        parser.add_argument("--visit-window", type=int, default=7, metavar="DAYS",
                            help="± days around a planned visit (default 7)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="seconds to wait for the PACS to connect and to answer (default 30)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help="retries of a transient fault, with exponential backoff (default 3)")


def _since(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise _Refusal(f"--since {text!r} is not a date YYYY-MM-DD") from exc


def _schedule(visits: list[str], window: int) -> VisitSchedule | None:
    from imaging_io.dicomweb import VisitSchedule

    if not visits:
        return None
    planned = []
    for text in visits:
        visit, sep, day = text.partition("=")
        try:
            planned.append((visit.strip(), date.fromisoformat(day.strip())))
        except ValueError as exc:
            raise _Refusal(f"--visit {text!r} is not ID=YYYY-MM-DD") from exc
        if not sep or not visit.strip():
            raise _Refusal(f"--visit {text!r} is not ID=YYYY-MM-DD")
    try:
        return VisitSchedule(tuple(planned), window)
    except ValueError as exc:
        raise _Refusal(f"--visit: {exc}") from exc


def _pacs(args: argparse.Namespace, sleep: Callable[[float], None] | None) -> Pacs:
    import time

    from imaging_io.dicomweb import Pacs, RetryPolicy

    if not 0 <= args.retries <= 9:
        raise _Refusal(f"--retries {args.retries} is not between 0 and 9")
    if not args.timeout > 0:
        raise _Refusal(f"--timeout {args.timeout:g} is not a positive number of seconds")
    policy = RetryPolicy(attempts=args.retries + 1, sleep=time.sleep if sleep is None else sleep)
    return Pacs(args.dicomweb, timeout_s=args.timeout, retry=policy)


def _files(names: list[str]) -> list[Path]:
    """The files to push: files as given, folders expanded to every file below them."""
    from imaging_io.series import iter_files

    files: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = list(iter_files(path))
            if not found:
                raise _Refusal(f"{path}: folder holds no file to store")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise _Refusal(f"{path}: no such file or folder")
    return files


def run(args: argparse.Namespace, *, sleep: Callable[[float], None] | None = None) -> int:
    """Pull or push; bad input and an unreachable PACS exit 2 with one line on stderr.

    ``sleep`` replaces :func:`time.sleep` between retries (tests count the waits).
    """
    from imaging_io.errors import ImagingInputError

    command = args.command
    try:
        pacs = _pacs(args, sleep)
        return _push(pacs, args) if command == "push" else _pull(pacs, args)
    except _Refusal as exc:
        print(f"recist {command}: {exc}", file=sys.stderr)
    except ImagingInputError as exc:  # DicomWebError included: names the URL and study
        print(f"recist {command}: {exc}", file=sys.stderr)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"recist {command}: {where}{exc.strerror or exc}", file=sys.stderr)
    return 2


def _pull(pacs: Pacs, args: argparse.Namespace) -> int:
    from imaging_io.dicomweb import pull

    since = _since(args.since)
    schedule = _schedule(args.visit, args.visit_window)
    report = pull(pacs, args.out, subjects=args.subject, since=since, schedule=schedule)
    for failure in report.failed:
        print(f"recist pull: {failure.message}", file=sys.stderr)
    print(f"recist pull: {report.summary()} ({pacs.url} -> {args.out})")
    return 2 if report.failed else 0


def _push(pacs: Pacs, args: argparse.Namespace) -> int:
    stored = pacs.store(_files(args.files))
    for item in stored:
        print(f"stored {item.path}: {item.modality} {item.sop_class} {item.sop_instance_uid} "
              f"(study {item.study_uid})")
    print(f"recist push: stored {len(stored)} instance(s) on {pacs.url}")
    return 0
