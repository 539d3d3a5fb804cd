"""An error of the services, which names a field of the request (``targets.T01``,
``/lesions/2/id``, ``new_lesions.NL01.site``…), turned into the name of the form input
that holds it (``t_T01_mm``, ``code_4``, ``new_0_site``), so that the page marks that
input (``aria-invalid``) and puts the cursor in it whatever the error (web/static/app.js).
"""

from __future__ import annotations

import re

from web.services import ServiceError

_LESION_POINTER = re.compile(r"^/lesions/(\d+)(?:/(\w+))?")
# A baseline lesion's member → the column of its row in the baseline form.
_BASELINE_INPUT = {
    "id": "code",
    "kind": "kind",
    "site": "site",
    "nodal": "nodal",
    "size": "size",
    "state": "size",
    "treated_on": "treated_on",
    "location": "location",
    "series": "series",
    "image": "image",
}
_NEW_INPUT = {
    "id": "id",
    "site": "site",
    "short_axis_mm": "sa",
    "nodal": "nodal",
    "equivocal": "equivocal",
    "location": "location",
    "series": "series",
    "image": "image",
}


def baseline_input(error: ServiceError, rows: list[int]) -> None:
    """Point ``error.field`` at the baseline form's input; ``rows`` is the form row of
    each lesion sent (empty rows are skipped, so the n-th lesion is not the n-th row)."""
    match = _LESION_POINTER.match(error.pointer or "")
    if match is None:
        return
    index = int(match[1])
    if index < len(rows):
        column = _BASELINE_INPUT.get(match[2] or "id", "code")
        error.field = f"{column}_{rows[index]}"


def timepoint_input(error: ServiceError, new_rows: dict[str, int]) -> None:
    """Point ``error.field`` at the follow-up form's input; ``new_rows`` maps each new
    lesion's id to its form row (ids the form gave blank rows included)."""
    field = error.field or ""
    parts = field.split(".")
    if parts[0] == "new_lesions" and len(parts) >= 2:
        row = new_rows.get(parts[1])
        if row is None and parts[1].startswith("#") and parts[1][1:].isdigit():
            ordered = sorted(new_rows.values())
            number = int(parts[1][1:]) - 1
            row = ordered[number] if number < len(ordered) else None
        if row is not None:
            member = parts[2] if len(parts) > 2 else "id"
            error.field = f"new_{row}_{_NEW_INPUT.get(member, 'id')}"
    elif parts[0] == "images" and len(parts) == 3:
        error.field = f"img_{parts[1]}_{parts[2]}"
    elif parts[0] == "scan_dates" and len(parts) >= 2:
        row = new_rows.get(parts[1])
        error.field = f"scan_{parts[1]}" if row is None else f"new_{row}_scan"
    elif parts[0] == "targets" and len(parts) >= 2:
        error.field = f"t_{'.'.join(parts[1:])}_mm"
    elif parts[0] == "non_targets" and len(parts) >= 2:
        error.field = f"nt_{'.'.join(parts[1:])}"
