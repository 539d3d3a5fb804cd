"""Non-target lesion response (§4.3.3): R-NT-CR, R-NT-PD, R-NT-NE, R-NT-NONCRPD."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from recist.lesions import Lesion, NonTargetState, Timepoint
from recist.response import Response


class NonTargetAssessment:
    """The non-target response at one follow-up timepoint.

    Like the other records built once per timepoint (``TargetSum``, ``TargetAssessment``,
    ``NewLesionAssessment``), a plain class with its own ``__init__`` rather than a
    dataclass or a ``NamedTuple``: the compiled core (``make mypyc``) compiles such an
    ``__init__`` to C, while a dataclass's or a ``NamedTuple``'s constructor is generated
    at run time and stays interpreted (7.5 µs of a subject's 55 µs of rules, measured with
    the four records; ``benchmarks/bench_assess.py``). Nothing compares or hashes them;
    treat them as read-only.
    """

    __slots__ = ("progressed", "reasons", "response")

    def __init__(
        self, response: Response, reasons: tuple[str, ...], progressed: tuple[str, ...] = ()
    ) -> None:
        self.response = response
        self.reasons = reasons
        self.progressed = progressed  # lesions that show the progression (for dating, §8)


def non_target_response(
    lesions: tuple[Lesion, ...], tp: Timepoint, *, after_cr: bool
) -> NonTargetAssessment | None:
    """The non-target response at follow-up ``tp``; ``None`` without non-target lesions.

    A non-target missing from the timepoint counts as not evaluated. ``after_cr`` is true
    when an earlier timepoint's overall response was CR: a non-target seen again is then
    PD (R-REAPPEAR).
    """
    if not lesions:
        return None
    states = {le.id: tp.non_targets.get(le.id, NonTargetState.NOT_EVALUATED) for le in lesions}
    return non_target_states_response(tuple(states), tuple(states.values()), after_cr=after_cr)


def non_target_states_response(
    ids: Sequence[str], states: Sequence[NonTargetState], *, after_cr: bool
) -> NonTargetAssessment:
    """:func:`non_target_response`, given each non-target's distinct id and its state at
    the timepoint (one or more lesions)."""
    progressed = []
    present = []
    missing = []
    for index, state in enumerate(states):
        if state is NonTargetState.PRESENT:
            present.append(ids[index])
        elif state is NonTargetState.PROGRESSION:
            progressed.append(ids[index])
        elif state is NonTargetState.NOT_EVALUATED:
            missing.append(ids[index])
    if progressed:
        return NonTargetAssessment(
            Response.PD,
            (f"R-NT-PD: unequivocal progression of non-target {', '.join(progressed)}",),
            tuple(progressed),
        )
    if after_cr and present:
        return NonTargetAssessment(
            Response.PD,
            (
                f"R-REAPPEAR: non-target {', '.join(present)} reappeared after a timepoint "
                "with overall CR",
            ),
            tuple(present),
        )
    if missing:
        return NonTargetAssessment(
            Response.NE,
            (f"R-NT-NE: non-target {', '.join(missing)} not evaluated and no progression",),
        )
    if not present:
        return NonTargetAssessment(
            Response.CR, ("R-NT-CR: every non-target lesion has disappeared",)
        )
    return _still_present(tuple(present))


@lru_cache(maxsize=1024)
def _still_present(present: tuple[str, ...]) -> NonTargetAssessment:
    """R-NT-NONCRPD, the usual answer (cached by the lesions present)."""
    return NonTargetAssessment(
        Response.NON_CR_NON_PD,
        (
            f"R-NT-NONCRPD: non-target {', '.join(present)} still present without "
            "unequivocal progression",
        ),
    )
