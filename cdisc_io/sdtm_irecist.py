"""iRECIST new lesions in SDTM TU/TR, both ways (docs/rules.md §10, I-NEW-1..4).

Under ``criteria: "irecist"`` a new lesion keeps its id and is listed again at every later
timepoint with its size (a new target) or its state (a new non-target), and the reader may
give its category (docs/contracts.md §1.3). In SDTM:

- category: ``TRGRPID`` of each record of a listing that gives it, ``NEW TARGET`` /
  ``NEW NON-TARGET`` (``NEW`` when the listing leaves the category to the engine, I-NEW-1,
  I-NEW-2); TU ``TUORRES``/``TUSTRESC`` of the lesion's identification holds its first
  listing's category the same way (``NEW`` without one). An equivocal listing's category
  is not written: the engine fixes the category at the first unequivocal sighting and
  reads none from an equivocal one (R-NEW-2), so ``NEW`` it is.
- size (``size_mm``; a node's short axis): ``LDIAM`` (``LPERP`` for a node, R-NODE) in mm,
  ``TOO SMALL TO MEASURE`` for ``too_small`` (with ``TUMSTATE`` ``EQUIVOCAL`` beside it
  for an equivocal lesion, R-NEW-2); a new lesion seen without a size is ``TUMSTATE``
  ``UNEQUIVOCAL``. A RECIST 1.1 import lists a measured new lesion as seen.
- state: ``TUMSTATE`` ``PRESENT``, ``ABSENT``, ``UNEQUIVOCAL PROGRESSION`` (or
  ``PROGRESSION``), and ``TRSTAT = NOT DONE`` for ``not_evaluated``; a size ``absent`` or
  ``not_evaluated`` is written as that state (the engine reads both alike, I-NEW-4).
- a new non-target is followed by its state: a size in mm given on one after its first
  listing says only that it is present, so it is written ``PRESENT``; on import such a
  size, on a lesion whose ``TRGRPID``/TU says ``NEW NON-TARGET``, is refused (I-NEW-4).
  ``TOO SMALL TO MEASURE`` stays (the engine flags it ``too_small``), and so does a node's
  short axis (``LPERP``): the engine refuses a nodal new lesion listed without one (R-NEW-1).
- site and nodal flag: TU ``TULOC`` (a node's site names a node, R-MEAS-2), given on the
  first listing only; later listings keep them (I-NEW-4).

The import refuses, naming file, row, column, subject, reader, visit, lesion and rule: a
``TUMSTATE`` that is no new lesion's state, a size and a state at one visit, a category that
changes between visits (or differs from TU's), and a size on a declared new non-target after
its first listing. What the engine itself refuses (a new target listed without a size…)
is refused by the contract check at the end of the import (``recist.jsonio.parse_case``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IRECIST = "irecist"
NEW_ROLE = "NEW"
CATEGORY_GROUPS = {"NEW TARGET": "target", "NEW NON-TARGET": "non-target"}
GROUP_OF_CATEGORY = {v: k for k, v in CATEGORY_GROUPS.items()}
# TUMSTATE of a new lesion's listing under iRECIST → (equivocal, state); NOT DONE is TRSTAT.
SEEN_STATES = {"UNEQUIVOCAL": False, "EQUIVOCAL": True}  # seen: no state (R-NEW-1, R-NEW-2)
STATE_WORDS = {
    "PRESENT": "present",
    "ABSENT": "absent",
    "UNEQUIVOCAL PROGRESSION": "progression",
    "PROGRESSION": "progression",
}
STATE_OUT = {
    "present": "PRESENT",
    "absent": "ABSENT",
    "progression": "UNEQUIVOCAL PROGRESSION",
    "not_evaluated": "",
}
SIZE_WORDS_AS_STATE = {"absent": "absent", "not_evaluated": "not_evaluated"}


def is_irecist(settings: dict[str, Any] | None) -> bool:
    """Whether cases are built for iRECIST (the ``criteria`` setting)."""
    return bool(settings) and settings.get("criteria") == IRECIST  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class ExportListing:
    """How one iRECIST new-lesion listing is written to TR.

    Attributes
    ----------
    group
        ``TRGRPID``: ``NEW TARGET``, ``NEW NON-TARGET`` or ``NEW``.
    size
        The size record's result (a number of mm as text, or ``TOO SMALL TO MEASURE``), or
        ``None`` when the listing gives no size.
    tumstate
        ``TUMSTATE``'s result; ``""`` with ``not_done`` for a lesion not evaluated; ``None``
        for a measured lesion that is not equivocal (its size says it is seen: one record
        per lesion, so that the visit's date keeps the vote of import-sdtm).
    not_done
        ``TRSTAT = NOT DONE`` on the TUMSTATE record.
    """

    group: str
    size: float | str | None
    tumstate: str | None
    not_done: bool


def export_listing(
    new: dict[str, Any], *, first: bool, declared: str | None, nodal: bool = False
) -> ExportListing:
    """The TR records of one iRECIST new-lesion listing (see the module docstring).

    ``first``: the lesion's first listing; ``declared``: the category the case gave it so
    far (a later size on a declared new non-target is written as ``PRESENT``, I-NEW-4).
    """
    new_nodal = nodal or bool(new.get("nodal"))
    # The engine fixes a category at the first unequivocal sighting and reads none from an
    # equivocal listing (R-NEW-2: not a new lesion yet): such a category is not written.
    category = None if new.get("equivocal") else new.get("category")
    group = GROUP_OF_CATEGORY.get(category, NEW_ROLE) if category else NEW_ROLE
    size = new.get("size_mm")
    if size is None and new.get("nodal") and new.get("short_axis_mm") is not None:
        size = new["short_axis_mm"]
    state = new.get("state")
    if state is None and isinstance(size, str) and size in SIZE_WORDS_AS_STATE:
        state, size = SIZE_WORDS_AS_STATE[size], None
    later_non_target = not first and (category or declared) == "non-target"
    # A node keeps its short axis: the engine reads a node's later listing by it (R-NEW-1)
    # and refuses a nodal new lesion listed without one, state or not.
    if later_non_target and size is not None and size != "too_small" and not new_nodal:
        state, size = "present", None  # a new non-target is followed by its state
    if state is not None:
        return ExportListing(group, None, STATE_OUT[state], state == "not_evaluated")
    if new.get("equivocal"):
        return ExportListing(group, size, "EQUIVOCAL", False)
    return ExportListing(group, size, None if size is not None else "UNEQUIVOCAL", False)
