"""recist.local_failure: R-LOCAL per treated lesion (lives in tests/endpoints, its user)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recist.jsonio import parse_case
from recist.lesions import UNITS_PER_MM
from recist.local_failure import (
    LocalOutcome,
    assess_lesion,
    first_local_failure,
    local_failures,
    meets_local_failure,
)


def case(
    sizes: list[Any],
    *,
    treated_on: str = "2021-01-10",
    died_on: str | None = None,
    nt_states: list[str] | None = None,
) -> dict[str, Any]:
    """A case whose T1 (treated with SBRT) has ``sizes`` at BL, W8, W16…; T2 untreated."""
    start = date(2021, 1, 4)
    timepoints = []
    for i, size in enumerate(sizes):
        tp: dict[str, Any] = {"id": "BL" if i == 0 else f"W{8 * i}",
                              "date": (start + timedelta(days=56 * i)).isoformat(),
                              "targets": {"T1": size, "T2": 20.0}}  # fmt: skip
        if nt_states is not None:
            tp["non_targets"] = {"NT1": nt_states[i]}
        timepoints.append(tp)
    lesions: list[dict[str, Any]] = [
        {"id": "T1", "site": "liver", "kind": "target", "treated_on": treated_on,
         "treatment": "SBRT"},
        {"id": "T2", "site": "lung", "kind": "target"},
    ]  # fmt: skip
    if nt_states is not None:
        lesions.append({"id": "NT1", "site": "bone", "kind": "non-target",
                        "treated_on": treated_on, "treatment": "SBRT"})  # fmt: skip
    out: dict[str, Any] = {"subject_id": "S1", "lesions": lesions, "timepoints": timepoints}
    if died_on:
        out["died_on"] = died_on
    return out


def t1(raw: dict[str, Any]) -> Any:
    parsed = parse_case(raw)
    return assess_lesion(parsed, parsed.lesions[0])


def test_growth_to_120_percent_and_5mm_over_own_post_treatment_nadir_is_local_failure() -> None:
    result = t1(case([30.0, 25.0, 30.0]))  # BL is after treatment: nadir 25, then 30
    assert result.outcome is LocalOutcome.LOCAL_FAILURE
    assert (result.timepoint, result.date, result.days) == ("W16", date(2021, 4, 26), 107)
    assert "R-LOCAL" in result.reason and "25.0 mm" in result.reason


def test_just_under_either_threshold_is_not_local_failure() -> None:
    assert t1(case([30.0, 25.0, 29.9])).outcome is LocalOutcome.CENSORED  # < 120 %
    assert t1(case([30.0, 10.0, 14.9])).outcome is LocalOutcome.CENSORED  # < 5 mm above


@pytest.mark.parametrize(
    ("size_mm", "nadir_mm", "fails"),
    [(30, 25, True), (29.9999, 25, False), (15, 10, True), (14.9999, 10, False), (5, 0, True)],
)
def test_thresholds_are_inclusive_and_exact(size_mm: float, nadir_mm: float, fails: bool) -> None:
    size, nadir = round(size_mm * UNITS_PER_MM), round(nadir_mm * UNITS_PER_MM)
    assert meets_local_failure(size, nadir) is fails


def test_measurements_before_treatment_never_set_the_nadir() -> None:
    # Treated after BL (40 mm): the post-treatment nadir is W8's 20 mm, so 25 mm fails;
    # measured against the pre-treatment 40 mm it would be shrinkage.
    result = t1(case([40.0, 20.0, 25.0], treated_on="2021-02-01"))
    assert result.outcome is LocalOutcome.LOCAL_FAILURE and result.timepoint == "W16"
    assert result.days == (date(2021, 4, 26) - date(2021, 2, 1)).days + 1


def test_reader_call_of_progression_on_a_treated_non_target_is_local_failure() -> None:
    raw = case([30.0, 25.0, 24.0], nt_states=["present", "present", "progression"])
    parsed = parse_case(raw)
    outcomes = {f.lesion: f.outcome for f in local_failures(parsed)}
    assert outcomes == {"T1": LocalOutcome.CENSORED, "NT1": LocalOutcome.LOCAL_FAILURE}


def test_death_before_local_failure_is_the_competing_event() -> None:
    result = t1(case([30.0, 25.0, 26.0], died_on="2021-06-01"))
    assert result.outcome is LocalOutcome.DEATH and result.date == date(2021, 6, 1)
    assert result.event_code == 2


def test_without_failure_or_death_the_lesion_is_censored_at_its_last_evaluation() -> None:
    result = t1(case([30.0, 25.0, "not_evaluated"]))
    assert (result.outcome, result.timepoint, result.event_code) == (
        LocalOutcome.CENSORED, "W8", 0,
    )  # fmt: skip


def test_untreated_lesions_have_no_local_failure_record() -> None:
    parsed = parse_case(case([30.0, 25.0, 30.0]))
    assert [f.lesion for f in local_failures(parsed)] == ["T1"]
    first = first_local_failure(parsed)
    assert first is not None and first.lesion == "T1"


def test_lesion_without_treatment_date_is_refused_by_name() -> None:
    parsed = parse_case(case([30.0, 25.0]))
    with pytest.raises(ValueError, match="lesion T2 has no treatment date"):
        assess_lesion(parsed, parsed.lesions[1])


@given(st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=8))
def test_a_lesion_that_never_grows_never_fails_locally(tenths: list[int]) -> None:
    shrinking = sorted(tenths, reverse=True)
    result = t1(case([t / 10 for t in shrinking]))
    assert result.outcome is LocalOutcome.CENSORED
