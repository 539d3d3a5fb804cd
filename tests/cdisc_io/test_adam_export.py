"""export-adam: ADRS and ADTTE as pharmaverse's admiralonco codes them.

The investigator's ADRS (BOR, CBOR, RSP, CRSP, PD, DEATH) and ADTTE (PFS, OS, RSD) of the
8 hand-made pharmaverse subjects are the expected values (testdata README settings).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recist.cli import main

SETTINGS = '{"confirmation": true, "confirmation_min_days": 28, "sd_min_days": 42}'


@pytest.fixture(scope="module")
def exported(pharmaverse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("adam")
    cases = tmp / "cases.jsonl"
    assert main(["import-sdtm", "--tu", str(pharmaverse / "tu_onco_recist.csv"),
                 "--tr", str(pharmaverse / "tr_onco_recist.csv"),
                 "--adsl", str(pharmaverse / "adsl.csv"), "--settings", SETTINGS,
                 "--out", str(cases), "--notices", str(tmp / "notices.jsonl")]) == 0  # fmt: skip
    assert main(["export-adam", str(cases), "--out", str(tmp), "--reader", "INVESTIGATOR",
                 "--import-notices", str(tmp / "notices.jsonl")]) == 0  # fmt: skip
    return tmp


def _read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["AVAL"] = frame["AVAL"].str.replace(r"\.0$", "", regex=True)
    return frame


@pytest.mark.parametrize("paramcd", ["BOR", "CBOR", "RSP", "CRSP", "PD", "DEATH"])
def test_adrs_parameter_matches_pharmaverse_for_every_subject(
    exported: Path, pharmaverse: Path, paramcd: str
) -> None:
    ours = _read(exported / "adrs.csv")
    ours = ours[ours.PARAMCD == paramcd].set_index("USUBJID")[["AVISIT", "ADT", "AVAL", "AVALC"]]
    ref = _read(pharmaverse / "adrs_onco.csv")
    ref = ref[(ref.PARAMCD == paramcd) & ref.USUBJID.isin(ours.index)]
    ref = ref.set_index("USUBJID")[["AVISIT", "ADT", "AVAL", "AVALC"]]
    assert len(ours) == 8
    pd.testing.assert_frame_equal(ours.sort_index(), ref.sort_index())


def test_overall_responses_with_imputed_date_flags_match_pharmaverse_ovr(
    exported: Path, pharmaverse: Path
) -> None:
    columns = ["USUBJID", "AVISIT", "ADT", "ADTF", "AVAL", "AVALC"]
    ours = _read(exported / "adrs.csv")
    ours = ours[ours.PARAMCD == "OVR"][columns].reset_index(drop=True)
    ref = _read(pharmaverse / "adrs_onco.csv")
    ref = ref[(ref.PARAMCD == "OVR") & ref.USUBJID.isin(set(ours.USUBJID))][columns]
    assert len(ours) == 22
    # 01-701-1015 WEEK 6 was collected as 2014-02: day imputed (last day of the month).
    assert ours[ours.ADTF != ""].values.tolist() == [
        ["01-701-1015", "WEEK 6", "2014-02-28", "D", "6", "NE"]
    ]
    pd.testing.assert_frame_equal(ours, ref.reset_index(drop=True))


def test_adtte_pfs_os_and_duration_of_response_match_pharmaverse(
    exported: Path, pharmaverse: Path
) -> None:
    columns = ["USUBJID", "PARAMCD", "STARTDT", "ADT", "AVAL", "CNSR", "EVNTDESC", "CNSDTDSC",
               "SRCDOM", "SRCVAR"]  # fmt: skip
    ours = _read(exported / "adtte.csv")[columns]
    ref = _read(pharmaverse / "adtte_onco.csv")
    ref = ref[ref.USUBJID.isin(set(ours.USUBJID))][columns]

    def order(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(["USUBJID", "PARAMCD"]).reset_index(drop=True)

    assert len(ours) == 20  # 8 PFS, 8 OS, 4 responders' RSD
    pd.testing.assert_frame_equal(order(ours), order(ref))


def test_settings_used_are_written_beside_the_datasets(exported: Path) -> None:
    (settings,) = json.loads((exported / "settings.json").read_text())["settings"]
    assert settings["confirmation"] is True and settings["sd_min_days"] == 42


def test_unknown_reader_is_refused_with_one_line(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = exported / "cases.jsonl"
    assert main(["export-adam", str(cases), "--out", str(tmp_path), "--reader", "NOBODY"]) == 2
    err = capsys.readouterr().err
    assert err == "recist export-adam: no read matches --reader 'NOBODY'\n"
