"""``recist export-sdtm CASES --out DIR``: TU, TR and RS CSVs that import back."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The help line of this command in `recist --help` (read without importing this module).
HELP = "write TU, TR and RS CSVs from cases"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("cases", help="cases (JSON, JSON array or JSON Lines), or -")
    parser.add_argument("--out", required=True, help="folder for tu.csv, tr.csv, rs.csv")
    parser.add_argument(
        "--studyid",
        default="RECIST",
        help="STUDYID of every record (default: %(default)s); cases carry no study id, so "
        "give the study's own to keep it through an import/export round trip",
    )


def run(args: argparse.Namespace) -> int:
    """Assess the cases and write the three domains plus the settings used."""
    from cdisc_io.cases import CasesFileError, assess_cases, write_settings
    from cdisc_io.csvio import OutputError, output_folder, staged_outputs, write_csv
    from cdisc_io.sdtm_export import export_sdtm
    from recist.errors import RecistError
    from recist.safejson import read_cases

    try:
        name = Path(args.cases).name
        assessed = assess_cases(read_cases(args.cases, name=name).objects(), file=name)
    except (CasesFileError, RecistError) as error:
        print(f"recist export-sdtm: {error}", file=sys.stderr)
        return 2
    tu, tr, rs = export_sdtm(assessed, studyid=args.studyid)
    try:
        # Staged: the files appear together, or none of them (a failed write leaves none).
        with output_folder(args.out) as out, staged_outputs() as staged:
            write_csv(tu, staged.path(out / "tu.csv"))
            write_csv(tr, staged.path(out / "tr.csv"))
            write_csv(rs, staged.path(out / "rs.csv"))
            write_settings(assessed, staged.path(out / "settings.json"))
    except OutputError as error:
        print(f"recist export-sdtm: {error}", file=sys.stderr)
        return 2
    print(
        f"recist export-sdtm: {len(assessed)} cases → {out}/tu.csv ({len(tu)} records), "
        f"tr.csv ({len(tr)}), rs.csv ({len(rs)})",
        file=sys.stderr,
    )
    return 0
