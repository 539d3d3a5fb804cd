"""The engine's records (recist.lesions, above ``Timepoint``): dataclasses with ``Final``
fields and their own ``__init__`` instead of frozen dataclasses, so that the compiled core
builds them in C. They must keep what the frozen dataclasses gave: equality and hashing
by value, ``repr``, ``dataclasses.replace``, fresh containers per instance; and, in the
compiled core (``make test-mypyc``), be native classes that refuse an assignment."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

import recist.lesions
from recist.assessment import CaseResult, TimepointResult, assess
from recist.baseline import Finding
from recist.best_response import Assessed, BestResponse, Query
from recist.irecist import (
    IAssessed,
    IBestResponse,
    IrecistResult,
    IrecistTimepoint,
    IrecistTimepointResult,
    IResponse,
)
from recist.jsonio import parse_case
from recist.lesions import Case, Lesion, LesionKind, TargetValue, Timepoint
from recist.pfs import Pfs, PfsReason, Progression
from recist.response import Response

RECORDS = [
    Timepoint,
    Case,
    IrecistTimepoint,
    TimepointResult,
    CaseResult,
    BestResponse,
    Assessed,
    Query,
    Finding,
    Progression,
    Pfs,
    IrecistTimepointResult,
    IBestResponse,
    IrecistResult,
    IAssessed,
]
COMPILED = (recist.lesions.__file__ or "").endswith(".so")


def _case(**changes: object) -> Case:
    lesions = (
        Lesion("T1", "Liver", LesionKind.TARGET),
        Lesion("NT1", "bone", LesionKind.NON_TARGET),
    )
    timepoints = (
        Timepoint("BL", date(2024, 1, 8), {"T1": TargetValue.measured(40.0)}),
        Timepoint("W8", date(2024, 3, 4), {"T1": TargetValue.measured(20.0)}),
    )
    fields: dict[str, object] = {"subject_id": "S-1", "lesions": lesions, "timepoints": timepoints}
    return Case(**{**fields, **changes})  # type: ignore[arg-type]


def _irecist_result() -> IrecistResult:
    case = parse_case(
        {
            "subject_id": "S-2",
            "settings": {"criteria": "irecist"},
            "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
            "timepoints": [
                {"id": "BL", "date": "2024-01-08", "targets": {"T1": 40.0}},
                {"id": "W8", "date": "2024-03-04", "targets": {"T1": 20.0}},
            ],
        }
    )
    result = assess(case)
    assert isinstance(result, IrecistResult)
    return result


def test_equal_by_value_and_hashable_like_the_frozen_dataclasses():
    first = Progression("W8", date(2024, 3, 4), PfsReason.PD_TARGET)
    same = Progression("W8", date(2024, 3, 4), PfsReason.PD_TARGET, back_dated=False)
    assert first == same and hash(first) == hash(same)
    assert first != Progression("W8", date(2024, 3, 4), PfsReason.PD_TARGET, back_dated=True)
    assert len({first, same}) == 1
    assert repr(first) == (
        "Progression(timepoint='W8', date=datetime.date(2024, 3, 4), "
        "reason=<PfsReason.PD_TARGET: 'PD_TARGET'>, back_dated=False)"
    )
    assert Query("R", "W8", "m") == Query(rule="R", timepoint="W8", message="m")
    assert BestResponse(Response.PR, "W8", ("x",)) != BestResponse(Response.SD, "W8", ("x",))


def test_a_case_assessed_twice_gives_equal_results():
    assert assess(_case()) == assess(_case())
    assert assess(_case()).timepoints[1].overall_response is Response.PR


def test_replace_rebuilds_a_case_with_its_derived_lesion_lists():
    case = _case()
    renamed = dataclasses.replace(case, subject_id="S-2", arm="A")
    assert (renamed.subject_id, renamed.arm, renamed.timepoints) == ("S-2", "A", case.timepoints)
    assert [le.id for le in renamed.target_lesions] == ["T1"]
    assert [le.id for le in renamed.non_target_lesions] == ["NT1"]
    assert renamed != case


def test_each_timepoint_gets_its_own_containers():
    first, second = Timepoint("W8", date(2024, 3, 4)), Timepoint("W16", date(2024, 4, 29))
    assert first.targets == {} and first.targets is not second.targets
    assert first.non_targets is not second.non_targets
    assert first.scan_dates is not second.scan_dates


def test_replace_gives_an_equal_record_of_every_kind():
    """``dataclasses.replace`` passes every field by name to ``__init__``: each record's
    parameters must be its fields."""
    case = _case()
    result = assess(case)
    samples = [
        case,
        case.timepoints[0],
        IrecistTimepoint("W8", date(2024, 3, 4), new_lesion_records=()),
        result,
        result.timepoints[1],
        result.best_overall_response,
        Assessed("W8", date(2024, 3, 4), Response.PR),
        Query("R-BOR-CRPR", "W8", "m"),
        Finding("R-MEAS-1", "T1", "m"),
        Progression("W8", date(2024, 3, 4), PfsReason.PD_TARGET, back_dated=True),
        result.pfs,
    ]
    irecist = _irecist_result()
    samples += [
        irecist,
        irecist.timepoints[1],
        irecist.best_overall_response,
        IAssessed("W8", date(2024, 3, 4), IResponse.IPR),
    ]
    assert {type(x) for x in samples} == set(RECORDS)
    for sample in samples:
        assert dataclasses.replace(sample) == sample, type(sample).__name__


@pytest.mark.skipif(not COMPILED, reason="the compiled core only (make test-mypyc)")
def test_in_the_compiled_core_the_records_are_native_and_refuse_assignment():
    for record in RECORDS:
        assert "__mypyc_attrs__" in record.__dict__, f"{record.__name__} is not a native class"
    case = _case()
    with pytest.raises(AttributeError):
        case.subject_id = "S-9"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        case.timepoints[0].date = date(2020, 1, 1)  # type: ignore[misc]
    result = assess(case)
    with pytest.raises(AttributeError):
        result.timepoints[1].overall_response = Response.CR  # type: ignore[misc]
    with pytest.raises(AttributeError):
        result.pfs.event = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        _irecist_result().timepoints[1].overall_response = None  # type: ignore[misc]
