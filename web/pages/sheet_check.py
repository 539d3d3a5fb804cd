"""The worksheets' check (central and site): the engine's result for the worksheet as typed,
laid out per visit with the rule ids of its reasons; nothing is stored.

While a reader types a visit's column, cells still blank are shown as pending: for the
live check they count as not evaluated (``NE``), and the answer says which they are, so
that the sums and responses of what is typed show at once. Saving and signing never
fill anything: a blank cell there is the worksheet's error.
"""

from __future__ import annotations

import re
from typing import Any

from web.pages.read_sheet import Sheet, SheetError
from web.services import ServiceError

_RULE = re.compile(r"^((?:R|I)-[A-Z0-9]+(?:-[A-Z0-9]+)*)\b")


def rule_ids(reasons: list[str] | None) -> list[str]:
    """The rule ids that the engine's reasons start with (``R-TGT-PR: sum …``)."""
    out: list[str] = []
    for reason in reasons or []:
        match = _RULE.match(reason)
        if match and match[1] not in out:
            out.append(match[1])
    return out


def with_pending(sheet: Sheet) -> tuple[Sheet, list[str]]:
    """The worksheet with the blank target and non-target cells of its follow-up columns
    as ``NE``, and which they were (``T02 at W16``)."""
    columns = [j for j, col in enumerate(sheet.columns) if j > 0 and (col.visit or col.date)]
    ids = sheet.auto_ids()
    pending: list[str] = []
    rows = []
    for i, row in enumerate(sheet.rows):
        cells = list(row.cells)
        used = bool(row.id or row.site) or any(cells)
        if used and row.role != "new":
            for j in columns:
                if j < len(cells) and not cells[j]:
                    cells[j] = "NE"
                    pending.append(f"{ids[i]} at {sheet.columns[j].visit or j + 1}")
        rows.append(type(row)(row.id, row.role, row.site, row.node, cells))
    return Sheet(list(sheet.columns), rows), pending


def bad_field(sheet: Sheet, error: ServiceError | None) -> str | None:
    """The worksheet field to mark for an error: the one the worksheet named, else the
    cell an engine refusal points at."""
    if error is None:
        return None
    if isinstance(error, SheetError):
        return error.field
    return sheet.field_at(error.pointer) or error.field


def check_answer(
    sheet: Sheet,
    outcome: dict[str, Any] | None,
    error: ServiceError | None,
    pending: list[str],
) -> dict[str, Any]:
    """The JSON the worksheets' script shows: the engine's outcome, each visit with the
    rule ids of its reasons (``rules``), or the error and the field to mark."""
    if outcome is not None:
        outcome = dict(outcome)
        outcome["timepoints"] = [
            {**tp, "rules": rule_ids(tp.get("reasons"))} for tp in outcome["timepoints"]
        ]
    return {
        "outcome": outcome,
        "error": None if error is None else error.message,
        "rule": None if error is None else error.rule,
        "field": bad_field(sheet, error),
        "pending": pending,
    }
