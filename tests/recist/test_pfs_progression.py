"""Progression dating (§8) as its own functions of recist.pfs: progression_event,
describe_progression, adequate_assessments and Pfs.to_dict, the pieces assess and the web
(PFS derived again after an adjudicator's override) share."""

from __future__ import annotations

from datetime import date

import pytest

from recist.assessment import assess as assess_case
from recist.jsonio import parse_case
from recist.new_lesions import NewLesionAssessment
from recist.non_target import NonTargetAssessment
from recist.pfs import (
    PfsReason,
    Progression,
    adequate_assessments,
    describe_progression,
    progression_event,
)
from recist.response import NewLesionStatus, Response
from recist.target import TargetAssessment, TargetSum
from tests.recist.conftest import assess, case, fu

NO_NEW = NewLesionAssessment(NewLesionStatus.NO, ())
TARGET_PD = TargetAssessment(Response.PD, TargetSum(600_000, True, ()), 400_000, ())
NT_PD = NonTargetAssessment(Response.PD, (), ("NT2",))


def _case(**settings: str):
    return parse_case(
        case(
            {"T1": 20.0, "T2": 20.0},
            fu(
                date="2021-03-10",
                targets={"T1": 30.0, "T2": 30.0},
                non_targets={"NT2": "progression"},
                new_lesions=[{"id": "N1", "site": "lung"}],
                scan_dates={"T1": "2021-03-08", "NT1": "2021-03-01", "NT2": "2021-03-05"},
            ),
            non_targets=("NT1", "NT2"),
            settings=dict(settings) or None,
        )
    )


def test_a_target_pd_is_dated_by_the_earliest_scan_of_the_targets():
    c = _case()
    progression = progression_event(c, c.timepoints[1], TARGET_PD, None, NO_NEW)
    assert progression == Progression("FU1", date(2021, 3, 8), PfsReason.PD_TARGET, False)


def test_a_non_target_pd_is_dated_by_the_scans_of_the_progressed_non_targets_only():
    c = _case()
    progression = progression_event(c, c.timepoints[1], None, NT_PD, NO_NEW)
    assert progression == Progression("FU1", date(2021, 3, 5), PfsReason.PD_NONTARGET, False)


def test_the_earliest_cause_wins():
    c = _case()
    new = NewLesionAssessment(NewLesionStatus.YES, (), date(2021, 3, 10))
    progression = progression_event(c, c.timepoints[1], TARGET_PD, NT_PD, new)
    assert (progression.date, progression.reason) == (date(2021, 3, 5), PfsReason.PD_NONTARGET)


def test_on_equal_dates_target_then_non_target_then_new_lesion():
    c = _case(progression_date="timepoint")
    new = NewLesionAssessment(NewLesionStatus.YES, (), date(2021, 3, 10))
    tp = c.timepoints[1]
    assert progression_event(c, tp, TARGET_PD, NT_PD, new).reason is PfsReason.PD_TARGET
    assert progression_event(c, tp, None, NT_PD, new).reason is PfsReason.PD_NONTARGET


def test_the_latest_rule_takes_the_latest_scan_of_the_visit():
    c = _case(progression_date="latest")
    progression = progression_event(c, c.timepoints[1], None, NT_PD, NO_NEW)
    assert progression.date == date(2021, 3, 10)


def test_a_confirmed_equivocal_new_lesion_keeps_its_first_sighting():
    c = _case()
    new = NewLesionAssessment(NewLesionStatus.YES, (), date(2021, 1, 30), back_dated=True)
    progression = progression_event(c, c.timepoints[1], TARGET_PD, None, new)
    assert progression == Progression("FU1", date(2021, 1, 30), PfsReason.PD_NEW_LESION, True)
    assert describe_progression(progression) == (
        "progression dated 2021-01-30 (PD_NEW_LESION, back-dated to the first sighting, R-NEW-2)"
    )


def test_nothing_to_date_without_a_pd():
    c = _case()
    with pytest.raises(ValueError, match="FU1"):
        progression_event(c, c.timepoints[1], None, None, NO_NEW)


def test_the_progression_line_of_assess_is_describe_progression():
    c = _case()
    result = assess_case(c)
    assert result.progression is not None
    assert result.timepoints[1].reasons[-1] == describe_progression(result.progression)


def test_adequate_assessments_leave_out_ne_and_missing_responses():
    followups = [
        ("W8", date(2021, 3, 1), Response.SD),
        ("W16", date(2021, 4, 26), Response.NE),
        ("W24", date(2021, 6, 21), None),
        ("W32", date(2021, 8, 16), Response.NON_CR_NON_PD),
    ]
    assert adequate_assessments(followups) == [
        ("W8", date(2021, 3, 1)),
        ("W32", date(2021, 8, 16)),
    ]


def test_pfs_to_dict_is_the_json_contract_shape():
    c = case({"T1": 30.0}, fu(date="2021-03-01", targets={"T1": 40.0}), randomized_on="2021-01-01")
    assert assess_case(parse_case(c)).pfs.to_dict() == assess(c)["pfs"]
