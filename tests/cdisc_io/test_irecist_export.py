"""export-sdtm and export-adam of reads assessed with ``criteria: "irecist"``.

RS carries iRECIST's codes under ``RSCAT = iRECIST`` as pharmaversesdtm's ``rs_onco_irecist``
does, ADRS the parameters of admiralonco's iRECIST vignette (``PARCAT3 = iRECIST``: OVR,
IBOR, ICBOR, IRSP, ICRSP, ICPD, IUPD); a RECIST 1.1 read keeps its own export. ``recist
compare`` meets iRECIST records with the iRECIST result and RECIST 1.1 ones with the RECIST
1.1 result beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cdisc_io.adam_export import export_adam
from cdisc_io.cases import Assessed, assess_cases
from cdisc_io.compare import compare, format_report
from cdisc_io.sdtm_export import export_sdtm
from recist.cli import main


def _case(subject: str, *follow_ups: dict[str, Any], criteria: str = "irecist") -> dict[str, Any]:
    return {
        "subject_id": subject,
        "randomized_on": "2021-01-01",
        "settings": {"criteria": criteria},
        "lesions": [
            {"id": "T1", "site": "liver", "kind": "target"},
            {"id": "NT1", "site": "bone", "kind": "non-target"},
        ],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 30.0},
             "non_targets": {"NT1": "present"}},
            *follow_ups,
        ],
    }  # fmt: skip


def _fu(tp: str, day: str, t1: float, new: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": tp, "date": day, "targets": {"T1": t1}, "non_targets": {"NT1": "present"},
            "new_lesions": new or []}  # fmt: skip


# 30 → 40 mm (R-TGT-PD: iUPD, I-UPD-1) → 46 mm 42 days later (≥ 5 mm more, I-CPD-1) with a
# further new lesion (I-CPD-4): iCPD.
CONFIRMED = _case(
    "I-CPD",
    _fu("W8", "2021-03-01", 40.0),
    _fu("W14", "2021-04-12", 46.0, [{"id": "N1", "site": "lung", "size_mm": 12.0}]),
)
# 30 → 40 mm (iUPD) → 33 mm: shrunk since the iUPD, not PD against the nadir: the bar
# resets to iSD (I-RESET).
RESET = _case("I-RESET", _fu("W8", "2021-03-01", 40.0), _fu("W14", "2021-04-12", 33.0))


def _rs(*cases: dict[str, Any]) -> pd.DataFrame:
    return export_sdtm(assess_cases(list(cases)))[2]


def _adrs(*cases: dict[str, Any]) -> pd.DataFrame:
    return export_adam(assess_cases(list(cases)))[0]


def _values(rs: pd.DataFrame, test: str) -> list[list[Any]]:
    """[VISIT, RSSTRESC] of the RS records of one test, in order."""
    return rs[rs.RSTESTCD == test][["VISIT", "RSSTRESC"]].values.tolist()


def test_rs_of_a_confirmed_progression_carries_iupd_then_icpd_under_rscat_irecist() -> None:
    rs = _rs(CONFIRMED)
    assert set(rs.RSCAT) == {"iRECIST"}
    assert _values(rs, "OVRLRESP") == [["W8", "iUPD"], ["W14", "iCPD"]]
    assert _values(rs, "TRGRESP") == [["W8", "iUPD"], ["W14", "iCPD"]]
    assert _values(rs, "NTRGRESP") == [
        ["W8", "NON-iCR/NON-iUPD"], ["W14", "NON-iCR/NON-iUPD"]
    ]  # fmt: skip
    assert (rs.RSORRES == rs.RSSTRESC).all()


def test_rs_new_lesion_indicator_at_every_follow_up_and_progression_where_they_confirm() -> None:
    rs = _rs(CONFIRMED)
    assert _values(rs, "NEWLIND") == [["W8", "N"], ["W14", "Y"]]
    assert _values(rs, "NEWLPROG") == [["W14", "UNEQUIVOCAL"]]
    assert set(rs[rs.RSTESTCD == "NEWLIND"].RSTEST) == {"New Lesion Indicator"}


def test_rs_of_an_iupd_that_resets_carries_iupd_then_isd() -> None:
    rs = _rs(RESET)
    assert _values(rs, "OVRLRESP") == [["W8", "iUPD"], ["W14", "iSD"]]
    assert _values(rs, "NEWLPROG") == []


def test_adrs_of_a_confirmed_progression_overall_responses_and_ibor_icpd() -> None:
    adrs = _adrs(CONFIRMED)
    assert set(adrs.PARCAT3) == {"iRECIST"}
    assert adrs.PARAMCD.tolist() == [
        "OVR", "OVR", "IBOR", "ICBOR", "IRSP", "ICRSP", "ICPD", "IUPD", "DEATH"
    ]  # fmt: skip
    by = adrs.set_index("PARAMCD")
    ovr = adrs[adrs.PARAMCD == "OVR"][["AVISIT", "ADT", "AVAL", "AVALC"]].values.tolist()
    assert ovr == [["W8", "2021-03-01", 2, "iUPD"], ["W14", "2021-04-12", 1, "iCPD"]]
    assert by.loc["IBOR", ["AVALC", "AVAL", "AVISIT"]].tolist() == ["iCPD", 1, "W14"]
    assert by.loc["IBOR", "PARAM"] == (
        "iRECIST Best Overall Response by Investigator (confirmation not required)"
    )
    assert by.loc["ICBOR", "AVALC"] == "iCPD"
    # I-PFS: the confirmed progression is dated by the iUPD it confirmed.
    assert by.loc["ICPD", ["AVALC", "AVAL", "AVISIT", "ADT"]].tolist() == [
        "Y", 1, "W8", "2021-03-01"
    ]  # fmt: skip
    assert by.loc["IUPD", "AVALC"] == "N"
    assert by.loc["IRSP", "AVALC"] == "N" and by.loc["ICRSP", "AVALC"] == "N"
    assert "BOR" not in by.index and "PD" not in by.index


def test_adrs_of_an_iupd_that_resets_ibor_isd_and_no_progression() -> None:
    by = _adrs(RESET).set_index("PARAMCD")
    assert by.loc["IBOR", ["AVALC", "AVAL"]].tolist() == ["iSD", 4]
    assert by.loc["ICPD", ["AVALC", "AVISIT", "ADT"]].tolist() == ["N", "", ""]
    # admiralonco's IUPD: the last iUPD is followed by iSD, so it is not left unconfirmed.
    assert by.loc["IUPD", "AVALC"] == "N"


def test_adrs_iupd_left_unconfirmed_at_the_last_assessment() -> None:
    case = _case("I-OPEN", _fu("W8", "2021-03-01", 40.0))
    by = _adrs(case).set_index("PARAMCD")
    assert by.loc["IBOR", "AVALC"] == "iUPD"
    assert by.loc["IUPD", ["AVALC", "AVAL", "AVISIT", "ADT"]].tolist() == [
        "Y", 1, "W8", "2021-03-01"
    ]  # fmt: skip
    assert by.loc["ICPD", "AVALC"] == "N"


def test_adrs_response_after_an_iupd_counts_and_its_duration_runs_from_the_first_ipr() -> None:
    # 30 → 40 mm (iUPD) → 20 mm (iPR after a reset, I-RESET) → 19 mm (iPR).
    case = _case(
        "I-PR",
        _fu("W8", "2021-03-01", 40.0),
        _fu("W14", "2021-04-12", 20.0),
        _fu("W20", "2021-05-24", 19.0),
    )
    assessed = assess_cases([case])
    adrs, adtte = export_adam(assessed)
    by = adrs.set_index("PARAMCD")
    assert by.loc["IBOR", ["AVALC", "AVAL", "AVISIT"]].tolist() == ["iPR", 5, "W14"]
    assert by.loc["IRSP", ["AVALC", "AVISIT", "ADT"]].tolist() == ["Y", "W14", "2021-04-12"]
    assert by.loc["IUPD", "AVALC"] == "N"
    tte = adtte.set_index("PARAMCD")
    assert tte.loc["RSD", "STARTDT"] == "2021-04-12"
    assert tte.loc["PFS", "CNSR"] == 1  # an iUPD that reset is no PFS event (I-PFS)


def test_adtte_pfs_of_a_confirmed_progression_is_dated_by_its_first_iupd() -> None:
    tte = export_adam(assess_cases([CONFIRMED]))[1].set_index("PARAMCD")
    assert tte.loc["PFS", ["ADT", "AVAL", "CNSR", "EVNTDESC"]].tolist() == [
        "2021-03-01", 60, 0, "Disease Progression"
    ]  # fmt: skip


def test_a_recist_1_1_read_of_the_same_measurements_keeps_its_own_export() -> None:
    case = {**CONFIRMED, "subject_id": "R-1", "settings": {}}
    rs = _rs(case)
    assert set(rs.RSCAT) == {"RECIST 1.1"}
    assert _values(rs, "OVRLRESP") == [["W8", "PD"], ["W14", "PD"]]
    assert "NEWLIND" not in set(rs.RSTESTCD)
    assert _values(rs, "NEWLPROG") == [["W14", "UNEQUIVOCAL"]]
    adrs = _adrs(case)
    assert set(adrs.PARCAT3) == {"RECIST 1.1"}
    by = adrs.set_index("PARAMCD")
    assert by.loc["BOR", ["AVALC", "AVAL"]].tolist() == ["PD", 5]
    assert by.loc["PD", ["AVALC", "AVISIT"]].tolist() == ["Y", "W8"]


@pytest.mark.parametrize(
    ("listing", "tumstate", "stat"),
    [({"state": "absent"}, "ABSENT", ""), ({"size_mm": "not_evaluated"}, "", "NOT DONE"),
     ({"state": "present"}, "PRESENT", ""),
     ({"state": "progression"}, "UNEQUIVOCAL PROGRESSION", "")],
)  # fmt: skip
def test_tr_writes_a_new_lesion_listed_again_as_its_listing_says(
    listing: dict[str, Any], tumstate: str, stat: str
) -> None:
    case = _case(
        "I-NL",
        _fu("W8", "2021-03-01", 30.0, [{"id": "N1", "site": "bone"}]),
        _fu("W14", "2021-04-12", 30.0, [{"id": "N1", **listing}]),
    )
    tr = export_sdtm(assess_cases([case]))[1]
    rows = tr[tr.TRLNKID == "N1"][["VISIT", "TRORRES", "TRSTAT"]].values.tolist()
    assert rows == [["W8", "UNEQUIVOCAL", ""], ["W14", tumstate, stat]]


def test_export_commands_write_irecist_rs_and_adrs_and_name_the_criteria(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(json.dumps(c) for c in (CONFIRMED, RESET)) + "\n")
    assert main(["export-sdtm", str(cases), "--out", str(tmp_path / "sdtm")]) == 0
    assert main(["export-adam", str(cases), "--out", str(tmp_path / "adam")]) == 0
    rs = pd.read_csv(tmp_path / "sdtm" / "rs.csv", dtype=str, keep_default_na=False)
    ovr = rs[rs.RSTESTCD == "OVRLRESP"]
    assert ovr[["USUBJID", "VISIT", "RSSTRESC"]].values.tolist() == [
        ["I-CPD", "W8", "iUPD"], ["I-CPD", "W14", "iCPD"],
        ["I-RESET", "W8", "iUPD"], ["I-RESET", "W14", "iSD"],
    ]  # fmt: skip
    adrs = pd.read_csv(tmp_path / "adam" / "adrs.csv", dtype=str, keep_default_na=False)
    ibor = adrs[adrs.PARAMCD == "IBOR"][["USUBJID", "AVALC"]].values.tolist()
    assert ibor == [["I-CPD", "iCPD"], ["I-RESET", "iSD"]]
    settings = json.loads((tmp_path / "adam" / "settings.json").read_text())["settings"]
    assert [s["criteria"] for s in settings] == ["irecist"]


def test_assessed_reads_of_both_criteria_export_side_by_side() -> None:
    recist = {**RESET, "subject_id": "R-2", "settings": {}}
    assessed = assess_cases([RESET, recist])
    assert all(isinstance(a, Assessed) for a in assessed)
    rs = export_sdtm(assessed)[2]
    cats = rs.groupby("USUBJID").RSCAT.agg(set).to_dict()
    assert cats == {"I-RESET": {"iRECIST"}, "R-2": {"RECIST 1.1"}}


def test_compare_meets_exported_irecist_rs_and_names_the_i_rules_of_a_disagreement() -> None:
    assessed = assess_cases([CONFIRMED, RESET])
    rs = export_sdtm(assessed)[2]
    same = compare(assessed, rs)
    assert same.compared["OVRLRESP"] == 4 and same.agreement("OVRLRESP") == 1.0
    assert same.agreement("TRGRESP") == 1.0 and same.not_response_codes == {}
    # A reader who recorded W14 of I-CPD as iUPD (capitals, as some RS carry it): the
    # engine's iCPD came from I-CPD-1 (targets 6 mm above the iUPD).
    edited = rs.copy()
    row = (edited.USUBJID == "I-CPD") & (edited.VISIT == "W14") & (edited.RSTESTCD == "OVRLRESP")
    edited.loc[row, ["RSORRES", "RSSTRESC"]] = "IUPD"
    result = compare(assessed, edited)
    [disagreement] = result.disagreements
    assert (disagreement.recorded, disagreement.derived) == ("iUPD", "iCPD")
    assert "I-CPD-1" in disagreement.rules and "I-CPD-4" in disagreement.rules
    assert result.rule_counts == {"I-CPD-1": 1}


def test_compare_meets_recist_1_1_records_with_the_recist_1_1_result_beside_irecist() -> None:
    assessed = assess_cases([CONFIRMED])
    recist = export_sdtm(assess_cases([{**CONFIRMED, "settings": {}}]))[2]
    assert set(recist.RSCAT) == {"RECIST 1.1"}
    result = compare(assessed, recist)
    assert result.compared["OVRLRESP"] == 2 and result.agreement("OVRLRESP") == 1.0
    # iRECIST records of a read assessed with RECIST 1.1 have no engine response to meet.
    irecist = export_sdtm(assessed)[2]
    other = compare(assess_cases([{**CONFIRMED, "settings": {}}]), irecist)
    assert other.compared["OVRLRESP"] == 0
    assert other.summary()["recorded_other_criteria"] == {"iRECIST": 6}
    assert "RSCAT iRECIST (reads not assessed with it) ×6" in format_report(other)
