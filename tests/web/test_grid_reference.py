"""The follow-up form's reference line (web.pages.grid.follow_up_reference): the PR and PD sums it
shows come from the engine's thresholds (recist.target.pr_max_sum, pd_min_sum) and agree
with the engine's own call on a follow-up whose sum is the one shown, or 0.1 mm beyond it,
including sums finer than 0.1 mm (R-EXACT)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from recist.jsonio import assess_json
from web.pages.grid import follow_up_reference

BASELINE = date(2021, 1, 4)


def _case(baseline: dict[str, float], *follow_ups: dict[str, float]) -> dict[str, Any]:
    return {
        "subject_id": "S-1",
        "lesions": [
            {"id": lid, "site": f"organ {lid}", "kind": "target", "nodal": False}
            for lid in baseline
        ],
        "timepoints": [
            {
                "id": "BL" if number == 0 else f"W{8 * number}",
                "date": (BASELINE + timedelta(weeks=8 * number)).isoformat(),
                "targets": dict(sizes),
                "non_targets": {},
            }
            for number, sizes in enumerate((baseline, *follow_ups))
        ],
    }


def _with_sum(case: dict[str, Any], total: float) -> dict[str, Any]:
    """``case`` and one more follow-up whose sum of diameters is ``total``, shared out
    between the targets (to 0.0001 mm; the first takes what the others leave)."""
    baseline = case["timepoints"][0]["targets"]
    first, *others = baseline
    share = round(total / len(baseline), 4)
    sizes = {first: round(total - share * len(others), 4), **dict.fromkeys(others, share)}
    return _case(baseline, *(tp["targets"] for tp in case["timepoints"][1:]), sizes)


def _response_at(case: dict[str, Any], total: float) -> str:
    result = assess_json(_with_sum(case, total))
    last = result["timepoints"][-1]
    assert last["sum_mm"] == pytest.approx(total, abs=1e-9)
    return str(last["target_response"])


CASES = {
    # baseline sum 50.0: PR ≤ 35.0, PD (nadir 50.0) ≥ 60.0 (120 % dominates)
    "50.0": ({"T1": 30.0, "T2": 20.0}, (), 35.0, 60.0),
    # 33.33: 70 % is 23.331 (shown 23.3), 120 % is 39.996 (shown 40.0)
    "33.33": ({"T1": 20.0, "T2": 13.33}, (), 23.3, 40.0),
    # 35.04: 70 % is 24.528 (shown 24.5), 120 % is 42.048 (shown 42.1)
    "35.04": ({"T1": 30.0, "T2": 5.04}, (), 24.5, 42.1),
    # 47.1234: 70 % is 32.98638 (shown 32.9), 120 % is 56.54808 (shown 56.6)
    "47.1234": ({"T1": 40.0, "T2": 7.1234}, (), 32.9, 56.6),
    # nadir 20.0 after a PR: PD ≥ 25.0 (the 5 mm rule dominates 120 % = 24.0)
    "nadir 20": ({"T1": 30.0, "T2": 20.0}, ({"T1": 12.0, "T2": 8.0},), 35.0, 25.0),
    # nadir 40.0 after an SD: PD ≥ 48.0 (120 % dominates + 5 mm = 45.0)
    "nadir 40": ({"T1": 30.0, "T2": 20.0}, ({"T1": 25.0, "T2": 15.0},), 35.0, 48.0),
    # nadir 13.33: PD ≥ 18.33 exactly (+ 5 mm), shown 18.4
    "nadir 13.33": ({"T1": 30.0, "T2": 20.0}, ({"T1": 8.0, "T2": 5.33},), 35.0, 18.4),
    # sums above one lesion's size limit: 1800 → PR ≤ 1260.0, PD ≥ 2160.0
    "large": ({"T1": 600.0, "T2": 600.0, "T3": 600.0}, (), 1260.0, 2160.0),
}


@pytest.mark.parametrize(("baseline", "earlier", "pr_max", "pd_min"), CASES.values(), ids=CASES)
def test_the_sums_shown_are_the_engine_thresholds_rounded_to_their_own_side(
    baseline: dict[str, float],
    earlier: tuple[dict[str, float], ...],
    pr_max: float,
    pd_min: float,
) -> None:
    case = _case(baseline, *earlier)
    reference = follow_up_reference(case, assess_json(case), None)
    assert reference is not None
    assert (reference["pr_max"], reference["pd_min"]) == (pr_max, pd_min)


@pytest.mark.parametrize(("baseline", "earlier", "pr_max", "pd_min"), CASES.values(), ids=CASES)
def test_the_engine_agrees_with_the_sums_shown_and_0_1mm_beyond_them(
    baseline: dict[str, float],
    earlier: tuple[dict[str, float], ...],
    pr_max: float,
    pd_min: float,
) -> None:
    case = _case(baseline, *earlier)
    reference = follow_up_reference(case, assess_json(case), None)
    assert reference is not None
    shown_pr, shown_pd = reference["pr_max"], reference["pd_min"]
    if reference["hold_from"] is None:  # R-TGT-HOLD would keep a larger sum PR
        assert _response_at(case, shown_pr) == "PR"
        assert _response_at(case, round(shown_pr + 0.1, 1)) == "SD"
    assert _response_at(case, shown_pd) == "PD"
    assert _response_at(case, round(shown_pd - 0.1, 1)) != "PD"


def test_editing_a_follow_up_compares_it_with_its_own_nadir() -> None:
    # W8 (sum 20.0) is the nadir for W16; editing W8 itself compares it with the baseline.
    case = _case({"T1": 30.0, "T2": 20.0}, {"T1": 12.0, "T2": 8.0}, {"T1": 15.0, "T2": 9.0})
    result = assess_json(case)
    at_w8 = follow_up_reference(case, result, "W8")
    at_w16 = follow_up_reference(case, result, "W16")
    assert at_w8 is not None and at_w16 is not None
    assert (at_w8["nadir"], at_w8["pr_max"], at_w8["pd_min"]) == (50.0, 35.0, 60.0)
    assert (at_w16["nadir"], at_w16["nadir_at"], at_w16["pd_min"]) == (20.0, "W8", 25.0)
