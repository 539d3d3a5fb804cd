"""iRECIST: RECIST 1.1 for trials of immunotherapy (Seymour et al., Lancet Oncol 2017, and
the RECIST Working Group's answers to questions; ``docs/rules.md`` §10).

iRECIST keeps RECIST 1.1's measurements, sums, nadir and tables and changes what a
progression means. The first RECIST 1.1 progression is only *unconfirmed* (iUPD, I-UPD-1);
the next assessment, within the confirmation window (I-CPD-WINDOW), confirms it (iCPD) by
further growth or by any further new lesion (I-CPD-1..4). Without confirmation the
timepoint stays iUPD while the disease has not changed (I-UPD-3); once it shrinks back to
iSD, iPR or iCR the bar resets (I-RESET) and a later progression is a new iUPD that needs
its own confirmation. New lesions are measured and categorised like a baseline (I-NEW-1,
I-NEW-2) and followed with a sum of their own (I-NEW-3, I-NEW-4).

The engine's entry point is still :func:`recist.assessment.assess`: with the setting
``criteria: "irecist"`` it calls :func:`assess_irecist` with the RECIST 1.1 result of the
same case, which the iRECIST result carries as ``recist1_1``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Final, NamedTuple

from recist.baseline import (
    LYMPH_NODE_ORGAN,
    MAX_TARGETS,
    MAX_TARGETS_PER_ORGAN,
    Finding,
    measurability,
    organ_of,
)
from recist.best_response import Assessed, Query, confirmation, confirmation_needs
from recist.errors import CaseInputError, ProtocolDeviationError
from recist.lesions import (
    NOT_EVALUATED,
    UNITS_PER_MM,
    Case,
    Length,
    Lesion,
    LesionKind,
    NewLesion,
    NonTargetState,
    TargetState,
    TargetValue,
    Timepoint,
    format_mm,
    length_to_mm,
)
from recist.new_lesions import NewLesionAssessment, NewLesionTracker
from recist.non_target import NonTargetAssessment, non_target_states_response
from recist.pfs import Pfs, Progression, describe_progression, pfs, progression_event
from recist.response import NewLesionStatus, Response
from recist.settings import Settings, UnconfirmedBeforePd
from recist.target import (
    TargetAssessment,
    TargetTracker,
    has_reappeared,
    is_gone,
    pct,
    pd_min_sum,
)

if TYPE_CHECKING:
    from recist.assessment import CaseResult


# I-CPD-1, I-CPD-3: a further increase of a sum that confirms an iUPD (inclusive, R-EXACT).
CONFIRM_MIN_INCREASE: Length = 5 * UNITS_PER_MM
_PROGRESSION = NonTargetState.PROGRESSION
_SEEN = (NonTargetState.PRESENT, NonTargetState.PROGRESSION)
# I-NEW-2: new target lesions, like a baseline's targets (R-SEL-1).
MAX_NEW_TARGETS = MAX_TARGETS
MAX_NEW_TARGETS_PER_ORGAN = MAX_TARGETS_PER_ORGAN


class IResponse(StrEnum):
    """An iRECIST response, spelled as CDISC and admiralonco spell it."""

    ICR = "iCR"
    IPR = "iPR"
    ISD = "iSD"
    NON_ICR_NON_IUPD = "NON-iCR/NON-iUPD"
    IUPD = "iUPD"
    ICPD = "iCPD"
    NE = "NE"


# RECIST 1.1's category responses in iRECIST's words (PD is only ever unconfirmed: I-UPD-1).
I_CODE: dict[Response, IResponse] = {
    Response.CR: IResponse.ICR,
    Response.PR: IResponse.IPR,
    Response.SD: IResponse.ISD,
    Response.NON_CR_NON_PD: IResponse.NON_ICR_NON_IUPD,
    Response.PD: IResponse.IUPD,
    Response.NE: IResponse.NE,
}

# The RECIST 1.1 class of each iRECIST response: iUPD and iCPD are both progressions, the
# one unconfirmed (I-UPD-1), the other confirmed (I-CPD-1..4). The one map for every reader
# of iRECIST codes in RECIST 1.1's words: adequacy of an assessment (§8), plot colours,
# endpoint derivation (which keeps iUPD apart: only a confirmed progression ends a response).
RECIST_CLASS: dict[IResponse, Response] = {
    **{i_code: code for code, i_code in I_CODE.items()},
    IResponse.ICPD: Response.PD,
}


def recist_class(code: str) -> str:
    """The RECIST 1.1 code of a response code: an iRECIST code's class
    (:data:`RECIST_CLASS`); any other code (RECIST 1.1's own) unchanged."""
    try:
        return RECIST_CLASS[IResponse(code)].value
    except ValueError:
        return code


# I-BOR: iCR > iPR > iSD = NON-iCR/NON-iUPD; below them iCPD, then iUPD, then NE.
_RANK = {
    IResponse.ICR: 5,
    IResponse.IPR: 4,
    IResponse.ISD: 3,
    IResponse.NON_ICR_NON_IUPD: 3,
}
_STABLE = (IResponse.ISD, IResponse.NON_ICR_NON_IUPD)
_RESPONDING = (IResponse.ICR, IResponse.IPR)


class NewLesionCategory(StrEnum):
    """How a new lesion is followed (I-NEW-1): measured like a target, or as present."""

    TARGET = "target"
    NON_TARGET = "non-target"


_NEW_SIZE_STATES = frozenset(
    {TargetState.MEASURED, TargetState.TOO_SMALL, TargetState.ABSENT, TargetState.NOT_EVALUATED}
)


@dataclass(frozen=True, slots=True)
class NewLesionRecord:
    """One new lesion as recorded at one follow-up (I-NEW-4).

    Attributes
    ----------
    id, site, nodal, equivocal
        As for :class:`recist.lesions.NewLesion` (R-NEW-1, R-NEW-2); site and nodal are
        those of the lesion's first listing when a later listing leaves them out.
    category
        The reader's category at the lesion's first sighting; ``None`` lets the engine
        categorise it (I-NEW-1, I-NEW-2).
    size
        Its size (LD; a node's short axis), ``too_small``, ``absent`` or
        ``not_evaluated``; ``None`` when not given.
    state
        For a new non-target lesion: ``present``, ``absent``, ``progression`` or
        ``not_evaluated``; ``None`` when not given (then present, unless ``size`` says).
    """

    id: str
    site: str = ""
    nodal: bool = False
    equivocal: bool = False
    category: NewLesionCategory | None = None
    size: TargetValue | None = None
    state: NonTargetState | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise CaseInputError("a new lesion needs a non-empty id", field="new_lesions")
        if self.category is not None and not isinstance(self.category, NewLesionCategory):
            object.__setattr__(self, "category", NewLesionCategory(self.category))
        if self.state is not None and not isinstance(self.state, NonTargetState):
            object.__setattr__(self, "state", NonTargetState(self.state))
        object.__setattr__(self, "site", self.site.strip().lower())
        if self.size is not None and self.state is not None:
            raise CaseInputError(
                "a new lesion gives either its size or its state, not both (I-NEW-4)",
                lesion=self.id,
                field="new_lesions",
                rule="I-NEW-4",
            )
        if self.size is not None and self.size.state not in _NEW_SIZE_STATES:
            raise CaseInputError(
                "a new lesion's size is a number of mm, 'too_small', 'absent' or "
                "'not_evaluated' (I-NEW-4)",
                lesion=self.id,
                field="new_lesions",
                rule="I-NEW-4",
            )

    @property
    def shown(self) -> bool:
        """Whether the lesion was seen at this timepoint (neither absent nor not evaluated)."""
        if self.size is not None:
            return self.size.state in (TargetState.MEASURED, TargetState.TOO_SMALL)
        return self.state in (None, NonTargetState.PRESENT, NonTargetState.PROGRESSION)

    def as_new_lesion(self, earlier_short_axis: float | None = None) -> NewLesion:
        """The lesion as RECIST 1.1 sees it at this timepoint (R-NEW-1: a node by its SA).

        A node listed by its state (a new non-target, I-NEW-4) has no size here: RECIST
        1.1 then reads ``earlier_short_axis``, the short axis it was last measured at."""
        short_axis = earlier_short_axis if self.nodal else None
        if self.nodal and self.size is not None and self.size.size is not None:
            short_axis = length_to_mm(self.size.size)
        return NewLesion(self.id, self.site, self.equivocal, self.nodal, short_axis)


@dataclass(slots=True, init=False, unsafe_hash=True)
class IrecistTimepoint(Timepoint):
    """A follow-up with its new lesions as iRECIST follows them (I-NEW-4).

    ``new_lesions`` (the RECIST 1.1 view) lists the new lesions seen at this timepoint;
    ``new_lesion_records`` every listing, including those recorded absent or not evaluated.
    Build it with :func:`irecist_timepoint`, which keeps the two in step.
    """

    new_lesion_records: Final[tuple[NewLesionRecord, ...]]

    def __init__(
        self,
        id: str,
        date: date,
        targets: dict[str, TargetValue] | None = None,
        non_targets: dict[str, NonTargetState] | None = None,
        new_lesions: tuple[NewLesion, ...] = (),
        scan_dates: dict[str, date] | None = None,
        new_lesion_records: tuple[NewLesionRecord, ...] = (),
    ) -> None:
        # Not super(): a slots dataclass is a new class, which super()'s cell does not know.
        Timepoint.__init__(self, id, date, targets, non_targets, new_lesions, scan_dates)
        self.new_lesion_records = new_lesion_records


def irecist_timepoint(
    tp_id: str,
    when: date,
    targets: dict[str, TargetValue],
    non_targets: dict[str, NonTargetState],
    records: Sequence[NewLesionRecord],
    scan_dates: dict[str, date],
    short_axes: Mapping[str, float] | None = None,
) -> IrecistTimepoint:
    """A timepoint whose RECIST 1.1 new lesions are the ``records`` that show a lesion;
    ``short_axes``: each nodal new lesion's short axis as last measured at an earlier
    timepoint, for a node listed here by its state (R-NEW-1, I-NEW-4)."""
    earlier = short_axes or {}
    return IrecistTimepoint(
        tp_id,
        when,
        targets,
        non_targets,
        tuple([r.as_new_lesion(earlier.get(r.id)) for r in records if r.equivocal or r.shown]),
        scan_dates,
        tuple(records),
    )


def _records(tp: Timepoint) -> tuple[NewLesionRecord, ...]:
    """The new-lesion listings of ``tp``; a plain timepoint lists what RECIST 1.1 sees."""
    if isinstance(tp, IrecistTimepoint):
        return tp.new_lesion_records
    return tuple(
        [
            NewLesionRecord(
                n.id,
                n.site,
                n.nodal,
                n.equivocal,
                size=(
                    TargetValue.measured(n.short_axis_mm)
                    if n.nodal and n.short_axis_mm is not None
                    else None
                ),
            )
            for n in tp.new_lesions
        ]
    )


@dataclass(frozen=True, slots=True)
class NewLesionInfo:
    """A new lesion once it counts (R-NEW-1) and is categorised (I-NEW-1, I-NEW-2)."""

    id: str
    site: str
    nodal: bool
    category: NewLesionCategory
    first_seen: str  # the timepoint that first showed it unequivocally
    organ: str  # for I-NEW-2 (R-SEL-2: lymph nodes and paired organs count as one)

    @property
    def lesion(self) -> Lesion:
        """The lesion as the size rules see it (R-TGT-CR, R-REAPPEAR: a node by its SA)."""
        return Lesion(self.id, self.site or "new lesion", LesionKind.TARGET, self.nodal)

    def to_dict(self) -> dict[str, str | bool]:
        return {
            "id": self.id,
            "site": self.site,
            "nodal": self.nodal,
            "category": self.category.value,
            "first_seen": self.first_seen,
        }


@dataclass(slots=True, init=False, unsafe_hash=True)
class IrecistTimepointResult:
    """The iRECIST assessment of one timepoint; responses are ``None`` at baseline."""

    id: Final[str]
    date: Final[datetime.date]
    reasons: Final[tuple[str, ...]]
    flags: Final[dict[str, tuple[str, ...]]]
    sum: Final[Length | None]
    partial_sum: Final[Length | None]
    nadir: Final[Length | None]
    change_from_baseline_pct: Final[float | None]
    change_from_nadir_pct: Final[float | None]
    target_response: Final[IResponse | None]
    non_target_response: Final[IResponse | None]
    new_lesions: Final[NewLesionStatus | None]
    new_lesion_response: Final[IResponse | None]  # None: no new lesion on record
    new_target_sum: Final[Length | None]  # I-NEW-3; None without new targets or incomplete
    new_target_partial_sum: Final[Length | None]
    new_target_nadir: Final[Length | None]
    overall_response: Final[IResponse | None]

    def __init__(
        self,
        id: str,
        date: datetime.date,
        reasons: tuple[str, ...],
        flags: dict[str, tuple[str, ...]],
        sum: Length | None = None,
        partial_sum: Length | None = None,
        nadir: Length | None = None,
        change_from_baseline_pct: float | None = None,
        change_from_nadir_pct: float | None = None,
        target_response: IResponse | None = None,
        non_target_response: IResponse | None = None,
        new_lesions: NewLesionStatus | None = None,
        new_lesion_response: IResponse | None = None,
        new_target_sum: Length | None = None,
        new_target_partial_sum: Length | None = None,
        new_target_nadir: Length | None = None,
        overall_response: IResponse | None = None,
    ) -> None:
        self.id = id
        self.date = date
        self.reasons = reasons
        self.flags = flags
        self.sum = sum
        self.partial_sum = partial_sum
        self.nadir = nadir
        self.change_from_baseline_pct = change_from_baseline_pct
        self.change_from_nadir_pct = change_from_nadir_pct
        self.target_response = target_response
        self.non_target_response = non_target_response
        self.new_lesions = new_lesions
        self.new_lesion_response = new_lesion_response
        self.new_target_sum = new_target_sum
        self.new_target_partial_sum = new_target_partial_sum
        self.new_target_nadir = new_target_nadir
        self.overall_response = overall_response


@dataclass(slots=True, init=False, unsafe_hash=True)
class IBestResponse:
    """The iBOR (I-BOR) and the timepoint that gave it."""

    response: Final[IResponse]
    timepoint: Final[str | None]
    reasons: Final[tuple[str, ...]]

    def __init__(
        self,
        response: IResponse,
        timepoint: str | None,
        reasons: tuple[str, ...],
    ) -> None:
        self.response = response
        self.timepoint = timepoint
        self.reasons = reasons


@dataclass(slots=True, init=False, unsafe_hash=True)
class IrecistResult:
    """An iRECIST assessment of one case, with the RECIST 1.1 result beside it.

    ``progression`` is the confirmed progression (I-PFS): ``timepoint`` the iCPD that
    confirmed it, ``date`` that of the first iUPD of its run (``iupd_timepoint``).
    """

    subject_id: Final[str]
    settings: Final[Settings]
    warnings: Final[tuple[Finding, ...]]
    queries: Final[tuple[Query, ...]]
    timepoints: Final[tuple[IrecistTimepointResult, ...]]
    best_overall_response: Final[IBestResponse]
    best_overall_response_confirmed: Final[IBestResponse]
    best_overall_response_unconfirmed: Final[IBestResponse]
    progression: Final[Progression | None]
    iupd_timepoint: Final[str | None]
    pfs: Final[Pfs]
    new_lesions: Final[tuple[NewLesionInfo, ...]]
    recist1_1: Final[CaseResult]

    def __init__(
        self,
        subject_id: str,
        settings: Settings,
        warnings: tuple[Finding, ...],
        queries: tuple[Query, ...],
        timepoints: tuple[IrecistTimepointResult, ...],
        best_overall_response: IBestResponse,
        best_overall_response_confirmed: IBestResponse,
        best_overall_response_unconfirmed: IBestResponse,
        progression: Progression | None,
        iupd_timepoint: str | None,
        pfs: Pfs,
        new_lesions: tuple[NewLesionInfo, ...],
        recist1_1: CaseResult,
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
        self.iupd_timepoint = iupd_timepoint
        self.pfs = pfs
        self.new_lesions = new_lesions
        self.recist1_1 = recist1_1


@dataclass(slots=True, init=False, unsafe_hash=True)
class IAssessed:
    """One follow-up as the iBOR sees it (I-BOR)."""

    id: Final[str]
    date: Final[datetime.date]
    response: Final[IResponse]

    def __init__(
        self,
        id: str,
        date: datetime.date,
        response: IResponse,
    ) -> None:
        self.id = id
        self.date = date
        self.response = response


class _Snapshot(NamedTuple):
    """The measurements of one iUPD timepoint, to tell a change at the next (I-UPD-3)."""

    targets: dict[str, Length | None]
    new_targets: dict[str, Length | None]
    shown: frozenset[str]  # new lesions and progressed non-targets seen then


@dataclass(slots=True)
class _Run:
    """An open iUPD: from its first iUPD until it is confirmed, reset, or its window passes."""

    first_id: str
    first_date: date
    last_id: str  # the latest iUPD of the run (I-CPD-WINDOW's maximum counts from it)
    last_date: date
    progression: Progression  # §8's date of the first iUPD (I-PFS)
    targets_progressed: bool  # the baseline targets met PD at the first iUPD
    new_progressed: bool  # new lesions made the first iUPD
    target_reference: dict[str, Length | None]  # I-CPD-1: sizes at the first iUPD
    new_target_reference: dict[str, Length | None]  # I-CPD-3
    last: _Snapshot
    progressed_non_targets: set[str] = field(default_factory=set)


def _growth(reference: Mapping[str, Length | None], now: Mapping[str, Length | None]) -> Length:
    """How much the lesions measured at ``reference`` have grown at least (I-CPD-1,
    I-CPD-3): a lesion not evaluated now can only add, so it counts 0 mm; a lesion not
    evaluated at the reference is left out."""
    before = 0
    after = 0
    for lesion_id, size in reference.items():
        if size is None:
            continue
        before += size
        current = now.get(lesion_id)
        if current is not None:
            after += current
    return after - before


def _shrank(then: Mapping[str, Length | None], now: Mapping[str, Length | None]) -> bool:
    """Whether the lesions measured both times add up to less now (I-UPD-3)."""
    common = [i for i, size in then.items() if size is not None and now.get(i) is not None]
    return sum(now[i] or 0 for i in common) < sum(then[i] or 0 for i in common)


@dataclass(slots=True)
class _NewAtTimepoint:
    """The new lesions at one follow-up."""

    status: NewLesionStatus
    first: list[NewLesionRecord]  # counted first sightings (R-NEW-1)
    r_new: NewLesionAssessment  # R-NEW-1/R-NEW-2 on the first sightings
    sizes: dict[str, Length | None]  # every new target: size, None when not evaluated
    states: dict[str, NonTargetState]  # every new non-target
    records: dict[str, NewLesionRecord]
    reasons: list[str]


class _NewLesions:
    """The new lesions of a case as iRECIST follows them (I-NEW-1..4)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.settings = case.settings
        self.known: dict[str, NewLesionInfo] = {}
        self.findings: list[Finding] = []
        self.nadir: Length | None = None  # I-NEW-3: smallest complete sum since the last new target
        self.tracker = NewLesionTracker()  # R-NEW-1, R-NEW-2 on the first sightings

    @property
    def targets(self) -> list[NewLesionInfo]:
        return [n for n in self.known.values() if n.category is NewLesionCategory.TARGET]

    def at(self, tp: Timepoint) -> _NewAtTimepoint:
        """The new lesions at follow-up ``tp``: register and categorise the first sightings
        (R-NEW-1, R-NEW-2, I-NEW-1, I-NEW-2), and every known lesion's record (I-NEW-4)."""
        records = _records(tp)
        reasons: list[str] = []
        first: list[NewLesionRecord] = []
        unregistered: list[NewLesion] = []
        listed: dict[str, NewLesionRecord] = {}
        for record in records:
            info = self.known.get(record.id)
            if info is None:
                if not record.equivocal and not record.shown:
                    raise _listing_error(
                        tp,
                        record.id,
                        "a new lesion is first listed when it is seen; it cannot be absent or "
                        "not evaluated before it was ever seen",
                    )
                view = record.as_new_lesion()
                unregistered.append(view)
                if not record.equivocal and view.counts:
                    first.append(record)
                continue
            if record.equivocal:
                raise _listing_error(
                    tp,
                    record.id,
                    f"new lesion {record.id} was unequivocal at {info.first_seen}; it cannot "
                    "be equivocal again (R-NEW-2)",
                    "R-NEW-2",
                )
            if record.category is not None and record.category is not info.category:
                raise _listing_error(
                    tp,
                    record.id,
                    f"new lesion {record.id} is a new {info.category.value} lesion since "
                    f"{info.first_seen}; its category is fixed at first sighting",
                )
            listed[record.id] = record
        r_new = self.tracker.assess(Timepoint(tp.id, tp.date, new_lesions=tuple(unregistered)))
        reasons += r_new.reasons
        for record in first:
            self.categorise(record, tp, reasons)
            listed[record.id] = record
        sizes: dict[str, Length | None] = {}
        states: dict[str, NonTargetState] = {}
        for lesion_id, info in self.known.items():
            found = listed.get(lesion_id)
            if info.category is NewLesionCategory.TARGET:
                sizes[lesion_id] = _new_target_size(info, found, tp)
            else:
                states[lesion_id] = _new_non_target_state(found)
        if any(r.shown for r in listed.values()):
            status = NewLesionStatus.YES
        elif any(r.equivocal for r in records):
            status = NewLesionStatus.EQUIVOCAL
        else:
            status = NewLesionStatus.NO
        return _NewAtTimepoint(status, first, r_new, sizes, states, listed, reasons)

    def categorise(self, record: NewLesionRecord, tp: Timepoint, reasons: list[str]) -> None:
        """Register a new lesion at its first unequivocal sighting (I-NEW-1, I-NEW-2): the
        reader's category, or a new target while it is measurable and there is room."""
        organ = organ_of(Lesion(record.id, record.site, LesionKind.TARGET, record.nodal))
        size = record.size
        verdict = None
        if size is not None and size.state is TargetState.MEASURED and size.size is not None:
            value = length_to_mm(size.size)
            verdict = measurability(
                nodal=record.nodal,
                longest_diameter_mm=None if record.nodal else value,
                short_axis_mm=value if record.nodal else None,
                site=record.site,
            )
        measurable = verdict is not None and verdict.measurable
        why = verdict.reasons[0] if verdict is not None else "no measured size"
        targets = self.targets
        in_organ = sum(1 for n in targets if n.organ == organ)
        room = len(targets) < MAX_NEW_TARGETS and in_organ < MAX_NEW_TARGETS_PER_ORGAN
        nodes = (
            " (R-SEL-2: all lymph nodes count as one organ)" if organ == LYMPH_NODE_ORGAN else ""
        )
        limits = (
            f"{len(targets)} new targets already, {in_organ} in {organ}{nodes}; at most "
            f"{MAX_NEW_TARGETS}, {MAX_NEW_TARGETS_PER_ORGAN} per organ"
        )
        where = f"new lesion {record.id} ({record.site or 'site not given'})"
        category = record.category
        if category is None:
            target = measurable and room
            category = NewLesionCategory.TARGET if target else NewLesionCategory.NON_TARGET
            how = (
                f"measurable ({why}), new target {len(targets) + 1} of at most {MAX_NEW_TARGETS}"
                if target
                else (limits if measurable else why)
            )
            reasons.append(f"I-NEW-1/I-NEW-2: {where} is a new {category.value} lesion: {how}")
        else:
            reasons.append(f"I-NEW-1: {where} is a new {category.value} lesion, as recorded")
        if record.category is NewLesionCategory.TARGET:
            if size is None or size.size is None:
                raise _listing_error(
                    tp,
                    record.id,
                    "a new target lesion needs its size at first sighting: give size_mm",
                    "I-NEW-1",
                )
            for rule, ok, what in (
                ("I-NEW-1", measurable, f"not measurable: {why}"),
                ("I-NEW-2", room, f"beyond the limits: {limits}"),
            ):
                if not ok:
                    message = f"{where} at {tp.id} is recorded as a new target but is {what}"
                    self._finding(Finding(rule, record.id, message), tp)
        self.known[record.id] = NewLesionInfo(
            record.id, record.site, record.nodal, category, tp.id, organ
        )
        if category is NewLesionCategory.TARGET:
            self.nadir = None  # I-NEW-3: the new-target sum restarts with its new member

    def _finding(self, finding: Finding, tp: Timepoint) -> None:
        if self.settings.strict:
            raise ProtocolDeviationError(
                finding.message + "; strict mode refuses findings",
                subject=self.case.subject_id,
                timepoint=tp.id,
                lesion=finding.lesion,
                rule=finding.rule,
            )
        self.findings.append(finding)


class _Targets(TargetTracker):
    """RECIST 1.1's target tracker; a PR hold (R-TGT-HOLD) ends when target PD is met: after
    an iUPD the bar is reset against baseline and nadir (I-RESET)."""

    def record(self, tp: Timepoint, assessment: TargetAssessment, overall: Response | None) -> None:
        super().record(tp, assessment, overall)
        if assessment.response is Response.PD:
            self._pr_since = None
            self._pr_confirmed = False


def _list(ids: Sequence[str]) -> str:
    return ", ".join(ids)


def assess_irecist(case: Case, recist1_1: CaseResult) -> IrecistResult:
    """Assess one case by iRECIST (``docs/rules.md`` §10).

    Parameters
    ----------
    case
        The case; its settings say ``criteria: "irecist"`` and give the confirmation
        window (I-CPD-WINDOW).
    recist1_1
        The RECIST 1.1 result of the same case (its baseline findings are reused).

    Returns
    -------
    IrecistResult
        Per-timepoint iRECIST responses and reasons, the iBOR (I-BOR), the confirmed
        progression and PFS (I-PFS), and ``recist1_1``.

    Raises
    ------
    CaseInputError
        A new lesion's listings contradict each other (I-NEW-4).
    ProtocolDeviationError
        In strict mode, a new lesion categorised against I-NEW-1 or I-NEW-2.
    """
    return _Assessor(case, recist1_1).run()


@dataclass(slots=True)
class _Now:
    """One follow-up while it is assessed: its findings, then its iRECIST codes."""

    tp: Timepoint
    reasons: list[str]
    target: TargetAssessment | None
    nt: NonTargetAssessment | None
    new: _NewAtTimepoint
    sizes: dict[str, Length | None]  # the baseline targets' sizes
    nt_progression: list[str]  # non-targets recorded `progression`
    new_total: Length | None  # I-NEW-3: the new-target sum (partial when incomplete)
    new_complete: bool
    new_nadir: Length | None  # its nadir before this timepoint
    new_pd: bool  # the new-target sum meets R-TGT-PD against its nadir (I-UPD-2)
    nlnt_progression: list[str]  # new non-targets on record recorded `progression`
    reappeared: list[str]  # new lesions seen again after an overall iCR (I-UPD-2)
    target_code: IResponse | None = None
    nt_code: IResponse | None = None
    new_code: IResponse | None = None
    overall: IResponse = IResponse.NE

    @property
    def target_pd(self) -> bool:
        return self.target is not None and self.target.response is Response.PD

    @property
    def nt_pd(self) -> bool:
        return self.nt is not None and self.nt.response is Response.PD


class _Assessor:
    """Walks a case's follow-ups in order, keeping the state of iRECIST's bar between them:
    no iUPD open, an iUPD open (a :class:`_Run`), or progression confirmed."""

    def __init__(self, case: Case, recist1_1: CaseResult) -> None:
        self.case = case
        self.settings = case.settings
        self.recist1_1 = recist1_1
        self.targets = _Targets(case)
        self.target_ids = self.targets.target_ids
        self.nt_ids = tuple(le.id for le in case.non_target_lesions)
        self.new = _NewLesions(case)
        self.run_: _Run | None = None
        self.had_icr = False  # an earlier overall iCR (R-REAPPEAR, I-UPD-2)
        self.icpd: str | None = None  # the timepoint of the iCPD, once confirmed
        self.confirmed: tuple[Progression, str] | None = None  # (progression, iUPD timepoint)
        base = recist1_1.timepoints[0]
        self.results = [
            IrecistTimepointResult(base.id, base.date, base.reasons, base.flags, base.sum)
        ]
        self.followups: list[IAssessed] = []

    def run(self) -> IrecistResult:
        case = self.case
        for index, tp in enumerate(case.timepoints[1:], start=1):
            self._record(self._follow_up(tp), self.recist1_1.timepoints[index].flags)
        confirmed, unconfirmed = best_overall_responses(case, self.followups)
        progression, iupd = self.confirmed if self.confirmed is not None else (None, None)
        adequate = [(a.id, a.date) for a in self.followups if a.response is not IResponse.NE]
        return IrecistResult(
            subject_id=case.subject_id,
            settings=self.settings,
            warnings=(*self.recist1_1.warnings, *self.new.findings),
            queries=tuple(_queries(self.followups)),
            timepoints=tuple(self.results),
            best_overall_response=confirmed if self.settings.confirmation else unconfirmed,
            best_overall_response_confirmed=confirmed,
            best_overall_response_unconfirmed=unconfirmed,
            progression=progression,
            iupd_timepoint=iupd,
            pfs=pfs(case, progression, adequate),
            new_lesions=tuple(self.new.known.values()),
            recist1_1=self.recist1_1,
        )

    def _follow_up(self, tp: Timepoint) -> _Now:
        """Assess the categories as RECIST 1.1 does, then apply iRECIST's bar."""
        values = [tp.targets.get(i, NOT_EVALUATED) for i in self.target_ids]
        nt_states = [tp.non_targets.get(i, NonTargetState.NOT_EVALUATED) for i in self.nt_ids]
        reasons: list[str] = []
        target = self.targets.assess_values(tp, values) if self.target_ids else None
        if target is not None:
            reasons += target.reasons
        nt = None
        if self.nt_ids:
            nt = non_target_states_response(self.nt_ids, nt_states, after_cr=self.had_icr)
            reasons += nt.reasons
        new = self.new.at(tp)
        reasons += new.reasons
        ids = [n.id for n in self.new.targets]
        known = [size for i in ids if (size := new.sizes[i]) is not None]
        total = sum(known) if ids else None
        nadir = self.new.nadir
        if total is not None:
            reasons.append(
                f"I-NEW-3: new-target sum {format_mm(total)}"
                + ("" if len(known) == len(ids) else " (partial: a new target not evaluated)")
                + (f", nadir {format_mm(nadir)}" if nadir is not None else "")
            )
        first = {r.id for r in new.first}
        now = _Now(
            tp,
            reasons,
            target,
            nt,
            new,
            sizes={i: value.size for i, value in zip(self.target_ids, values, strict=True)},
            nt_progression=[
                i for i, s in zip(self.nt_ids, nt_states, strict=True) if s is _PROGRESSION
            ],
            new_total=total,
            new_complete=len(known) == len(ids),
            new_nadir=nadir,
            new_pd=total is not None and nadir is not None and total >= pd_min_sum(nadir),
            nlnt_progression=[
                i for i, s in new.states.items() if s is _PROGRESSION and i not in first
            ],
            reappeared=self._new_reappeared(new) if self.had_icr else [],
            target_code=I_CODE[target.response] if target is not None else None,
            nt_code=I_CODE[nt.response] if nt is not None else None,
            new_code=self._new_category(new),
        )
        run = self.run_
        if run is not None and self.icpd is None:
            since_last = (tp.date - run.last_date).days
            if since_last > self.settings.irecist_confirm_max_days:
                reasons.append(
                    f"I-CPD-WINDOW: {tp.id} is {since_last} days after the iUPD at "
                    f"{run.last_id}, beyond irecist_confirm_max_days "
                    f"({self.settings.irecist_confirm_max_days}): the iUPD of {run.first_id} "
                    "stays unconfirmed and the bar is reset"
                )
                run = self.run_ = None
        if self.icpd is not None:
            now.overall = IResponse.ICPD
            reasons.append(
                f"I-CPD: progression was confirmed at {self.icpd}; later assessments do not "
                "change it"
            )
        elif run is None:
            self._bar_set(now)
        else:
            self._in_run(run, now)
        if now.overall is IResponse.ICR:
            self.had_icr = True
        if target is not None:
            overall = Response.CR if now.overall is IResponse.ICR else None
            self.targets.record(tp, target, overall)
        if now.new_complete and total is not None and (nadir is None or total < nadir):
            self.new.nadir = total  # I-NEW-3: an incomplete sum never becomes the nadir
        return now

    def _bar_set(self, now: _Now) -> None:
        """No iUPD open: RECIST 1.1 progression is iUPD (I-UPD-1, I-UPD-2); otherwise the
        tables (I-OVR)."""
        settings = self.settings
        new = now.new
        causes: list[str] = []
        if now.target_pd:
            causes.append("target")
        if now.nt_pd:
            causes.append("non-target")
        rule = "I-UPD-1" if causes or new.first else "I-UPD-2"
        if new.first:
            causes.append(f"new lesion {_list([r.id for r in new.first])}")
        grown: list[str] = []
        if now.new_pd and now.new_total is not None and now.new_nadir is not None:
            causes.append(
                f"new-target sum {format_mm(now.new_total)} ≥ 120 % of its nadir "
                f"{format_mm(now.new_nadir)} and ≥ 5 mm above it"
            )
            grown += [n.id for n in self.new.targets]
        if now.nlnt_progression:
            causes.append(
                f"unequivocal progression of new non-target {_list(now.nlnt_progression)}"
            )
            grown += now.nlnt_progression
        if now.reappeared:
            causes.append(f"new lesion {_list(now.reappeared)} seen again after iCR")
            grown += now.reappeared
        if not causes:
            now.overall, why = _overall(now.target_code, now.nt_code, now.new_code)
            now.reasons.append(why)
            return
        now.overall = IResponse.IUPD
        now.reasons.append(
            f"{rule}: RECIST 1.1 progression ({'; '.join(causes)}) with no iUPD open: iUPD, "
            f"to be confirmed {settings.irecist_confirm_min_days}–"
            f"{settings.irecist_confirm_max_days} days later (I-CPD-WINDOW)"
        )
        new_cause = bool(new.first or grown)
        progression = self._progression(now, new_cause, grown)
        now.reasons.append("I-PFS: if confirmed, " + describe_progression(progression))
        progressed = set(now.nt.progressed) if now.nt is not None and now.nt_pd else set()
        tp = now.tp
        self.run_ = _Run(
            tp.id,
            tp.date,
            tp.id,
            tp.date,
            progression,
            now.target_pd,
            new_cause,
            dict(now.sizes),
            {n.id: new.sizes[n.id] for n in self.new.targets},
            self._snapshot(now, progressed),
            progressed,
        )
        if now.target_pd:
            now.target_code = IResponse.IUPD
        if now.nt_pd:
            now.nt_code = IResponse.IUPD
        if new_cause:
            now.new_code = IResponse.IUPD

    def _confirmations(self, run: _Run, now: _Now) -> tuple[list[str], set[str]]:
        """I-CPD-1..4: what confirms the open iUPD at ``now``, and in which categories."""
        confirm: list[str] = []
        where: set[str] = set()
        if run.targets_progressed:
            grown = _growth(run.target_reference, now.sizes)
            if grown >= CONFIRM_MIN_INCREASE:
                confirm.append(
                    f"I-CPD-1: target sum {format_mm(grown)} above its value at the iUPD of "
                    f"{run.first_id} (≥ 5 mm)"
                )
                where.add("target")
        elif now.target_pd:
            confirm.append("I-CPD-1: the targets now meet RECIST 1.1 progression")
            where.add("target")
        if now.nt_progression:
            confirm.append(
                f"I-CPD-2: non-target {_list(now.nt_progression)} increased further (any increase)"
            )
            where.add("non-target")
        elif now.nt_pd and not run.progressed_non_targets:
            confirm.append("I-CPD-2: the non-targets now meet RECIST 1.1 progression")
            where.add("non-target")
        if run.new_progressed:
            grown = _growth(run.new_target_reference, now.new.sizes)
            if run.new_target_reference and grown >= CONFIRM_MIN_INCREASE:
                confirm.append(
                    f"I-CPD-3: new-target sum {format_mm(grown)} above its value at the iUPD of "
                    f"{run.first_id} (≥ 5 mm)"
                )
                where.add("new")
        elif now.new_pd:
            confirm.append("I-CPD-3: the new-target sum now meets RECIST 1.1 progression")
            where.add("new")
        if now.nlnt_progression:
            confirm.append(
                f"I-CPD-3: new non-target {_list(now.nlnt_progression)} increased further "
                "(any increase)"
            )
            where.add("new")
        if now.reappeared and not run.new_progressed:
            confirm.append(f"I-CPD-3: new lesion {_list(now.reappeared)} seen again after iCR")
            where.add("new")
        if now.new.first:
            confirm.append(f"I-CPD-4: further new lesion {_list([r.id for r in now.new.first])}")
            where.add("new")
        return confirm, where

    def _in_run(self, run: _Run, now: _Now) -> None:
        """An iUPD is open: iCPD (I-CPD), iUPD again (I-UPD-3), NE, or the bar reset
        (I-RESET)."""
        settings = self.settings
        tp = now.tp
        confirm, where = self._confirmations(run, now)
        since_first = (tp.date - run.first_date).days
        early = since_first < settings.irecist_confirm_min_days
        if confirm and (not early or now.new.first):
            self._confirm(run, now, confirm, early, since_first, where)
            return
        if confirm:
            now.reasons.append(
                f"I-CPD-WINDOW: {tp.id} is {since_first} days after the iUPD of "
                f"{run.first_id}, earlier than irecist_confirm_min_days "
                f"({settings.irecist_confirm_min_days}): growth this soon does not confirm it "
                "(only a further new lesion would)"
            )
        current = self._snapshot(now, run.progressed_non_targets)
        new_shown = {i for i in current.shown if i in self.new.known}
        nt_shown = set(current.shown) - new_shown
        last = run.last
        decreased = (
            _shrank(last.targets, current.targets)
            or _shrank(last.new_targets, current.new_targets)
            or any(i not in current.shown and self._gone(tp, i) for i in last.shown)
        )
        if confirm:
            remains = "growth before the confirmation window"
        elif now.target_pd:
            remains = "the targets still meet RECIST 1.1 progression against the nadir"
        elif now.nt_pd:
            remains = "the non-targets still meet RECIST 1.1 progression"
        elif now.target is not None and now.target.response is Response.NE:
            now.overall = IResponse.NE
            now.reasons.append(
                f"I-UPD-3: targets not evaluated and nothing confirms the iUPD of "
                f"{run.first_id}: NE; the iUPD stays open"
            )
            return
        elif (new_shown or nt_shown) and not decreased:
            remains = (
                f"{_list(sorted(new_shown | nt_shown))} still present and no disease "
                "measurement has decreased since the last iUPD (FAQ: no change)"
            )
            if new_shown:
                now.new_code = IResponse.IUPD
            if nt_shown:
                now.nt_code = IResponse.IUPD
        else:
            self.run_ = None
            now.overall, why = _overall(now.target_code, now.nt_code, now.new_code)
            now.reasons.append(
                f"I-RESET: the iUPD of {run.first_id} is not confirmed and the disease no "
                f"longer shows progression: {now.overall.value} against baseline and nadir; "
                "a later progression is a new iUPD"
            )
            now.reasons.append(why)
            return
        now.overall = IResponse.IUPD
        now.reasons.append(
            f"I-UPD-3: {remains}; not confirmed: iUPD again (the iUPD opened at {run.first_id})"
        )
        if now.target_pd:
            now.target_code = IResponse.IUPD
        if now.nt_pd:
            now.nt_code = IResponse.IUPD
        run.last_id = tp.id
        run.last_date = tp.date
        run.progressed_non_targets.update(now.nt_progression)
        run.last = self._snapshot(now, run.progressed_non_targets)

    def _confirm(
        self, run: _Run, now: _Now, confirm: list[str], early: bool, days: int, where: set[str]
    ) -> None:
        """iCPD: the open iUPD is confirmed; progression is dated at its first iUPD (I-PFS)."""
        settings = self.settings
        tp = now.tp
        window = (
            "earlier than irecist_confirm_min_days: only a further new lesion confirms so soon"
            if early
            else f"window {settings.irecist_confirm_min_days}–"
            f"{settings.irecist_confirm_max_days} days after the latest iUPD"
        )
        now.reasons += confirm
        now.reasons.append(
            f"I-CPD-WINDOW: {days} days after the iUPD of {run.first_id} ({window}): iCPD; "
            f"I-PFS: progression dated {run.progression.date.isoformat()}"
        )
        now.overall = IResponse.ICPD
        if "target" in where:
            now.target_code = IResponse.ICPD
        if "non-target" in where:
            now.nt_code = IResponse.ICPD
        if "new" in where:
            now.new_code = IResponse.ICPD
        self.run_ = None
        self.icpd = tp.id
        therapy = self.case.new_therapy_on if settings.cut_at_new_therapy else None
        if therapy is not None and tp.date > therapy:
            now.reasons.append(
                f"I-PFS: the confirmation at {tp.id} comes after the new anticancer therapy "
                f"started {therapy.isoformat()}: it does not count for PFS"
            )
            return
        first = run.progression
        self.confirmed = (
            Progression(tp.id, first.date, first.reason, first.back_dated),
            run.first_id,
        )

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _nt_state(tp: Timepoint, lesion_id: str) -> NonTargetState:
        return tp.non_targets.get(lesion_id, NonTargetState.NOT_EVALUATED)

    def _gone(self, tp: Timepoint, lesion_id: str) -> bool:
        """A lesion seen at the last iUPD is absent now (not merely not evaluated)."""
        if lesion_id in self.nt_ids:
            return self._nt_state(tp, lesion_id) is NonTargetState.ABSENT
        record = next((r for r in _records(tp) if r.id == lesion_id), None)
        if record is None:
            return False
        if record.size is not None:
            return record.size.state is TargetState.ABSENT
        return record.state is NonTargetState.ABSENT

    def _snapshot(self, now: _Now, non_targets: set[str]) -> _Snapshot:
        """What an iUPD timepoint shows: sizes, and the new lesions and progressed
        non-targets seen (I-UPD-3 compares the next timepoint with it)."""
        shown = {i for i, r in now.new.records.items() if r.shown}
        shown |= {i for i in non_targets if self._nt_state(now.tp, i) in _SEEN}
        return _Snapshot(dict(now.sizes), dict(now.new.sizes), frozenset(shown))

    def _new_reappeared(self, new: _NewAtTimepoint) -> list[str]:
        """I-UPD-2 (R-REAPPEAR for new lesions): after an overall iCR, a new lesion seen
        again (a new target at the size R-REAPPEAR sets)."""
        first = {r.id for r in new.first}
        back = []
        for lesion_id, record in new.records.items():
            info = self.new.known[lesion_id]
            if lesion_id in first:
                continue
            if info.category is NewLesionCategory.TARGET:
                size = new.sizes.get(lesion_id)
                if size is not None and has_reappeared(
                    info.lesion, size, self.targets.reappearance_min
                ):
                    back.append(lesion_id)
            elif record.shown:
                back.append(lesion_id)
        return back

    def _new_category(self, new: _NewAtTimepoint) -> IResponse | None:
        """The new-lesion category without progression: iCR when every new lesion is gone,
        NE when one was not evaluated, else NON-iCR/NON-iUPD (I-NEW-4); ``None`` when no new
        lesion is on record."""
        if not self.new.known:
            return None
        if None in new.sizes.values() or NonTargetState.NOT_EVALUATED in new.states.values():
            return IResponse.NE
        for lesion_id, size in new.sizes.items():
            if size is not None and not is_gone(self.new.known[lesion_id].lesion, size):
                return IResponse.NON_ICR_NON_IUPD
        if any(s is not NonTargetState.ABSENT for s in new.states.values()):
            return IResponse.NON_ICR_NON_IUPD
        return IResponse.ICR

    def _progression(self, now: _Now, new_cause: bool, grown: list[str]) -> Progression:
        """§8's date of an iUPD from the scans that show it; a new lesion confirming an
        equivocal one is dated to its first sighting (R-NEW-2)."""
        new = now.new
        tp = now.tp
        shown = [r.as_new_lesion() for r in new.first]
        shown += [new.records[i].as_new_lesion() for i in grown if i in new.records]
        view = Timepoint(tp.id, tp.date, tp.targets, tp.non_targets, tuple(shown), tp.scan_dates)
        if new.r_new.status is NewLesionStatus.YES:
            assessment = new.r_new
        else:
            status = NewLesionStatus.YES if new_cause else NewLesionStatus.NO
            assessment = NewLesionAssessment(status, ())
        return progression_event(
            self.case,
            view,
            now.target if now.target_pd else None,
            now.nt if now.nt_pd else None,
            assessment,
        )

    def _record(self, now: _Now, flags: dict[str, tuple[str, ...]]) -> None:
        """The timepoint's result row (sums as RECIST 1.1's, grid markers for new lesions)."""
        tp = now.tp
        target = now.target
        total = partial = nadir = None
        from_baseline = from_nadir = None
        if target is not None:
            nadir = target.nadir
            base = self.targets.baseline_sum
            if target.sum.complete:
                total = target.sum.total
                from_baseline = pct(total - base, base) if base else None
                from_nadir = pct(total - nadir, nadir) if nadir else None
            else:
                partial = target.sum.total
        now.reasons.append(f"overall {now.overall.value}")
        marks = {k: v for k, v in flags.items() if "new" not in v}
        for record in _records(tp):
            markers = ("equivocal",) if record.equivocal else _new_markers(record)
            marks[record.id] = ("new", *markers)
        self.results.append(
            IrecistTimepointResult(
                tp.id,
                tp.date,
                tuple(now.reasons),
                marks,
                sum=total,
                partial_sum=partial,
                nadir=nadir,
                change_from_baseline_pct=from_baseline,
                change_from_nadir_pct=from_nadir,
                target_response=now.target_code,
                non_target_response=now.nt_code,
                new_lesions=now.new.status,
                new_lesion_response=now.new_code,
                new_target_sum=now.new_total if now.new_complete else None,
                new_target_partial_sum=None if now.new_complete else now.new_total,
                new_target_nadir=now.new_nadir,
                overall_response=now.overall,
            )
        )
        self.followups.append(IAssessed(tp.id, tp.date, now.overall))


def _listing_error(
    tp: Timepoint, lesion_id: str, message: str, rule: str = "I-NEW-4"
) -> CaseInputError:
    return CaseInputError(
        message, timepoint=tp.id, lesion=lesion_id, field="new_lesions", rule=rule
    )


def _new_target_size(
    info: NewLesionInfo, record: NewLesionRecord | None, tp: Timepoint
) -> Length | None:
    """I-NEW-4: a new target's size at ``tp``; not listed, it is not evaluated."""
    if record is None:
        return None
    if record.size is not None:
        return record.size.size
    if record.state is NonTargetState.ABSENT:
        return 0
    if record.state is NonTargetState.NOT_EVALUATED:
        return None
    raise _listing_error(
        tp,
        info.id,
        f"new lesion {info.id} is a new target lesion since {info.first_seen}: give its "
        "size_mm ('too_small', 'absent' or 'not_evaluated' when it has no size)",
    )


def _new_markers(record: NewLesionRecord) -> tuple[str, ...]:
    """Grid markers of a new lesion's listing (the words of the target/non-target markers)."""
    if record.size is not None:
        return {
            TargetState.TOO_SMALL: ("too_small",),
            TargetState.ABSENT: ("absent",),
            TargetState.NOT_EVALUATED: ("not_evaluated",),
        }.get(record.size.state, ())
    if record.state is NonTargetState.PROGRESSION:
        return ("progression",)
    if record.state is NonTargetState.ABSENT:
        return ("absent",)
    if record.state is NonTargetState.NOT_EVALUATED:
        return ("not_evaluated",)
    return ()


def _new_non_target_state(record: NewLesionRecord | None) -> NonTargetState:
    """I-NEW-4: a new non-target's state (not listed: not evaluated; a size: present)."""
    if record is None:
        return NonTargetState.NOT_EVALUATED
    if record.state is not None:
        return record.state
    if record.size is not None:
        state = record.size.state
        if state is TargetState.ABSENT:
            return NonTargetState.ABSENT
        if state is TargetState.NOT_EVALUATED:
            return NonTargetState.NOT_EVALUATED
    return NonTargetState.PRESENT


def _overall(
    target: IResponse | None, non_target: IResponse | None, new: IResponse | None
) -> tuple[IResponse, str]:
    """I-OVR: the timepoint response when nothing progresses ([S17] table 2; RECIST 1.1
    tables 1 and 2 with the new lesions on record weighed like non-target disease)."""
    others = [r for r in (non_target, new) if r is not None]
    if IResponse.NE in others:
        rest: IResponse | None = IResponse.NE
    elif IResponse.NON_ICR_NON_IUPD in others:
        rest = IResponse.NON_ICR_NON_IUPD
    else:
        rest = IResponse.ICR if others else None
    words = (
        f"target {target.value if target else 'none'}, non-target "
        f"{non_target.value if non_target else 'none'}, new lesions "
        f"{new.value if new else 'none'}"
    )
    if target is None:
        if rest is None:
            return IResponse.NE, "I-OVR: no disease at baseline and no new lesion: NE"
        return rest, f"I-OVR: {words}: {rest.value}"
    if target is IResponse.NE:
        return IResponse.NE, f"I-OVR: {words}: NE"
    if target is IResponse.ICR:
        result = IResponse.ICR if rest in (None, IResponse.ICR) else IResponse.IPR
        return result, f"I-OVR: {words}: {result.value}"
    return target, f"I-OVR: {words}: {target.value}"


def _counted(followups: Sequence[IAssessed], case: Case) -> tuple[list[IAssessed], list[str]]:
    """I-BOR, R-BOR-CUT: the timepoints up to and including the first iCPD, and on or
    before the start of a new anticancer therapy."""
    settings = case.settings
    therapy = case.new_therapy_on if settings.cut_at_new_therapy else None
    counted: list[IAssessed] = []
    notes: list[str] = []
    for tp in followups:
        if therapy is not None and tp.date > therapy:
            notes.append(
                f"R-BOR-CUT: timepoints from {tp.id} on are after the new anticancer therapy "
                f"started {therapy.isoformat()} and do not count"
            )
            break
        counted.append(tp)
        if tp.response is IResponse.ICPD:
            break
    return counted, notes


def _fallback(counted: Sequence[IAssessed], reasons: list[str]) -> IBestResponse:
    """I-BOR: without a qualifying iCR, iPR or iSD: iCPD if confirmed, else iUPD, else NE."""
    for code in (IResponse.ICPD, IResponse.IUPD):
        for tp in counted:
            if tp.response is code:
                return IBestResponse(code, tp.id, (*reasons, f"I-BOR: {code.value} at {tp.id}"))
    return IBestResponse(
        IResponse.NE, None, (*reasons, "I-BOR: no timepoint qualifies for a response: NE")
    )


def _sd_days(tp: IAssessed, origin: date) -> int:
    return (tp.date - origin).days


def _best_unconfirmed(counted: Sequence[IAssessed], case: Case) -> IBestResponse:
    """I-BOR with R-BOR-SDMIN: the best counted response, iCR > iPR > iSD = NON-iCR/NON-iUPD
    > iCPD > iUPD > NE."""
    settings = case.settings
    origin = case.origin
    reasons: list[str] = []
    best: IAssessed | None = None
    for tp in counted:
        if tp.response in _STABLE and _sd_days(tp, origin) < settings.sd_min_days:
            reasons.append(
                f"R-BOR-SDMIN: {tp.response.value} at {tp.id} is {_sd_days(tp, origin)} days "
                f"after the origin (< {settings.sd_min_days})"
            )
            continue
        rank = _RANK.get(tp.response)
        if rank is not None and (best is None or rank > _RANK[best.response]):
            best = tp
    if best is None:
        return _fallback(counted, reasons)
    return IBestResponse(
        best.response,
        best.id,
        (*reasons, f"I-BOR: best response {best.response.value} at {best.id}"),
    )


def _confirmed_as(
    view: Sequence[Assessed], counted: Sequence[IAssessed], index: int, settings: Settings
) -> tuple[IResponse | None, IAssessed | None]:
    """R-BOR-CONF in iRECIST's words: RECIST 1.1's confirmation
    (:func:`recist.best_response.confirmation`) of each response's RECIST 1.1 class
    (:data:`RECIST_CLASS`, ``view``), so the statistician's conventions apply as they do
    to the BOR. An iCR is confirmed by a later iCR, an iPR by a later iPR or iCR, at least
    ``confirmation_min_days`` (and at most ``confirmation_max_days``) later, with only
    iCR, iPR and at most ``confirmation_max_ne_between`` NE between; an iUPD between
    breaks it as a PD does; with ``accept_sd`` one iSD may sit between an iPR and its
    confirmation; without ``pr_after_cr_confirms`` an iPR after an iCR breaks it."""
    as_what, by = confirmation(view, index, settings)
    if as_what is None or by is None:
        return None, None
    return I_CODE[as_what], next(tp for tp in counted if tp.id == by.id)


def _i_words(text: str) -> str:
    """RECIST 1.1's response words of a reason line in iRECIST's (PR → iPR…)."""
    return re.sub(r"\b(CR|PR|SD)\b", r"i\1", text)


def _followed_by_icpd(counted: Sequence[IAssessed], index: int) -> bool:
    """``unconfirmed_before_pd: "pd"`` under iRECIST: whether the next counted assessment
    after ``counted[index]`` other than NE and iUPD is iCPD (a progression counts once it is
    confirmed, I-CPD; an iUPD that resets does not, I-RESET)."""
    for later in counted[index + 1 :]:
        if later.response not in (IResponse.NE, IResponse.IUPD):
            return later.response is IResponse.ICPD
    return False


def _best_confirmed(counted: Sequence[IAssessed], case: Case) -> IBestResponse:
    """I-BOR with R-BOR-CONF: iCR and iPR count only when confirmed; an unconfirmed one
    counts as iSD (NON-iCR/NON-iUPD without targets) where R-BOR-SDMIN is met, or, with
    ``unconfirmed_before_pd: "pd"``, not at all when an iCPD follows it."""
    settings = case.settings
    origin = case.origin
    view = [Assessed(tp.id, tp.date, RECIST_CLASS[tp.response]) for tp in counted]
    reasons: list[str] = []
    confirmed_pr: tuple[IAssessed, IAssessed] | None = None
    for index, tp in enumerate(counted):
        if tp.response not in _RESPONDING:
            continue
        as_what, by = _confirmed_as(view, counted, index, settings)
        if as_what is IResponse.ICR and by is not None:
            return IBestResponse(
                IResponse.ICR, tp.id, (f"R-BOR-CONF/I-BOR: iCR at {tp.id} confirmed at {by.id}",)
            )
        if as_what is IResponse.IPR and by is not None and confirmed_pr is None:
            confirmed_pr = (tp, by)
        elif as_what is None:
            needs = _i_words(confirmation_needs(RECIST_CLASS[tp.response], settings))
            reasons.append(
                f"R-BOR-CONF: {tp.response.value} at {tp.id} is not confirmed (needs {needs})"
            )
    if confirmed_pr is not None:
        tp, by = confirmed_pr
        return IBestResponse(
            IResponse.IPR,
            tp.id,
            (
                *reasons,
                f"R-BOR-CONF/I-BOR: {tp.response.value} at {tp.id} confirmed as iPR at {by.id}",
            ),
        )
    stable = IResponse.ISD if case.target_lesions else IResponse.NON_ICR_NON_IUPD
    before_pd = settings.unconfirmed_before_pd is UnconfirmedBeforePd.PD
    for index, tp in enumerate(counted):
        if before_pd and tp.response in _RESPONDING and _followed_by_icpd(counted, index):
            reasons.append(
                f"R-BOR-CONF/I-BOR: unconfirmed {tp.response.value} at {tp.id} is followed by "
                "iCPD and does not count as iSD (unconfirmed_before_pd: pd)"
            )
            continue
        if tp.response in _RANK:
            if _sd_days(tp, origin) >= settings.sd_min_days:
                return IBestResponse(
                    stable,
                    tp.id,
                    (
                        *reasons,
                        f"R-BOR-SDMIN/I-BOR: {tp.response.value} at {tp.id} counts as "
                        f"{stable.value}",
                    ),
                )
            reasons.append(
                f"R-BOR-SDMIN: {tp.response.value} at {tp.id} is {_sd_days(tp, origin)} days "
                f"after the origin (< {settings.sd_min_days})"
            )
    return _fallback(counted, reasons)


def best_overall_responses(
    case: Case, followups: Sequence[IAssessed]
) -> tuple[IBestResponse, IBestResponse]:
    """The iBOR with and without confirmation of response (I-BOR), as ``(confirmed,
    unconfirmed)``, over the follow-ups in order."""
    counted, notes = _counted(followups, case)
    unconfirmed = _best_unconfirmed(counted, case)
    confirmed = _best_confirmed(counted, case)
    if notes:
        unconfirmed = IBestResponse(
            unconfirmed.response, unconfirmed.timepoint, (*notes, *unconfirmed.reasons)
        )
        confirmed = IBestResponse(
            confirmed.response, confirmed.timepoint, (*notes, *confirmed.reasons)
        )
    return confirmed, unconfirmed


def _queries(followups: Sequence[IAssessed]) -> list[Query]:
    """RECIST 1.1 table 3 in iRECIST's words: an iPR after an iCR is a data query."""
    queries = []
    seen_cr: IAssessed | None = None
    for tp in followups:
        if tp.response is IResponse.ICR:
            seen_cr = tp
        elif tp.response is IResponse.IPR and seen_cr is not None:
            queries.append(
                Query(
                    "R-BOR-CONF",
                    tp.id,
                    f"iPR at {tp.id} follows iCR at {seen_cr.id}: check whether the iCR was an "
                    "iPR (RECIST 1.1 table 3)",
                )
            )
            seen_cr = None
    return queries
