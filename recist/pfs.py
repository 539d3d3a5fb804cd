"""Progression and progression-free survival (§8, FDA 2018): the date of the first
progression (:func:`progression_event`), then PFS as an event or a censoring with a reason
code (:func:`pfs`)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

from recist.lesions import Case, Timepoint
from recist.new_lesions import NewLesionAssessment
from recist.non_target import NonTargetAssessment
from recist.response import NewLesionStatus, Response
from recist.settings import MISSED_VISITS, CensorAt, ProgressionDateRule
from recist.target import TargetAssessment


class PfsReason(StrEnum):
    PD_TARGET = "PD_TARGET"
    PD_NONTARGET = "PD_NONTARGET"
    PD_NEW_LESION = "PD_NEW_LESION"
    DEATH = "DEATH"
    CENSORED_LAST_ASSESSMENT = "CENSORED_LAST_ASSESSMENT"
    CENSORED_NEW_THERAPY = "CENSORED_NEW_THERAPY"
    CENSORED_MISSED_VISITS = "CENSORED_MISSED_VISITS"
    CENSORED_NO_ASSESSMENT = "CENSORED_NO_ASSESSMENT"


@dataclass(slots=True, init=False, unsafe_hash=True)
class Progression:
    """The first PD call: where it was called, its (possibly back-dated) date, and why."""

    timepoint: Final[str]
    date: Final[datetime.date]
    reason: Final[PfsReason]
    back_dated: Final[bool]

    def __init__(
        self,
        timepoint: str,
        date: datetime.date,
        reason: PfsReason,
        back_dated: bool = False,
    ) -> None:
        self.timepoint = timepoint
        self.date = date
        self.reason = reason
        self.back_dated = back_dated


@dataclass(slots=True, init=False, unsafe_hash=True)
class Pfs:
    event: Final[bool]
    date: Final[datetime.date]
    days: Final[int]  # date − origin + 1
    reason: Final[PfsReason]
    explanation: Final[str]

    def __init__(
        self,
        event: bool,
        date: datetime.date,
        days: int,
        reason: PfsReason,
        explanation: str,
    ) -> None:
        self.event = event
        self.date = date
        self.days = days
        self.reason = reason
        self.explanation = explanation

    def to_dict(self) -> dict[str, Any]:
        """The PFS record in the JSON contract's shape (``docs/contracts.md``)."""
        return {
            "event": self.event,
            "date": self.date.isoformat(),
            "days": self.days,
            # str() of a StrEnum is its value, without the interpreted ``.value``
            # property (the compiled core runs this once per case)
            "reason": str(self.reason),
            "explanation": self.explanation,
        }


def scan_date(case: Case, tp: Timepoint, lesion_ids: Sequence[str], fallback: date) -> date:
    """§8: the date of a progression shown by ``lesion_ids`` at follow-up ``tp``, by the
    setting ``progression_date``: the visit's date (``timepoint``), its latest scan date
    (``latest``), or the earliest date of the scans that show those lesions (``earliest``,
    the default; ``fallback`` when no lesion is named)."""
    rule = case.settings.progression_date
    if rule is ProgressionDateRule.TIMEPOINT:
        return tp.date
    if rule is ProgressionDateRule.LATEST:
        return max([tp.date, *tp.scan_dates.values()]) if tp.scan_dates else tp.date
    dates = [tp.seen_on(i) for i in lesion_ids]
    return min(dates) if dates else fallback


def progression_event(
    case: Case,
    tp: Timepoint,
    target: TargetAssessment | None,
    non_target: NonTargetAssessment | None,
    new: NewLesionAssessment,
) -> Progression:
    """§8: the progression called at follow-up ``tp``, whose overall response is PD.

    Each cause of the PD is dated by :func:`scan_date`: a target PD (R-TGT-PD, R-REAPPEAR)
    by the scans of all targets, a non-target PD (R-NT-PD) by those of the progressed
    non-targets, an unequivocal new lesion (R-NEW-1) by its own scan, and one confirming an
    earlier equivocal sighting (R-NEW-2) by the date it was first seen (back-dated). The
    earliest cause wins; on equal dates, in that order.

    Parameters
    ----------
    case
        The case (its target lesions and the ``progression_date`` setting).
    tp
        The follow-up that calls PD.
    target, non_target, new
        Its target (``None`` without targets), non-target (``None`` without non-targets)
        and new-lesion assessments.

    Raises
    ------
    ValueError
        If none of them is PD.
    """
    causes: list[tuple[date, PfsReason, bool]] = []
    if target is not None and target.response is Response.PD:
        ids = [le.id for le in case.target_lesions]
        causes.append((scan_date(case, tp, ids, tp.date), PfsReason.PD_TARGET, False))
    if non_target is not None and non_target.response is Response.PD:
        when = scan_date(case, tp, non_target.progressed, tp.date)
        causes.append((when, PfsReason.PD_NONTARGET, False))
    if new.status is NewLesionStatus.YES:
        seen = new.first_seen_on or tp.date
        if not new.back_dated:
            ids = [n.id for n in tp.new_lesions if not n.equivocal and n.counts]
            seen = scan_date(case, tp, ids, seen)
        causes.append((seen, PfsReason.PD_NEW_LESION, new.back_dated))
    if not causes:
        raise ValueError(f"timepoint {tp.id}: no target, non-target or new-lesion PD to date")
    when, reason, back_dated = min(causes, key=lambda cause: cause[0])
    return Progression(tp.id, when, reason, back_dated)


