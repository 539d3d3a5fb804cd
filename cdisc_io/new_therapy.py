"""The start of new anti-cancer therapy per subject, from SDTM CM / PR or ADSL ``NACTDT``.

RECIST 1.1 best overall response and PFS stop counting assessments after a new
anti-cancer therapy starts (§7 cut at new therapy, §8 censoring reason NEW_THERAPY); a
case carries that date as ``new_therapy_on``. Sponsors collect it in different places:

- systemic therapy in CM (concomitant/prior medications), radiotherapy and cancer surgery
  in PR (procedures), each on an "on treatment" / "subsequent therapy" CRF page whose
  records carry a category in ``--CAT`` or ``--SCAT``. Only records whose ``--CAT`` or
  ``--SCAT`` equals the chosen category (default ``ON TREATMENT``, as in admiralonco's
  "Creating and Using New Anti-Cancer Start Date" vignette) count; prior-therapy pages do
  not.
- ADSL ``NACTDT``, where the sponsor derived it already (admiralonco's name for it).

The subject's date is the earliest start (``--STDTC``) among the counted records and
``NACTDT``. Partial start dates are completed with the import's imputation rule and
reported; records without a start date, and starts before randomisation (prior therapy
miscategorised), are skipped with a notice, never silently.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from cdisc_io.dates import ImputationRule, parse_dtc
from cdisc_io.errors import CdiscFileError

if TYPE_CHECKING:
    import pandas as pd

    from cdisc_io.sdtm_import import Notice

DEFAULT_CATEGORY = "ON TREATMENT"
CM_REQUIRED = ("USUBJID", "CMSTDTC")
PR_REQUIRED = ("USUBJID", "PRSTDTC")


def _cells(frame: pd.DataFrame, name: str) -> list[str]:
    if name in frame.columns:
        return [str(cell) for cell in frame[name].tolist()]
    return [""] * len(frame)


def read_new_therapy(
    frame: pd.DataFrame,
    *,
    domain: str,
    file: str,
    category: str,
    rule: ImputationRule,
    notices: list[Notice],
    randomized: dict[str, date] | None = None,
) -> dict[str, date]:
    """The earliest counted therapy start per subject in one CM or PR file.

    Parameters
    ----------
    frame
        The domain as read by :func:`cdisc_io.csvio.read_domain` (cells as text).
    domain
        ``"CM"`` or ``"PR"``: the variable prefix.
    file
        The file's name, for messages.
    category
        The ``--CAT`` / ``--SCAT`` value of the records that count (case-insensitive).
    rule
        How a partial start date is completed.
    notices
        Where skipped records and imputed dates are reported.
    randomized
        Randomisation dates by USUBJID: starts before them are skipped.

    Returns
    -------
    dict
        USUBJID → the earliest start date of a counted record.

    Raises
    ------
    CdiscFileError
        A start date that is not an ISO 8601 date, or an empty USUBJID, naming the row.
    """
    from cdisc_io.csvio import file_row
    from cdisc_io.sdtm_import import Notice

    wanted = category.strip().upper()
    start_column = f"{domain}STDTC"
    subjects = _cells(frame, "USUBJID")
    cats = _cells(frame, f"{domain}CAT")
    subcats = _cells(frame, f"{domain}SCAT")
    names = _cells(frame, f"{domain}TRT")
    starts = _cells(frame, start_column)
    out: dict[str, date] = {}
    for index, subject in enumerate(subjects):
        if wanted not in (cats[index].upper(), subcats[index].upper()):
            continue
        row = file_row(index)
        if not subject:
            raise CdiscFileError("USUBJID is empty", file=file, row=row, column="USUBJID")
        what = names[index] or f"{domain} record"
        text = starts[index]
        if not text:
            notices.append(
                Notice(
                    "new_therapy_skipped",
                    f"{what} has no {start_column}; it cannot date a new therapy",
                    subject=subject,
                    file=file,
                    row=row,
                )
            )
            continue
        try:
            parsed = parse_dtc(text, rule)
        except ValueError as error:
            raise CdiscFileError(str(error), file=file, row=row, column=start_column) from None
        origin = (randomized or {}).get(subject)
        if origin is not None and parsed.value < origin:
            notices.append(
                Notice(
                    "new_therapy_skipped",
                    f"{what} started {parsed.value.isoformat()}, before randomisation "
                    f"{origin.isoformat()}: prior therapy, not a new one",
                    subject=subject,
                    file=file,
                    row=row,
                )
            )
            continue
        if parsed.imputed:
            notices.append(
                Notice(
                    "imputed_date",
                    f"{start_column} {text} imputed as {parsed.value.isoformat()} "
                    f"(rule {rule.value})",
                    subject=subject,
                    file=file,
                    row=row,
                    flag=parsed.flag,
                )
            )
        if subject not in out or parsed.value < out[subject]:
            out[subject] = parsed.value
    return out


def earliest(*sources: dict[str, date]) -> dict[str, date]:
    """Per subject, the earliest date any source gives."""
    out: dict[str, date] = {}
    for source in sources:
        for subject, when in source.items():
            if subject not in out or when < out[subject]:
                out[subject] = when
    return out
