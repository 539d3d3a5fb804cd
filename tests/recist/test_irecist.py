"""iRECIST (docs/rules.md §10): I-NEW, I-UPD, I-CPD, I-RESET, I-OVR, I-BOR, I-PFS.

The cases follow one subject with a liver target T1 (50 mm at baseline, so PR is ≤ 35 mm
and PD against the baseline nadir is ≥ 60 mm) and a bone non-target NT1, assessed every
six weeks: inside the default confirmation window of 28–56 days (I-CPD-WINDOW).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from recist.errors import CaseInputError, ProtocolDeviationError
from recist.irecist import IAssessed, IResponse, best_overall_responses
from recist.jsonio import assess_json, parse_case
from recist.lesions import Case, Lesion, LesionKind, TargetValue, Timepoint
from recist.settings import Settings
from tests.recist.conftest import BASE_DATE, case, fu

I = IResponse  # noqa: E741 - the paper's prefix


def icase(*follow_ups: dict[str, Any], settings: dict[str, Any] | None = None, **extra: Any):
    """An iRECIST case: T1 50 mm, NT1 present at baseline, follow-ups every 42 days."""
    targets = extra.pop("targets", {"T1": 50.0})
    non_targets = extra.pop("non_targets", ("NT1",))
    return case(
        targets,
        *follow_ups,
        non_targets=non_targets,
        settings={"criteria": "irecist", **(settings or {})},
        every_days=extra.pop("every_days", 42),
        **extra,
    )


def day(n: int) -> str:
    return (BASE_DATE + timedelta(days=n)).isoformat()


def overall(result: dict[str, Any]) -> list[str]:
    return [tp["overall_response"] for tp in result["timepoints"][1:]]


def reasons(result: dict[str, Any], index: int = -1) -> str:
    return "\n".join(result["timepoints"][index]["reasons"])


def new(lesion_id: str, size: float | str | None = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": lesion_id, **fields}
    if size is not None:
        out["size_mm"] = size
    return out


# -- [S17] table 2: timepoint responses without and with a previous iUPD -------------------

# Without a previous iUPD: (target T1, non-target NT1, new lesions) -> response.
TABLE_2_NO_PREVIOUS_IUPD = [
    ("absent", "absent", [], "iCR"),
    ("absent", "present", [], "iPR"),
    (30.0, "present", [], "iPR"),
    (45.0, "present", [], "iSD"),
    (45.0, "progression", [], "iUPD"),
    (60.0, "present", [], "iUPD"),
    (60.0, "progression", [], "iUPD"),
    (60.0, "progression", [new("N1", 12.0, site="lung")], "iUPD"),
]


@pytest.mark.parametrize(("t1", "nt1", "new_lesions", "expected"), TABLE_2_NO_PREVIOUS_IUPD)
def test_table_2_without_a_previous_iupd_the_first_progression_is_iupd_i_upd_1(
    t1, nt1, new_lesions, expected
):
    result = assess_json(
        icase(fu(targets={"T1": t1}, non_targets={"NT1": nt1}, new_lesions=new_lesions))
    )
    assert overall(result) == [expected]
    if expected == "iUPD":
        assert "I-UPD-1" in reasons(result)
        assert result["progression"] is None  # not confirmed: no PFS event (I-PFS)
        assert result["recist1_1"]["timepoints"][-1]["overall_response"] == "PD"


# With a previous iUPD (a new lesion N1 at FU1, targets unchanged): the next assessment.
TABLE_2_AFTER_IUPD = [
    # every lesion gone, the new lesion too: the bar is reset (I-RESET)
    ("absent", "absent", [new("N1", "absent")], "iCR"),
    ("absent", "present", [new("N1", "absent")], "iPR"),
    (30.0, "present", [new("N1", "absent")], "iPR"),
    (45.0, "present", [new("N1", "absent")], "iSD"),
    # the new lesion unchanged and nothing else changed: still iUPD (I-UPD-3)
    (50.0, "present", [new("N1", 12.0)], "iUPD"),
    # its sum up by ≥ 5 mm, or another new lesion: iCPD (I-CPD-3, I-CPD-4)
    (50.0, "present", [new("N1", 17.0)], "iCPD"),
    (50.0, "present", [new("N1", 16.9)], "iUPD"),
    (50.0, "present", [new("N1", 12.0), new("N2", site="bone")], "iCPD"),
    # RECIST 1.1 progression in a category that had not progressed: iCPD
    (60.0, "present", [new("N1", 12.0)], "iCPD"),
    (50.0, "progression", [new("N1", 12.0)], "iCPD"),
]


@pytest.mark.parametrize(("t1", "nt1", "new_lesions", "expected"), TABLE_2_AFTER_IUPD)
def test_table_2_with_a_previous_iupd_from_a_new_lesion(t1, nt1, new_lesions, expected):
    result = assess_json(
        icase(
            fu(targets={"T1": 50.0}, new_lesions=[new("N1", 12.0, site="lung")]),
            fu(targets={"T1": t1}, non_targets={"NT1": nt1}, new_lesions=new_lesions),
        )
    )
    assert overall(result) == ["iUPD", expected]


def test_table_2_non_target_iupd_is_confirmed_by_any_further_increase_i_cpd_2():
    # Row "target iSD, non-target iUPD": a further increase of NT1 (recorded `progression`
    # again) confirms; unchanged (`present`) it stays iUPD.
    first = fu(targets={"T1": 45.0}, non_targets={"NT1": "progression"})
    confirmed = assess_json(
        icase(first, fu(targets={"T1": 45.0}, non_targets={"NT1": "progression"}))
    )
    assert overall(confirmed) == ["iUPD", "iCPD"]
    assert "I-CPD-2" in reasons(confirmed)
    assert confirmed["timepoints"][-1]["non_target_response"] == "iCPD"
    unchanged = assess_json(icase(first, fu(targets={"T1": 45.0})))
    assert overall(unchanged) == ["iUPD", "iUPD"]
    assert unchanged["timepoints"][-1]["non_target_response"] == "iUPD"
    assert "I-UPD-3" in reasons(unchanged)


@pytest.mark.parametrize(
    ("t1_next", "expected"),
    [(65.0, "iCPD"), (64.9, "iUPD"), (70.0, "iCPD"), (60.0, "iUPD")],
)
def test_target_iupd_is_confirmed_by_a_further_5mm_i_cpd_1(t1_next, expected):
    result = assess_json(icase(fu(targets={"T1": 60.0}), fu(targets={"T1": t1_next})))
    assert overall(result) == ["iUPD", expected]
    if expected == "iCPD":
        assert "I-CPD-1" in reasons(result)
        assert result["timepoints"][-1]["target_response"] == "iCPD"


def test_increases_after_iupd_add_up_i_cpd_1():
    # FAQ: a 4 mm increase, then a further 2 mm, confirms (sequential increases are additive).
    result = assess_json(
        icase(fu(targets={"T1": 60.0}), fu(targets={"T1": 64.0}), fu(targets={"T1": 66.0}))
    )
    assert overall(result) == ["iUPD", "iUPD", "iCPD"]
    assert result["progression"]["date"] == day(42)  # the first iUPD (I-PFS)
    assert result["progression"]["iupd_timepoint"] == "FU1"
    assert result["progression"]["timepoint"] == "FU3"


def test_target_and_non_target_iupd_confirmed_by_either_category():
    first = fu(targets={"T1": 60.0}, non_targets={"NT1": "progression"})
    by_target = assess_json(icase(first, fu(targets={"T1": 65.0})))
    by_non_target = assess_json(
        icase(first, fu(targets={"T1": 60.0}, non_targets={"NT1": "progression"}))
    )
    neither = assess_json(icase(first, fu(targets={"T1": 60.0})))
    assert overall(by_target)[-1] == overall(by_non_target)[-1] == "iCPD"
    assert overall(neither)[-1] == "iUPD"


# -- transitions -----------------------------------------------------------------------


def test_iupd_confirmed_by_growth_of_the_new_target_sum_i_cpd_3():
    result = assess_json(
        icase(
            fu(targets={"T1": 50.0}, new_lesions=[new("N1", 12.0, site="lung")]),
            fu(targets={"T1": 50.0}, new_lesions=[new("N1", 15.0)]),
            fu(targets={"T1": 50.0}, new_lesions=[new("N1", 17.0)]),
        )
    )
    assert overall(result) == ["iUPD", "iUPD", "iCPD"]
    last = result["timepoints"][-1]
    assert last["new_target_sum_mm"] == 17.0
    assert last["new_lesion_response"] == "iCPD"
    assert "I-CPD-3" in reasons(result)
    assert result["progression"] == {
        "timepoint": "FU3",
        "date": day(42),
        "reason": "PD_NEW_LESION",
        "back_dated": False,
        "iupd_timepoint": "FU1",
    }
    assert result["pfs"]["event"] is True and result["pfs"]["date"] == day(42)


def test_iupd_confirmed_by_a_further_new_lesion_i_cpd_4():
    result = assess_json(
        icase(
            fu(targets={"T1": 60.0}),
            fu(targets={"T1": 55.0}, new_lesions=[new("N1", site="bone")]),
        )
    )
    assert overall(result) == ["iUPD", "iCPD"]
    assert "I-CPD-4" in reasons(result)
    assert result["progression"]["reason"] == "PD_TARGET"


def test_new_non_target_iupd_confirmed_by_any_increase_i_cpd_3():
    result = assess_json(
        icase(
            fu(new_lesions=[new("N1", site="bone")], targets={"T1": 50.0}),
            fu(new_lesions=[new("N1", state="progression")], targets={"T1": 50.0}),
        )
    )
    assert overall(result) == ["iUPD", "iCPD"]
    assert result["new_lesion_categories"][0]["category"] == "non-target"


def test_reset_then_a_new_iupd_needs_its_own_confirmation_i_reset():
    # iUPD (new lesion) -> iSD (shrinkage, the bar resets) -> iUPD (target PD) -> iCPD.
    result = assess_json(
        icase(
            fu(targets={"T1": 45.0}, new_lesions=[new("N1", 12.0, site="lung")]),
            fu(targets={"T1": 40.0}, new_lesions=[new("N1", 12.0)]),
            fu(targets={"T1": 48.0}, new_lesions=[new("N1", 12.0)]),
            fu(targets={"T1": 55.0}, new_lesions=[new("N1", 12.0)]),
        )
    )
    assert overall(result) == ["iUPD", "iSD", "iUPD", "iCPD"]
    assert "I-RESET" in reasons(result, 2)
    assert "I-UPD-1" in reasons(result, 3)  # 48 mm is ≥ 120 % of the nadir 40 mm, +8 mm
    # The progression is dated to the iUPD this confirmation confirms, not to the first one.
    assert result["progression"]["iupd_timepoint"] == "FU3"
    assert result["progression"]["date"] == day(3 * 42)
    assert result["best_overall_response"] == "iSD"


def test_stable_new_lesions_after_a_reset_do_not_make_iupd_again_i_upd_2():
    # After the reset, N1 (a new target) only makes iUPD again when the new-target sum meets
    # RECIST 1.1 progression against its own nadir.
    follow_ups = [
        fu(targets={"T1": 45.0}, new_lesions=[new("N1", 20.0, site="lung")]),
        fu(targets={"T1": 40.0}, new_lesions=[new("N1", 20.0)]),
        fu(targets={"T1": 40.0}, new_lesions=[new("N1", 22.0)]),
        fu(targets={"T1": 40.0}, new_lesions=[new("N1", 25.0)]),
    ]
    result = assess_json(icase(*follow_ups))
    assert overall(result) == ["iUPD", "iSD", "iSD", "iUPD"]
    assert "I-UPD-2" in reasons(result)
    assert result["timepoints"][-1]["new_target_nadir_mm"] == 20.0


def test_a_new_lesion_seen_again_after_icr_is_iupd_and_needs_growth_to_confirm():
    result = assess_json(
        icase(
            fu(targets={"T1": 40.0}, new_lesions=[new("N1", site="bone")]),
            fu(
                targets={"T1": "absent"},
                non_targets={"NT1": "absent"},
                new_lesions=[new("N1", state="absent")],
            ),
            fu(
                targets={"T1": "absent"},
                non_targets={"NT1": "absent"},
                new_lesions=[new("N1", state="present")],
            ),
            fu(
                targets={"T1": "absent"},
                non_targets={"NT1": "absent"},
                new_lesions=[new("N1", state="present")],
            ),
            fu(
                targets={"T1": "absent"},
                non_targets={"NT1": "absent"},
                new_lesions=[new("N1", state="progression")],
            ),
        )
    )
    assert overall(result) == ["iUPD", "iCR", "iUPD", "iUPD", "iCPD"]
    assert "I-UPD-2" in reasons(result, 3) and "seen again after iCR" in reasons(result, 3)
    assert result["progression"]["iupd_timepoint"] == "FU3"
    assert result["best_overall_response"] == "iCR"


def test_confirmation_window_missed_leaves_iupd_unconfirmed_i_cpd_window():
    result = assess_json(
        icase(
            fu(id="W6", date=day(42), targets={"T1": 60.0}),
            fu(id="W16", date=day(112), targets={"T1": 70.0}),  # 70 days later: > 56
        )
    )
    # The late scan cannot confirm: the bar is reset and it is a new iUPD of its own.
    assert overall(result) == ["iUPD", "iUPD"]
    assert "I-CPD-WINDOW" in reasons(result) and "stays unconfirmed" in reasons(result)
    assert result["progression"] is None
    assert result["pfs"] == {
        "event": False,
        "date": day(112),
        "days": 113,
        "reason": "CENSORED_LAST_ASSESSMENT",
        "explanation": "no progression or death; censored at the last adequate assessment "
        f"W16 ({day(112)})",
    }
    assert result["best_overall_response"] == "iUPD"
    # RECIST 1.1 beside it: PD at W6, an event.
    assert result["recist1_1"]["progression"]["date"] == day(42)
    assert result["recist1_1"]["pfs"]["event"] is True


def test_the_confirmation_window_is_a_setting():
    follow_ups = (
        fu(id="W6", date=day(42), targets={"T1": 60.0}),
        fu(id="W16", date=day(112), targets={"T1": 70.0}),
    )
    wide = assess_json(icase(*follow_ups, settings={"irecist_confirm_max_days": 84}))
    assert overall(wide) == ["iUPD", "iCPD"]
    assert wide["settings"]["irecist_confirm_max_days"] == 84


def test_growth_before_four_weeks_does_not_confirm_but_a_new_lesion_does():
    # FAQ: scans earlier than 4 weeks after iUPD do not confirm it, unless they show an
    # (additional) new lesion.
    growth = assess_json(
        icase(fu(date=day(42), targets={"T1": 60.0}), fu(date=day(56), targets={"T1": 70.0}))
    )
    assert overall(growth) == ["iUPD", "iUPD"]
    assert "earlier than irecist_confirm_min_days" in reasons(growth)
    new_lesion = assess_json(
        icase(
            fu(date=day(42), targets={"T1": 60.0}),
            fu(date=day(56), targets={"T1": 60.0}, new_lesions=[new("N1", site="brain")]),
        )
    )
    assert overall(new_lesion) == ["iUPD", "iCPD"]


def test_iupd_then_ipr_when_the_targets_shrink_further_faq_scenario_b():
    # FAQ: a new lesion (iUPD) does not preclude iPR at the next assessment when the
    # targets shrink further; the new lesion, unchanged, keeps it from iCR.
    result = assess_json(
        icase(
            fu(targets={"T1": 40.0}, new_lesions=[new("N1", 11.0, site="lung")]),
            fu(targets={"T1": 30.0}, new_lesions=[new("N1", 11.0)]),
            fu(
                targets={"T1": "absent"},
                non_targets={"NT1": "absent"},
                new_lesions=[new("N1", 11.0)],
            ),
        )
    )
    assert overall(result) == ["iUPD", "iPR", "iPR"]
    assert result["timepoints"][2]["new_lesion_response"] == "NON-iCR/NON-iUPD"
    assert result["best_overall_response"] == "iPR"


def test_pr_then_a_new_lesion_then_no_change_stays_iupd_faq_scenario_f():
    result = assess_json(
        icase(
            fu(targets={"T1": 30.0}),
            fu(targets={"T1": 30.0}, new_lesions=[new("N1", 11.0, site="lung")]),
            fu(targets={"T1": 30.0}, new_lesions=[new("N1", 11.0)]),
            fu(targets={"T1": 28.0}, new_lesions=[new("N1", 11.0)]),
        )
    )
    # "no change was seen in any disease measurement": iUPD; further shrinkage: iPR again.
    assert overall(result) == ["iPR", "iUPD", "iUPD", "iPR"]


def test_pr_hold_works_under_irecist_faq():
    # FAQ "Managing PR when measurements change slightly": the same principle in iRECIST.
    sums = [70.0, 70.0, 80.0, 80.0, 80.0]
    result = assess_json(
        icase(*[fu(targets={"T1": s}) for s in sums], targets={"T1": 100.0}, non_targets=())
    )
    assert overall(result) == ["iPR"] * 5


def test_a_pr_hold_ends_at_target_progression_i_reset():
    # PR held (R-TGT-HOLD), then target PD (iUPD), then 71 % of baseline: below PD again, so
    # the bar resets against baseline and nadir, and without the hold that is iSD.
    result = assess_json(
        icase(
            fu(targets={"T1": 30.0}),
            fu(targets={"T1": 30.0}),
            fu(targets={"T1": 36.0}),  # 120 % of the nadir 30 mm and 6 mm above it
            fu(targets={"T1": 35.5}),
        )
    )
    assert overall(result) == ["iPR", "iPR", "iUPD", "iSD"]
    assert "I-RESET" in reasons(result)


# -- new lesions: categories and their sum (I-NEW) ---------------------------------------


def test_new_targets_at_most_two_per_organ_i_new_2():
    lesions = [new(f"N{i}", 12.0 + i, site="liver") for i in range(1, 4)]
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=lesions)))
    categories = {n["id"]: n["category"] for n in result["new_lesion_categories"]}
    assert categories == {"N1": "target", "N2": "target", "N3": "non-target"}
    assert result["timepoints"][-1]["new_target_sum_mm"] == 13.0 + 14.0  # own sum (I-NEW-3)
    assert result["timepoints"][-1]["sum_mm"] == 50.0  # not added to the baseline sum
    assert "I-NEW-2" in reasons(result) and "at most 5, 2 per organ" in reasons(result)


def test_new_targets_at_most_five_in_total_i_new_2():
    sites = ["liver", "lung", "brain", "spleen", "adrenal", "skin"]
    lesions = [new(f"N{i}", 15.0, site=s) for i, s in enumerate(sites, 1)]
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=lesions)))
    categories = [n["category"] for n in result["new_lesion_categories"]]
    assert categories == ["target"] * 5 + ["non-target"]
    assert result["timepoints"][-1]["new_target_sum_mm"] == 75.0


def test_new_lesions_are_sized_like_at_baseline_i_new_1():
    lesions = [
        new("N1", 15.0, site="mediastinal lymph node", nodal=True),  # SA ≥ 15: target
        new("N2", 12.0, site="axillary lymph node", nodal=True),  # 10–15: non-target
        new("N3", 9.0, site="hilar lymph node", nodal=True),  # < 10: not a new lesion
        new("N4", 9.9, site="lung"),  # < 10 mm: non-target
        new("N5", 20.0, site="pleural effusion"),  # never measurable (R-MEAS-3)
    ]
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=lesions)))
    categories = {n["id"]: n["category"] for n in result["new_lesion_categories"]}
    assert categories == {
        "N1": "target",
        "N2": "non-target",
        "N4": "non-target",
        "N5": "non-target",
    }
    assert "R-NEW-1" in reasons(result)  # N3 does not count


def test_lymph_nodes_count_as_one_organ_for_new_targets_i_new_2():
    lesions = [
        new(f"N{i}", 16.0, site=f"{station} lymph node", nodal=True)
        for i, station in enumerate(["mediastinal", "axillary", "inguinal"], 1)
    ]
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=lesions)))
    assert [n["category"] for n in result["new_lesion_categories"]] == [
        "target",
        "target",
        "non-target",
    ]
    assert "all lymph nodes count as one organ" in reasons(result)


def test_a_node_may_give_its_short_axis_under_its_older_name():
    lesion = {"id": "N1", "site": "lymph node", "nodal": True, "short_axis_mm": 16.0}
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=[lesion])))
    assert result["new_lesion_categories"][0]["category"] == "target"
    assert result["timepoints"][-1]["new_target_sum_mm"] == 16.0


def test_a_reader_category_beyond_the_limits_is_a_finding_i_new_2():
    lesions = [new(f"N{i}", 12.0, site="liver", category="target") for i in range(1, 4)]
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=lesions)))
    assert [n["category"] for n in result["new_lesion_categories"]] == ["target"] * 3
    (finding,) = result["warnings"]
    assert (finding["rule"], finding["lesion"]) == ("I-NEW-2", "N3")
    strict = icase(fu(targets={"T1": 50.0}, new_lesions=lesions), settings={"strict": True})
    with pytest.raises(ProtocolDeviationError, match=r"N3.*beyond the limits.*I-NEW-2"):
        assess_json(strict)


def test_a_reader_category_that_is_not_measurable_is_a_finding_i_new_1():
    lesion = new("N1", 8.0, site="lung", category="target")
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=[lesion])))
    assert result["warnings"][0]["rule"] == "I-NEW-1"
    assert "not measurable" in result["warnings"][0]["message"]


def test_a_reader_may_follow_a_measurable_new_lesion_as_non_target():
    lesion = new("N1", 30.0, site="liver", category="non-target")
    result = assess_json(icase(fu(targets={"T1": 50.0}, new_lesions=[lesion])))
    assert result["new_lesion_categories"][0]["category"] == "non-target"
    assert result["timepoints"][-1]["new_target_sum_mm"] is None


# -- NE ----------------------------------------------------------------------------------


def test_iupd_followed_only_by_ne_stays_iupd_table_3_example_8():
    result = assess_json(
        icase(
            fu(targets={"T1": 60.0}),
            fu(targets={"T1": "not_evaluated"}),
            fu(targets={"T1": "not_evaluated"}),
        )
    )
    assert overall(result) == ["iUPD", "NE", "NE"]
    assert result["best_overall_response"] == "iUPD"
    assert result["progression"] is None
    assert result["pfs"]["reason"] == "CENSORED_LAST_ASSESSMENT"
    assert result["pfs"]["date"] == day(42)  # the iUPD is the last adequate assessment


def test_an_ne_between_does_not_reopen_the_window():
    # iUPD at day 42, NE at 70, growth at 98: 56 days after the iUPD, inside the window.
    inside = assess_json(
        icase(
            fu(date=day(42), targets={"T1": 60.0}),
            fu(date=day(70), targets={"T1": "not_evaluated"}),
            fu(date=day(98), targets={"T1": 66.0}),
        )
    )
    assert overall(inside) == ["iUPD", "NE", "iCPD"]
    outside = assess_json(
        icase(
            fu(date=day(42), targets={"T1": 60.0}),
            fu(date=day(84), targets={"T1": "not_evaluated"}),
            fu(date=day(99), targets={"T1": 66.0}),
        )
    )
    assert overall(outside) == ["iUPD", "NE", "iUPD"]
    assert outside["progression"] is None


def test_a_partial_sum_confirms_only_when_the_evaluated_targets_alone_grew_5mm():
    # At the iUPD the sum is 90 mm; T2 not evaluated later might have shrunk to 0 mm, so the
    # evaluated targets must reach 95 mm on their own (I-CPD-1, R-TGT-NE).
    def result(t1: float) -> dict[str, Any]:
        return assess_json(
            icase(
                fu(targets={"T1": 70.0, "T2": 20.0}),
                fu(targets={"T1": t1, "T2": "not_evaluated"}),
                targets={"T1": 50.0, "T2": 20.0},
            )
        )

    assert overall(result(95.0)) == ["iUPD", "iCPD"]
    assert overall(result(94.9)) == ["iUPD", "iUPD"]  # still PD on the partial sum: not less
    assert overall(result(80.0)) == ["iUPD", "NE"]  # 80 < 84: the partial sum proves nothing


def test_a_new_target_not_listed_is_not_evaluated_i_new_4():
    result = assess_json(
        icase(
            fu(targets={"T1": 30.0}, new_lesions=[new("N1", 12.0, site="lung")]),
            fu(targets={"T1": 20.0}),
        )
    )
    last = result["timepoints"][-1]
    assert last["new_lesion_response"] == "NE"
    assert last["new_target_sum_mm"] is None and last["new_target_partial_sum_mm"] == 0.0
    assert last["overall_response"] == "iPR"  # reset: the targets shrank; N1 NE bars iCR


# -- iBOR and PFS (I-BOR, I-PFS) ---------------------------------------------------------

ORIGIN = date(2021, 1, 1)

# [S17] table 3, one choice per "or"; iBOR without confirmation of response.
TABLE_3 = [
    ((I.ICR, I.ICR, I.IPR, I.IUPD, I.ICPD), I.ICR),  # example 1
    ((I.IUPD, I.IPR, I.ICR, I.IUPD, I.ICPD), I.ICR),  # example 2
    ((I.IUPD, I.IPR, I.ISD, I.IUPD, I.NE), I.IPR),  # example 3
    ((I.IUPD, I.ISD, I.IPR, I.NE, I.ICPD), I.IPR),  # example 4
    ((I.IUPD, I.ISD, I.IUPD, I.ICPD, I.NE), I.ISD),  # example 5
    ((I.IUPD, I.ICPD, I.ICR, I.ICR, I.ICR), I.ICPD),  # example 6: nothing after iCPD counts
    ((I.IUPD, I.IUPD, I.ICPD, I.IPR, I.IPR), I.ICPD),  # example 7
    ((I.IUPD, I.NE, I.NE, I.NE, I.NE), I.IUPD),  # example 8
]


def _case(settings: Settings | None = None, targets: bool = True) -> Case:
    lesion = Lesion("T1", "liver", LesionKind.TARGET if targets else LesionKind.NON_TARGET)
    baseline = Timepoint("BL", ORIGIN, {"T1": TargetValue.measured(50)} if targets else {})
    return Case("S", (lesion,), (baseline,), settings or Settings(criteria="irecist"))


def _seq(*responses: IResponse) -> list[IAssessed]:
    return [
        IAssessed(f"TP{i}", ORIGIN + timedelta(days=56 * i), r) for i, r in enumerate(responses, 1)
    ]


@pytest.mark.parametrize(("responses", "expected"), TABLE_3)
def test_table_3_best_overall_response_i_bor(responses, expected):
    _, unconfirmed = best_overall_responses(_case(), _seq(*responses))
    assert unconfirmed.response is expected
    assert any("I-BOR" in r for r in unconfirmed.reasons)


def test_isd_counts_only_after_the_sd_minimum_i_bor():
    _, best = best_overall_responses(
        _case(), [IAssessed("TP1", ORIGIN + timedelta(days=30), I.ISD)]
    )
    assert best.response is I.NE
    assert "R-BOR-SDMIN" in best.reasons[0]


def test_confirmed_ibor_needs_a_later_response_i_bor():
    settings = Settings(criteria="irecist", confirmation=True)
    confirmed, unconfirmed = best_overall_responses(
        _case(settings), _seq(I.IPR, I.IUPD, I.IPR, I.IPR)
    )
    assert (confirmed.response, confirmed.timepoint) == (I.IPR, "TP3")
    assert unconfirmed.response is I.IPR
    confirmed, _ = best_overall_responses(_case(settings), _seq(I.IPR, I.IUPD, I.ICPD))
    assert confirmed.response is I.ISD


def test_pfs_under_irecist_is_dated_at_the_confirmed_iupd_i_pfs():
    result = assess_json(
        icase(
            fu(targets={"T1": 60.0}),
            fu(targets={"T1": 66.0}),
            randomized_on=BASE_DATE.isoformat(),
        )
    )
    assert result["pfs"] == {
        "event": True,
        "date": day(42),
        "days": 43,
        "reason": "PD_TARGET",
        "explanation": f"progression called at FU2 on {day(42)}",
    }


def test_an_equivocal_lesion_back_dates_the_iupd_r_new_2():
    result = assess_json(
        icase(
            fu(targets={"T1": 50.0}, new_lesions=[new("N1", equivocal=True, site="liver")]),
            fu(targets={"T1": 50.0}, new_lesions=[new("N1", 12.0)]),
            fu(targets={"T1": 50.0}, new_lesions=[new("N1", 18.0)]),
        )
    )
    assert overall(result) == ["iSD", "iUPD", "iCPD"]
    assert result["progression"]["date"] == day(42)
    assert result["progression"]["back_dated"] is True


def test_death_before_confirmation_is_the_pfs_event():
    result = assess_json(icase(fu(targets={"T1": 60.0}), died_on=day(60)))
    assert (result["pfs"]["reason"], result["pfs"]["date"]) == ("DEATH", day(60))


def test_confirmation_after_a_new_therapy_does_not_count_for_pfs():
    result = assess_json(
        icase(fu(targets={"T1": 60.0}), fu(targets={"T1": 70.0}), new_therapy_on=day(60))
    )
    assert result["progression"] is None
    assert result["pfs"]["reason"] == "CENSORED_NEW_THERAPY"


# -- the contract ------------------------------------------------------------------------


def test_the_recist_1_1_result_is_beside_the_irecist_one():
    follow_ups = (
        fu(targets={"T1": 60.0}),
        fu(targets={"T1": 40.0}),
    )
    result = assess_json(icase(*follow_ups))
    assert result["criteria"] == "irecist"
    assert overall(result) == ["iUPD", "iSD"]
    plain = assess_json(case({"T1": 50.0}, *follow_ups, non_targets=("NT1",), every_days=42))
    beside = dict(result["recist1_1"])
    assert beside.pop("settings")["criteria"] == "irecist"
    plain.pop("settings")
    assert beside == plain
    assert plain["best_overall_response"] == "PD"


def test_default_criteria_change_nothing():
    plain = assess_json(case({"T1": 50.0}, fu(targets={"T1": 60.0})))
    assert "criteria" not in plain and "recist1_1" not in plain
    assert plain["timepoints"][-1]["overall_response"] == "PD"
    assert plain["settings"]["criteria"] == "recist1.1"


@pytest.mark.parametrize(
    "lesion",
    [
        {"id": "N1", "category": "target", "size_mm": 12.0},
        {"id": "N1", "state": "present"},
        {"id": "N1", "size_mm": "absent"},
    ],
)
def test_irecist_new_lesion_fields_are_refused_under_recist_1_1(lesion):
    with pytest.raises(CaseInputError, match=r"lesion N1.*iRECIST.*I-NEW-4.*criteria"):
        parse_case(case({"T1": 50.0}, fu(targets={"T1": 50.0}, new_lesions=[lesion])))


def test_a_node_size_mm_is_its_short_axis_under_recist_1_1():
    lesion = {"id": "N1", "site": "lymph node", "nodal": True, "size_mm": 9.0}
    result = assess_json(case({"T1": 50.0}, fu(targets={"T1": 50.0}, new_lesions=[lesion])))
    assert result["timepoints"][-1]["overall_response"] == "SD"  # < 10 mm: not new (R-NEW-1)


@pytest.mark.parametrize(
    ("second", "match"),
    [
        (new("N1", 12.0, category="non-target"), r"N1.*category is fixed.*I-NEW-4"),
        (new("N1", state="present"), r"N1.*new target lesion.*give its size_mm.*I-NEW-4"),
        ({"id": "N1", "size_mm": 12.0, "state": "present"}, r"N1.*size or its state.*I-NEW-4"),
        (new("N1", 12.0, site="liver"), r"N1.*site 'liver' differs.*I-NEW-4"),
        (new("N1", 12.0, equivocal=True), r"N1.*cannot be equivocal again.*R-NEW-2"),
    ],
)
def test_contradicting_new_lesion_listings_are_refused(second, match):
    c = icase(
        fu(targets={"T1": 50.0}, new_lesions=[new("N1", 12.0, site="lung")]),
        fu(targets={"T1": 50.0}, new_lesions=[second]),
    )
    with pytest.raises(CaseInputError, match=match):
        assess_json(c)


def test_a_new_lesion_is_not_first_listed_absent():
    c = icase(fu(targets={"T1": 50.0}, new_lesions=[new("N1", "absent")]))
    with pytest.raises(CaseInputError, match=r"timepoint FU1, lesion N1.*first listed"):
        assess_json(c)


def test_the_confirmation_window_settings_are_checked_r_plaus_settings():
    c = icase(settings={"irecist_confirm_min_days": 60})
    with pytest.raises(CaseInputError, match=r"irecist_confirm_max_days.*R-PLAUS-SETTINGS"):
        parse_case(c)
    c = icase(settings={"criteria": "irecist1.0"})
    with pytest.raises(CaseInputError, match=r"settings.criteria.*'irecist1.0'"):
        parse_case(c)


def test_non_target_disease_only_gives_non_icr_non_iupd_i_ovr():
    # [S17] table 3 note: with non-target disease only, iCR or NON-iCR/NON-iUPD.
    result = assess_json(
        icase(fu(), fu(non_targets={"NT1": "absent"}), targets={}, randomized_on=day(0))
    )
    assert overall(result) == ["NON-iCR/NON-iUPD", "iCR"]
    assert result["timepoints"][1]["target_response"] is None
    assert result["best_overall_response"] == "iCR"


def test_the_python_api_follows_plain_timepoints_under_irecist():
    from recist.assessment import assess
    from recist.lesions import NewLesion

    node = NewLesion("N1", "lymph node", nodal=True, short_axis_mm=16.0)
    c = Case(
        "S",
        (Lesion("T1", "liver", LesionKind.TARGET),),
        (
            Timepoint("BL", ORIGIN, {"T1": TargetValue.measured(50)}),
            Timepoint(
                "W8", ORIGIN + timedelta(days=56), {"T1": TargetValue.measured(50)}, {}, (node,)
            ),
        ),
        Settings(criteria="irecist"),
    )
    result = assess(c)
    assert result.timepoints[1].overall_response is I.IUPD
    assert [n.category.value for n in result.new_lesions] == ["target"]
    assert result.recist1_1.timepoints[1].overall_response.value == "PD"


@pytest.mark.parametrize(
    ("size", "match"),
    [
        (
            1200.0,
            r"lesion N1, field .*size_mm: 1200.0 is not a size from 0 to 1000 mm.*R-PLAUS-SIZE",
        ),
        (-1.0, r"lesion N1, field .*size_mm: -1.0 is a negative size"),
        (True, r"size_mm: True is not a size in mm, 'too_small', 'absent' or 'not_evaluated'"),
        ("gone", r"size_mm: 'gone' is not a size in mm"),
    ],
)
def test_a_new_lesion_size_is_checked_like_every_size_r_plaus_size(size, match):
    c = icase(fu(targets={"T1": 50.0}, new_lesions=[new("N1", size, site="lung")]))
    with pytest.raises(CaseInputError, match=match):
        parse_case(c)


def _node_followed_by_state(state: str) -> dict[str, Any]:
    """A 12 mm new node (a new non-target by I-NEW-1) listed at the next visit by its
    state alone, as I-NEW-4 lists a new non-target."""
    return {
        "subject_id": "NODE",
        "settings": {"criteria": "irecist"},
        "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 50.0}},
            {
                "id": "W6",
                "date": "2021-02-15",
                "targets": {"T1": 50.0},
                "new_lesions": [
                    {"id": "N1", "site": "mediastinal lymph node", "nodal": True, "size_mm": 12.0}
                ],
            },
            {
                "id": "W12",
                "date": "2021-03-29",
                "targets": {"T1": 50.0},
                "new_lesions": [{"id": "N1", "state": state}],
            },
        ],
    }


def test_a_new_node_listed_later_by_its_state_is_read_at_its_last_short_axis_i_new_4():
    # Before, the RECIST 1.1 view asked such a listing for a short axis (R-NEW-1) and the
    # case was refused, although I-NEW-4 lists a new non-target by its state.
    result = assess_json(_node_followed_by_state("present"))
    w12 = result["timepoints"][2]
    assert result["new_lesion_categories"][0]["category"] == "non-target"
    # Present, as if re-measured unchanged: the run opened at W6 stays open (I-UPD).
    measured = _node_followed_by_state("present")
    measured["timepoints"][2]["new_lesions"] = [{"id": "N1", "size_mm": 12.0}]
    again = assess_json(measured)["timepoints"][2]
    assert (w12["new_lesion_response"], w12["overall_response"]) == (
        again["new_lesion_response"],
        again["overall_response"],
    ) == ("iUPD", "iUPD")
    assert result["recist1_1"]["timepoints"][2]["new_lesions"] == "yes"  # still 12 mm
    (node,) = parse_case(_node_followed_by_state("present")).timepoints[2].new_lesions
    assert node.nodal and node.short_axis_mm == 12.0 and node.counts
    gone = assess_json(_node_followed_by_state("absent"))
    assert gone["timepoints"][2]["new_lesion_response"] == "iCR"
    assert gone["recist1_1"]["timepoints"][2]["new_lesions"] == "no"
