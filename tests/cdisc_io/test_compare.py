"""recist compare on the large pharmaverse set: every read imports and assesses; the
disagreements with the recorded (simplified-rule) responses carry rule ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdisc_io.cases import Assessed, assess_cases
from cdisc_io.compare import Comparison, compare, deciding_rule
from cdisc_io.csvio import read_domain
from cdisc_io.sdtm_import import TR_REQUIRED, TU_REQUIRED, build_cases


@pytest.fixture(scope="module")
def assessed(pharmaverse: Path) -> list[Assessed]:
    result = build_cases(
        read_domain(pharmaverse / "tu_onco.csv", TU_REQUIRED),
        read_domain(pharmaverse / "tr_onco.csv", TR_REQUIRED),
    )
    return assess_cases(result.cases)


@pytest.fixture(scope="module")
def comparison(pharmaverse: Path, assessed: list[Assessed]) -> Comparison:
    return compare(assessed, read_domain(pharmaverse / "rs_onco.csv", ["USUBJID"]))


def test_every_subject_and_reader_of_the_large_set_is_assessed(assessed: list[Assessed]) -> None:
    assert len(assessed) == 254 * 3
    assert {a.case["reader"] for a in assessed} == {
        "INVESTIGATOR", "RADIOLOGIST 1", "RADIOLOGIST 2",
    }  # fmt: skip


def test_two_assessments_under_one_visit_name_stay_apart(assessed: list[Assessed]) -> None:
    key = ("01-711-1143", "INVESTIGATOR")
    (read,) = [a for a in assessed if (a.case["subject_id"], a.case["reader"]) == key]
    ids = [tp["id"] for tp in read.result["timepoints"]]
    assert ids[-2:] == ["UNSCHEDULED 9.2 (2013-06-22)", "UNSCHEDULED 9.2 (2013-09-22)"]


def test_every_recorded_overall_response_is_compared_or_counted_apart(
    comparison: Comparison,
) -> None:
    summary = comparison.summary()
    overall = summary["tests"]["OVRLRESP"]
    # 1,899 OVRLRESP records: 3 say CHECK (not a RECIST code), the rest are compared.
    assert overall["compared"] + summary["recorded_not_a_response_code"]["CHECK"] == 1899
    assert summary["recorded_without_engine_timepoint"] == 0


def test_engine_disagrees_with_a_few_percent_as_the_readme_says(comparison: Comparison) -> None:
    # The recorded responses use a simplified rule (no nadir, no 5 mm rule): the README
    # expects a correct engine to disagree with about 6 % of them.
    assert 0.03 <= 1 - comparison.agreement("OVRLRESP") <= 0.10


def test_every_disagreement_names_the_rules_the_engine_applied(comparison: Comparison) -> None:
    overall = [d for d in comparison.disagreements if d.test == "OVRLRESP"]
    assert overall and all(d.rules and d.reasons for d in overall)
    assert sum(comparison.rule_counts.values()) == len(overall)


def test_most_baselines_are_flagged_with_rule_findings(comparison: Comparison) -> None:
    assert comparison.reads_with_warnings > comparison.reads / 2
    assert {"R-MEAS-1", "R-MEAS-2"} <= set(comparison.warning_counts)


@pytest.mark.parametrize(
    ("derived", "rules", "expected"),
    [
        ("PD", ("R-TGT-SD", "R-NT-PD"), "R-NT-PD"),
        ("PR", ("R-TGT-HOLD", "R-NT-NONCRPD"), "R-TGT-HOLD"),
        ("NE", ("R-TGT-PR", "R-NT-NE"), "R-NT-NE"),
        ("SD", (), "(no rule cited)"),
    ],
)
def test_the_rule_that_gave_the_response_is_the_one_counted(
    derived: str, rules: tuple[str, ...], expected: str
) -> None:
    assert deciding_rule(derived, rules) == expected
