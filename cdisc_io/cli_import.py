"""``recist import-sdtm``: SDTM TU + TR (+ ADSL or DM, CM/PR) → cases as JSON Lines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# The help line of this command in `recist --help` (read without importing this module).
HELP = "build cases from SDTM TU/TR (+ ADSL/DM) CSVs"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--tu", required=True, help="TU (tumour identification) CSV")
    parser.add_argument("--tr", required=True, help="TR (tumour results) CSV")
    subject = parser.add_mutually_exclusive_group()
    subject.add_argument("--adsl", help="ADSL CSV: RANDDT, ARM, DTHDT, LSTALVDT")
    subject.add_argument("--dm", help="DM CSV: ARM, DTHDTC (no randomisation date)")
    parser.add_argument(
        "--cm",
        help="CM CSV: systemic anti-cancer therapy; the earliest CMSTDTC of records whose "
        "CMCAT or CMSCAT is --new-therapy-category sets new_therapy_on",
    )
    parser.add_argument(
        "--pr",
        help="PR CSV: radiotherapy / cancer surgery, read like --cm (PRSTDTC, PRCAT/PRSCAT)",
    )
    parser.add_argument(
        "--new-therapy-category",
        default="ON TREATMENT",
        help="the --CAT/--SCAT value of CM/PR records that are a new anti-cancer therapy "
        "(default: %(default)s); ADSL NACTDT is used too when present",
    )
    parser.add_argument("--out", required=True, help="output cases, JSON Lines ('-' = stdout)")
    parser.add_argument(
        "--settings",
        default=None,
        help="protocol settings for every case: a JSON object of recist.settings.Settings "
        "keys, e.g. '{\"confirmation\": true}', or @FILE holding one (export-sdtm's "
        "settings.json is accepted when it holds one settings set)",
    )
    parser.add_argument(
        "--impute",
        choices=("first", "middle", "last"),
        default="last",
        help="how a partial date (2014-02) is completed when its visit has no complete date "
        "(default: last day, as pharmaverse ADRS)",
    )
    parser.add_argument(
        "--prefer-diameter",
        action="store_true",
        help="size targets by the DIAMETER test where present (the value the sponsor summed "
        "in SUMDIAM) instead of LDIAM / LPERP (nodal short axis)",
    )
    parser.add_argument(
        "--notices",
        default=None,
        help="write what the import imputed, collapsed or skipped here (JSON Lines)",
    )


def parse_settings(text: str | None) -> dict[str, Any] | None:
    """Check ``--settings`` against :class:`recist.settings.Settings`.

    ``text`` is a JSON object, or ``@path`` of a file holding one; export-sdtm's
    ``settings.json`` (``{"settings": [{…}]}``) is accepted when it holds exactly one set.

    Raises
    ------
    ValueError
        One line naming ``--settings`` (and the file) and what is wrong.
    """
    from pydantic import ValidationError

    from recist.jsonio import SettingsIn, validation_error
    from recist.safejson import INVALID_JSON, JsonInputError, loads
    from recist.settings import Settings

    if text is None:
        return None
    where = "--settings"
    if text.startswith("@"):
        path = text[1:]
        where = f"--settings {path}"
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise ValueError(f"{where}: cannot read ({error.strerror})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{where}: not UTF-8 text") from None
    try:
        values = loads(text, max_bytes=None)
    except JsonInputError as error:
        if error.code == INVALID_JSON:
            raise ValueError(f"{where} is not valid JSON ({error.detail})") from None
        raise ValueError(f"{where} is refused: {error.detail}") from None
    if isinstance(values, dict) and list(values) == ["settings"]:
        sets = values["settings"]
        if not isinstance(sets, list) or not all(isinstance(v, dict) for v in sets):
            raise ValueError(f"{where}: 'settings' must be a list of JSON objects")
        if len(sets) != 1:
            raise ValueError(
                f"{where} holds {len(sets)} settings sets (export-sdtm wrote one per distinct "
                "set); import needs exactly one: split the cases or give the set to use"
            )
        values = sets[0]
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a JSON object")
    try:
        Settings.from_dict(values)  # refuses unknown keys and bad values by name
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    try:  # the contract's types too: a list is no "confirmation", "30" no number of days
        SettingsIn.model_validate(values)
    except ValidationError as error:
        raise ValueError(f"{where}: {validation_error(error, values, ('settings',))}") from None
    return values


def run(args: argparse.Namespace) -> int:
    """Import, write the cases and print a one-line summary on stderr."""

    from cdisc_io.csvio import OutputError, read_domain, staged_outputs
    from cdisc_io.dates import ImputationRule
    from cdisc_io.errors import CdiscFileError
    from cdisc_io.new_therapy import CM_REQUIRED, PR_REQUIRED, earliest, read_new_therapy
    from cdisc_io.sdtm_import import (
        DM_REQUIRED,
        TR_REQUIRED,
        TU_REQUIRED,
        Notice,
        build_cases,
        iter_jsonl,
        read_subjects,
    )
    from recist.errors import RecistError

    rule = ImputationRule(args.impute)
    notices: list[Notice] = []
    try:
        settings = parse_settings(args.settings)
        tu = read_domain(args.tu, TU_REQUIRED, label=args.tu)
        tr = read_domain(args.tr, TR_REQUIRED, label=args.tr)
        subjects = None
        if args.adsl or args.dm:
            path = args.adsl or args.dm
            kind = "adsl" if args.adsl else "dm"
            frame = read_domain(path, DM_REQUIRED, label=path)
            subjects = read_subjects(frame, file=path, kind=kind, rule=rule, notices=notices)
        randomized = {
            key: data.randomized_on
            for key, data in (subjects or {}).items()
            if data.randomized_on is not None
        }
        starts = []
        for domain, path, required in (("CM", args.cm, CM_REQUIRED), ("PR", args.pr, PR_REQUIRED)):
            if path:
                starts.append(
                    read_new_therapy(
                        read_domain(path, required, label=path),
                        domain=domain,
                        file=path,
                        category=args.new_therapy_category,
                        rule=rule,
                        notices=notices,
                        randomized=randomized,
                    )
                )
        result = build_cases(
            tu,
            tr,
            subjects,
            settings=settings,
            rule=rule,
            files=(args.tu, args.tr),
            subjects_file=args.adsl or args.dm or "ADSL",
            notices=notices,
            prefer_diameter=args.prefer_diameter,
            new_therapy=earliest(*starts) if starts else None,
        )
    except (CdiscFileError, RecistError, ValueError) as error:
        print(f"recist import-sdtm: {error}", file=sys.stderr)
        return 2
    lines = list(iter_jsonl(result.cases))
    # Every output is written under a temporary name and renamed at the end: an output
    # that cannot be written leaves none of them behind (standard output comes last).
    try:
        with staged_outputs() as staged:
            if args.out != "-":
                path = staged.path(args.out, f"--out {args.out}")
                with open(path, "w", encoding="utf-8") as handle:
                    handle.writelines(lines)
            if args.notices:
                path = staged.path(args.notices, f"--notices {args.notices}")
                with open(path, "w", encoding="utf-8") as handle:
                    for notice in notices:
                        handle.write(json.dumps(notice.to_dict(), ensure_ascii=False) + "\n")
            if args.out == "-":
                sys.stdout.writelines(lines)
    except OutputError as error:
        print(f"recist import-sdtm: {error}", file=sys.stderr)
        return 2
    subjects_n = len({c["subject_id"] for c in result.cases})
    kinds: dict[str, int] = {}
    for notice in notices:
        kinds[notice.kind] = kinds.get(notice.kind, 0) + 1
    detail = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
    print(
        f"recist import-sdtm: {len(result.cases)} cases ({subjects_n} subjects)"
        + (f"; notices: {detail}" if detail else ""),
        file=sys.stderr,
    )
    return 0
