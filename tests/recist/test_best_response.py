"""Best overall response (§4.4.3, table 3): R-BOR-CUT, R-BOR-SDMIN, R-BOR-1, R-BOR-CONF."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from recist.best_response import (
    Assessed,
    best_overall_response_confirmed,
    best_overall_response_unconfirmed,
    counted_timepoints,
    data_queries,
)
from recist.response import Response as R
from recist.settings import Settings
from tests.recist.conftest import assess, case, fu

ORIGIN = date(2021, 1, 1)
CONFIRMED = Settings(confirmation=True)


def seq(*responses: R, days: tuple[int, ...] | None = None) -> list[Assessed]:
    days = days or tuple(56 * (i + 1) for i in range(len(responses)))
    return [
        Assessed(f"FU{i + 1}", ORIGIN + timedelta(days=d), r)
        for i, (r, d) in enumerate(zip(responses, days, strict=True))
    ]


def confirmed(*responses: R, days: tuple[int, ...] | None = None, targets: bool = True) -> R:
    counted, _ = counted_timepoints(seq(*responses, days=days), CONFIRMED, None)
    return best_overall_response_confirmed(counted, ORIGIN, CONFIRMED, has_targets=targets).response


def unconfirmed(
    *responses: R, days: tuple[int, ...] | None = None, settings: Settings | None = None
) -> R:
    settings = settings or Settings()
    counted, _ = counted_timepoints(seq(*responses, days=days), settings, None)
    return best_overall_response_unconfirmed(counted, ORIGIN, settings).response


# RECIST 1.1 table 3 (confirmation required): first, subsequent -> BOR, with SD minimum
# duration met (timepoints at day 56 and 112).
TABLE_3_SD_MET = [
    (R.CR, R.CR, R.CR),
    (R.CR, R.PR, R.PR),  # footnote: the CR was likely a PR (flagged as a data query)
    (R.CR, R.SD, R.SD),
    (R.CR, R.PD, R.SD),
    (R.CR, R.NE, R.SD),
    (R.PR, R.CR, R.PR),
    (R.PR, R.PR, R.PR),
    (R.PR, R.SD, R.SD),
    (R.PR, R.PD, R.SD),
    (R.PR, R.NE, R.SD),
    (R.NE, R.NE, R.NE),
]


@pytest.mark.parametrize(("first", "then", "expected"), TABLE_3_SD_MET)
def test_table_3_row_with_sd_minimum_met(first, then, expected):
    assert confirmed(first, then) is expected


# The same rows when the SD minimum duration is not met (day 21 and day 35).
TABLE_3_SD_NOT_MET = [
    (R.CR, R.PD, R.PD),
    (R.CR, R.NE, R.NE),
    (R.PR, R.PD, R.PD),
    (R.PR, R.NE, R.NE),
]


@pytest.mark.parametrize(("first", "then", "expected"), TABLE_3_SD_NOT_MET)
def test_table_3_row_with_sd_minimum_not_met(first, then, expected):
    assert confirmed(first, then, days=(21, 35)) is expected


def test_confirmation_needs_28_days_between_response_and_confirmation():
    assert confirmed(R.PR, R.PR, days=(56, 83)) is R.SD
    assert confirmed(R.PR, R.PR, days=(56, 84)) is R.PR


def test_one_ne_between_response_and_confirmation_is_allowed_by_default():
    assert confirmed(R.PR, R.NE, R.PR) is R.PR


def test_two_ne_between_break_the_confirmation():
    assert confirmed(R.PR, R.NE, R.NE, R.PR) is R.SD


def test_sd_between_pr_and_pr_breaks_the_confirmation():
    assert confirmed(R.PR, R.SD, R.PR) is R.SD


def test_unconfirmed_response_in_non_target_only_disease_is_non_cr_non_pd():
    assert confirmed(R.CR, R.NE, targets=False) is R.NON_CR_NON_PD


def test_cr_followed_by_pr_is_flagged_as_a_data_query():
    queries = data_queries(seq(R.CR, R.PR))
    assert [(q.rule, q.timepoint) for q in queries] == [("R-BOR-CONF", "FU2")]


def test_best_of_timepoints_without_confirmation():
    assert unconfirmed(R.SD, R.PR, R.SD) is R.PR
    assert unconfirmed(R.PR, R.CR) is R.CR


def test_sd_before_the_minimum_duration_does_not_count():
    assert unconfirmed(R.SD, days=(41,)) is R.NE
    assert unconfirmed(R.SD, days=(42,)) is R.SD


def test_early_sd_followed_by_pd_gives_pd():
    assert unconfirmed(R.SD, R.PD, days=(30, 60)) is R.PD


def test_sd_minimum_is_a_setting():
    assert unconfirmed(R.SD, days=(30,), settings=Settings(sd_min_days=28)) is R.SD


def test_non_cr_non_pd_ranks_like_sd():
    assert unconfirmed(R.NON_CR_NON_PD, R.NE) is R.NON_CR_NON_PD


def test_timepoints_after_the_first_pd_do_not_count():
    assert unconfirmed(R.PD, R.PR) is R.PD


def test_timepoints_after_new_therapy_do_not_count():
    counted, notes = counted_timepoints(
        seq(R.SD, R.PR), Settings(), new_therapy_on=ORIGIN + timedelta(days=60)
    )
    assert [a.id for a in counted] == ["FU1"]
    assert "R-BOR-CUT" in notes[0]


def test_cut_at_new_therapy_is_a_setting():
    counted, _ = counted_timepoints(
        seq(R.SD, R.PR), Settings(cut_at_new_therapy=False), new_therapy_on=ORIGIN
    )
    assert len(counted) == 2


def test_only_ne_follow_ups_give_ne():
    assert unconfirmed(R.NE, R.NE) is R.NE


def test_case_reports_both_variants_and_uses_the_setting():
    c = case(
        {"T1": 40.0},
        fu(targets={"T1": 20.0}),
        fu(targets={"T1": 41.0}),
        settings={"confirmation": True},
    )
    result = assess(c)
    assert result["best_overall_response_unconfirmed"] == "PR"
    assert result["best_overall_response_confirmed"] == "SD"
    assert result["best_overall_response"] == "SD"
    assert result["best_overall_response_detail"]["timepoint"] == "FU1"


def test_sd_window_counts_from_randomisation_when_known():
    # Baseline 2021-01-04, follow-up 2021-02-14: 41 days from baseline, 44 from randomisation.
    c = case({"T1": 40.0}, fu(date="2021-02-14", targets={"T1": 40.0}), randomized_on="2021-01-01")
    assert assess(c)["best_overall_response"] == "SD"
    del c["randomized_on"]
    c["timepoints"][1]["date"] = "2021-02-13"  # 40 days from the baseline
    assert assess(c)["best_overall_response"] == "NE"
