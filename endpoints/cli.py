"""``recist endpoints CASES``: PFS, OS, DOR and local-failure analyses by arm."""

from __future__ import annotations

import argparse
import json
import sys

# The help line of this command in `recist --help` (read without importing this module).
HELP = "PFS/OS/DoR/local-failure analyses from cases"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("cases", help="cases with arms (JSON, JSON array or JSON Lines), or -")
    parser.add_argument(
        "--out",
        help="folder for endpoints.json, subjects.csv, km.csv and (with treated lesions) "
        "lesions.csv and local_failure.csv; without it the JSON goes to standard output",
    )
    parser.add_argument(
        "--reader",
        default="auto",
        help="the read analysed per subject: auto (accepted, else INVESTIGATOR, else the "
        "only one; default) or a reader's name",
    )
    parser.add_argument(
        "--times",
        default=None,
        help="comma-separated days at which survival, numbers at risk and cumulative "
        "incidence are reported (default 0,91,182,365,547,730,1095)",
    )


def parse_times(text: str | None) -> tuple[int, ...]:
    """``--times``: whole days ≥ 0, ascending."""
    from endpoints.analysis import DEFAULT_TIMES

    if text is None:
        return DEFAULT_TIMES
    try:
        times = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--times {text!r} is not a comma-separated list of days") from None
    if any(t < 0 for t in times) or list(times) != sorted(times):
        raise ValueError(f"--times {text!r} must be ascending days ≥ 0")
    return times


def run(args: argparse.Namespace) -> int:
    """Assess, derive, analyse; write JSON (and CSVs with --out)."""
    from pathlib import Path

    import pandas as pd

    from cdisc_io.cases import CasesFileError, assess_cases
    from cdisc_io.csvio import OutputError, output_folder, write_csv
    from endpoints.batch import analyse
    from recist.errors import RecistError
    from recist.safejson import read_cases

    try:
        times = parse_times(args.times)
        result = analyse(
            assess_cases(
                read_cases(args.cases, name=Path(args.cases).name).objects(),
                file=Path(args.cases).name,
            ),
            reader=args.reader,
            times=times,
        )
    except (CasesFileError, RecistError, ValueError) as error:
        print(f"recist endpoints: {error}", file=sys.stderr)
        return 2
    if result.summary["subjects"] == 0:
        print(f"recist endpoints: no read matches --reader {args.reader!r}", file=sys.stderr)
        return 2
    text = json.dumps(result.summary, indent=2, ensure_ascii=False) + "\n"
    if not args.out:
        sys.stdout.write(text)
        return 0
    try:
        with output_folder(args.out) as out:
            (out / "endpoints.json").write_text(text, encoding="utf-8")
            write_csv(pd.DataFrame(result.subjects), out / "subjects.csv")
            write_csv(pd.DataFrame(km_rows(result.summary)), out / "km.csv")
            if result.lesions:
                write_csv(pd.DataFrame(result.lesions), out / "lesions.csv")
                write_csv(pd.DataFrame(cif_rows(result.summary)), out / "local_failure.csv")
    except OutputError as error:
        print(f"recist endpoints: {error}", file=sys.stderr)
        return 2
    print(f"recist endpoints: {result.summary['subjects']} subjects → {out}", file=sys.stderr)
    return 0


def km_rows(summary: dict[str, object]) -> list[dict[str, object]]:
    """One CSV row per endpoint, arm and reporting time."""
    rows: list[dict[str, object]] = []
    endpoints = summary["endpoints"]
    assert isinstance(endpoints, dict)
    for name, analysis in endpoints.items():
        for arm, figures in analysis["arms"].items():
            for i, t in enumerate(analysis["times"]):
                rows.append({
                    "endpoint": name, "arm": arm, "n": figures["n"], "events": figures["events"],
                    "median_days": figures["median_days"],
                    "median_ci95_lower": figures["median_ci95_days"][0],
                    "median_ci95_upper": figures["median_ci95_days"][1],
                    "day": t, "survival": figures["survival"][i], "at_risk": figures["at_risk"][i],
                })  # fmt: skip
    return rows


def cif_rows(summary: dict[str, object]) -> list[dict[str, object]]:
    """One CSV row per group and reporting time of the local-failure incidence."""
    local = summary.get("local_failure")
    if not isinstance(local, dict):
        return []
    rows: list[dict[str, object]] = []
    for group, figures in local["groups"].items():
        for i, t in enumerate(local["times"]):
            rows.append({
                "group": group, "n": figures["n"], "events": figures["events"],
                "competing_events": figures["competing_events"], "day": t,
                "cumulative_incidence": figures["incidence"][i],
                "ci95_lower": figures["ci95"][i][0], "ci95_upper": figures["ci95"][i][1],
            })  # fmt: skip
    return rows
