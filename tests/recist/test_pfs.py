"""Progression-free survival (§8): events, censoring and their reason codes."""

from __future__ import annotations

from tests.recist.conftest import assess, case, fu


def pfs(c):
    return assess(c)["pfs"]


def test_target_progression_is_an_event_at_the_scan_date():
    c = case({"T1": 30.0}, fu(date="2021-03-01", targets={"T1": 40.0}), randomized_on="2021-01-01")
    assert pfs(c) == {
        "event": True,
        "date": "2021-03-01",
        "days": 60,
        "reason": "PD_TARGET",
        "explanation": "progression called at FU1 on 2021-03-01",
    }


def test_non_target_progression_reason():
    c = case(
        {"T1": 30.0},
        fu(targets={"T1": 30.0}, non_targets={"NT1": "progression"}),
        non_targets=("NT1",),
    )
    assert pfs(c)["reason"] == "PD_NONTARGET"


def test_death_without_progression_is_an_event():
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        randomized_on="2021-01-01",
        died_on="2021-04-01",
    )
    result = pfs(c)
    assert (result["event"], result["date"], result["reason"]) == (True, "2021-04-01", "DEATH")


def test_alive_without_progression_is_censored_at_the_last_adequate_assessment():
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-05-01", targets={"T1": "not_evaluated"}),
        randomized_on="2021-01-01",
    )
    result = pfs(c)
    assert (result["event"], result["date"], result["reason"]) == (
        False,
        "2021-03-01",
        "CENSORED_LAST_ASSESSMENT",
    )


def test_no_adequate_assessment_is_censored_at_the_origin_on_day_1():
    c = case({"T1": 30.0}, fu(targets={"T1": "not_evaluated"}), randomized_on="2021-01-01")
    result = pfs(c)
    assert (result["date"], result["days"], result["reason"]) == (
        "2021-01-01",
        1,
        "CENSORED_NO_ASSESSMENT",
    )


def test_new_therapy_before_progression_censors_at_the_last_assessment_before_it():
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-05-01", targets={"T1": 60.0}),
        randomized_on="2021-01-01",
        new_therapy_on="2021-04-01",
    )
    result = pfs(c)
    assert (result["event"], result["date"], result["reason"]) == (
        False,
        "2021-03-01",
        "CENSORED_NEW_THERAPY",
    )


def test_progression_after_two_missed_visits_is_censored():
    # Interval 56 days: PD 113 days after the last adequate assessment (> 112).
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-06-22", targets={"T1": 60.0}),
        randomized_on="2021-01-01",
        settings={"visit_interval_days": 56},
    )
    result = pfs(c)
    assert (result["event"], result["date"], result["reason"]) == (
        False,
        "2021-03-01",
        "CENSORED_MISSED_VISITS",
    )


def test_progression_exactly_two_intervals_later_is_still_an_event():
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-06-21", targets={"T1": 60.0}),
        randomized_on="2021-01-01",
        settings={"visit_interval_days": 56},
    )
    assert pfs(c)["event"] is True


def test_missed_visit_rule_is_off_without_an_interval():
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2022-03-01", targets={"T1": 60.0}),
        randomized_on="2021-01-01",
    )
    assert pfs(c)["event"] is True


def test_origin_is_the_baseline_date_without_randomisation():
    c = case({"T1": 30.0}, fu(date="2021-01-14", targets={"T1": 40.0}))
    assert pfs(c)["days"] == 11  # baseline 2021-01-04


def test_progression_is_dated_by_the_earliest_scan_that_shows_it():
    c = case(
        {"T1": 30.0, "T2": 30.0},
        fu(
            date="2021-03-10",
            targets={"T1": 50.0, "T2": 30.0},
            scan_dates={"T1": "2021-03-08", "T2": "2021-03-10"},
        ),
    )
    assert assess(c)["progression"]["date"] == "2021-03-08"


