"""Overall response at a timepoint (§4.4.1): table 1 (target disease at baseline) and
table 2 (non-target disease only)."""

from __future__ import annotations

from recist.response import NewLesionStatus, Response


def overall_response(
    target: Response | None, non_target: Response | None, new: NewLesionStatus
) -> tuple[Response, str]:
    """Combine the three assessments of a timepoint into its overall response.

    Parameters
    ----------
    target
        The target response, ``None`` when the case has no target lesions (table 2).
    non_target
        The non-target response, ``None`` when the case has no non-target lesions.
    new
        The new-lesion status; an equivocal lesion is not a new lesion yet (R-NEW-2).

    Returns
    -------
    tuple
        The overall response and a reason naming the table row that gave it.
    """
    if new is NewLesionStatus.YES:
        return Response.PD, "table 1/2: an unequivocal new lesion is PD (R-NEW-1)"
    if target is Response.PD:
        return Response.PD, "table 1: target PD gives overall PD"
    if non_target is Response.PD:
        return Response.PD, "table 1/2: non-target PD gives overall PD"
    if target is None:
        # Table 2: non-target disease only.
        if non_target is None:
            return Response.NE, "no target or non-target disease at baseline: not evaluable"
        return non_target, f"table 2: non-target disease only, non-target {non_target.value}"
    if target is Response.NE:
        return Response.NE, "table 1: target NE without PD gives overall NE"
    if target is Response.CR:
        if non_target in (None, Response.CR):
            tail = "no non-target disease" if non_target is None else "non-target CR"
            return Response.CR, f"table 1: target CR, {tail}, no new lesion"
        return Response.PR, f"table 1: target CR with non-target {non_target.value} gives PR"
    return target, f"table 1: target {target.value}, non-target not PD, no new lesion"
