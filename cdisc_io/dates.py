"""ISO 8601 dates of SDTM ``--DTC`` variables, with imputation of partial dates.

SDTM keeps what was collected: ``2014-02-11``, ``2014-02`` (day unknown), ``2014`` (month
unknown) or a date with a time (``2014-02-11T10:30``). The engine needs whole dates, so a
partial date is completed by a documented, configurable rule, and the result says which
part was imputed with the ADaM ``--DTF`` codes (``"D"`` day imputed, ``"M"`` month and day
imputed), so that the imputation is never silent.

Rules (``ImputationRule``):

- ``last`` (default): the last day of the month / year, as pharmaverse's ADRS does for
  response dates (``2014-02`` → ``2014-02-28``);
- ``first``: the first day (``2014-02`` → ``2014-02-01``);
- ``middle``: the 15th of the month, or 1 July for a year alone.

A partial date whose subject visit also has a complete date that falls inside it (other
records of the same scan) is completed with that date instead; the importer does that
before calling :func:`impute` (see :mod:`cdisc_io.sdtm_import`).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

_DTC = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T.*)?$")


class ImputationRule(StrEnum):
    """How a partial date is completed."""

    FIRST = "first"
    MIDDLE = "middle"
    LAST = "last"


@dataclass(frozen=True, slots=True)
class ParsedDate:
    """A date read from a ``--DTC`` value.

    ``value`` is the whole date (imputed where needed), ``flag`` the ADaM imputation flag
    (``None``, ``"D"`` or ``"M"``), ``text`` the value as collected.
    """

    value: date
    flag: str | None
    text: str

    @property
    def imputed(self) -> bool:
        """Whether part of the date was made up by the imputation rule."""
        return self.flag is not None


def parse_dtc(text: str, rule: ImputationRule = ImputationRule.LAST) -> ParsedDate:
    """Parse an ISO 8601 ``--DTC`` value, imputing a missing day or month by ``rule``.

    Raises
    ------
    ValueError
        The value is empty, has no year, or is not a calendar date.
    """
    match = _DTC.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an ISO 8601 date (YYYY-MM-DD, YYYY-MM or YYYY)")
    year = int(match.group(1))
    month_text, day_text = match.group(2), match.group(3)
    if month_text is not None and day_text is not None:
        return ParsedDate(date(year, int(month_text), int(day_text)), None, text)
    if month_text is not None:
        month = int(month_text)
        if not 1 <= month <= 12:
            raise ValueError(f"{text!r} has no month {month}")
        last = calendar.monthrange(year, month)[1]
        day = {ImputationRule.FIRST: 1, ImputationRule.MIDDLE: 15, ImputationRule.LAST: last}[rule]
        return ParsedDate(date(year, month, day), "D", text)
    whole = {
        ImputationRule.FIRST: date(year, 1, 1),
        ImputationRule.MIDDLE: date(year, 7, 1),
        ImputationRule.LAST: date(year, 12, 31),
    }[rule]
    return ParsedDate(whole, "M", text)


def is_partial(text: str) -> bool:
    """Whether ``text`` lacks its day (``2014-02``) or month (``2014``)."""
    match = _DTC.match(text.strip())
    return bool(match) and match is not None and match.group(3) is None


def covers(partial: str, whole: date) -> bool:
    """Whether the partial date ``partial`` (``2014-02`` or ``2014``) contains ``whole``."""
    match = _DTC.match(partial.strip())
    if not match or int(match.group(1)) != whole.year:
        return False
    return match.group(2) is None or int(match.group(2)) == whole.month
