"""Assess a case: every timepoint's responses, the best overall response, progression and
PFS. This is the engine's entry point (:func:`assess`)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from recist.baseline import Finding, check_baseline, enforce_findings
from recist.best_response import (
    Assessed,
    BestResponse,
    Query,
    best_overall_response_confirmed,
    best_overall_response_unconfirmed,
    counted_timepoints,
    data_queries,
)
from recist.lesions import (
    NOT_EVALUATED,
    Case,
    Length,
    NewLesion,
    NonTargetState,
    TargetState,
    TargetValue,
    Timepoint,
    format_mm,
)
from recist.new_lesions import NewLesionTracker
from recist.non_target import non_target_states_response
from recist.overall import overall_response
from recist.pfs import (
    Pfs,
    Progression,
    adequate_assessments,
    describe_progression,
    pfs,
    progression_event,
)
from recist.response import NewLesionStatus, Response
from recist.settings import Criteria, Settings
from recist.target import TargetTracker, pct

if TYPE_CHECKING:
    from recist.irecist import IrecistResult


@dataclass(slots=True, init=False, unsafe_hash=True)
class TimepointResult:
    """The assessment of one timepoint; responses are ``None`` at baseline.

    Immutable like the engine's other records (``Final`` fields; ``recist.lesions``, above
    ``Timepoint``): one is built per timepoint, so its construction is on the batch path.
    """

    id: Final[str]
    date: Final[datetime.date]
    sum: Final[Length | None]  # the sum of diameters; None when a target was not evaluated
    partial_sum: Final[Length | None]  # the sum of the evaluated targets when incomplete
    nadir: Final[Length | None]
    change_from_baseline_pct: Final[float | None]
    change_from_nadir_pct: Final[float | None]
    target_response: Final[Response | None]
    non_target_response: Final[Response | None]
    new_lesions: Final[NewLesionStatus | None]
    overall_response: Final[Response | None]
    reasons: Final[tuple[str, ...]]
    flags: Final[dict[str, tuple[str, ...]]]  # lesion id -> markers for the grid

    def __init__(
        self,
        id: str,
        date: datetime.date,
        sum: Length | None,
        partial_sum: Length | None,
        nadir: Length | None,
        change_from_baseline_pct: float | None,
        change_from_nadir_pct: float | None,
        target_response: Response | None,
        non_target_response: Response | None,
        new_lesions: NewLesionStatus | None,
        overall_response: Response | None,
        reasons: tuple[str, ...],
        flags: dict[str, tuple[str, ...]],
    ) -> None:
        self.id = id
        self.date = date
        self.sum = sum
        self.partial_sum = partial_sum
        self.nadir = nadir
        self.change_from_baseline_pct = change_from_baseline_pct
        self.change_from_nadir_pct = change_from_nadir_pct
        self.target_response = target_response
        self.non_target_response = non_target_response
        self.new_lesions = new_lesions
        self.overall_response = overall_response
        self.reasons = reasons
        self.flags = flags


@dataclass(slots=True, init=False, unsafe_hash=True)
class CaseResult:
    subject_id: Final[str]
    settings: Final[Settings]
    warnings: Final[tuple[Finding, ...]]
    queries: Final[tuple[Query, ...]]
    timepoints: Final[tuple[TimepointResult, ...]]
    best_overall_response: Final[BestResponse]
    best_overall_response_confirmed: Final[BestResponse]
    best_overall_response_unconfirmed: Final[BestResponse]
    progression: Final[Progression | None]
    pfs: Final[Pfs]

    def __init__(
        self,
        subject_id: str,
        settings: Settings,
        warnings: tuple[Finding, ...],
        queries: tuple[Query, ...],
        timepoints: tuple[TimepointResult, ...],
        best_overall_response: BestResponse,
        best_overall_response_confirmed: BestResponse,
        best_overall_response_unconfirmed: BestResponse,
        progression: Progression | None,
        pfs: Pfs,
    ) -> None:
        self.subject_id = subject_id
        self.settings = settings
        self.warnings = warnings
        self.queries = queries
        self.timepoints = timepoints
        self.best_overall_response = best_overall_response
        self.best_overall_response_confirmed = best_overall_response_confirmed
        self.best_overall_response_unconfirmed = best_overall_response_unconfirmed
        self.progression = progression
        self.pfs = pfs


_TARGET_MARKERS = {
    TargetState.NOT_EVALUATED: ("not_evaluated",),
    TargetState.TOO_SMALL: ("too_small",),
    TargetState.FRAGMENTS: ("split",),
    TargetState.MERGED: ("merged",),
    TargetState.ABSENT: ("absent",),
}
_NON_TARGET_MARKERS = {
    NonTargetState.NOT_EVALUATED: ("not_evaluated",),
    NonTargetState.ABSENT: ("absent",),
    NonTargetState.PROGRESSION: ("progression",),
}


def _flags(case: Case, tp: Timepoint, baseline: bool) -> dict[str, tuple[str, ...]]:
    """Grid markers per lesion: missing, too small, split, merged, new, equivocal."""
    target_ids = [le.id for le in case.target_lesions]
    nt_ids = [] if baseline else [le.id for le in case.non_target_lesions]
    states = tp.non_targets
    return _markers(
        target_ids,
        [tp.target(i) for i in target_ids],
        nt_ids,
        [states.get(i, NonTargetState.NOT_EVALUATED) for i in nt_ids],
        tp.new_lesions,
    )


def _markers(
    target_ids: Sequence[str],
    values: Sequence[TargetValue],
    nt_ids: Sequence[str],
    nt_states: Sequence[NonTargetState],
    new_lesions: Sequence[NewLesion],
) -> dict[str, tuple[str, ...]]:
    """:func:`_flags` from the records of the timepoint, looked up once by the caller."""
    flags: dict[str, tuple[str, ...]] = {}
    measured = TargetState.MEASURED
    for index, value in enumerate(values):
        if value.state is not measured:
            marker = _TARGET_MARKERS.get(value.state)
            if marker is not None:
                flags[target_ids[index]] = marker
    present = NonTargetState.PRESENT
    for index, state in enumerate(nt_states):
        if state is not present:
            nt_marker = _NON_TARGET_MARKERS.get(state)
            if nt_marker is not None:
                flags[nt_ids[index]] = nt_marker
    for new in new_lesions:
        flags[new.id] = ("new", "equivocal") if new.equivocal else ("new",)
    return flags


_OVERALL: dict[tuple[Response | None, Response | None, NewLesionStatus], tuple[Response, str]] = {}


def _overall(
    target: Response | None, non_target: Response | None, new: NewLesionStatus
) -> tuple[Response, str]:
    """:func:`overall_response` and the reason line it gives, cached: the answer depends
    on the three codes alone (the engine's own enum members, never look-alike strings)."""
    key = (target, non_target, new)
    found = _OVERALL.get(key)
    if found is None:
        overall, why = overall_response(target, non_target, new)
        found = _OVERALL[key] = (overall, f"overall {overall.value}: {why}")
    return found


def assess(case: Case) -> CaseResult | IrecistResult:
    """Assess one case under its protocol settings (RECIST 1.1 §4, §8; iRECIST §10).

    Returns
    -------
    CaseResult
        Per-timepoint sums, responses and reasons; best overall response (per the
        confirmation setting, and both variants); the first progression; PFS.
    IrecistResult
        With the setting ``criteria: "irecist"``: the same by iRECIST
        (:func:`recist.irecist.assess_irecist`), the RECIST 1.1 result beside it as
        ``recist1_1``.

    Raises
    ------
    ProtocolDeviationError
        In strict mode, when the baseline has findings (R-MEAS, R-SEL), or under iRECIST a
        new lesion's (I-NEW-1, I-NEW-2).
    """
    result = assess_recist1_1(case)
    if case.settings.criteria is Criteria.IRECIST:
        from recist.irecist import assess_irecist  # builds on this module's result

        return assess_irecist(case, result)
    return result


def assess_recist1_1(case: Case) -> CaseResult:
    """:func:`assess` by RECIST 1.1, whatever the ``criteria`` setting."""
    findings = check_baseline(case)
    enforce_findings(case, findings)
    settings = case.settings
    targets = case.target_lesions
    tracker = TargetTracker(case)
    new_tracker = NewLesionTracker()
    baseline_sum = tracker.baseline_sum
    target_ids = tracker.target_ids
    nt_ids = tuple(le.id for le in case.non_target_lesions)
    results = [_baseline_result(case, tracker)]
    followups: list[Assessed] = []
    progression: Progression | None = None
    nt_not_evaluated = NonTargetState.NOT_EVALUATED
    # Methods are called on their objects, not bound to locals first: the compiled core
    # (make mypyc) calls a method or dict.get natively, but a bound one as any Python object.
    for tp in case.timepoints[1:]:
        tp_targets = tp.targets
        values = [tp_targets.get(i, NOT_EVALUATED) for i in target_ids]
        tp_states = tp.non_targets
        nt_states = [tp_states.get(i, nt_not_evaluated) for i in nt_ids]
        reasons: list[str]
        if targets:
            target = tracker.assess_values(tp, values)
            target_response: Response | None = target.response
            reasons = [*target.reasons]
        else:
            target = None
            target_response = None
            reasons = []
        if nt_ids:
            nt = non_target_states_response(nt_ids, nt_states, after_cr=tracker.had_cr)
            nt_response: Response | None = nt.response
            reasons += nt.reasons
        else:
            nt = None
            nt_response = None
        new = new_tracker.assess(tp)
        if new.reasons:
            reasons += new.reasons
        overall, overall_reason = _overall(target_response, nt_response, new.status)
        reasons.append(overall_reason)
        if overall is Response.PD and progression is None:  # §8: date the first PD
            progression = progression_event(case, tp, target, nt, new)
            reasons.append(describe_progression(progression))
        total: Length | None = None  # the sum, when complete (R-TGT-NE)
        partial: Length | None = None
        nadir: Length | None = None
        from_baseline: float | None = None
        from_nadir: float | None = None
        if target is not None:
            nadir = target.nadir
            if target.sum.complete:
                total = target.sum.total
                from_baseline = pct(total - baseline_sum, baseline_sum) if baseline_sum else None
                from_nadir = pct(total - nadir, nadir) if nadir else None
            else:
                partial = target.sum.total
            tracker.record(tp, target, overall)
        elif overall is Response.CR:
            tracker.had_cr = True  # R-REAPPEAR, for the non-targets' sake
        results.append(
            TimepointResult(
                tp.id,
                tp.date,
                total,
                partial,
                nadir,
                from_baseline,
                from_nadir,
                target_response,
                nt_response,
                new.status,
                overall,
                tuple(reasons),
                _markers(target_ids, values, nt_ids, nt_states, tp.new_lesions),
            )
        )
        followups.append(Assessed(tp.id, tp.date, overall))

    confirmed, unconfirmed = best_responses(case, followups)
    return CaseResult(
        subject_id=case.subject_id,
        settings=settings,
        warnings=tuple(findings),
        queries=tuple(data_queries(followups)),
        timepoints=tuple(results),
        best_overall_response=confirmed if settings.confirmation else unconfirmed,
        best_overall_response_confirmed=confirmed,
        best_overall_response_unconfirmed=unconfirmed,
        progression=progression,
        pfs=pfs(
            case, progression, adequate_assessments([(a.id, a.date, a.response) for a in followups])
        ),
    )


def _baseline_result(case: Case, tracker: TargetTracker) -> TimepointResult:
    """The baseline's row: its sum of diameters (R-SEL-3) and its lesions' markers."""
    baseline = case.timepoints[0]
    base_targets = baseline.targets
    target_ids = tracker.target_ids
    has_targets = bool(case.target_lesions)
    baseline_sum = tracker.baseline_sum
    return TimepointResult(
        id=baseline.id,
        date=baseline.date,
        sum=baseline_sum if has_targets else None,
        partial_sum=None,
        nadir=None,
        change_from_baseline_pct=None,
        change_from_nadir_pct=None,
        target_response=None,
        non_target_response=None,
        new_lesions=None,
        overall_response=None,
        reasons=(
            (f"R-SEL-3: baseline sum of diameters {format_mm(baseline_sum)}",)
            if has_targets
            else ()
        ),
        flags=_markers(
            target_ids,
            [base_targets.get(i, NOT_EVALUATED) for i in target_ids],
            (),
            (),
            baseline.new_lesions,
        ),
    )


def best_responses(case: Case, followups: list[Assessed]) -> tuple[BestResponse, BestResponse]:
    """The best overall response with and without confirmation (§7), over the follow-ups
    that count (R-BOR-CUT), each led by the notes on the ones cut."""
    settings = case.settings
    counted, cut_notes = counted_timepoints(followups, settings, case.new_therapy_on)
    origin = case.origin
    unconfirmed = best_overall_response_unconfirmed(counted, origin, settings)
    confirmed = best_overall_response_confirmed(
        counted, origin, settings, has_targets=bool(case.target_lesions)
    )
    if cut_notes:
        unconfirmed = BestResponse(
            unconfirmed.response, unconfirmed.timepoint, (*cut_notes, *unconfirmed.reasons)
        )
        confirmed = BestResponse(
            confirmed.response, confirmed.timepoint, (*cut_notes, *confirmed.reasons)
        )
    return confirmed, unconfirmed