def test_progression_date_rule_timepoint_uses_the_timepoint_date():
    c = case(
        {"T1": 30.0, "T2": 30.0},
        fu(date="2021-03-10", targets={"T1": 50.0, "T2": 30.0}, scan_dates={"T1": "2021-03-08"}),
        settings={"progression_date": "timepoint"},
    )
    assert assess(c)["progression"]["date"] == "2021-03-10"


def test_progression_date_rule_latest_uses_the_latest_scan():
    c = case(
        {"T1": 30.0, "T2": 30.0},
        fu(
            date="2021-03-10",
            targets={"T1": 50.0, "T2": 30.0},
            scan_dates={"T1": "2021-03-08", "T2": "2021-03-12"},
        ),
        settings={"progression_date": "latest"},
    )
    assert assess(c)["progression"]["date"] == "2021-03-12"


# §8, the missed-visit reference (issue 15, found by differential testing): the last
# adequate assessment on or before the event, other than the timepoint showing the event.


def test_a_scan_on_the_day_of_death_is_the_last_adequate_assessment():
    # 2021-03-01 -> 2021-06-25 is 116 days (> 2 × 56); the SD scan on the day of death is
    # the reference, so the death is an event, not a censoring for missed visits.
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-06-25", targets={"T1": 31.0}),
        randomized_on="2021-01-01",
        died_on="2021-06-25",
        settings={"visit_interval_days": 56},
    )
    result = pfs(c)
    assert (result["event"], result["date"], result["reason"]) == (True, "2021-06-25", "DEATH")


def test_death_long_after_the_last_scan_is_still_censored_for_missed_visits():
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        randomized_on="2021-01-01",
        died_on="2021-06-25",
        settings={"visit_interval_days": 56},
    )
    result = pfs(c)
    assert (result["event"], result["date"], result["reason"]) == (
        False,
        "2021-03-01",
        "CENSORED_MISSED_VISITS",
    )


def test_the_progression_timepoint_itself_is_never_its_own_reference():
    # The PD scan is dated on the event date but shows the event: the reference stays
    # the SD 113 days earlier, so the event is censored for missed visits (unchanged).
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-06-22", targets={"T1": 60.0}),
        randomized_on="2021-01-01",
        settings={"visit_interval_days": 56},
    )
    assert pfs(c)["reason"] == "CENSORED_MISSED_VISITS"


def test_an_earlier_timepoint_on_the_progression_date_counts():
    # The PD timepoint (07-01) dates its progression to its target scan of 06-25; the SD
    # timepoint of 06-25 shares that date and counts, so the gap is 0, not 116 days.
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-06-25", targets={"T1": 31.0}),
        fu(date="2021-07-01", targets={"T1": 60.0}, scan_dates={"T1": "2021-06-25"}),
        randomized_on="2021-01-01",
        settings={"visit_interval_days": 56},
    )
    result = pfs(c)
    assert (result["event"], result["date"], result["reason"]) == (True, "2021-06-25", "PD_TARGET")


def test_a_back_dated_new_lesion_is_not_its_own_reference():
    # NL1 equivocal at 06-22 (113 days after the 03-01 SD), confirmed at 08-01: PD dated
    # 06-22 (R-NEW-2). The equivocal timepoint shows the event, so the reference is 03-01
    # and the event is censored for missed visits.
    c = case(
        {"T1": 30.0},
        fu(date="2021-03-01", targets={"T1": 30.0}),
        fu(date="2021-06-22", targets={"T1": 30.0},
           new_lesions=[{"id": "NL1", "site": "liver", "equivocal": True}]),
        fu(date="2021-08-01", targets={"T1": 30.0},
           new_lesions=[{"id": "NL1", "site": "liver", "equivocal": False}]),
        randomized_on="2021-01-01",
        settings={"visit_interval_days": 56},
    )  # fmt: skip
    result = pfs(c)
    assert (result["date"], result["reason"]) == ("2021-03-01", "CENSORED_MISSED_VISITS")
