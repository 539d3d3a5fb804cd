"""Target lesion response at follow-up timepoints (§4.3.1, §4.3.2).

The order of evaluation is the one of ``docs/rules.md`` §3: R-TGT-PD, then R-TGT-NE
(with the partial-sum-proves-PD exception), R-TGT-CR, R-TGT-PR, R-TGT-SD; R-TGT-HOLD and
R-REAPPEAR adjust it. All comparisons are on exact integer lengths (R-EXACT).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

from recist.lesions import (
    UNITS_PER_MM,
    Case,
    Length,
    Lesion,
    TargetValue,
    Timepoint,
    format_mm,
    mm_to_length,
)
from recist.response import Response

PD_MIN_RATIO_NUM, PD_MIN_RATIO_DEN = 12, 10  # R-TGT-PD: sum ≥ 120 % of the nadir …
PD_MIN_INCREASE: Length = 5 * UNITS_PER_MM  # R-TGT-PD: … and at least 5 mm above it
PR_MAX_RATIO_NUM, PR_MAX_RATIO_DEN = 7, 10  # R-TGT-PR: sum ≤ 70 % of the baseline sum
NODE_NORMAL_SA: Length = 10 * UNITS_PER_MM  # R-TGT-CR, R-REAPPEAR: a node is normal below 10 mm


def pct(numerator: int, denominator: int) -> float:
    """``numerator / denominator`` as a percentage rounded to 0.1 (for display only).

    Always the same float as ``round(numerator * 100 / denominator, 1)``, which rounds the
    exact value of the quotient through a decimal conversion: the costliest step of a
    timepoint's reasons. So the tenths are rounded here unless they lie within 1e-9 of a
    tie, where ``round`` decides; ``tenths`` differs from ten times the quotient by at most
    ``|tenths|`` · 2⁻⁵³ (at most 1.2e-10 below the 1e6 bound), which cannot cross a tie
    further off, and ``k / 10`` is the float nearest the decimal ``round`` would write.
    ``tests/recist/test_pct.py`` compares the two.
    """
    share = numerator * 100 / denominator
    tenths = share * 10.0
    if -1e6 < tenths < 1e6:
        below = math.floor(tenths)
        part = tenths - below  # exact: no rounding below 2**52
        if part < 0.5 - 1e-9:
            k = below
        elif part > 0.5 + 1e-9:
            k = below + 1
        else:
            k = 0  # a tie, or close to one: round decides
        if k != 0:  # 0 may be -0.0 (round keeps the sign of a small negative share)
            return k / 10
    return round(share, 1)


def pd_min_sum(nadir: Length) -> Length:
    """R-TGT-PD: the smallest sum of diameters that is PD against ``nadir``.

    That is the larger of 120 % of the nadir, rounded up to a whole :data:`Length`, and
    the nadir + 5 mm: both thresholds are inclusive and computed in exact integers
    (R-EXACT), so a sum is PD exactly when it is ≥ this value (:func:`meets_pd`).

    >>> from recist.lesions import mm_to_length, length_to_mm
    >>> length_to_mm(pd_min_sum(mm_to_length(40.0)))  # 120 % dominates: 48.0 ≥ 45.0
    48.0
    >>> length_to_mm(pd_min_sum(mm_to_length(20.0)))  # 5 mm dominates: 25.0 ≥ 24.0
    25.0
    """
    by_ratio = -(-nadir * PD_MIN_RATIO_NUM // PD_MIN_RATIO_DEN)  # ceiling division
    by_increase = nadir + PD_MIN_INCREASE
    return by_ratio if by_ratio > by_increase else by_increase


def pr_max_sum(baseline: Length) -> Length:
    """R-TGT-PR: the largest sum of diameters that is still PR against ``baseline``.

    That is 70 % of the baseline sum, rounded down to a whole :data:`Length` (inclusive,
    exact integers, R-EXACT): a sum is PR by R-TGT-PR exactly when it is ≤ this value
    (:func:`meets_pr`). The engine gives no PR against a baseline sum of 0.

    >>> from recist.lesions import mm_to_length, length_to_mm
    >>> length_to_mm(pr_max_sum(mm_to_length(50.0)))
    35.0
    >>> length_to_mm(pr_max_sum(mm_to_length(33.33)))
    23.331
    """
    return baseline * PR_MAX_RATIO_NUM // PR_MAX_RATIO_DEN  # floor division


def meets_pd(total: Length, nadir: Length) -> bool:
    """R-TGT-PD: ``total`` ≥ 120 % of ``nadir`` and ≥ ``nadir`` + 5 mm (inclusive, exact)."""
    return total >= pd_min_sum(nadir)


def meets_pr(total: Length, baseline: Length) -> bool:
    """R-TGT-PR: ``total`` ≤ 70 % of ``baseline`` (inclusive, exact)."""
    return total <= pr_max_sum(baseline)


def has_reappeared(lesion: Lesion, size: Length, non_nodal_min: Length) -> bool:
    """R-REAPPEAR: a node at short axis ≥ 10 mm, a non-nodal target above 0 mm and at
    least ``non_nodal_min`` (setting ``reappearance_min_mm``)."""
    if lesion.nodal:
        return size >= NODE_NORMAL_SA
    return size > 0 and size >= non_nodal_min


def is_gone(lesion: Lesion, size: Length) -> bool:
    """R-TGT-CR: a non-nodal target at 0 mm, or a node whose short axis is below 10 mm."""
    return size < NODE_NORMAL_SA if lesion.nodal else size == 0


class TargetSum:  # built per timepoint: a plain class, see NonTargetAssessment
    """The sum of diameters at one timepoint (R-SEL-3, R-SMALL, R-SPLIT, R-MERGE)."""

    __slots__ = ("complete", "missing", "total")

    def __init__(self, total: Length, complete: bool, missing: tuple[str, ...]) -> None:
        self.total = total  # sum over the evaluated targets
        self.complete = complete  # every target evaluated
        self.missing = missing  # targets not evaluated (R-TGT-NE)


def sum_of_diameters(targets: tuple[Lesion, ...], tp: Timepoint) -> TargetSum:
    """Sum the targets' counted sizes at ``tp``: LD for non-nodal, SA for nodes."""
    total = 0
    missing = []
    for lesion in targets:
        size = tp.target(lesion.id).size
        if size is None:
            missing.append(lesion.id)
        else:
            total += size
    return TargetSum(total, not missing, tuple(missing))


