"""The R-TGT-PR and R-TGT-PD thresholds as sums (recist.target.pr_max_sum, pd_min_sum):
exact integer lengths (R-EXACT), inclusive, and the one definition the engine decides by."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recist.lesions import UNITS_PER_MM, length_to_mm, mm_to_length
from recist.target import meets_pd, meets_pr, pd_min_sum, pr_max_sum
from tests.recist.conftest import assess, case, fu

ONE_UNIT = 1  # the engine's resolution: 0.1 µm


def mm(value: float) -> int:
    return mm_to_length(value)


def test_pr_max_of_a_50mm_baseline_is_35mm_exactly():
    assert pr_max_sum(mm(50.0)) == mm(35.0)
    assert meets_pr(mm(35.0), mm(50.0))
    assert not meets_pr(mm(35.0) + ONE_UNIT, mm(50.0))


def test_35_04mm_against_a_50mm_baseline_is_not_pr():
    assert mm(35.04) > pr_max_sum(mm(50.0))
    assert not meets_pr(mm(35.04), mm(50.0))


def test_pr_max_where_float_arithmetic_would_miss_the_boundary():
    # 0.7 * 11.0 < 7.7 in binary floats; 7.7 mm is exactly 70 % of 11.0 mm.
    assert pr_max_sum(mm(11.0)) == mm(7.7)


def test_pr_max_of_a_baseline_finer_than_a_tenth_of_a_mm():
    # 70 % of 33.33 mm is 23.331 mm: exact, not rounded to 23.3 or 23.4.
    assert pr_max_sum(mm(33.33)) == mm(23.331)
    assert length_to_mm(pr_max_sum(mm(33.33))) == 23.331


def test_pr_max_rounds_down_to_a_whole_length():
    # 70 % of 0.0001 mm (1 unit) is 0.7 units: only 0 units is ≤ it.
    assert pr_max_sum(1) == 0
    assert pr_max_sum(mm(33.3333)) == 233333  # 233 333.1 units, rounded down


def test_pd_min_of_a_20mm_nadir_is_25mm_the_5mm_rule_dominating():
    assert pd_min_sum(mm(20.0)) == mm(25.0)  # 120 % would be 24.0 mm
    assert meets_pd(mm(25.0), mm(20.0))
    assert not meets_pd(mm(25.0) - ONE_UNIT, mm(20.0))


def test_pd_min_of_a_40mm_nadir_is_48mm_the_20_percent_rule_dominating():
    assert pd_min_sum(mm(40.0)) == mm(48.0)  # + 5 mm would be 45.0 mm
    assert meets_pd(mm(48.0), mm(40.0))
    assert not meets_pd(mm(48.0) - ONE_UNIT, mm(40.0))


def test_pd_min_where_both_rules_meet_at_25mm():
    assert pd_min_sum(mm(25.0)) == mm(30.0)  # 120 % of 25 = 25 + 5 = 30 mm


def test_pd_min_of_a_nadir_finer_than_a_tenth_of_a_mm():
    assert pd_min_sum(mm(33.33)) == mm(39.996)  # 120 %: 39.996 > 38.33
    assert pd_min_sum(mm(13.33)) == mm(18.33)  # + 5 mm: 18.33 > 15.996


def test_pd_min_rounds_up_to_a_whole_length():
    # 120 % of 33.3333 mm is 399 999.6 units: the smallest whole length ≥ it is 400 000.
    assert pd_min_sum(mm(33.3333)) == 400_000
    assert not meets_pd(399_999, mm(33.3333))


def test_pd_min_of_a_zero_nadir_is_5mm():
    assert pd_min_sum(0) == 5 * UNITS_PER_MM


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_the_thresholds_are_exactly_the_rules_as_fractions(total: int, reference: int):
    assert meets_pr(total, reference) == (total * 10 <= reference * 7)
    assert meets_pd(total, reference) == (
        total * 10 >= reference * 12 and total - reference >= 5 * UNITS_PER_MM
    )
    assert (total <= pr_max_sum(reference)) == meets_pr(total, reference)
    assert (total >= pd_min_sum(reference)) == meets_pd(total, reference)


@pytest.mark.parametrize("baseline", [50.0, 11.0, 33.33, 47.1234, 20.0])
def test_the_engine_calls_pr_up_to_pr_max_and_sd_just_above(baseline):
    limit = length_to_mm(pr_max_sum(mm(baseline)))
    above = length_to_mm(pr_max_sum(mm(baseline)) + ONE_UNIT)
    at = assess(case({"T1": baseline}, fu(targets={"T1": limit})))
    over = assess(case({"T1": baseline}, fu(targets={"T1": above})))
    assert at["timepoints"][1]["target_response"] == "PR"
    assert over["timepoints"][1]["target_response"] == "SD"


@pytest.mark.parametrize("nadir", [20.0, 40.0, 25.0, 33.33, 13.33, 33.3333])
def test_the_engine_calls_pd_from_pd_min_and_not_just_below(nadir):
    limit = length_to_mm(pd_min_sum(mm(nadir)))
    below = length_to_mm(pd_min_sum(mm(nadir)) - ONE_UNIT)
    at = assess(case({"T1": nadir}, fu(targets={"T1": limit})))
    under = assess(case({"T1": nadir}, fu(targets={"T1": below})))
    assert at["timepoints"][1]["target_response"] == "PD"
    assert under["timepoints"][1]["target_response"] == "SD"
