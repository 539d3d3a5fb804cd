"""Target response (§4.3.1): R-TGT-PD, R-TGT-NE, R-TGT-CR, R-TGT-PR, R-TGT-SD, R-TGT-HOLD,
R-EXACT, and the measurement conventions R-NODE, R-SMALL, R-SPLIT, R-MERGE, R-REAPPEAR."""

from __future__ import annotations

import pytest

from tests.recist.conftest import assess, case, fu, last


def target_response(baseline: dict, *sizes: dict, **kw) -> list[str | None]:
    result = assess(case(baseline, *(fu(targets=s) for s in sizes), **kw))
    return [tp["target_response"] for tp in result["timepoints"][1:]]


def test_sum_exactly_70_percent_of_baseline_is_pr():
    assert target_response({"T1": 50.0}, {"T1": 35.0}) == ["PR"]


def test_sum_just_above_70_percent_is_sd():
    assert target_response({"T1": 50.0}, {"T1": 35.1}) == ["SD"]


def test_pr_boundary_where_float_arithmetic_would_say_sd():
    # 7.7 <= 0.7 * 11.0 is False in binary floats; 7.7 mm is exactly 70 % of 11.0 mm.
    assert not (7.7 <= 0.7 * 11.0)
    assert target_response({"T1": 11.0}, {"T1": 7.7}) == ["PR"]


def test_sum_exactly_120_percent_and_5mm_above_nadir_is_pd():
    assert target_response({"T1": 25.0}, {"T1": 30.0}) == ["PD"]


def test_pd_boundary_where_float_arithmetic_would_miss_the_20_percent():
    # (31.2 - 26.0) >= 0.2 * 26.0 is False in floats; 31.2 mm is exactly 120 % of 26.0 mm.
    assert not ((31.2 - 26.0) >= 0.2 * 26.0)
    assert target_response({"T1": 26.0}, {"T1": 31.2}) == ["PD"]


def test_pd_boundary_where_float_arithmetic_would_miss_the_5mm():
    # 8.2 - 3.2 >= 5.0 is False in floats; the increase is exactly 5.0 mm.
    assert not (8.2 - 3.2 >= 5.0)
    assert target_response({"T1": 12.0}, {"T1": 3.2}, {"T1": 8.2}) == ["PR", "PD"]


def test_20_percent_increase_below_5mm_is_not_pd():
    assert target_response({"T1": 20.0}, {"T1": 24.9}) == ["SD"]


def test_5mm_increase_below_20_percent_is_not_pd():
    assert target_response({"T1": 40.0}, {"T1": 47.9}) == ["SD"]


def test_progression_is_measured_from_the_nadir_not_the_baseline():
    # 60 → 30 (nadir) → 36: 120 % of the nadir and 6 mm above it.
    assert target_response({"T1": 60.0}, {"T1": 30.0}, {"T1": 36.0}) == ["PR", "PD"]


def test_nadir_is_reported_per_timepoint():
    result = assess(case({"T1": 60.0}, fu(targets={"T1": 30.0}), fu(targets={"T1": 40.0})))
    assert [tp.get("nadir_mm") for tp in result["timepoints"]] == [None, 60.0, 30.0]


def test_missing_target_without_pd_is_ne_and_gives_no_sum():
    result = assess(case({"T1": 30.0, "T2": 20.0}, fu(targets={"T1": 10.0})))
    tp = last(result)
    assert tp["target_response"] == "NE"
    assert tp["sum_mm"] is None and tp["partial_sum_mm"] == 10.0
    assert any("R-TGT-NE" in r and "T2" in r for r in tp["reasons"])


def test_explicit_not_evaluated_target_is_ne():
    assert target_response({"T1": 30.0, "T2": 20.0}, {"T1": 30.0, "T2": "not_evaluated"}) == ["NE"]


def test_partial_sum_that_already_proves_pd_is_pd():
    result = assess(case({"T1": 30.0, "T2": 20.0}, fu(targets={"T1": 60.0})))
    tp = last(result)
    assert tp["target_response"] == "PD"
    assert any("R-TGT-NE/R-TGT-PD" in r for r in tp["reasons"])


def test_partial_sum_never_gives_pr():
    assert target_response({"T1": 30.0, "T2": 20.0}, {"T1": 0.0}) == ["NE"]


def test_incomplete_timepoint_never_becomes_the_nadir():
    # FU1 is incomplete with a partial sum of 10; the nadir stays 50 so 55 is not PD.
    result = assess(
        case(
            {"T1": 30.0, "T2": 20.0},
            fu(targets={"T1": 10.0}),
            fu(targets={"T1": 35.0, "T2": 20.0}),
        )
    )
    assert last(result)["nadir_mm"] == 50.0
    assert last(result)["target_response"] == "SD"


def test_every_non_nodal_target_at_zero_is_cr():
    assert target_response({"T1": 30.0, "T2": 20.0}, {"T1": "absent", "T2": 0}) == ["CR"]


def test_nodal_target_below_10mm_allows_cr_with_a_sum_above_zero():
    result = assess(case({"T1": 30.0, "N1": 20.0}, fu(targets={"T1": 0, "N1": 9.9}), nodal=("N1",)))
    assert last(result)["target_response"] == "CR"
    assert last(result)["sum_mm"] == 9.9  # R-NODE: nodes keep their actual short axis


def test_nodal_target_at_10mm_prevents_cr():
    result = assess(
        case({"T1": 30.0, "N1": 20.0}, fu(targets={"T1": 0, "N1": 10.0}), nodal=("N1",))
    )
    assert last(result)["target_response"] == "PR"


