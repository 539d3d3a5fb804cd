"""R-PLAUS-*: implausible sizes, dates and settings are refused (or, for the baseline
window, reported) by the engine's contract, so every way in gives the same verdict."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import date
from typing import Any

import pytest

from recist.errors import CaseInputError
from recist.jsonio import assess_json
from recist.settings import Settings

CASE: dict[str, Any] = {
    "subject_id": "S-01",
    "randomized_on": "2021-01-10",
    "lesions": [
        {"id": "T1", "site": "liver", "kind": "target"},
        {"id": "NT1", "site": "bone", "kind": "non-target"},
    ],
    "timepoints": [
        {
            "id": "BL",
            "date": "2021-01-04",
            "targets": {"T1": 50.0},
            "non_targets": {"NT1": "present"},
        },
        {
            "id": "W8",
            "date": "2021-03-01",
            "targets": {"T1": 35.04},
            "non_targets": {"NT1": "present"},
        },
    ],
}


def refusal(case: dict[str, Any], **kwargs: Any) -> CaseInputError:
    with pytest.raises(CaseInputError) as caught:
        assess_json(case, **kwargs)
    return caught.value


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    case = copy.deepcopy(CASE)
    where: Any = case
    for part in path[:-1]:
        where = where[part]
    where[path[-1]] = value
    return case


def test_the_reference_case_is_sd_at_minus_29_9_percent():
    result = assess_json(CASE)
    assert result["timepoints"][1]["overall_response"] == "SD"  # R-TGT-PR needs ≤ 35.0 mm
    assert result["timepoints"][1]["sum_mm"] == 35.04


@pytest.mark.parametrize("size", [1e308, 1000.01, 5000, float("nan"), float("inf")])
def test_sizes_beyond_the_limit_or_not_finite_are_refused(size):
    error = refusal(changed(("timepoints", 1, "targets", "T1"), size))
    assert (error.timepoint, error.lesion, error.field) == ("W8", "T1", "targets")
    if size == size and size != float("inf"):
        assert error.rule == "R-PLAUS-SIZE"
        assert "1000 mm" in str(error)


def test_a_size_of_exactly_the_limit_is_kept():
    case = changed(("timepoints", 1, "targets", "T1"), 1000)
    assert assess_json(case)["timepoints"][1]["sum_mm"] == 1000.0


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("timepoints", 1, "targets", "T1"), {"fragments": [10, 1e308]}),
        (("lesions", 0, "slice_thickness_mm"), 1e6),
    ],
)
def test_fragments_and_slice_thickness_are_bounded_too(path, value):
    error = refusal(changed(path, value))
    assert error.rule in ("R-PLAUS-SIZE", "R-SPLIT")
    assert error.field is not None


def test_a_new_node_short_axis_is_bounded():
    case = changed(
        ("timepoints", 1, "new_lesions"),
        [{"id": "N1", "site": "lymph node", "nodal": True, "short_axis_mm": 1e30}],
    )
    error = refusal(case)
    assert error.rule == "R-PLAUS-SIZE"
    assert error.field == "timepoints[1].new_lesions[0].short_axis_mm"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sd_min_days", 10**6),
        ("confirmation_min_days", -1),
        ("visit_interval_days", 0),
        ("baseline_window_days", 99999),
        ("reappearance_min_mm", float("nan")),
        ("reappearance_min_mm", 1e30),
    ],
)
def test_settings_out_of_bounds_are_refused(key, value):
    error = refusal(changed(("settings",), {key: value}))
    assert error.field == f"settings.{key}"
    assert error.rule == "R-PLAUS-SETTINGS"
    with pytest.raises(CaseInputError):
        Settings(**{key: value})


def test_dates_before_1900_are_refused_wherever_they_are():
    for path in (("timepoints", 0, "date"), ("randomized_on",), ("died_on",)):
        error = refusal(changed(path, "1800-01-01"))
        assert error.rule in ("R-PLAUS-DATE", "R-PLAUS-ORIGIN"), path


def test_future_dates_are_refused_against_the_callers_clock():
    case = changed(("timepoints", 1, "date"), "9999-12-31")
    error = refusal(case, today=date(2026, 12, 5))
    assert (error.timepoint, error.field, error.rule) == ("W8", "date", "R-PLAUS-DATE")
    assert "9999-12-31 is in the future" in str(error)
    # Without a clock (a pure engine call) the date is not judged against today.
    assert assess_json(case)["timepoints"][1]["date"] == "9999-12-31"
    died = changed(("died_on",), "2027-01-01")
    assert refusal(died, today=date(2026, 12, 5)).field == "died_on"
    assert assess_json(died, today=date(2027, 1, 1))["pfs"]["event"] is True


@pytest.mark.parametrize("key", ["died_on", "new_therapy_on"])
def test_death_and_new_therapy_before_randomisation_are_refused(key):
    error = refusal(changed((key,), "2021-01-05"))
    assert (error.field, error.rule) == (key, "R-PLAUS-ORIGIN")


def test_a_baseline_long_before_randomisation_is_a_finding_not_a_refusal():
    case = changed(("randomized_on",), "2021-03-06")  # 61 days after the baseline
    case["timepoints"][1]["date"] = "2021-04-01"
    warnings = assess_json(case)["warnings"]
    assert [w["rule"] for w in warnings] == ["R-PLAUS-BLWINDOW"]
    assert "61 days before randomisation" in warnings[0]["message"]
    case["settings"] = {"baseline_window_days": 61}
    assert assess_json(case)["warnings"] == []
    case["settings"] = {"baseline_window_days": 60, "strict": True}
    with pytest.raises(Exception, match="R-PLAUS-BLWINDOW"):
        assess_json(case)


def test_scan_dates_of_an_unknown_lesion_are_refused():
    case = changed(("timepoints", 1, "scan_dates"), {"T9": "2021-02-27"})
    error = refusal(case)
    assert (error.timepoint, error.lesion, error.field) == ("W8", "T9", "scan_dates")


def _cli(case: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recist", "assess", "-", *args],
        input=json.dumps(case),
        capture_output=True,
        text=True,
        check=False,
    )


def test_recist_assess_judges_dates_against_today_or_the_day_given():
    case = changed(("timepoints", 1, "date"), "2099-03-01")
    refused = _cli(case)  # today (the machine's date) is before 2099
    assert refused.returncode == 2 and refused.stdout == ""
    assert "timepoint W8, field date: 2099-03-01 is in the future" in refused.stderr
    assert "(R-PLAUS-DATE)" in refused.stderr
    accepted = _cli(case, "--today", "2099-12-31")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["timepoints"][1]["date"] == "2099-03-01"
    bad = _cli(case, "--today", "someday")
    assert bad.returncode == 2 and "'someday' is not a date (YYYY-MM-DD)" in bad.stderr


def test_recist_assess_refuses_1e308_with_the_rule_not_a_traceback():
    refused = _cli(changed(("timepoints", 1, "targets", "T1"), 1e308))
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "not a plausible size (more than 1000 mm)" in refused.stderr
    assert "(R-PLAUS-SIZE)" in refused.stderr
