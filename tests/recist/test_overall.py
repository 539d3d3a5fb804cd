"""Overall response per timepoint: RECIST 1.1 tables 1 and 2, row by row (§4.4.1)."""

from __future__ import annotations

import pytest

from recist.overall import overall_response
from recist.response import NewLesionStatus as New
from recist.response import Response as R
from tests.recist.conftest import assess, case, fu, last

NCRNPD = R.NON_CR_NON_PD

# Table 1: target disease at baseline. (target, non-target, new) -> overall
TABLE_1 = [
    (R.CR, R.CR, New.NO, R.CR),
    (R.CR, None, New.NO, R.CR),  # "CR or none at baseline"
    (R.CR, NCRNPD, New.NO, R.PR),
    (R.CR, R.NE, New.NO, R.PR),
    (R.PR, NCRNPD, New.NO, R.PR),
    (R.PR, R.NE, New.NO, R.PR),
    (R.PR, R.CR, New.NO, R.PR),
    (R.SD, NCRNPD, New.NO, R.SD),
    (R.SD, R.NE, New.NO, R.SD),
    (R.NE, NCRNPD, New.NO, R.NE),
    (R.NE, R.CR, New.NO, R.NE),
    (R.PD, R.CR, New.NO, R.PD),
    (R.PD, NCRNPD, New.NO, R.PD),
    (R.CR, R.PD, New.NO, R.PD),
    (R.SD, R.PD, New.NO, R.PD),
    (R.CR, R.CR, New.YES, R.PD),
    (R.PR, NCRNPD, New.YES, R.PD),
    (R.NE, R.NE, New.YES, R.PD),
]

# Table 2: non-target disease only.
TABLE_2 = [
    (R.CR, New.NO, R.CR),
    (NCRNPD, New.NO, NCRNPD),
    (R.NE, New.NO, R.NE),
    (R.PD, New.NO, R.PD),
    (R.CR, New.YES, R.PD),
    (NCRNPD, New.YES, R.PD),
]


@pytest.mark.parametrize(("target", "non_target", "new", "expected"), TABLE_1)
def test_table_1_row(target, non_target, new, expected):
    assert overall_response(target, non_target, new)[0] is expected


@pytest.mark.parametrize(("non_target", "new", "expected"), TABLE_2)
def test_table_2_row(non_target, new, expected):
    assert overall_response(None, non_target, new)[0] is expected


def test_equivocal_new_lesion_does_not_change_the_overall_response():
    assert overall_response(R.PR, NCRNPD, New.EQUIVOCAL)[0] is R.PR


def test_no_disease_at_baseline_is_not_evaluable_until_a_new_lesion():
    assert overall_response(None, None, New.NO)[0] is R.NE
    assert overall_response(None, None, New.YES)[0] is R.PD


def test_target_cr_with_non_target_still_present_is_pr_end_to_end():
    result = assess(case({"T1": 20.0}, fu(targets={"T1": 0}), non_targets=("NT1",)))
    tp = last(result)
    assert (tp["target_response"], tp["non_target_response"], tp["overall_response"]) == (
        "CR",
        "NON-CR/NON-PD",
        "PR",
    )


def test_non_target_only_case_has_no_target_response_and_uses_table_2():
    result = assess(case({}, fu(non_targets={"NT1": "absent"}), non_targets=("NT1",)))
    tp = last(result)
    assert tp["target_response"] is None
    assert tp["sum_mm"] is None
    assert tp["overall_response"] == "CR"
