"""The statistician's conventions under iRECIST (issue 15; docs/rules.md "Statistical
conventions"): ``accept_sd``, ``confirmation_max_days``, ``pr_after_cr_confirms`` and
``unconfirmed_before_pd`` change the confirmed iBOR (I-BOR, R-BOR-CONF) as they change the
RECIST 1.1 BOR; ``censor_at`` the iRECIST PFS (I-PFS, §8); ``settings_profile`` sets them
at once. Each test shows the default and the convention giving different answers.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from recist.irecist import (
    I_CODE,
    RECIST_CLASS,
    IAssessed,
    IResponse,
    best_overall_responses,
    recist_class,
)
from recist.jsonio import assess_json
from recist.lesions import Case, Lesion, LesionKind, TargetValue, Timepoint
from recist.response import Response
from recist.settings import Settings, UnconfirmedBeforePd
from tests.recist.conftest import BASE_DATE, case, fu

I = IResponse  # noqa: E741 - the paper's prefix
ORIGIN = date(2021, 1, 1)


def _case(**settings: Any) -> Case:
    lesion = Lesion("T1", "liver", LesionKind.TARGET)
    baseline = Timepoint("BL", ORIGIN, {"T1": TargetValue.measured(500)})
    all_settings = Settings(criteria="irecist", confirmation=True, **settings)
    return Case("S", (lesion,), (baseline,), all_settings)


def _seq(*responses: IResponse, every: int = 56) -> list[IAssessed]:
    return [
        IAssessed(f"TP{i}", ORIGIN + timedelta(days=every * i), r)
        for i, r in enumerate(responses, 1)
    ]


def _confirmed(responses: list[IAssessed], **settings: Any) -> tuple[IResponse, str | None]:
    confirmed, _ = best_overall_responses(_case(**settings), responses)
    return confirmed.response, confirmed.timepoint


def test_accept_sd_lets_one_isd_sit_between_an_ipr_and_its_confirmation_r_bor_conf():
    responses = _seq(I.IPR, I.ISD, I.IPR)
    assert _confirmed(responses) == (I.ISD, "TP1")  # the iSD breaks it (default)
    assert _confirmed(responses, accept_sd=True) == (I.IPR, "TP1")
    # Two iSD, or an iUPD, still break it.
    assert _confirmed(_seq(I.IPR, I.ISD, I.ISD, I.IPR), accept_sd=True) == (I.ISD, "TP1")
    assert _confirmed(_seq(I.IPR, I.IUPD, I.IPR), accept_sd=True)[0] is I.ISD


def test_confirmation_max_days_bounds_the_confirming_assessment_r_bor_conf():
    responses = _seq(I.IPR, I.IPR)  # 56 days apart
    assert _confirmed(responses) == (I.IPR, "TP1")
    confirmed, _ = best_overall_responses(_case(confirmation_max_days=40), responses)
    assert confirmed.response is I.ISD
    assert "≤ 40 days later" in "\n".join(confirmed.reasons)  # the reason says what it needed
    assert "a later iPR or iCR" in "\n".join(confirmed.reasons)  # in iRECIST's words
    assert _confirmed(responses, confirmation_max_days=56) == (I.IPR, "TP1")  # inclusive


def test_pr_after_cr_confirms_off_an_ipr_after_an_icr_breaks_the_confirmation_r_bor_conf():
    responses = _seq(I.ICR, I.IPR)
    assert _confirmed(responses) == (I.IPR, "TP1")  # RECIST 1.1 table 3: CR, PR is a PR
    assert _confirmed(responses, pr_after_cr_confirms=False) == (I.ISD, "TP1")
    # An iCR confirmed by an iCR is untouched.
    assert _confirmed(_seq(I.ICR, I.ICR), pr_after_cr_confirms=False) == (I.ICR, "TP1")


def test_unconfirmed_before_pd_pd_drops_an_unconfirmed_ipr_followed_by_icpd_r_bor_conf():
    responses = _seq(I.IPR, I.IUPD, I.ICPD)
    assert _confirmed(responses) == (I.ISD, "TP1")  # default: table 3's "PR, PD" is SD
    pd = UnconfirmedBeforePd.PD
    confirmed, _ = best_overall_responses(_case(unconfirmed_before_pd=pd), responses)
    assert (confirmed.response, confirmed.timepoint) == (I.ICPD, "TP3")
    assert "followed by iCPD" in "\n".join(confirmed.reasons)
    # An iUPD that resets (I-RESET) is no progression: the iPR counts as iSD again.
    assert _confirmed(_seq(I.IPR, I.IUPD, I.ISD), unconfirmed_before_pd=pd) == (I.ISD, "TP1")
    # An earlier qualifying iSD still gives iSD.
    assert _confirmed(_seq(I.ISD, I.IPR, I.ICPD), unconfirmed_before_pd=pd) == (I.ISD, "TP1")


def test_the_unconfirmed_ibor_does_not_depend_on_the_conventions_i_bor():
    responses = _seq(I.ICR, I.IPR)
    for settings in ({}, {"pr_after_cr_confirms": False}, {"confirmation_max_days": 30}):
        _, unconfirmed = best_overall_responses(_case(**settings), responses)
        assert (unconfirmed.response, unconfirmed.timepoint) == (I.ICR, "TP1")


def _day(n: int) -> str:
    return (BASE_DATE + timedelta(days=n)).isoformat()


def _irecist(*follow_ups: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return case(
        {"T1": 30.0}, *follow_ups, settings={"criteria": "irecist", **settings}, every_days=42
    )


def test_censor_at_any_censors_the_irecist_pfs_at_the_last_assessment_i_pfs():
    followups = (fu(targets={"T1": 28.0}), fu(targets={"T1": "not_evaluated"}))
    default = assess_json(_irecist(*followups))
    anyone = assess_json(_irecist(*followups, censor_at="any"))
    assert [tp["overall_response"] for tp in default["timepoints"][1:]] == ["iSD", "NE"]
    assert (default["pfs"]["event"], default["pfs"]["date"]) == (False, _day(42))
    assert (anyone["pfs"]["event"], anyone["pfs"]["date"]) == (False, _day(84))
    assert anyone["pfs"] == anyone["recist1_1"]["pfs"]  # the same choice as RECIST 1.1's


def test_the_admiralonco_profile_sets_the_ibor_and_pfs_conventions_at_once():
    pr_cr_pr = (
        fu(date=_day(56), targets={"T1": 20.0}),  # iPR
        fu(date=_day(70), targets={"T1": 0.0}),  # iCR, 14 days later: confirms nothing
        fu(date=_day(112), targets={"T1": 4.0}),  # iPR (a residue < 5 mm, R-REAPPEAR)
        fu(date=_day(154), targets={"T1": "not_evaluated"}),  # NE
    )
    default = assess_json(_irecist(*pr_cr_pr, confirmation=True))
    profile = assess_json(_irecist(*pr_cr_pr, confirmation=True, settings_profile="admiralonco"))
    overall = [tp["overall_response"] for tp in profile["timepoints"][1:]]
    assert overall == ["iPR", "iCR", "iPR", "NE"]
    assert default["best_overall_response"] == "iPR"
    assert profile["best_overall_response"] == "iSD"  # pr_after_cr_confirms: false
    assert default["pfs"]["date"] == _day(112)
    assert profile["pfs"]["date"] == _day(154)  # censor_at: "any"


@pytest.mark.parametrize("code", list(IResponse))
def test_every_irecist_code_has_one_recist_1_1_class(code: IResponse):
    assert RECIST_CLASS[code] in Response
    assert recist_class(code.value) == RECIST_CLASS[code].value
    if code is not I.ICPD:
        assert I_CODE[RECIST_CLASS[code]] is code  # the inverse of the timepoint codes


def test_recist_class_keeps_recist_1_1_codes_and_reads_both_progressions_as_pd():
    assert [recist_class(c) for c in ("CR", "NON-CR/NON-PD", "PD", "NE")] == [
        "CR", "NON-CR/NON-PD", "PD", "NE"
    ]  # fmt: skip
    assert (recist_class("iUPD"), recist_class("iCPD")) == ("PD", "PD")
