"""Local failure of locally treated lesions (R-LOCAL, docs/rules.md §9, STEREO-SEIN).

A lesion treated locally (``treated_on``, e.g. SBRT) fails locally when its own size is at
least 120 % of its own post-treatment nadir **and** at least 5 mm above it, or when the
reader calls its unequivocal progression explicitly (a non-target recorded as
``progression``). The nadir is the smallest of the lesion's measurements taken on or after
the treatment date and before the timepoint being judged; the first post-treatment
measurement only sets it. Comparisons are exact integer lengths (R-EXACT).

Per treated lesion the outcome is one of: local failure (an event), death without local
failure first (the competing event of the cumulative incidence analysis), or censoring at
the last timepoint that evaluated the lesion. Times count from the treatment date,
``days = date − treated_on + 1`` as everywhere in this project.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from recist.lesions import (
    UNITS_PER_MM,
    Case,
    Length,
    Lesion,
    NonTargetState,
    TargetState,
    Timepoint,
    format_mm,
)

LOCAL_PD_RATIO_NUM, LOCAL_PD_RATIO_DEN = 12, 10  # R-LOCAL: ≥ 120 % of the lesion's nadir …
LOCAL_PD_MIN_INCREASE: Length = 5 * UNITS_PER_MM  # R-LOCAL: … and ≥ 5 mm above it


class LocalOutcome(StrEnum):
    """How a treated lesion's follow-up ended."""

    LOCAL_FAILURE = "LOCAL_FAILURE"  # the event of interest
    DEATH = "DEATH"  # competing event: death before any local failure
    CENSORED = "CENSORED"  # alive without local failure at the last evaluation


@dataclass(frozen=True, slots=True)
class LocalFailure:
    """One treated lesion's time to local failure.

    Attributes
    ----------
    lesion
        The lesion id.
    treatment
        The local therapy (``SBRT``…), if recorded.
    treated_on
        The time origin.
    outcome
        Local failure, death (competing event) or censored.
    date
        The date of the event or of censoring.
    timepoint
        The timepoint that showed the local failure or was the last evaluation (``None``
        for death, or when the lesion was never evaluated after treatment).
    reason
        One sentence, citing R-LOCAL.
    """

    lesion: str
    treatment: str | None
    treated_on: date
    outcome: LocalOutcome
    date: date
    timepoint: str | None
    reason: str

    @property
    def days(self) -> int:
        """``date − treated_on + 1``."""
        return (self.date - self.treated_on).days + 1

    @property
    def event_code(self) -> int:
        """0 censored, 1 local failure, 2 death (the coding of competing-risk fitters)."""
        return {LocalOutcome.CENSORED: 0, LocalOutcome.LOCAL_FAILURE: 1, LocalOutcome.DEATH: 2}[
            self.outcome
        ]


def meets_local_failure(size: Length, nadir: Length) -> bool:
    """R-LOCAL: ``size`` ≥ 120 % of ``nadir`` and ≥ ``nadir`` + 5 mm (inclusive, exact)."""
    return (
        size * LOCAL_PD_RATIO_DEN >= nadir * LOCAL_PD_RATIO_NUM
        and size - nadir >= LOCAL_PD_MIN_INCREASE
    )


def _own_size(lesion: Lesion, tp: Timepoint) -> Length | None:
    """The lesion's own size at ``tp``; ``None`` when it was not measured on its own.

    A merged target's size went to another lesion (R-MERGE), so it has none of its own.
    """
    value = tp.target(lesion.id)
    if value.state in (TargetState.NOT_EVALUATED, TargetState.MERGED):
        return None
    return value.size


def _evaluated(lesion: Lesion, tp: Timepoint) -> bool:
    if lesion.is_target:
        return _own_size(lesion, tp) is not None
    state = tp.non_targets.get(lesion.id)
    return state is not None and state is not NonTargetState.NOT_EVALUATED


def assess_lesion(case: Case, lesion: Lesion) -> LocalFailure:
    """Time to local failure of one treated lesion (R-LOCAL).

    Raises
    ------
    ValueError
        If the lesion has no ``treated_on`` date.
    """
    treated_on = lesion.treated_on
    if treated_on is None:
        raise ValueError(f"lesion {lesion.id} has no treatment date (R-LOCAL)")
    nadir: Length | None = None
    last: Timepoint | None = None
    for tp in case.timepoints:
        if tp.date < treated_on:
            continue  # before treatment: neither the nadir nor a failure
        if case.died_on is not None and tp.date > case.died_on:
            break
        if not _evaluated(lesion, tp):
            continue
        if lesion.is_target:
            size = _own_size(lesion, tp)
            assert size is not None  # _evaluated checked it
            if nadir is not None and meets_local_failure(size, nadir):
                return LocalFailure(
                    lesion.id, lesion.treatment, treated_on, LocalOutcome.LOCAL_FAILURE,
                    tp.seen_on(lesion.id), tp.id,
                    f"R-LOCAL: {lesion.id} measures {format_mm(size)}, ≥ 120 % of its "
                    f"post-treatment nadir {format_mm(nadir)} and ≥ 5 mm above it",
                )  # fmt: skip
            nadir = size if nadir is None else min(nadir, size)
        elif tp.non_targets.get(lesion.id) is NonTargetState.PROGRESSION:
            return LocalFailure(
                lesion.id, lesion.treatment, treated_on, LocalOutcome.LOCAL_FAILURE,
                tp.seen_on(lesion.id), tp.id,
                f"R-LOCAL: the reader called unequivocal progression of {lesion.id}",
            )  # fmt: skip
        last = tp
    if case.died_on is not None and case.died_on >= treated_on:
        return LocalFailure(
            lesion.id, lesion.treatment, treated_on, LocalOutcome.DEATH, case.died_on, None,
            f"R-LOCAL: death on {case.died_on.isoformat()} before any local failure of "
            f"{lesion.id} (competing event)",
        )  # fmt: skip
    if last is None:
        return LocalFailure(
            lesion.id, lesion.treatment, treated_on, LocalOutcome.CENSORED, treated_on, None,
            f"R-LOCAL: {lesion.id} was not evaluated after its treatment; censored at day 1",
        )  # fmt: skip
    return LocalFailure(
        lesion.id, lesion.treatment, treated_on, LocalOutcome.CENSORED, last.date, last.id,
        f"R-LOCAL: no local failure of {lesion.id} up to its last evaluation {last.id}",
    )  # fmt: skip


def local_failures(case: Case) -> tuple[LocalFailure, ...]:
    """The time to local failure of every treated lesion of ``case``, in lesion order."""
    return tuple(assess_lesion(case, le) for le in case.lesions if le.treated_on is not None)


def first_local_failure(case: Case) -> LocalFailure | None:
    """The earliest local failure among the treated lesions (a PFS event in §9), if any."""
    failures = [f for f in local_failures(case) if f.outcome is LocalOutcome.LOCAL_FAILURE]
    return min(failures, key=lambda f: f.date, default=None)
