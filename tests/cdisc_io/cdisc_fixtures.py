"""Builders of tiny hand-made SDTM files, and where the pharmaverse test data lives."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def pharmaverse_dir() -> Path | None:
    """The pharmaverse CSVs: $RECIST_TESTDATA/pharmaverse or ../shared/testdata/pharmaverse."""
    candidates = []
    if os.environ.get("RECIST_TESTDATA"):
        candidates.append(Path(os.environ["RECIST_TESTDATA"]) / "pharmaverse")
    candidates += [
        REPO.parent / "shared" / "testdata" / "pharmaverse",
        Path("/work/shared/testdata/pharmaverse"),
    ]
    for path in candidates:
        if (path / "tr_onco_recist.csv").is_file():
            return path
    return None


TU_COLUMNS = [
    "STUDYID",
    "DOMAIN",
    "USUBJID",
    "TULNKID",
    "TUTESTCD",
    "TUORRES",
    "TUSTRESC",
    "TULOC",
    "TUEVAL",
    "TUEVALID",
    "TUACPTFL",
    "VISITNUM",
    "VISIT",
    "TUDTC",
    "TUSEQ",
]
TR_COLUMNS = [
    "STUDYID",
    "DOMAIN",
    "USUBJID",
    "TRGRPID",
    "TRLNKID",
    "TRTESTCD",
    "TRORRES",
    "TRSTRESC",
    "TRSTRESN",
    "TRSTRESU",
    "TRSTAT",
    "TRREASND",
    "VISITNUM",
    "VISIT",
    "TREVAL",
    "TREVALID",
    "TRACPTFL",
    "TRDTC",
    "TRSEQ",
]


def tu_row(
    subject: str,
    link: str,
    role: str,
    loc: str,
    reader: str = "INVESTIGATOR",
    accepted: str = "",
    **extra: Any,
) -> dict[str, Any]:
    independent = reader != "INVESTIGATOR"
    row = {
        "STUDYID": "S1",
        "DOMAIN": "TU",
        "USUBJID": subject,
        "TULNKID": link,
        "TUTESTCD": "TUMIDENT",
        "TUORRES": role,
        "TUSTRESC": role,
        "TULOC": loc,
        "TUEVAL": "INDEPENDENT ASSESSOR" if independent else "INVESTIGATOR",
        "TUEVALID": reader if independent else "",
        "TUACPTFL": accepted,
        "VISITNUM": "1",
        "VISIT": "BASELINE",
        "TUDTC": "2020-01-01",
        "TUSEQ": "1",
    }
    row.update(extra)
    return row


def tr_row(
    subject: str,
    link: str,
    test: str,
    result: str,
    visit: str,
    day: str,
    reader: str = "INVESTIGATOR",
    visitnum: str = "1",
    **extra: Any,
) -> dict[str, Any]:
    independent = reader != "INVESTIGATOR"
    numeric = test in ("LDIAM", "LPERP", "DIAMETER", "SUMDIAM")
    try:
        float(result)
        is_number = True
    except ValueError:
        is_number = False
    row = {
        "STUDYID": "S1",
        "DOMAIN": "TR",
        "USUBJID": subject,
        "TRGRPID": "NEW"
        if link.startswith("NEW")
        else ("NON-TARGET" if link.startswith("NT") else "TARGET"),
        "TRLNKID": link,
        "TRTESTCD": test,
        "TRORRES": result,
        "TRSTRESC": result,
        "TRSTRESN": result if numeric and is_number else "",
        "TRSTRESU": "mm" if numeric else "",
        "TRSTAT": "",
        "TRREASND": "",
        "VISITNUM": visitnum,
        "VISIT": visit,
        "TREVAL": "INDEPENDENT ASSESSOR" if independent else "INVESTIGATOR",
        "TREVALID": reader if independent else "",
        "TRACPTFL": "",
        "TRDTC": day,
        "TRSEQ": "1",
    }
    row.update(extra)
    return row


def write_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def simple_study() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One subject, investigator read: a liver target, a nodal target, a bone non-target,
    baseline + two follow-ups (PR then a new lesion)."""
    s = "S-001"
    tu = [
        tu_row(s, "T01", "TARGET", "LIVER"),
        tu_row(s, "T02", "TARGET", "LYMPH NODE"),
        tu_row(s, "NT01", "NON-TARGET", "BONE"),
        tu_row(s, "NEW01", "NEW", "LUNG", VISIT="WEEK 16", VISITNUM="3"),
    ]
    tr = [
        tr_row(s, "T01", "LDIAM", "30", "BASELINE", "2020-01-01"),
        tr_row(s, "T01", "LPERP", "20", "BASELINE", "2020-01-01"),
        tr_row(s, "T02", "LDIAM", "25", "BASELINE", "2020-01-01"),
        tr_row(s, "T02", "LPERP", "20", "BASELINE", "2020-01-01"),
        tr_row(s, "NT01", "TUMSTATE", "PRESENT", "BASELINE", "2020-01-01"),
        tr_row(s, "T01", "LDIAM", "15", "WEEK 8", "2020-02-26", visitnum="2"),
        tr_row(s, "T02", "LPERP", "9", "WEEK 8", "2020-02-26", visitnum="2"),
        tr_row(s, "NT01", "TUMSTATE", "PRESENT", "WEEK 8", "2020-02-26", visitnum="2"),
        tr_row(s, "T01", "LDIAM", "15", "WEEK 16", "2020-04-22", visitnum="3"),
        tr_row(s, "T02", "LPERP", "9", "WEEK 16", "2020-04-22", visitnum="3"),
        tr_row(s, "NT01", "TUMSTATE", "PRESENT", "WEEK 16", "2020-04-22", visitnum="3"),
        tr_row(s, "NEW01", "TUMSTATE", "UNEQUIVOCAL", "WEEK 16", "2020-04-22", visitnum="3"),
    ]
    return tu, tr