def test_too_small_to_measure_counts_5mm():
    result = assess(case({"T1": 30.0}, fu(targets={"T1": "too_small"})))
    assert last(result)["sum_mm"] == 5.0
    assert last(result)["target_response"] == "PR"  # not CR: faintly seen is not gone
    assert last(result)["flags"]["T1"] == ["too_small"]


def test_measured_value_below_5mm_keeps_its_real_value():
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 3.0})))
    assert last(result)["sum_mm"] == 3.0


def test_split_target_fragments_add_up():
    result = assess(case({"T1": 30.0}, fu(targets={"T1": {"fragments": [12.0, 9.5]}})))
    assert last(result)["sum_mm"] == 21.5
    assert last(result)["flags"]["T1"] == ["split"]


def test_merged_target_counts_zero_and_its_mass_goes_to_the_other():
    result = assess(
        case({"T1": 20.0, "T2": 15.0}, fu(targets={"T1": 33.0, "T2": {"merged_into": "T1"}}))
    )
    assert last(result)["sum_mm"] == 33.0
    assert last(result)["flags"]["T2"] == ["merged"]
    assert last(result)["target_response"] == "SD"


def test_pr_is_held_when_the_sum_drifts_above_70_percent_without_pd():
    assert target_response({"T1": 50.0}, {"T1": 30.0}, {"T1": 35.5}) == ["PR", "PR"]


def test_pr_hold_reason_cites_its_rule():
    result = assess(case({"T1": 50.0}, fu(targets={"T1": 30.0}), fu(targets={"T1": 35.5})))
    assert any(r.startswith("R-TGT-HOLD") for r in last(result)["reasons"])


def test_pr_hold_off_gives_sd_when_the_sum_drifts_up():
    assert target_response(
        {"T1": 50.0}, {"T1": 30.0}, {"T1": 35.5}, settings={"pr_hold": False}
    ) == ["PR", "SD"]


def test_pr_hold_with_confirmation_needs_a_confirmed_pr_first():
    # PR once, then drift: with confirmation on, the PR was never confirmed, so SD.
    assert target_response(
        {"T1": 50.0}, {"T1": 30.0}, {"T1": 35.5}, settings={"confirmation": True}
    ) == ["PR", "SD"]
    # PR confirmed 56 days later, then drift: held.
    assert target_response(
        {"T1": 50.0},
        {"T1": 30.0},
        {"T1": 31.0},
        {"T1": 35.5},
        settings={"confirmation": True},
    ) == ["PR", "PR", "PR"]


def test_target_reappearing_after_overall_cr_is_pd():
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 0}), fu(targets={"T1": 5.0})))
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["CR", "PD"]
    assert any("R-REAPPEAR" in r for r in last(result)["reasons"])


def test_target_too_small_to_measure_after_cr_has_reappeared():
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 0}), fu(targets={"T1": "too_small"})))
    assert last(result)["overall_response"] == "PD"


def test_residue_below_5mm_after_cr_is_measured_and_flagged_not_pd():
    # pharmaverse 01-701-1133, RADIOLOGIST 2: CR at WEEK 6, T01 at 4.95 mm at WEEK 9,
    # recorded PR. 4.95 mm is below the reappearance size and 4.95 mm above a 0 mm nadir
    # is short of the 5 mm increase (R-EXACT: no rounding to 5.0).
    result = assess(
        case(
            {"T1": 19.57, "T2": 20.37},
            fu(targets={"T1": 0, "T2": 0}),
            fu(targets={"T1": 4.95, "T2": 0}),
        )
    )
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["CR", "PR"]
    assert last(result)["sum_mm"] == 4.95
    assert [q["rule"] for q in result["queries"]] == ["R-BOR-CONF"]


def test_reappearance_size_is_a_setting():
    result = assess(
        case(
            {"T1": 30.0},
            fu(targets={"T1": 0}),
            fu(targets={"T1": 3.0}),
            settings={"reappearance_min_mm": 0},
        )
    )
    assert last(result)["overall_response"] == "PD"


def test_node_reappears_only_at_10mm_or_more_after_cr():
    kw = {"nodal": ("N1",)}
    below = assess(case({"N1": 20.0}, fu(targets={"N1": 8.0}), fu(targets={"N1": 9.9}), **kw))
    above = assess(case({"N1": 20.0}, fu(targets={"N1": 8.0}), fu(targets={"N1": 10.0}), **kw))
    assert last(below)["target_response"] == "CR"
    assert last(above)["target_response"] == "PD"


def test_without_prior_cr_a_reappearing_target_is_just_measured_again():
    # Target gone but overall PR (non-target still present), then back at 4 mm.
    result = assess(
        case(
            {"T1": 30.0},
            fu(targets={"T1": 0}),
            fu(targets={"T1": 4.0}),
            non_targets=("NT1",),
        )
    )
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["PR", "PR"]


def test_percent_changes_are_reported_from_baseline_and_nadir():
    result = assess(case({"T1": 40.0}, fu(targets={"T1": 20.0}), fu(targets={"T1": 25.0})))
    tp = last(result)
    assert tp["change_from_baseline_pct"] == -37.5
    assert tp["change_from_nadir_pct"] == 25.0


def test_measurements_with_more_decimals_are_kept_exactly():
    result = assess(case({"T1": 10.04, "T2": 13.5828}))
    assert result["timepoints"][0]["sum_mm"] == 23.6228


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ({"T1": 0, "T2": 0}, "CR"),
        ({"T1": 10.0, "T2": 11.0}, "PR"),
        ({"T1": 20.0, "T2": 20.0}, "SD"),
        ({"T1": 30.0, "T2": 25.0}, "PD"),
        ({"T1": 20.0}, "NE"),
    ],
)
def test_target_response_order_pd_ne_cr_pr_sd(sizes, expected):
    assert target_response({"T1": 20.0, "T2": 25.0}, sizes) == [expected]