class TargetAssessment:  # built per timepoint: a plain class, see NonTargetAssessment
    """The target response at one follow-up timepoint and the numbers behind it."""

    __slots__ = ("nadir", "reasons", "response", "sum")

    def __init__(
        self, response: Response, sum: TargetSum, nadir: Length, reasons: tuple[str, ...]
    ) -> None:
        self.response = response
        self.sum = sum
        self.nadir = nadir
        self.reasons = reasons


class TargetTracker:
    """Walks a case's timepoints in order, keeping the nadir and the PR-hold state.

    Call :meth:`assess` once per follow-up timepoint, in order, then :meth:`record` with
    that timepoint's overall response.
    """

    def __init__(self, case: Case) -> None:
        self.targets = case.target_lesions
        self.target_ids = tuple(le.id for le in self.targets)
        self._nodal = tuple(le.nodal for le in self.targets)
        self._any_nodal = any(self._nodal)
        self.settings = case.settings
        self.reappearance_min = mm_to_length(case.settings.reappearance_min_mm)
        base = sum_of_diameters(self.targets, case.baseline)
        self.baseline_sum: Length = base.total
        self.nadir: Length = base.total
        self.nadir_timepoint = case.baseline.id
        self.had_cr = False  # an earlier timepoint's overall response was CR (R-REAPPEAR)
        self._pr_since: date | None = None  # first PR/CR of the current run
        self._pr_confirmed = False

    @property
    def holding_pr(self) -> bool:
        """R-TGT-HOLD: PR reached (and confirmed, where confirmation is on)."""
        if not self.settings.pr_hold or self._pr_since is None:
            return False
        return self._pr_confirmed or not self.settings.confirmation

    def assess(self, tp: Timepoint) -> TargetAssessment:
        """The target response at follow-up ``tp`` (§4.3.1)."""
        return self.assess_values(tp, [tp.target(i) for i in self.target_ids])

    def assess_values(self, tp: Timepoint, values: Sequence[TargetValue]) -> TargetAssessment:
        """:meth:`assess`, given the targets' records at ``tp`` in the order of
        :attr:`target_ids` (the caller looked them up once for the whole timepoint)."""
        sizes = [value.size for value in values]
        if None in sizes:
            ids = self.target_ids
            current = TargetSum(
                sum([size for size in sizes if size is not None]),
                False,
                tuple([ids[i] for i, size in enumerate(sizes) if size is None]),
            )
        else:
            current = TargetSum(sum(sizes), True, ())  # type: ignore[arg-type]
        nadir = self.nadir
        total = current.total
        if self.had_cr:  # R-REAPPEAR
            back = [
                le.id
                for le, size in zip(self.targets, sizes, strict=True)
                if size is not None and has_reappeared(le, size, self.reappearance_min)
            ]
            if back:
                what = ", ".join(back)
                return TargetAssessment(
                    Response.PD,
                    current,
                    nadir,
                    (f"R-REAPPEAR: target {what} reappeared after a timepoint with overall CR",),
                )
        if total >= pd_min_sum(nadir):  # R-TGT-PD, also on a partial sum (R-TGT-NE)
            partial = "" if current.complete else "partial "
            rule = "R-TGT-PD" if current.complete else "R-TGT-NE/R-TGT-PD"
            share = pct(total, nadir) if nadir else "∞"
            reason = (
                f"{rule}: {partial}sum {format_mm(total)} is {share} % of the nadir "
                f"{format_mm(nadir)} (≥ 120 %) and {format_mm(total - nadir)} above it (≥ 5 mm)"
            )
            if not current.complete:
                reason += f"; {', '.join(current.missing)} not evaluated"
            return TargetAssessment(Response.PD, current, nadir, (reason,))
        if not current.complete:
            return TargetAssessment(
                Response.NE,
                current,
                nadir,
                (
                    f"R-TGT-NE: target {', '.join(current.missing)} not evaluated and the "
                    f"partial sum {format_mm(total)} does not prove PD",
                ),
            )
        # R-TGT-CR when every target is gone (is_gone, inlined: a non-nodal target at 0 mm,
        # a node below 10 mm); the sum is complete here, so every size is known.
        nodal = self._nodal
        for index, size in enumerate(sizes):
            if (size >= NODE_NORMAL_SA) if nodal[index] else size != 0:  # type: ignore[operator]
                break
        else:
            detail = "every non-nodal target 0 mm" + (
                " and every nodal target short axis < 10 mm" if self._any_nodal else ""
            )
            return TargetAssessment(
                Response.CR, current, nadir, (f"R-TGT-CR: {detail} (sum {format_mm(total)})",)
            )
        base = self.baseline_sum
        if base and total <= pr_max_sum(base):  # R-TGT-PR
            return TargetAssessment(
                Response.PR,
                current,
                nadir,
                (
                    f"R-TGT-PR: sum {format_mm(total)} is {pct(total, base)} % of the baseline "
                    f"{format_mm(base)} (≤ 70 %)",
                ),
            )
        base_text = (
            f"{pct(total, base)} % of the baseline {format_mm(base)}" if base else "baseline 0"
        )
        if self.holding_pr:  # R-TGT-HOLD
            return TargetAssessment(
                Response.PR,
                current,
                nadir,
                (
                    f"R-TGT-HOLD: sum {format_mm(total)} ({base_text}) is above 70 % but PR was "
                    f"reached earlier and PD is not met (nadir {format_mm(nadir)})",
                ),
            )
        return TargetAssessment(
            Response.SD,
            current,
            nadir,
            (
                f"R-TGT-SD: sum {format_mm(total)} is {base_text} (> 70 %) and does not meet PD "
                f"against the nadir {format_mm(nadir)}",
            ),
        )

    def record(self, tp: Timepoint, assessment: TargetAssessment, overall: Response | None) -> None:
        """Update the nadir, the PR-hold and CR state after ``tp`` (R-TGT-NE, R-TGT-HOLD)."""
        current = assessment.sum
        if current.complete and current.total < self.nadir:
            # An incomplete timepoint never becomes the nadir (R-TGT-NE).
            self.nadir = current.total
            self.nadir_timepoint = tp.id
        if overall is Response.CR:
            self.had_cr = True
        response = assessment.response
        if response is Response.PR or response is Response.CR:
            if self._pr_since is None:
                self._pr_since = tp.date
            elif (tp.date - self._pr_since).days >= self.settings.confirmation_min_days:
                self._pr_confirmed = True
        elif response is Response.SD or response is Response.PD:
            if not self._pr_confirmed:
                self._pr_since = None
