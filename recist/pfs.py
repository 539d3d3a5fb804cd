"""Progression-free survival: event or censoring with a reason code (§8, FDA 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from recist.lesions import Case
from recist.settings import MISSED_VISITS


class PfsReason(StrEnum):
    PD_TARGET = "PD_TARGET"
    PD_NONTARGET = "PD_NONTARGET"
    PD_NEW_LESION = "PD_NEW_LESION"
    DEATH = "DEATH"
    CENSORED_LAST_ASSESSMENT = "CENSORED_LAST_ASSESSMENT"
    CENSORED_NEW_THERAPY = "CENSORED_NEW_THERAPY"
    CENSORED_MISSED_VISITS = "CENSORED_MISSED_VISITS"
    CENSORED_NO_ASSESSMENT = "CENSORED_NO_ASSESSMENT"


@dataclass(frozen=True, slots=True)
class Progression:
    """The first PD call: where it was called, its (possibly back-dated) date, and why."""

    timepoint: str
    date: date
    reason: PfsReason
    back_dated: bool = False


@dataclass(frozen=True, slots=True)
class Pfs:
    event: bool
    date: date
    days: int  # date − origin + 1
    reason: PfsReason
    explanation: str


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
        order: the adequate assessments.
    """
    origin = case.origin
    settings = case.settings
    therapy = case.new_therapy_on if settings.cut_at_new_therapy else None

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
            origin, _last_adequate(adequate, therapy, False), PfsReason.CENSORED_NEW_THERAPY, why
        )

    if event is None:
        return _censor(
            origin,
            _last_adequate(adequate, None, False),
            PfsReason.CENSORED_LAST_ASSESSMENT,
            "no progression or death",
        )

    event_date, reason, what = event
    if settings.visit_interval_days is not None:
        before = _last_adequate(adequate, event_date, True)
        reference = before[1] if before is not None else origin
        gap = (event_date - reference).days
        limit = MISSED_VISITS * settings.visit_interval_days
        if gap > limit:
            why = (
                f"{what} on {event_date.isoformat()}, {gap} days after the last adequate "
                f"assessment (> {MISSED_VISITS} × {settings.visit_interval_days} days: "
                "missed visits)"
            )
            return _censor(origin, before, PfsReason.CENSORED_MISSED_VISITS, why)
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


def _censor(origin: date, at: tuple[str, date] | None, reason: PfsReason, why: str) -> Pfs:
    """Censored at the last adequate assessment ``at``, or at the origin without one."""
    if at is None:
        if reason is PfsReason.CENSORED_LAST_ASSESSMENT:
            reason = PfsReason.CENSORED_NO_ASSESSMENT
        return Pfs(
            False, origin, 1, reason, f"{why}; no adequate assessment: censored at the origin"
        )
    return Pfs(
        False,
        at[1],
        (at[1] - origin).days + 1,
        reason,
        f"{why}; censored at the last adequate assessment {at[0]} ({at[1].isoformat()})",
    )
