"""export-sdtm: TU, TR, RS that import back to the same cases; safe CSV cells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cdisc_io.cases import assess_cases
from cdisc_io.csvio import guard_cell, read_domain, write_csv
from cdisc_io.sdtm_export import export_sdtm
from cdisc_io.sdtm_import import TR_REQUIRED, TU_REQUIRED, build_cases
from recist.cli import main


def case_with_every_state() -> dict[str, Any]:
    return {
        "subject_id": "=HYPERLINK(\"x\")",
        "reader": "RADIOLOGIST 2",
        "accepted": True,
        "lesions": [
            {"id": "T1", "site": "liver", "kind": "target", "nodal": False},
            {"id": "T2", "site": "mediastinum", "kind": "target", "nodal": True},
            {"id": "T3", "site": "liver", "kind": "target", "nodal": False},
            {"id": "NT1", "site": "bone", "kind": "non-target"},
        ],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 32.5, "T2": 17.0, "T3": 11.0},
             "non_targets": {"NT1": "present"}, "new_lesions": []},
            {"id": "W8", "date": "2021-03-01",
             "targets": {"T1": {"fragments": [10.0, 6.5]}, "T2": 9.0, "T3": "too_small"},
             "non_targets": {"NT1": "not_evaluated"},
             "new_lesions": [{"id": "NEW1", "site": "lung", "equivocal": True}],
             "scan_dates": {"T1": "2021-02-27"}},
            {"id": "W16", "date": "2021-04-26",
             "targets": {"T1": 20.0, "T2": "not_evaluated", "T3": {"merged_into": "T1"}},
             "non_targets": {"NT1": "progression"},
             "new_lesions": [{"id": "NEW1", "site": "lung", "equivocal": False}]},
        ],
    }  # fmt: skip


def round_trip(tmp_path: Path, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tu, tr, _ = export_sdtm(assess_cases(cases))
    write_csv(tu, tmp_path / "tu.csv")
    write_csv(tr, tmp_path / "tr.csv")
    result = build_cases(read_domain(tmp_path / "tu.csv", TU_REQUIRED),
                         read_domain(tmp_path / "tr.csv", TR_REQUIRED))  # fmt: skip
    return result.cases


def test_every_target_state_survives_export_and_import(tmp_path: Path) -> None:
    case = case_with_every_state()
    (back,) = round_trip(tmp_path, [case])
    # The mediastinal node stays nodal through TULOC (R-MEAS-2): its site gains LYMPH NODE.
    assert back["lesions"][1] == {"id": "T2", "site": "mediastinum lymph node",
                                  "kind": "target", "nodal": True}  # fmt: skip
    expected = json.loads(json.dumps(case))
    expected["lesions"][1]["site"] = "mediastinum lymph node"
    assert back["timepoints"] == expected["timepoints"]
    assert (back["subject_id"], back["reader"], back["accepted"]) == (
        case["subject_id"], "RADIOLOGIST 2", True,
    )  # fmt: skip


def test_rs_holds_the_engines_responses_per_timepoint(tmp_path: Path) -> None:
    assessed = assess_cases([case_with_every_state()])
    _, _, rs = export_sdtm(assessed)
    w16 = rs[rs.VISIT == "W16"].set_index("RSTESTCD")["RSSTRESC"].to_dict()
    expected = assessed[0].result["timepoints"][2]
    assert w16 == {
        "OVRLRESP": expected["overall_response"],
        "TRGRESP": expected["target_response"],
        "NTRGRESP": expected["non_target_response"],
        "NEWLPROG": "UNEQUIVOCAL",
    }
    assert set(rs.RSCAT) == {"RECIST 1.1"} and set(rs.RSEVALID) == {"RADIOLOGIST 2"}


def test_formula_like_cells_are_written_as_text_and_read_back_unchanged(tmp_path: Path) -> None:
    frame = pd.DataFrame({"USUBJID": ["=1+2", "@SUM(A1)", "+cmd", "-x", "safe"],
                          "N": ["-3.5", "1", "2", "3", "4"]})  # fmt: skip
    write_csv(frame, tmp_path / "x.csv")
    raw = (tmp_path / "x.csv").read_text(encoding="utf-8").splitlines()
    assert raw[1:] == ["'=1+2,-3.5", "'@SUM(A1),1", "'+cmd,2", "'-x,3", "safe,4"]
    assert read_domain(tmp_path / "x.csv", ["USUBJID"])["USUBJID"].tolist() == [
        "=1+2", "@SUM(A1)", "+cmd", "-x", "safe",
    ]  # fmt: skip


@pytest.mark.parametrize("value", ["-12.5", "+3", "1e-3"])
def test_numbers_are_never_guarded(value: str) -> None:
    assert guard_cell(value) == value


def test_pharmaverse_large_set_round_trips_through_the_cli(
    pharmaverse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "sdtm"
    common = ["--adsl", str(pharmaverse / "adsl.csv")]
    assert (
        main(
            [
                "import-sdtm",
                "--tu",
                str(pharmaverse / "tu_onco.csv"),
                "--tr",
                str(pharmaverse / "tr_onco.csv"),
                "--out",
                str(first),
                *common,
            ]
        )
        == 0
    )
    assert main(["export-sdtm", str(first), "--out", str(out)]) == 0
    assert main(["import-sdtm", "--tu", str(out / "tu.csv"), "--tr", str(out / "tr.csv"),
                 "--out", str(second), *common]) == 0  # fmt: skip
    before = first.read_text(encoding="utf-8").splitlines()
    assert len(before) == 762  # 254 subjects × 3 readers
    assert second.read_text(encoding="utf-8").splitlines() == before
    assert json.loads((out / "settings.json").read_text())["settings"][0]["sd_min_days"] == 42
    assert "762 cases" in capsys.readouterr().err


def test_supptu_carries_the_free_text_location_beside_the_controlled_site() -> None:
    from cdisc_io.sdtm_export import export_supptu

    case = case_with_every_state()
    assessed = assess_cases([case])
    subject = case["subject_id"]
    locations = {
        (subject, "T1"): "segment VII",
        (subject, "NEW1"): "right lower lobe",
        (subject, "T9"): "not a lesion of the case",
        ("OTHER", "T1"): "another subject",
    }
    supp = export_supptu(assessed, locations, studyid="S1")
    rows = supp[["USUBJID", "IDVARVAL", "QNAM", "QVAL", "RDOMAIN", "IDVAR"]].values.tolist()
    assert rows == [
        [subject, "T1", "TULOCDTL", "segment VII", "TU", "TULNKID"],
        [subject, "NEW1", "TULOCDTL", "right lower lobe", "TU", "TULNKID"],
    ]
    assert set(supp["QEVAL"]) == {"INDEPENDENT ASSESSOR"}  # the case's reader
    # TULOC stays the controlled site, which the import reads back.
    tu, _, _ = export_sdtm(assessed)
    assert tu[tu.TULNKID == "T1"]["TULOC"].tolist() == [case["lesions"][0]["site"].upper()]
    assert export_supptu(assessed, {}).empty
