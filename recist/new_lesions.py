"""New lesions (§4.3.5, §4.4.4): R-NEW-1 and R-NEW-2 (equivocal, then confirmed)."""

from __future__ import annotations

from datetime import date

from recist.lesions import Timepoint
from recist.response import NewLesionStatus


class NewLesionAssessment:  # built per timepoint: a plain class, see NonTargetAssessment
    """The new-lesion status at one follow-up timepoint."""

    __slots__ = ("back_dated", "first_seen_on", "reasons", "status")

    def __init__(
        self,
        status: NewLesionStatus,
        reasons: tuple[str, ...],
        first_seen_on: date | None = None,
        back_dated: bool = False,
    ) -> None:
        self.status = status
        self.reasons = reasons
        self.first_seen_on = first_seen_on  # the earliest sighting of a lesion that makes PD
        self.back_dated = back_dated  # R-NEW-2: PD dated at an earlier, equivocal sighting


class NewLesionTracker:
    """Remembers equivocal new lesions so that a later confirmation back-dates PD."""

    def __init__(self) -> None:
        self._equivocal_seen: dict[str, tuple[str, date]] = {}  # id -> (timepoint, date)

    def assess(self, tp: Timepoint) -> NewLesionAssessment:
        """The new-lesion status of follow-up ``tp`` (R-NEW-1, R-NEW-2)."""
        if not tp.new_lesions:
            return _NONE_NEW
        unequivocal = []
        ignored = []
        for lesion in tp.new_lesions:
            if lesion.equivocal:
                continue
            if lesion.counts:
                unequivocal.append(lesion)
            else:
                ignored.append(lesion.id)
        reasons: list[str] = []
        if ignored:
            reasons.append(
                f"R-NEW-1: new node {', '.join(ignored)} has short axis < 10 mm and does not count"
            )
        equivocal = [le for le in tp.new_lesions if le.equivocal]
        for lesion in equivocal:
            self._equivocal_seen.setdefault(lesion.id, (tp.id, tp.seen_on(lesion.id)))
        if unequivocal:
            first_seen = None
            back_dated = False
            parts = []
            for lesion in unequivocal:
                seen = tp.seen_on(lesion.id)
                earlier = self._equivocal_seen.get(lesion.id)
                if earlier is not None and earlier[1] <= seen:
                    seen = earlier[1]
                    back_dated = True
                    parts.append(
                        f"R-NEW-2: new lesion {lesion.id} ({lesion.site or 'site not given'}) "
                        f"equivocal at {earlier[0]} is now unequivocal: PD, dated "
                        f"{seen.isoformat()} when first seen"
                    )
                else:
                    parts.append(
                        f"R-NEW-1: unequivocal new lesion {lesion.id} "
                        f"({lesion.site or 'site not given'})"
                    )
                if first_seen is None or seen < first_seen:
                    first_seen = seen
            return NewLesionAssessment(
                NewLesionStatus.YES, tuple(reasons + parts), first_seen, back_dated
            )
        if equivocal:
            ids = ", ".join(le.id for le in equivocal)
            reasons.append(
                f"R-NEW-2: new lesion {ids} is equivocal: not PD at this timepoint; PD will "
                "be back-dated here if a later scan confirms it"
            )
            return NewLesionAssessment(NewLesionStatus.EQUIVOCAL, tuple(reasons))
        return NewLesionAssessment(NewLesionStatus.NO, tuple(reasons))


_NONE_NEW = NewLesionAssessment(NewLesionStatus.NO, ())
