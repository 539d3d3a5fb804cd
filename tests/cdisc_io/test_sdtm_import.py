"""import-sdtm: TU + TR records → cases of the docs/contracts.md contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdisc_io.csvio import read_domain
from cdisc_io.dates import ImputationRule
from cdisc_io.errors import CdiscFileError
from cdisc_io.sdtm_import import TR_REQUIRED, TU_REQUIRED, ImportResult, build_cases
from recist.jsonio import assess_json, parse_case
from tests.cdisc_io.cdisc_fixtures import (
    TR_COLUMNS,
    TU_COLUMNS,
    simple_study,
    tr_row,
    tu_row,
    write_rows,
)


def run_import(
    tmp_path: Path, tu: list[dict[str, Any]], tr: list[dict[str, Any]], **kwargs: Any
) -> ImportResult:
    tu_path = write_rows(tmp_path / "TU.csv", TU_COLUMNS, tu)
    tr_path = write_rows(tmp_path / "TR.csv", TR_COLUMNS, tr)
    return build_cases(
        read_domain(tu_path, TU_REQUIRED),
        read_domain(tr_path, TR_REQUIRED),
        files=("TU.csv", "TR.csv"),
        **kwargs,
    )


def test_simple_study_becomes_one_valid_case_with_visits_as_timepoints(tmp_path: Path) -> None:
    tu, tr = simple_study()
    (case,) = run_import(tmp_path, tu, tr).cases
    parse_case(case)  # the contract's own validation accepts it
    assert case["subject_id"] == "S-001"
    assert case["reader"] == "INVESTIGATOR"
    assert [tp["id"] for tp in case["timepoints"]] == ["BASELINE", "WEEK 8", "WEEK 16"]
    assert case["lesions"] == [
        {"id": "T01", "site": "liver", "kind": "target", "nodal": False},
        {"id": "T02", "site": "lymph node", "kind": "target", "nodal": True},
        {"id": "NT01", "site": "bone", "kind": "non-target"},
    ]


def test_nodal_target_takes_its_short_axis_and_other_targets_their_longest_diameter(
    tmp_path: Path,
) -> None:
    tu, tr = simple_study()
    (case,) = run_import(tmp_path, tu, tr).cases
    # R-NODE: LPERP 20 for the node (not its LDIAM 25); LDIAM 30 for the liver lesion.
    assert case["timepoints"][0]["targets"] == {"T01": 30.0, "T02": 20.0}


def test_new_lesion_from_tu_appears_at_the_visit_that_records_it(tmp_path: Path) -> None:
    tu, tr = simple_study()
    (case,) = run_import(tmp_path, tu, tr).cases
    assert case["timepoints"][2]["new_lesions"] == [
        {"id": "NEW01", "site": "lung", "equivocal": False}
    ]
    result = assess_json(case)
    assert result["timepoints"][2]["overall_response"] == "PD"  # R-NEW-1


def test_each_reader_gets_its_own_case_and_the_accepted_read_is_marked(tmp_path: Path) -> None:
    tu, tr = simple_study()
    tu2 = [
        dict(r, TUEVAL="INDEPENDENT ASSESSOR", TUEVALID="RADIOLOGIST 1", TUACPTFL="Y") for r in tu
    ]
    tr2 = [
        dict(
            r,
            TREVAL="INDEPENDENT ASSESSOR",
            TREVALID="RADIOLOGIST 1",
            TRSTRESN="40" if r["TRSTRESN"] == "30" else r["TRSTRESN"],
        )
        for r in tr
    ]
    cases = run_import(tmp_path, tu + tu2, tr + tr2).cases
    assert [(c["reader"], c["accepted"]) for c in cases] == [
        ("INVESTIGATOR", False),
        ("RADIOLOGIST 1", True),
    ]
    # Reads never mix: each baseline holds its own reader's T01.
    assert [c["timepoints"][0]["targets"]["T01"] for c in cases] == [30.0, 40.0]


def test_too_small_and_not_done_become_contract_states(tmp_path: Path) -> None:
    tu, tr = simple_study()
    tr[5] = dict(
        tr[5], TRORRES="TOO SMALL TO MEASURE", TRSTRESC="TOO SMALL TO MEASURE", TRSTRESN=""
    )
    tr[6] = dict(
        tr[6], TRORRES="", TRSTRESC="", TRSTRESN="", TRSTAT="NOT DONE", TRREASND="IMAGE OBSCURED"
    )
    tr[7] = dict(tr[7], TRORRES="", TRSTRESC="", TRSTAT="NOT DONE")
    result = run_import(tmp_path, tu, tr)
    week8 = result.cases[0]["timepoints"][1]
    assert week8["targets"] == {"T01": "too_small", "T02": "not_evaluated"}  # R-SMALL, R-TGT-NE
    assert week8["non_targets"] == {"NT01": "not_evaluated"}
    assert any(n.kind == "not_done" and "IMAGE OBSCURED" in n.message for n in result.notices)


def test_split_fragments_add_up_and_merged_lesions_go_to_the_first(tmp_path: Path) -> None:
    tu, tr = simple_study()
    tu.append(tu_row("S-001", "T03", "TARGET", "LIVER"))
    tr.append(tr_row("S-001", "T03", "LDIAM", "12", "BASELINE", "2020-01-01"))
    tr = [r for r in tr if not (r["VISIT"] == "WEEK 8" and r["TRLNKID"] == "T01")]
    tr += [
        tr_row("S-001", "T01.1", "LDIAM", "8", "WEEK 8", "2020-02-26", visitnum="2"),
        tr_row("S-001", "T01.2", "LDIAM", "6.5", "WEEK 8", "2020-02-26", visitnum="2"),
        tr_row("S-001", "T02/T03", "LPERP", "14", "WEEK 16", "2020-04-22", visitnum="3"),
    ]
    tr = [r for r in tr if not (r["VISIT"] == "WEEK 16" and r["TRLNKID"] == "T02")]
    (case,) = run_import(tmp_path, tu, tr).cases
    assert case["timepoints"][1]["targets"]["T01"] == {"fragments": [8.0, 6.5]}  # R-SPLIT
    week16 = case["timepoints"][2]["targets"]
    assert week16["T02"] == 14.0 and week16["T03"] == {"merged_into": "T02"}  # R-MERGE
    parse_case(case)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (ImputationRule.LAST, "2020-02-29"),
        (ImputationRule.FIRST, "2020-02-01"),
        (ImputationRule.MIDDLE, "2020-02-15"),
    ],
)
def test_partial_visit_date_is_imputed_by_the_chosen_rule_and_reported(
    tmp_path: Path, rule: ImputationRule, expected: str
) -> None:
    tu, tr = simple_study()
    tr = [dict(r, TRDTC="2020-02") if r["VISIT"] == "WEEK 8" else r for r in tr]
    result = run_import(tmp_path, tu, tr, rule=rule)
    assert result.cases[0]["timepoints"][1]["date"] == expected
    (notice,) = [n for n in result.notices if n.kind == "imputed_date"]
    assert notice.visit == "WEEK 8" and f"rule {rule.value}" in notice.message


def test_partial_date_is_completed_from_the_same_visit_when_a_record_has_the_full_date(
    tmp_path: Path,
) -> None:
    tu, tr = simple_study()
    tr = [
        dict(r, TRDTC="2020-02") if r["VISIT"] == "WEEK 8" and r["TRLNKID"] == "T01" else r
        for r in tr
    ]
    result = run_import(tmp_path, tu, tr)
    assert result.cases[0]["timepoints"][1]["date"] == "2020-02-26"
    assert "same visit" in result.notices[0].message


def test_identical_repeated_records_are_read_once_with_a_notice(tmp_path: Path) -> None:
    tu, tr = simple_study()
    result = run_import(tmp_path, tu, [*tr, dict(tr[4], TRSEQ="99")])
    assert result.cases[0]["timepoints"][0]["non_targets"] == {"NT01": "present"}
    assert [n.row for n in result.notices if n.kind == "duplicate_record"] == [len(tr) + 2]


def test_same_visit_name_on_two_dates_becomes_two_dated_timepoints(tmp_path: Path) -> None:
    tu, tr = simple_study()
    extra = [
        dict(r, TRDTC="2020-03-20", TRSTRESN="14", TRORRES="14", TRSTRESC="14")
        for r in tr
        if r["VISIT"] == "WEEK 8" and r["TRLNKID"] == "T01"
    ]
    extra += [
        dict(r, TRDTC="2020-03-20") for r in tr if r["VISIT"] == "WEEK 8" and r["TRLNKID"] != "T01"
    ]
    (case,) = run_import(tmp_path, tu, tr + extra).cases
    assert [tp["id"] for tp in case["timepoints"]][1:3] == [
        "WEEK 8 (2020-02-26)",
        "WEEK 8 (2020-03-20)",
    ]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda tu, tr: tr.append(dict(tr[0], TRTESTCD="AREA")),
            r"TR\.csv, row 14, column TRTESTCD: unknown test code 'AREA'",
        ),
        (
            lambda tu, tr: tr.append(tr_row("S-001", "T09", "LDIAM", "5", "WEEK 8", "2020-02-26")),
            r"TR\.csv, row 14, column TRLNKID: lesion T09 of subject S-001 \(INVESTIGATOR\) is "
            r"not in TU",
        ),
        (
            lambda tu, tr: tr.append(dict(tr[0], TRSTRESN="31", TRSEQ="7")),
            r"TR\.csv, row 14, column TRORRES: duplicate record: .* also recorded at row 2",
        ),
        (
            lambda tu, tr: tr.append(dict(tr[0], TRSTRESN="-3", TRVISIT="X")),
            r"TR\.csv, row 14, column TRSTRESN: LDIAM result '-3' is not a size",
        ),
        (
            lambda tu, tr: tr.append(dict(tr[0], TRDTC="2020-13-45")),
            r"TR\.csv, row 14, column TRDTC: .*2020-13-45",
        ),
        (
            lambda tu, tr: tu.append(tu_row("S-001", "T05", "MAYBE", "LIVER")),
            r"TU\.csv, row 6, column TUSTRESC: unknown tumour role 'MAYBE'",
        ),
        (
            lambda tu, tr: tu.append(tu_row("S-001", "T01", "NON-TARGET", "LIVER")),
            r"TU\.csv, row 6, column TULNKID: duplicate record: lesion T01",
        ),
    ],
)
def test_malformed_records_refuse_the_whole_file_naming_row_and_column(
    tmp_path: Path, change: Any, match: str
) -> None:
    tu, tr = simple_study()
    change(tu, tr)
    with pytest.raises(CdiscFileError, match=match):
        run_import(tmp_path, tu, tr)


def test_missing_column_is_refused_with_its_name(tmp_path: Path) -> None:
    _, tr = simple_study()
    path = write_rows(tmp_path / "TR.csv", [c for c in TR_COLUMNS if c != "TRTESTCD"], tr)
    with pytest.raises(
        CdiscFileError,
        match=r"TR\.csv, row 1, column TRTESTCD: required column "
        r"TRTESTCD is missing",
    ):
        read_domain(path, TR_REQUIRED)


def test_fragments_identified_in_tu_still_count_for_their_parent_lesion(tmp_path: Path) -> None:
    tu, tr = simple_study()
    tu += [tu_row("S-001", "T01.1", "TARGET", "LIVER", VISIT="WEEK 8"),
           tu_row("S-001", "T01.2", "TARGET", "LIVER", VISIT="WEEK 8")]  # fmt: skip
    tr = [r for r in tr if not (r["VISIT"] == "WEEK 8" and r["TRLNKID"] == "T01")]
    tr += [
        tr_row("S-001", link, "LDIAM", size, "WEEK 8", "2020-02-26", visitnum="2")
        for link, size in (("T01.1", "8"), ("T01.2", "7"))
    ]
    (case,) = run_import(tmp_path, tu, tr).cases
    assert [le["id"] for le in case["lesions"]] == ["T01", "T02", "NT01"]
    assert case["timepoints"][1]["targets"]["T01"] == {"fragments": [8.0, 7.0]}


def test_dm_gives_arm_and_death_date_but_no_randomisation(tmp_path: Path) -> None:
    from cdisc_io.sdtm_import import read_subjects

    dm = tmp_path / "DM.csv"
    dm.write_text("USUBJID,ARM,DTHDTC,RFSTDTC\nS-001,Control,2020-07-14,2020-01-02\n",
                  encoding="utf-8")  # fmt: skip
    notices: list[Any] = []
    subjects = read_subjects(read_domain(dm, ["USUBJID"]), file="DM.csv", kind="dm",
                             rule=ImputationRule.LAST, notices=notices)  # fmt: skip
    tu, tr = simple_study()
    (case,) = run_import(tmp_path, tu, tr, subjects=subjects).cases
    assert (case["arm"], case["died_on"]) == ("Control", "2020-07-14")
    assert "randomized_on" not in case  # the origin is then the baseline (§8)


def test_subject_listed_twice_in_adsl_is_refused(tmp_path: Path) -> None:
    from cdisc_io.sdtm_import import read_subjects

    adsl = tmp_path / "ADSL.csv"
    adsl.write_text("USUBJID,ARM\nS-1,A\nS-1,B\n", encoding="utf-8")
    with pytest.raises(CdiscFileError, match=r"ADSL\.csv, row 3, column USUBJID: duplicate "
                       r"record: subject S-1 appears twice"):  # fmt: skip
        read_subjects(read_domain(adsl, ["USUBJID"]), file="ADSL.csv", kind="adsl",
                      rule=ImputationRule.LAST, notices=[])  # fmt: skip


def _merge_study() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tu, tr = simple_study()
    tu.append(tu_row("S-001", "T03", "TARGET", "LIVER"))
    tr.append(tr_row("S-001", "T03", "LDIAM", "12", "BASELINE", "2020-01-01"))
    tr = [r for r in tr if not (r["VISIT"] == "WEEK 8" and r["TRLNKID"] == "T01")]
    merged = dict(tr_row("S-001", "T03", "LDIAM", "", "WEEK 8", "2020-02-26", visitnum="2"),
                  TRSTAT="NOT DONE", TRREASND="MERGED WITH T01")  # fmt: skip
    return tu, [*tr, merged]


def test_a_part_recorded_as_merged_defers_to_the_merged_mass(tmp_path: Path) -> None:
    tu, tr = _merge_study()
    tr.append(tr_row("S-001", "T01/T03", "LDIAM", "33", "WEEK 8", "2020-02-26", visitnum="2"))
    (case,) = run_import(tmp_path, tu, tr).cases
    assert case["timepoints"][1]["targets"] == {
        "T01": 33.0, "T02": 9.0, "T03": {"merged_into": "T01"},
    }  # fmt: skip


def test_a_part_recorded_as_merged_without_the_merged_mass_is_refused(tmp_path: Path) -> None:
    tu, tr = _merge_study()
    with pytest.raises(CdiscFileError, match=r"TR\.csv, row \d+, column TRLNKID: target T03 is "
                       r"recorded as merged but no record such as T01/T03"):  # fmt: skip
        run_import(tmp_path, tu, tr)
