"""SDTM TR ``VOLUME`` (``Volume``, mL): a baseline lesion's ``volume_ml`` (R-ELIG-VOLUME)
is written at the baseline visit and read back; bad volumes are refused naming the row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdisc_io.cases import assess_cases
from cdisc_io.csvio import read_domain, write_csv
from cdisc_io.errors import CdiscFileError
from cdisc_io.sdtm_export import export_sdtm
from cdisc_io.sdtm_import import TR_REQUIRED, TU_REQUIRED, ImportResult, build_cases
from recist.jsonio import parse_case
from tests.cdisc_io.cdisc_fixtures import TR_COLUMNS, TU_COLUMNS, simple_study, tr_row, write_rows


def _case() -> dict[str, Any]:
    return {
        "subject_id": "S-1",
        "settings": {"eligibility": {"max_volume_ml": 500}},
        "lesions": [
            {"id": "T01", "site": "liver", "kind": "target", "nodal": False, "volume_ml": 612.5},
            {"id": "T02", "site": "lung", "kind": "target", "nodal": False},
            {"id": "NT01", "site": "bone", "kind": "non-target", "volume_ml": 3.25},
        ],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T01": 72.0, "T02": 20.0},
             "non_targets": {"NT01": "present"}, "new_lesions": []},
            {"id": "W8", "date": "2021-03-01", "targets": {"T01": 70.0, "T02": 20.0},
             "non_targets": {"NT01": "present"}, "new_lesions": []},
        ],
    }  # fmt: skip


def test_the_export_writes_a_volume_record_per_baseline_volume(tmp_path: Path) -> None:
    _tu, tr, _rs = export_sdtm(assess_cases([_case()]))
    rows = tr[tr["TRTESTCD"] == "VOLUME"].to_dict("records")
    assert [
        (r["TRLNKID"], r["TRGRPID"], r["TRTEST"], r["TRORRES"], r["TRORRESU"], r["TRSTRESN"],
         r["TRSTRESU"], r["VISIT"], r["VISITNUM"], r["TRDTC"])
        for r in rows
    ] == [
        ("T01", "TARGET", "Volume", "612.5", "mL", "612.5", "mL", "BL", "1", "2021-01-04"),
        ("NT01", "NON-TARGET", "Volume", "3.25", "mL", "3.25", "mL", "BL", "1", "2021-01-04"),
    ]  # fmt: skip


def test_volumes_round_trip_and_the_imported_case_breaks_the_volume_limit(
    tmp_path: Path,
) -> None:
    tu, tr, _rs = export_sdtm(assess_cases([_case()]))
    write_csv(tu, tmp_path / "tu.csv")
    write_csv(tr, tmp_path / "tr.csv")
    (back,) = build_cases(
        read_domain(tmp_path / "tu.csv", TU_REQUIRED),
        read_domain(tmp_path / "tr.csv", TR_REQUIRED),
        settings={"eligibility": {"max_volume_ml": 500}},
    ).cases
    assert [le.get("volume_ml") for le in back["lesions"]] == [612.5, None, 3.25]
    assert [tp["id"] for tp in back["timepoints"]] == ["BL", "W8"]
    (assessed,) = assess_cases([back])
    assert [(w["rule"], w["lesion"]) for w in assessed.result["warnings"]] == [
        ("R-ELIG-VOLUME", "T01")
    ]


def _import(tmp_path: Path, extra: list[dict[str, Any]]) -> ImportResult:
    tu, tr = simple_study()
    return build_cases(
        read_domain(write_rows(tmp_path / "TU.csv", TU_COLUMNS, tu), TU_REQUIRED),
        read_domain(write_rows(tmp_path / "TR.csv", TR_COLUMNS, tr + extra), TR_REQUIRED),
        files=("TU.csv", "TR.csv"),
    )


def _volume(value: str, unit: str = "mL", **extra: Any) -> dict[str, Any]:
    columns = {"TRSTRESN": value, "TRORRESU": unit, "TRSTRESU": unit, **extra}
    return tr_row("S-001", "T01", "VOLUME", value, "BASELINE", "2020-01-01", **columns)


def test_a_baseline_volume_is_read_a_follow_up_one_and_a_not_done_one_are_not(
    tmp_path: Path,
) -> None:
    follow_up = tr_row("S-001", "T02", "VOLUME", "9", "WEEK 8", "2020-02-26", visitnum="2",
                       TRSTRESN="9", TRSTRESU="mL")  # fmt: skip
    not_done = tr_row("S-001", "NT01", "VOLUME", "", "BASELINE", "2020-01-01",
                      TRSTAT="NOT DONE", TRSTRESU="")  # fmt: skip
    result = _import(tmp_path, [_volume("40.5"), follow_up, not_done])
    (case,) = result.cases
    parse_case(case)
    assert [le.get("volume_ml") for le in case["lesions"]] == [40.5, None, None]
    # The volumes change nothing else: the sizes are the LDIAM/LPERP ones (R-NODE).
    assert case["timepoints"][0]["targets"] == {"T01": 30.0, "T02": 20.0}


def test_a_volume_in_litres_is_converted_with_a_notice(tmp_path: Path) -> None:
    result = _import(tmp_path, [_volume("0.25", unit="L")])
    assert result.cases[0]["lesions"][0]["volume_ml"] == 250.0
    (notice,) = [n for n in result.notices if n.kind == "converted_unit"]
    assert notice.message == "VOLUME 0.25 L converted to 250 mL" and notice.lesion == "T01"


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        (_volume("-3"), "TRSTRESN", "VOLUME result '-3' of lesion T01 is not a volume in mL"),
        (_volume("big", TRSTRESN=""), "TRORRES", "VOLUME result 'big' of lesion T01"),
        (_volume("nan"), "TRSTRESN", "is not a volume in mL ≥ 0"),
        (_volume("12", unit="mm"), "TRSTRESU", "VOLUME unit 'mm' of lesion T01 is not mL"),
        (_volume("2000000"), "TRSTRESN", "VOLUME 2e+06 mL of lesion T01 is above 1e+06 mL"),
    ],
)
def test_a_bad_volume_is_refused_naming_the_row_and_column(
    tmp_path: Path, row: dict[str, Any], column: str, words: str
) -> None:
    with pytest.raises(CdiscFileError) as raised:
        _import(tmp_path, [row])
    error = raised.value
    assert words in str(error) and error.column == column and error.row is not None
    assert "R-ELIG-VOLUME" in str(error) or "R-PLAUS-SIZE" in str(error)
