"""``recist compare CASES --recorded RS.csv``: where the engine disagrees with recorded RS."""

from __future__ import annotations

import argparse
import json
import sys

# The help line of this command in `recist --help` (read without importing this module).
HELP = "compare engine responses with recorded RS"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument(
        "cases", help="cases (JSON, JSON array or JSON Lines, e.g. from import-sdtm), or -"
    )
    parser.add_argument("--recorded", required=True, help="the SDTM RS CSV to compare with")
    parser.add_argument("--out", help="write every disagreement here as CSV")
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default): figures and disagreements; json: the figures",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=50,
        help="disagreements shown in the text report (default 50; --out has all)",
    )


def run(args: argparse.Namespace) -> int:
    """Assess the cases, compare, print the report; exit 2 on bad input."""
    from pathlib import Path

    import pandas as pd

    from cdisc_io.cases import CasesFileError, assess_cases
    from cdisc_io.compare import RS_REQUIRED, compare, format_report
    from cdisc_io.csvio import OutputError, read_domain, staged_outputs, write_csv
    from cdisc_io.errors import CdiscFileError
    from recist.errors import RecistError
    from recist.safejson import read_cases

    try:
        rs = read_domain(args.recorded, RS_REQUIRED)
        refused: list[str] = []  # a reviewer wants the rest compared and these listed
        name = Path(args.cases).name
        cases = read_cases(args.cases, name=name).objects()
        assessed = assess_cases(cases, refused=refused, file=name)
        result = compare(assessed, rs, file=Path(args.recorded).name)
        result.refused = refused
    except (CdiscFileError, CasesFileError, RecistError) as error:
        print(f"recist compare: {error}", file=sys.stderr)
        return 2
    if args.out:
        rows = [d.to_dict() for d in result.disagreements]
        columns = [
            "USUBJID",
            "reader",
            "VISIT",
            "date",
            "RSTESTCD",
            "recorded",
            "derived",
            "rules",
            "reasons",
        ]
        try:
            with staged_outputs() as staged:
                path = staged.path(args.out, f"--out {args.out}")
                write_csv(pd.DataFrame(rows, columns=columns), path)
        except OutputError as error:
            print(f"recist compare: {error}", file=sys.stderr)
            return 2
    if args.format == "json":
        json.dump(result.summary(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_report(result, limit=args.limit))
    return 0
