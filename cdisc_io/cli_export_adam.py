"""``recist export-adam CASES --out DIR``: ADRS and ADTTE CSVs (admiralonco naming)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The help line of this command in `recist --help` (read without importing this module).
HELP = "write ADRS and ADTTE CSVs from cases"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("cases", help="cases (JSON, JSON array or JSON Lines), or -")
    parser.add_argument("--out", required=True, help="folder for adrs.csv and adtte.csv")
    parser.add_argument("--studyid", default="RECIST", help="STUDYID of every record")
    parser.add_argument(
        "--import-notices",
        help="the --notices file of import-sdtm: visit dates it imputed get ADRS ADTF",
    )
    parser.add_argument(
        "--reader",
        default="all",
        help="which reads: all (default; RSEVAL/RSEVALID and PARCAT2 tell them apart), "
        "accepted, or one reader's name (INVESTIGATOR, 'RADIOLOGIST 1'…)",
    )


def run(args: argparse.Namespace) -> int:
    """Assess the cases and write ADRS, ADTTE and the settings used."""
    from cdisc_io.adam_export import export_adam, imputation_flags, select_reads
    from cdisc_io.cases import CasesFileError, assess_cases, write_settings
    from cdisc_io.csvio import OutputError, output_folder, staged_outputs, write_csv
    from recist.errors import RecistError
    from recist.safejson import read_cases

    try:
        flags = {}
        if args.import_notices:
            flags = imputation_flags(read_notices(args.import_notices))
        assessed = select_reads(
            assess_cases(
                read_cases(args.cases, name=Path(args.cases).name).objects(),
                file=Path(args.cases).name,
            ),
            args.reader,
        )
        adrs, adtte = export_adam(assessed, studyid=args.studyid, flags=flags)
    except (CasesFileError, RecistError) as error:
        print(f"recist export-adam: {error}", file=sys.stderr)
        return 2
    if not assessed:
        print(f"recist export-adam: no read matches --reader {args.reader!r}", file=sys.stderr)
        return 2
    try:
        # Staged: the files appear together, or none of them (a failed write leaves none).
        with output_folder(args.out) as out, staged_outputs() as staged:
            write_csv(adrs, staged.path(out / "adrs.csv"))
            write_csv(adtte, staged.path(out / "adtte.csv"))
            write_settings(assessed, staged.path(out / "settings.json"))
    except OutputError as error:
        print(f"recist export-adam: {error}", file=sys.stderr)
        return 2
    print(
        f"recist export-adam: {len(assessed)} reads → {out}/adrs.csv ({len(adrs)} records), "
        f"adtte.csv ({len(adtte)})",
        file=sys.stderr,
    )
    return 0


def read_notices(path: str) -> list[dict[str, object]]:
    """import-sdtm's notices (JSON Lines).

    Raises
    ------
    CasesFileError
        The file cannot be read or a line is not a JSON object.
    """
    from cdisc_io.cases import CasesFileError
    from recist.safejson import JsonInputError, loads

    name = Path(path).name
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CasesFileError(f"{name}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise CasesFileError(f"{name}: not UTF-8 text") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = loads(line, max_bytes=None, source=f"{name} line {number}", line_number=number)
        except JsonInputError as error:
            raise CasesFileError(str(error)) from None
        if not isinstance(item, dict):
            raise CasesFileError(f"{name} line {number}: a notice must be a JSON object")
        out.append(item)
    return out
