"""Non-target response (§4.3.3): R-NT-CR, R-NT-PD, R-NT-NE, R-NT-NONCRPD."""

from __future__ import annotations

from tests.recist.conftest import assess, case, fu, last


def nt(*states: dict[str, str]) -> list[str]:
    result = assess(
        case(
            {"T1": 30.0},
            *(fu(targets={"T1": 30.0}, non_targets=s) for s in states),
            non_targets=("NT1", "NT2"),
        )
    )
    return [tp["non_target_response"] for tp in result["timepoints"][1:]]


def test_all_non_targets_gone_is_cr():
    assert nt({"NT1": "absent", "NT2": "absent"}) == ["CR"]


def test_unequivocal_progression_of_one_non_target_is_pd():
    assert nt({"NT1": "progression"}) == ["PD"]


def test_a_non_target_not_evaluated_without_progression_is_ne():
    assert nt({"NT1": "not_evaluated"}) == ["NE"]


def test_progression_beats_not_evaluated():
    assert nt({"NT1": "not_evaluated", "NT2": "progression"}) == ["PD"]


def test_non_target_still_present_is_non_cr_non_pd_never_sd():
    assert nt({}) == ["NON-CR/NON-PD"]


def test_non_target_missing_from_a_follow_up_counts_as_not_evaluated():
    c = case({"T1": 30.0}, fu(targets={"T1": 30.0}), non_targets=("NT1",))
    del c["timepoints"][1]["non_targets"]["NT1"]
    assert last(assess(c))["non_target_response"] == "NE"


def test_non_target_reappearing_after_overall_cr_is_pd():
    result = assess(
        case(
            {"T1": 30.0},
            fu(targets={"T1": 0}, non_targets={"NT1": "absent"}),
            fu(targets={"T1": 0}, non_targets={"NT1": "present"}),
            non_targets=("NT1",),
        )
    )
    assert [tp["overall_response"] for tp in result["timepoints"][1:]] == ["CR", "PD"]
    assert result["progression"]["reason"] == "PD_NONTARGET"
    assert any("R-REAPPEAR" in r for r in last(result)["reasons"])


def test_case_without_non_targets_reports_none():
    result = assess(case({"T1": 30.0}, fu(targets={"T1": 30.0})))
    assert last(result)["non_target_response"] is None
