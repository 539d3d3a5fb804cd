"""Conformance on the pharmaverse hand-made RECIST 1.1 set (testdata README).

Import TU + TR + ADSL with the settings the README names (SD window 42 days after RANDDT,
confirmation ≥ 28 days with at most one NE between), assess every subject and reader, and
compare with the 66 recorded overall responses (``rs_onco_recist.csv``) and with the
investigator's subject-level results in ADaM (``adrs_onco.csv`` BOR, CBOR, PD;
``adtte_onco.csv`` PFS AVAL and CNSR).

The hardest record: RADIOLOGIST 2 measures T01 of 01-701-1133 at 4.95 mm at WEEK 9, after
an overall CR at WEEK 6, and the recorded response is PR. It holds only because a residue
below ``reappearance_min_mm`` (default 5 mm) is not a reappearance (R-REAPPEAR) and the
sum rules compare exact lengths (R-EXACT: 4.95 mm is less than the 5 mm increase of
R-TGT-PD).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cdisc_io.cases import Assessed, assess_cases
from cdisc_io.csvio import read_domain
from cdisc_io.dates import ImputationRule
from cdisc_io.sdtm_import import TR_REQUIRED, TU_REQUIRED, build_cases, read_subjects
from tests.cdisc_io.cdisc_fixtures import pharmaverse_dir

README_SETTINGS = {
    "confirmation": True,
    "confirmation_min_days": 28,
    "confirmation_max_ne_between": 1,
    "sd_min_days": 42,
}


def _recorded_overall() -> list[tuple[str, str, str, str]]:
    path = pharmaverse_dir()
    if path is None:
        return []
    rs = pd.read_csv(path / "rs_onco_recist.csv", dtype=str, keep_default_na=False)
    rs = rs[rs.RSTESTCD == "OVRLRESP"]
    reader = rs.RSEVALID.where(rs.RSEVALID != "", rs.RSEVAL)
    return list(zip(rs.USUBJID, reader, rs.VISIT, rs.RSSTRESC, strict=True))


RECORDED = _recorded_overall()


@pytest.fixture(scope="module")
def assessed(pharmaverse: Path) -> dict[tuple[str, str], Assessed]:
    notices: list[Any] = []
    subjects = read_subjects(
        read_domain(pharmaverse / "adsl.csv", ("USUBJID",)),
        file="adsl.csv",
        kind="adsl",
        rule=ImputationRule.LAST,
        notices=notices,
    )
    result = build_cases(
        read_domain(pharmaverse / "tu_onco_recist.csv", TU_REQUIRED),
        read_domain(pharmaverse / "tr_onco_recist.csv", TR_REQUIRED),
        subjects,
        settings=README_SETTINGS,
    )
    return {(a.case["subject_id"], a.case["reader"]): a for a in assess_cases(result.cases)}


def test_the_set_has_66_recorded_overall_responses_for_8_subjects_and_3_readers() -> None:
    if not RECORDED:
        pytest.skip("pharmaverse test data not found")
    assert len(RECORDED) == 66
    assert len({(s, r) for s, r, _, _ in RECORDED}) == 24


def test_every_subject_and_reader_becomes_one_case(
    assessed: dict[tuple[str, str], Assessed],
) -> None:
    assert len(assessed) == 24
    accepted = [key for key, a in assessed.items() if a.case["accepted"]]
    assert len(accepted) == 8 and all(reader != "INVESTIGATOR" for _, reader in accepted)


@pytest.mark.parametrize(
    ("subject", "reader", "visit", "recorded"),
    RECORDED,
)
def test_derived_overall_response_matches_the_recorded_one(
    assessed: dict[tuple[str, str], Assessed], subject: str, reader: str, visit: str, recorded: str
) -> None:
    timepoints = {tp["id"]: tp for tp in assessed[(subject, reader)].result["timepoints"]}
    assert timepoints[visit]["overall_response"] == recorded


def _adam(pharmaverse: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(pharmaverse / name, dtype=str, keep_default_na=False)


SUBJECTS = sorted({s for s, _, _, _ in RECORDED})


@pytest.mark.parametrize("subject", SUBJECTS)
def test_investigator_best_responses_and_progression_match_adrs(
    pharmaverse: Path, assessed: dict[tuple[str, str], Assessed], subject: str
) -> None:
    adrs = _adam(pharmaverse, "adrs_onco.csv")
    rows = adrs[adrs.USUBJID == subject].set_index("PARAMCD")
    result = assessed[(subject, "INVESTIGATOR")].result
    assert result["best_overall_response_unconfirmed"] == rows.loc["BOR", "AVALC"]
    assert result["best_overall_response_confirmed"] == rows.loc["CBOR", "AVALC"]
    progressed = rows.loc["PD", "AVALC"] == "Y"
    assert (result["progression"] is not None) == progressed
    if progressed:
        assert result["progression"]["date"] == rows.loc["PD", "ADT"]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_investigator_pfs_matches_adtte(
    pharmaverse: Path, assessed: dict[tuple[str, str], Assessed], subject: str
) -> None:
    adtte = _adam(pharmaverse, "adtte_onco.csv")
    pfs = adtte[(adtte.USUBJID == subject) & (adtte.PARAMCD == "PFS")].iloc[0]
    result = assessed[(subject, "INVESTIGATOR")].result["pfs"]
    assert result["days"] == int(float(pfs.AVAL))
    assert int(not result["event"]) == int(pfs.CNSR)
    assert result["date"] == pfs.ADT


@pytest.mark.parametrize("subject", SUBJECTS)
def test_investigator_os_matches_adtte(
    pharmaverse: Path, assessed: dict[tuple[str, str], Assessed], subject: str
) -> None:
    from endpoints.derive import overall_survival

    adtte = _adam(pharmaverse, "adtte_onco.csv")
    expected = adtte[(adtte.USUBJID == subject) & (adtte.PARAMCD == "OS")].iloc[0]
    record = overall_survival(assessed[(subject, "INVESTIGATOR")].case)
    assert record.end.isoformat() == expected.ADT
    assert (record.days, record.cnsr) == (int(float(expected.AVAL)), int(expected.CNSR))
    assert record.source == (expected.SRCDOM, expected.SRCVAR)


@pytest.mark.parametrize("subject", ["01-705-1018", "01-705-1382"])
def test_os_is_censored_at_randomisation_when_last_known_alive_is_before_it(
    pharmaverse: Path, subject: str
) -> None:
    from endpoints.derive import overall_survival

    notices: list[Any] = []
    subjects = read_subjects(
        read_domain(pharmaverse / "adsl.csv", ("USUBJID",)),
        file="adsl.csv", kind="adsl", rule=ImputationRule.LAST, notices=notices,
    )  # fmt: skip
    tu = read_domain(pharmaverse / "tu_onco.csv", TU_REQUIRED)
    tr = read_domain(pharmaverse / "tr_onco.csv", TR_REQUIRED)
    result = build_cases(
        tu[tu.USUBJID == subject], tr[tr.USUBJID == subject], subjects, notices=notices
    )
    adtte = _adam(pharmaverse, "adtte_onco.csv")
    expected = adtte[(adtte.USUBJID == subject) & (adtte.PARAMCD == "OS")].iloc[0]
    for case in result.cases:
        record = overall_survival(case)
        assert (record.end.isoformat(), record.days, record.cnsr) == (expected.ADT, 1, 1)
        assert record.source == (expected.SRCDOM, expected.SRCVAR) == ("ADSL", "RANDDT")
    orders = [n for n in notices if n.kind == "date_order" and n.subject == subject]
    assert orders and "LSTALVDT" in orders[0].message and "RANDDT" in orders[0].message