def describe_progression(progression: Progression) -> str:
    """The reason line of the timepoint that calls ``progression`` (its date and cause)."""
    why = progression.reason.value
    if progression.back_dated:
        why += ", back-dated to the first sighting, R-NEW-2"
    return f"progression dated {progression.date.isoformat()} ({why})"


def adequate_assessments(
    followups: Iterable[tuple[str, date, Response | None]],
) -> list[tuple[str, date]]:
    """§8: the adequate assessments among ``followups`` (post-baseline timepoints as
    ``(id, date, overall response)``, in order): those whose overall response is not NE
    (nor missing), as ``(id, date)`` for :func:`pfs`."""
    return [
        (tp_id, tp_date)
        for tp_id, tp_date, response in followups
        if response is not None and response is not Response.NE
    ]


def pfs(case: Case, progression: Progression | None, adequate: list[tuple[str, date]]) -> Pfs:
    """PFS for one case (§8).

    Parameters
    ----------
    case
        The case (origin, death and new-therapy dates, settings).
    progression
        The first PD, or ``None``.
    adequate
        Post-baseline timepoints whose overall response is not NE, as ``(id, date)`` in
        order: the adequate assessments. With the setting ``censor_at: "any"`` every
        follow-up of ``case`` is taken instead, whatever its response: PFS is then
        censored at (and the missed-visit rule measured from) the last assessment of any
        response.
    """
    origin = case.origin
    settings = case.settings
    therapy = case.new_therapy_on if settings.cut_at_new_therapy else None
    kind = "adequate assessment"
    if settings.censor_at is CensorAt.ANY:
        adequate = [(tp.id, tp.date) for tp in case.timepoints[1:]]
        kind = "assessment (any response)"

    # The event candidate: the earlier of progression and death.
    event: tuple[date, PfsReason, str] | None = None
    if progression is not None:
        event = (
            progression.date,
            progression.reason,
            f"progression called at {progression.timepoint}",
        )
    if case.died_on is not None and (event is None or case.died_on < event[0]):
        event = (case.died_on, PfsReason.DEATH, "death without earlier progression")

    if therapy is not None and (event is None or event[0] > therapy):
        why = f"new anticancer therapy started {therapy.isoformat()} before any event"
        return _censor(
            origin,
            _last_adequate(adequate, therapy, False),
            PfsReason.CENSORED_NEW_THERAPY,
            why,
            kind,
        )

    if event is None:
        return _censor(
            origin,
            _last_adequate(adequate, None, False),
            PfsReason.CENSORED_LAST_ASSESSMENT,
            "no progression or death",
            kind,
        )

    event_date, reason, what = event
    if settings.visit_interval_days is not None:
        # §8: the last adequate assessment on or before the event, other than the
        # timepoint that shows the event (a scan on the day of death counts).
        shows = (
            _showing(progression, adequate)
            if progression is not None and reason is not PfsReason.DEATH
            else frozenset()
        )
        before = _last_adequate_before(adequate, event_date, shows)
        reference = before[1] if before is not None else origin
        gap = (event_date - reference).days
        limit = MISSED_VISITS * settings.visit_interval_days
        if gap > limit:
            why = (
                f"{what} on {event_date.isoformat()}, {gap} days after the last {kind} "
                f"(> {MISSED_VISITS} × {settings.visit_interval_days} days: missed visits)"
            )
            return _censor(origin, before, PfsReason.CENSORED_MISSED_VISITS, why, kind)
    return Pfs(
        True,
        event_date,
        (event_date - origin).days + 1,
        reason,
        f"{what} on {event_date.isoformat()}",
    )


def _last_adequate(
    adequate: list[tuple[str, date]], on_or_before: date | None, strictly: bool
) -> tuple[str, date] | None:
    """The last adequate assessment on or before a date (strictly before, or any)."""
    if on_or_before is None:
        return adequate[-1] if adequate else None
    found = None
    for tp_id, tp_date in adequate:
        if tp_date >= on_or_before if strictly else tp_date > on_or_before:
            break
        found = (tp_id, tp_date)
    return found


def _showing(progression: Progression, adequate: list[tuple[str, date]]) -> frozenset[str]:
    """The timepoints that show a progression: the one that calls it, and for a back-dated
    new lesion (R-NEW-2) the equivocal timepoint its date comes from."""
    shows = {progression.timepoint}
    if progression.back_dated:
        shows |= {tp_id for tp_id, tp_date in adequate if tp_date == progression.date}
    return frozenset(shows)


def _last_adequate_before(
    adequate: list[tuple[str, date]], event_date: date, shows: frozenset[str]
) -> tuple[str, date] | None:
    """The last adequate assessment dated on or before ``event_date`` other than the
    timepoints in ``shows`` (§8's missed-visit reference)."""
    found = None
    for tp_id, tp_date in adequate:
        if tp_date > event_date:
            break
        if tp_id not in shows:
            found = (tp_id, tp_date)
    return found


def _censor(
    origin: date,
    at: tuple[str, date] | None,
    reason: PfsReason,
    why: str,
    kind: str = "adequate assessment",
) -> Pfs:
    """Censored at the last assessment ``at`` (of the ``kind`` the setting ``censor_at``
    counts), or at the origin without one."""
    if at is None:
        if reason is PfsReason.CENSORED_LAST_ASSESSMENT:
            reason = PfsReason.CENSORED_NO_ASSESSMENT
        none = "no adequate assessment" if kind == "adequate assessment" else "no assessment"
        return Pfs(False, origin, 1, reason, f"{why}; {none}: censored at the origin")
    return Pfs(
        False,
        at[1],
        (at[1] - origin).days + 1,
        reason,
        f"{why}; censored at the last {kind} {at[0]} ({at[1].isoformat()})",
    )
