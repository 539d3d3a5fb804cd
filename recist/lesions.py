"""Lesions, timepoints and cases: the engine's input, valid once built.

Sizes are held as exact integers of 0.1 µm (R-EXACT): every threshold comparison in the
engine is exact integer arithmetic on the values as recorded, never ``x <= 0.7 * y`` on
floats.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Final

from recist.errors import CaseInputError
from recist.settings import DEFAULT_SETTINGS, MAX_VOLUME_ML, Settings

Length = int
"""A length in integer units of 0.1 µm (1/10,000 mm): exact for every recorded value (R-EXACT)."""

UNITS_PER_MM = 10_000
TOO_SMALL: Length = 5 * UNITS_PER_MM  # R-SMALL: "too small to measure" counts 5 mm
ABSENT: Length = 0  # R-SMALL: "disappeared" counts 0 mm


_floor = math.floor

# R-PLAUS-SIZE: no lesion (nor slice, nor threshold) is a metre across. A larger value is
# a unit or typing slip (µm, an extra digit) that would pass as a huge progression and
# flatten every plot of the trial; it is refused wherever a size comes in.
MAX_SIZE_MM = 1000

# R-PLAUS-DATE: no assessment, scan or event of a living trial is dated before this.
EARLIEST_DATE = date(1900, 1, 1)


# A lymph node by its words (R-MEAS-2, R-SEL-2): "lymph node", "axillary node", "nodal
# disease", "LYMPH NODE" (SDTM), "lymph-node" (a segment label); never "lymphangitic" or
# "nodule". The one definition the engine, imaging_io, cdisc_io and the web use.
_NODE_WORDS = re.compile(r"\b(?:lymph|nodes?|nodal)\b|lymph-?node", re.IGNORECASE)


def names_a_node(*texts: str | None) -> bool:
    """Whether any of ``texts`` (a site, a segment label, a coded meaning) names a lymph
    node."""
    known = _NODE_TEXTS
    for text in texts:
        if text:
            found = known.get(text)
            if found is None:
                found = _NODE_WORDS.search(text) is not None
                if len(known) >= 4096:
                    known.clear()
                known[text] = found
            if found:
                return True
    return False


# names_a_node's answers by text: a trial's sites are a few dozen words, asked of again
# for every lesion of every case (R-MEAS-2, R-SEL-2).
_NODE_TEXTS: dict[str, bool] = {}


def date_problem(when: date, today: date | None = None) -> str | None:
    """R-PLAUS-DATE: why ``when`` cannot be a date of a trial (before 1900, or after
    ``today`` when the caller has a clock), or ``None``. The one definition every way in
    uses."""
    if when < EARLIEST_DATE:
        return f"{when.isoformat()} is before {EARLIEST_DATE.isoformat()}; check the year"
    if today is not None and when > today:
        return f"{when.isoformat()} is in the future (today is {today.isoformat()}); check the year"
    return None


def origin_problem(
    randomized_on: date | None, died_on: date | None, new_therapy_on: date | None
) -> tuple[str, str] | None:
    """R-PLAUS-ORIGIN: the (field, message) of a death or new anticancer therapy dated
    before randomisation (PFS counts from it, §8), or ``None``."""
    if randomized_on is None:
        return None
    for name, when, what in (
        ("died_on", died_on, "death"),
        ("new_therapy_on", new_therapy_on, "new anticancer therapy"),
    ):
        if when is not None and when < randomized_on:
            return name, (
                f"{what} date {when.isoformat()} is before randomisation "
                f"({randomized_on.isoformat()}); PFS counts from randomisation (§8)"
            )
    return None


def _check_mm(value: float | int, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CaseInputError(f"{where} {value!r} is not a number of mm")
    if not math.isfinite(value) or value < 0:
        raise CaseInputError(f"{where} {value!r} mm is not a finite size ≥ 0 mm")
    if value > MAX_SIZE_MM:
        raise CaseInputError(
            f"{where} {value!r} mm is not a plausible size (more than {MAX_SIZE_MM} mm); "
            "sizes are entered in millimetres",
            rule="R-PLAUS-SIZE",
        )


def mm_to_length(value: float | int, *, where: str = "size") -> Length:
    """Convert a size in mm to an exact integer :data:`Length` (R-EXACT).

    A value written with up to four decimals (``4.95``, ``13.5828``) is kept exactly, so
    the thresholds compare the number as recorded, never a rounded or binary-float
    neighbour of it; anything finer is rounded half up to 0.1 µm.

    Raises
    ------
    CaseInputError
        If ``value`` is not a finite number ≥ 0 and ≤ :data:`MAX_SIZE_MM` (R-PLAUS-SIZE).
    """
    kind = type(value)
    if (kind is float or kind is int) and 0 <= value <= MAX_SIZE_MM:  # the common case
        return _floor(value * UNITS_PER_MM + 0.5)
    _check_mm(value, where)
    return _floor(value * UNITS_PER_MM + 0.5)


def length_to_mm(value: Length) -> float:
    """A :data:`Length` back to mm for output."""
    return value / UNITS_PER_MM


def format_mm(value: Length) -> str:
    """A length for a reason sentence: 0.1 mm resolution unless the value is finer."""
    cached = type(value) is int  # lengths are ints; anything else is written afresh
    text = _MM_TEXT.get(value) if cached else None
    if text is None:
        if value % (UNITS_PER_MM // 10) == 0:
            text = f"{value / UNITS_PER_MM:.1f} mm"
        else:
            text = f"{value / UNITS_PER_MM:.4f}".rstrip("0") + " mm"
        if cached:
            if len(_MM_TEXT) >= 50_000:
                _MM_TEXT.clear()
            _MM_TEXT[value] = text
    return text


_MM_TEXT: dict[Length, str] = {}  # format_mm's texts already made (reasons repeat sizes)


class LesionKind(StrEnum):
    """The role a lesion was given at baseline (§4.2)."""

    TARGET = "target"
    NON_TARGET = "non-target"


class TargetState(StrEnum):
    """How a target lesion was recorded at a timepoint (§4.3.2)."""

    MEASURED = "measured"
    TOO_SMALL = "too_small"  # R-SMALL: counts 5 mm
    ABSENT = "absent"  # R-SMALL: counts 0 mm
    NOT_EVALUATED = "not_evaluated"  # R-TGT-NE
    FRAGMENTS = "fragments"  # R-SPLIT: the fragments' diameters add up
    MERGED = "merged"  # R-MERGE: counts 0 mm, its size went to another target


class NonTargetState(StrEnum):
    """How a non-target lesion was recorded at a timepoint (§4.3.3)."""

    PRESENT = "present"
    ABSENT = "absent"
    PROGRESSION = "progression"  # unequivocal progression (R-NT-PD)
    NOT_EVALUATED = "not_evaluated"


@dataclass(frozen=True, slots=True)
class TargetValue:
    """One target lesion's record at one timepoint.

    ``size`` is the counted size as a :data:`Length` (``None`` when not evaluated);
    ``fragments`` the split parts (R-SPLIT); ``merged_into`` the target that took this
    one's size (R-MERGE).
    """

    state: TargetState
    size: Length | None = None
    fragments: tuple[Length, ...] = ()
    merged_into: str | None = None

    def __post_init__(self) -> None:
        state = self.state
        if state is TargetState.MEASURED:
            if self.size is None or self.size < 0:
                raise CaseInputError("a measured target needs a size ≥ 0 mm")
        elif state is TargetState.TOO_SMALL:
            object.__setattr__(self, "size", TOO_SMALL)
        elif state in (TargetState.ABSENT, TargetState.MERGED):
            object.__setattr__(self, "size", ABSENT)
        elif state is TargetState.NOT_EVALUATED:
            object.__setattr__(self, "size", None)
        elif state is TargetState.FRAGMENTS:
            if not self.fragments or any(f < 0 for f in self.fragments):
                raise CaseInputError("a split target needs one or more fragment sizes ≥ 0 mm")
            object.__setattr__(self, "size", sum(self.fragments))
        if state is TargetState.MERGED and not self.merged_into:
            raise CaseInputError("a merged target must name the target it merged into")

    @classmethod
    def measured(cls, mm: float | int) -> TargetValue:
        """A measured size in mm."""
        return cls(TargetState.MEASURED, mm_to_length(mm))

    @property
    def evaluated(self) -> bool:
        """Whether the lesion was assessed at this timepoint (R-TGT-NE)."""
        return self.state is not TargetState.NOT_EVALUATED


NOT_EVALUATED = TargetValue(TargetState.NOT_EVALUATED)


@dataclass(frozen=True, slots=True)
class Lesion:
    """A lesion identified at baseline, as a target or a non-target (§4.2).

    Attributes
    ----------
    id
        The lesion's identifier within the case (T1, NT01…).
    site
        The organ or site, free text normalised to lower case (used for R-SEL-1/2).
    kind
        Target or non-target.
    nodal
        Lymph node: measured on the short axis (R-MEAS-2, R-NODE).
    treated_on, treatment
        Local therapy of this lesion (R-MEAS-4 before baseline; R-LOCAL after).
    modality
        ``CT``, ``MR``, ``XR`` (chest X-ray) or ``CALIPER``, for R-MEAS-1.
    slice_thickness_mm
        The slice thickness the lesion was measured on, for R-MEAS-1.
    volume_ml
        The lesion's volume at baseline in mL, where imaging measured it (a segmentation):
        checked only against a protocol's eligibility (R-ELIG-VOLUME), never a response.
    """

    id: str
    site: str
    kind: LesionKind
    nodal: bool = False
    treated_on: date | None = None
    treatment: str | None = None
    modality: str | None = None
    slice_thickness_mm: float | None = None
    volume_ml: float | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise CaseInputError("a lesion needs a non-empty id", field="id")
        if not isinstance(self.kind, LesionKind):
            object.__setattr__(self, "kind", LesionKind(self.kind))
        object.__setattr__(self, "site", self.site.strip().lower())
        if self.slice_thickness_mm is not None and not self.slice_thickness_mm > 0:
            raise CaseInputError(
                f"slice thickness {self.slice_thickness_mm!r} mm is not > 0",
                lesion=self.id,
                field="slice_thickness_mm",
            )
        volume = self.volume_ml
        if volume is not None and (
            isinstance(volume, bool)
            or not isinstance(volume, int | float)
            or not math.isfinite(volume)
            or not 0 <= volume <= MAX_VOLUME_ML
        ):
            raise CaseInputError(
                f"volume {volume!r} mL is not a plausible volume (0 to {MAX_VOLUME_ML} mL)",
                lesion=self.id,
                field="volume_ml",
                rule="R-PLAUS-SIZE",
            )

    @property
    def is_target(self) -> bool:
        return self.kind is LesionKind.TARGET


@dataclass(frozen=True, slots=True)
class NewLesion:
    """A lesion first seen after baseline (§4.3.5).

    ``equivocal`` lesions are not PD yet (R-NEW-2); the same ``id`` seen later without
    ``equivocal`` confirms it. ``short_axis_mm`` lets a new node below 10 mm be ignored
    (R-NEW-1).
    """

    id: str
    site: str = ""
    equivocal: bool = False
    nodal: bool = False
    short_axis_mm: float | None = None

    @property
    def counts(self) -> bool:
        """Whether an unequivocal sighting of this lesion is PD (R-NEW-1: nodes ≥ 10 mm)."""
        if self.nodal and self.short_axis_mm is not None:
            return mm_to_length(self.short_axis_mm) >= 10 * UNITS_PER_MM
        return True


# Records built for every timepoint of every case (Timepoint, Case, and the results of
# recist.assessment, best_response and pfs) are immutable by ``Final`` fields rather than
# ``frozen=True``: mypy refuses any assignment to them after ``__init__``, and the compiled
# core (``make mypyc``) refuses one at run time as well. A frozen dataclass's ``__init__``
# sets each field through ``object.__setattr__``, and under mypyc stays interpreted: for
# these records it cost more than the rules that read them (``benchmarks/bench_assess.py``).
# They stay dataclasses for equality, ``repr``, hashing and ``dataclasses.replace``. Each
# is decorated ``@dataclass(slots=True, init=False, unsafe_hash=True)`` written out:
# mypyc compiles a class to a native one (fields in a C struct) only under a decorator it
# knows, not under an alias of one. A test checks they are native in the compiled core.


@dataclass(slots=True, init=False, unsafe_hash=True)
class Timepoint:
    """One assessment: the baseline (first timepoint of a case) or a follow-up.

    ``scan_dates`` maps a lesion id (target, non-target or new) to the date of the scan
    that showed it (§8 progression dating); lesions not in it were seen on ``date``.
    """

    id: Final[str]
    date: Final[datetime.date]
    targets: Final[dict[str, TargetValue]]
    non_targets: Final[dict[str, NonTargetState]]
    new_lesions: Final[tuple[NewLesion, ...]]
    scan_dates: Final[dict[str, datetime.date]]

    def __init__(
        self,
        id: str,
        date: datetime.date,
        targets: dict[str, TargetValue] | None = None,
        non_targets: dict[str, NonTargetState] | None = None,
        new_lesions: tuple[NewLesion, ...] = (),
        scan_dates: dict[str, datetime.date] | None = None,
    ) -> None:
        self.id = id
        self.date = date
        self.targets = {} if targets is None else targets
        self.non_targets = {} if non_targets is None else non_targets
        self.new_lesions = new_lesions
        self.scan_dates = {} if scan_dates is None else scan_dates

    def target(self, lesion_id: str) -> TargetValue:
        """The record of a target at this timepoint; a missing target is not evaluated."""
        return self.targets.get(lesion_id, NOT_EVALUATED)

    def seen_on(self, lesion_id: str) -> datetime.date:
        """The date of the scan that showed ``lesion_id`` at this timepoint."""
        return self.scan_dates.get(lesion_id, self.date)


def _check_merge(into: str, lesion_id: str, targets: set[str], timepoint: str) -> None:
    """R-MERGE: a target merges into another target lesion."""
    if into not in targets:
        raise CaseInputError(
            f"merged into {into!r}, which is not a target lesion (R-MERGE)",
            timepoint=timepoint,
            lesion=lesion_id,
            field="targets",
        )
    if into == lesion_id:
        raise CaseInputError(
            "a target cannot merge into itself (R-MERGE)",
            timepoint=timepoint,
            lesion=lesion_id,
            field="targets",
        )


def _check_merge_cycles(targets: dict[str, TargetValue], timepoint: str) -> None:
    """R-MERGE: the targets a timepoint merges must end in one that holds the mass; a
    cycle (T1 into T2 and T2 into T1, or longer) would count every part 0 mm: a false CR."""
    into = {lid: value.merged_into for lid, value in targets.items() if value.merged_into}
    done: set[str] = set()
    for start in into:
        path: list[str] = []
        lesion: str | None = start
        while lesion is not None and lesion not in done and lesion not in path:
            path.append(lesion)
            lesion = into.get(lesion)
        if lesion is not None and lesion in path:
            cycle = path[path.index(lesion) :]
            chain = " → ".join([*cycle, cycle[0]])
            raise CaseInputError(
                f"targets {chain} are merged into each other in a cycle; a merged target "
                "must go into a target that holds the merged mass (R-MERGE)",
                timepoint=timepoint,
                lesion=cycle[0],
                field="targets",
                rule="R-MERGE",
            )
        done.update(path)


@dataclass(slots=True, init=False, unsafe_hash=True)
class Case:
    """One subject's (or one reader's read of one subject's) lesions and timepoints.

    The first timepoint is the baseline. Building a case checks its consistency: lesion
    ids unique and known, dates never going backwards, every target measured at baseline.

    Raises
    ------
    CaseInputError
        Naming the subject, timepoint, lesion and field that are wrong.
    """

    subject_id: Final[str]
    lesions: Final[tuple[Lesion, ...]]
    timepoints: Final[tuple[Timepoint, ...]]
    settings: Final[Settings]
    arm: Final[str | None]
    randomized_on: Final[date | None]
    died_on: Final[date | None]
    new_therapy_on: Final[date | None]
    last_known_alive_on: Final[date | None]
    reader: Final[str | None]
    accepted: Final[bool | None]
    # Derived once at construction: the targets and non-targets in input order. (Not
    # ``Final``: mypy allows no ``field()`` there; nothing assigns them after __init__.)
    target_lesions: tuple[Lesion, ...] = field(init=False, repr=False, compare=False)
    non_target_lesions: tuple[Lesion, ...] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        subject_id: str,
        lesions: tuple[Lesion, ...],
        timepoints: tuple[Timepoint, ...],
        settings: Settings = DEFAULT_SETTINGS,
        arm: str | None = None,
        randomized_on: date | None = None,
        died_on: date | None = None,
        new_therapy_on: date | None = None,
        last_known_alive_on: date | None = None,
        reader: str | None = None,
        accepted: bool | None = None,
    ) -> None:
        self.subject_id = subject_id
        self.lesions = lesions
        self.timepoints = timepoints
        self.settings = settings
        self.arm = arm
        self.randomized_on = randomized_on
        self.died_on = died_on
        self.new_therapy_on = new_therapy_on
        self.last_known_alive_on = last_known_alive_on
        self.reader = reader
        self.accepted = accepted
        target = LesionKind.TARGET
        self.target_lesions = tuple([le for le in lesions if le.kind is target])
        self.non_target_lesions = tuple([le for le in lesions if le.kind is not target])
        try:
            self._check()
        except CaseInputError as error:
            raise error.located(subject=self.subject_id) from None

    def _check(self) -> None:
        if not self.timepoints:
            raise CaseInputError("a case needs at least a baseline timepoint", field="timepoints")
        ids: set[str] = set()
        for lesion in self.lesions:
            if lesion.id in ids:
                raise CaseInputError("lesion id is used twice", lesion=lesion.id, field="id")
            ids.add(lesion.id)
        targets = {le.id for le in self.target_lesions}
        non_targets = {le.id for le in self.non_target_lesions}
        seen_tp: set[str] = set()
        previous: Timepoint | None = None
        for tp in self.timepoints:
            if tp.id in seen_tp:
                raise CaseInputError("timepoint id is used twice", timepoint=tp.id, field="id")
            seen_tp.add(tp.id)
            merges = False
            if previous is not None and tp.date < previous.date:
                raise CaseInputError(
                    f"date {tp.date.isoformat()} is before the previous timepoint "
                    f"{previous.id} ({previous.date.isoformat()}); dates must not go backwards",
                    timepoint=tp.id,
                    field="date",
                )
            for lesion_id, value in tp.targets.items():
                if lesion_id not in targets:
                    what = "a non-target" if lesion_id in non_targets else "not a known lesion"
                    raise CaseInputError(
                        f"targets lists {lesion_id!r}, which is {what}; targets must be "
                        "declared in lesions with kind 'target'",
                        timepoint=tp.id,
                        lesion=lesion_id,
                        field="targets",
                    )
                into = value.merged_into
                if into is not None:
                    _check_merge(into, lesion_id, targets, tp.id)
                    merges = True
            if merges:
                _check_merge_cycles(tp.targets, tp.id)
            for lesion_id in tp.non_targets:
                if lesion_id not in non_targets:
                    what = "a target" if lesion_id in targets else "not a known lesion"
                    raise CaseInputError(
                        f"non_targets lists {lesion_id!r}, which is {what}; non-targets must "
                        "be declared in lesions with kind 'non-target'",
                        timepoint=tp.id,
                        lesion=lesion_id,
                        field="non_targets",
                    )
            if tp.new_lesions:
                new_ids = [n.id for n in tp.new_lesions]
                if len(set(new_ids)) != len(new_ids):
                    raise CaseInputError(
                        "a new lesion id is listed twice", timepoint=tp.id, field="new_lesions"
                    )
                for new_id in new_ids:
                    if new_id in ids:
                        raise CaseInputError(
                            f"new lesion {new_id!r} reuses the id of a baseline lesion",
                            timepoint=tp.id,
                            lesion=new_id,
                            field="new_lesions",
                        )
                for new in tp.new_lesions:
                    if new.nodal and new.short_axis_mm is None and not new.equivocal:
                        raise CaseInputError(
                            "new lesion is a lymph node without its short axis; a new node "
                            "is progression only at a short axis ≥ 10 mm (R-NEW-1): give "
                            "short_axis_mm",
                            timepoint=tp.id,
                            lesion=new.id,
                            field="new_lesions",
                            rule="R-NEW-1",
                        )
            for lesion_id in tp.scan_dates:
                if lesion_id not in ids and not any(n.id == lesion_id for n in tp.new_lesions):
                    raise CaseInputError(
                        f"scan_dates names {lesion_id!r}, which is neither a lesion of the "
                        "case nor a new lesion of this timepoint",
                        timepoint=tp.id,
                        lesion=lesion_id,
                        field="scan_dates",
                    )
            if previous is None:  # the baseline
                baseline_targets = tp.targets
                for lesion_id in sorted(targets):
                    value = baseline_targets.get(lesion_id, NOT_EVALUATED)
                    if value.state is not TargetState.MEASURED and value.state is not (
                        TargetState.TOO_SMALL
                    ):
                        raise CaseInputError(
                            "target has no baseline size; every target lesion must be "
                            "measured at baseline (R-SEL-3)",
                            timepoint=tp.id,
                            lesion=lesion_id,
                            field="targets",
                        )
                if tp.new_lesions:
                    raise CaseInputError(
                        "the baseline cannot have new lesions",
                        timepoint=tp.id,
                        field="new_lesions",
                    )
            previous = tp
        earliest, _ = self.date_range()
        if earliest < EARLIEST_DATE:  # locate it (the common case builds no list)
            for name, when, where in self.dates():
                problem = date_problem(when)
                if problem is not None:
                    raise CaseInputError(problem, field=name, rule="R-PLAUS-DATE", **where)
        if self.randomized_on is not None:
            # The baseline scan may precede randomisation; follow-ups cannot: PFS counts
            # from randomisation (§8), and an assessment before it would be negative time.
            early = next((tp for tp in self.timepoints[1:] if tp.date < self.randomized_on), None)
            if early is not None:
                raise CaseInputError(
                    f"follow-up date {early.date.isoformat()} is before randomisation "
                    f"({self.randomized_on.isoformat()}); follow-up assessments come after "
                    "the origin of PFS (§8)",
                    timepoint=early.id,
                    field="date",
                    rule="R-PLAUS-ORIGIN",
                )
        origin = origin_problem(self.randomized_on, self.died_on, self.new_therapy_on)
        if origin is not None:
            raise CaseInputError(origin[1], field=origin[0], rule="R-PLAUS-ORIGIN")
        if self.died_on is not None and self.died_on < self.timepoints[0].date:
            raise CaseInputError(
                f"death date {self.died_on.isoformat()} is before the baseline", field="died_on"
            )

    def dates(self) -> list[tuple[str, date, dict[str, str]]]:
        """Every date of the case as (field, date, where) for the plausibility checks
        (R-PLAUS-DATE): the subject's dates, each timepoint's and scan date, and each
        lesion's treatment date."""
        out: list[tuple[str, date, dict[str, str]]] = []
        for name in ("randomized_on", "died_on", "new_therapy_on", "last_known_alive_on"):
            when = getattr(self, name)
            if when is not None:
                out.append((name, when, {}))
        for lesion in self.lesions:
            if lesion.treated_on is not None:
                out.append(("treated_on", lesion.treated_on, {"lesion": lesion.id}))
        for tp in self.timepoints:
            out.append(("date", tp.date, {"timepoint": tp.id}))
            for lesion_id, when in tp.scan_dates.items():
                out.append(("scan_dates", when, {"timepoint": tp.id, "lesion": lesion_id}))
        return out

    def date_range(self) -> tuple[date, date]:
        """The earliest and the latest of :meth:`dates`, without listing them: the
        plausibility checks (R-PLAUS-DATE) look for where a date is only when one of
        these is out of bounds."""
        timepoints = self.timepoints
        low = timepoints[0].date
        high = low
        for tp in timepoints:
            when = tp.date
            if when < low:
                low = when
            elif when > high:
                high = when
            if tp.scan_dates:
                for when in tp.scan_dates.values():
                    if when < low:
                        low = when
                    elif when > high:
                        high = when
        others = [
            self.randomized_on,
            self.died_on,
            self.new_therapy_on,
            self.last_known_alive_on,
            *[lesion.treated_on for lesion in self.lesions],
        ]
        for other in others:
            if other is not None:
                if other < low:
                    low = other
                elif other > high:
                    high = other
        return low, high

    @property
    def baseline(self) -> Timepoint:
        return self.timepoints[0]

    @property
    def origin(self) -> date:
        """Randomisation date if known, else the baseline date (§7 R-BOR-SDMIN, §8)."""
        return self.randomized_on if self.randomized_on is not None else self.baseline.date
