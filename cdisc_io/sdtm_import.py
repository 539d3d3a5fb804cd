"""SDTM TU + TR (+ ADSL or DM) → cases of the ``recist assess`` JSON contract.

One case per subject **and per reader**: the investigator's read and each independent
reader's read (``TREVAL``/``TREVALID``) stay apart, because RECIST sums may never mix two
readers' measurements. The case's ``reader`` is ``TREVALID`` (``RADIOLOGIST 1``…) or
``TREVAL`` (``INVESTIGATOR``); ``accepted`` is true for the read the sponsor accepted
(``TUACPTFL = Y`` on the reader's tumour identification records, else ``TRACPTFL = Y`` on
most of its measurement records).

Mapping (SDTMIG oncology domains; RECIST 1.1 rule ids from ``docs/rules.md``):

- TU ``TUSTRESC`` (or ``TUORRES``) ``TARGET`` / ``NON-TARGET`` / ``NEW`` gives the lesion's
  role, ``TULNKID`` its id (T01, NT01, NEW01…), ``TULOC`` its site; a site naming a lymph
  node makes the lesion nodal (R-MEAS-2). A TU file without the ``TULOC`` column is
  refused (every node would be measured as a non-nodal lesion); an empty ``TULOC`` cell
  gives the site ``unspecified``.
- TR ``LDIAM`` is the size of a non-nodal target, ``LPERP`` (short axis) that of a nodal one
  (R-NODE); ``DIAMETER`` is used only where the proper one is absent; ``SUMDIAM`` is derived
  and ignored (the engine sums). Sizes are in mm: the unit of the value read (``TRSTRESU``
  for ``TRSTRESN``/``TRSTRESC``, ``TRORRESU`` for ``TRORRES``; the other one when it is
  empty) may be ``mm`` or empty (taken as mm), ``cm`` is converted (×10, a notice says
  so), any other unit is refused. ``TOO SMALL TO MEASURE`` → ``"too_small"`` (R-SMALL);
  ``TRSTAT = NOT DONE`` → ``"not_evaluated"`` (its ``TRREASND`` is kept as a notice).
- TR ``VOLUME`` (``TRTEST`` ``Volume``) at the baseline visit is a baseline lesion's
  ``volume_ml`` (R-ELIG-VOLUME, a protocol's eligibility, docs/rules.md §12), in ``mL``
  (an empty unit is taken as mL; ``cm3`` is the same; ``L`` is converted, ×1000, with a
  notice; any other unit is refused), a number ≥ 0 and ≤ the contract's largest volume;
  ``TRSTAT = NOT DONE`` gives no volume. Volumes at follow-ups are not read (the case
  carries only the baseline's), nor the volume of a lesion that is not a baseline lesion.
- Split lesion (R-SPLIT): fragments recorded as ``T01.1``, ``T01.2``… add up for T01.
  Merged lesions (R-MERGE): the coalesced mass recorded once as ``T01/T02`` goes to T01,
  and T02 becomes ``{"merged_into": "T01"}``; the parts' own records, if any (result
  ``MERGED``, or ``TRSTAT = NOT DONE`` for a merge reason), defer to it.
- ``TUMSTATE`` of a non-target: ``PRESENT``, ``ABSENT``, ``UNEQUIVOCAL``/``PROGRESSION``
  (R-NT-PD), ``EQUIVOCAL`` (not PD: present), ``NOT DONE``. Of a new lesion:
  ``EQUIVOCAL`` (R-NEW-2), ``UNEQUIVOCAL``/``PRESENT`` (R-NEW-1); ``ABSENT`` lists nothing.
- Timepoints are the ``VISIT`` names, ordered by date then ``VISITNUM``; a timepoint's date
  is the date most of its records carry, and a lesion scanned on another day keeps that
  day in ``scan_dates`` (progression dating, §8). When one visit
  name holds two assessments on different dates (the same lesion measured twice), each
  date becomes its own timepoint, named ``VISIT (date)``.
- Partial dates (``2014-02``): completed from a complete date of the same subject visit
  that falls inside them, else imputed by :class:`cdisc_io.dates.ImputationRule`
  (default ``last``); every completion is reported as a notice.

Records identical in every column but ``--SEQ`` are read once (a notice says so); two
records for the same subject, reader, visit, lesion and test with different results are
refused, as are unknown test codes, unknown roles, a TR lesion missing from TU, bad
numbers and bad dates: the whole file, naming row and column.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from cdisc_io.dates import ImputationRule, ParsedDate, covers, is_partial, parse_dtc
from cdisc_io.errors import CdiscFileError
from cdisc_io.sdtm_irecist import (
    CATEGORY_GROUPS,
    SEEN_STATES,
    STATE_WORDS,
    is_irecist,
)
from recist.errors import RecistError
from recist.jsonio import assess_json, parse_case
from recist.lesions import names_a_node
from recist.settings import MAX_VOLUME_ML

if TYPE_CHECKING:
    import pandas as pd

INVESTIGATOR = "INVESTIGATOR"
TU_REQUIRED = ("USUBJID", "TULNKID", "TUEVAL")
TR_REQUIRED = ("USUBJID", "TRLNKID", "TRTESTCD", "TRORRES", "VISIT", "TRDTC", "TREVAL")
ADSL_REQUIRED = ("USUBJID",)
DM_REQUIRED = ("USUBJID",)

SIZE_TESTS = ("LDIAM", "LPERP", "DIAMETER")
VOLUME_TEST = "VOLUME"  # a baseline lesion's volume in mL (R-ELIG-VOLUME)
KNOWN_TESTS = (*SIZE_TESTS, "TUMSTATE", "SUMDIAM", VOLUME_TEST)
ROLES = {
    "TARGET": "target",
    "NON-TARGET": "non-target",
    "NEW": "new",
    # iRECIST: a new lesion with the reader's category (I-NEW-1; cdisc_io.sdtm_irecist)
    "NEW TARGET": "new",
    "NEW NON-TARGET": "new",
}
NOT_DONE = "NOT DONE"
TOO_SMALL_WORDS = ("TOO SMALL",)
NON_TARGET_STATES = {
    "PRESENT": "present",
    "ABSENT": "absent",
    "UNEQUIVOCAL": "progression",
    "UNEQUIVOCAL PROGRESSION": "progression",
    "PROGRESSION": "progression",
    "EQUIVOCAL": "present",  # equivocal progression is not PD (R-NT-PD needs unequivocal)
    NOT_DONE: "not_evaluated",
    "NOT EVALUATED": "not_evaluated",
}
NEW_LESION_STATES = {
    "EQUIVOCAL": True,  # R-NEW-2: not PD until confirmed
    "UNEQUIVOCAL": False,  # R-NEW-1
    "PRESENT": False,
    "UNEQUIVOCAL PROGRESSION": False,  # iRECIST's new non-target that grew: seen
    "PROGRESSION": False,
    "ABSENT": None,  # not listed
    NOT_DONE: None,
}


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the importer did that a data manager should know (never an error)."""

    kind: str  # imputed_date, duplicate_record, not_done, no_subject_data, date_order,
    # converted_unit
    message: str
    subject: str | None = None
    reader: str | None = None
    visit: str | None = None
    lesion: str | None = None
    file: str | None = None
    row: int | None = None
    flag: str | None = None  # ADaM --DTF of an imputed date: "D" day, "M" month and day

    def to_dict(self) -> dict[str, Any]:
        """The notice as a JSON object without its empty fields (``--notices``)."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


@dataclass
class ImportResult:
    """The cases built (JSON-ready dicts) and the notices raised while building them."""

    cases: list[dict[str, Any]]
    notices: list[Notice] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _TuLesion:
    id: str
    role: str
    site: str
    nodal: bool
    accepted: bool
    row: int
    category: str | None = None  # iRECIST: NEW TARGET / NEW NON-TARGET (I-NEW-1)


@dataclass(slots=True)
class _TrRecord:
    row: int
    subject: str
    reader: str
    visit: str
    visitnum: float
    dtc: str
    lesion: str
    test: str
    result: str
    number: float | None
    not_done: bool
    reason: str
    accepted: bool
    group: str
    when: ParsedDate | None = None


def reader_of(eval_: str, evalid: str) -> str:
    """The reader of a record: ``--EVALID`` if given, else ``--EVAL``, else INVESTIGATOR."""
    return evalid or eval_ or INVESTIGATOR


def _col(frame: pd.DataFrame, name: str) -> list[str]:
    if name in frame.columns:
        return frame[name].tolist()  # type: ignore[no-any-return]
    return [""] * len(frame)


def read_tu(
    frame: pd.DataFrame, *, file: str, notices: list[Notice]
) -> dict[tuple[str, str], dict[str, _TuLesion]]:
    """Lesion identities per (subject, reader), checked; keyed by ``TULNKID``."""
    from cdisc_io.csvio import file_row

    roles = _col(frame, "TUSTRESC")
    orres = _col(frame, "TUORRES")
    if "TUSTRESC" not in frame.columns and "TUORRES" not in frame.columns:
        raise CdiscFileError(
            "required column TUSTRESC (or TUORRES) is missing", file=file, row=1, column="TUSTRESC"
        )
    if "TULOC" not in frame.columns:
        raise CdiscFileError(
            "required column TULOC (the lesion's site) is missing: without it no lesion can "
            "be told to be a lymph node, measured on its short axis (R-MEAS-2, R-NODE)",
            file=file,
            row=1,
            column="TULOC",
        )
    out: dict[tuple[str, str], dict[str, _TuLesion]] = defaultdict(dict)
    rows = zip(
        frame["USUBJID"].tolist(),
        frame["TULNKID"].tolist(),
        roles,
        orres,
        _col(frame, "TULOC"),
        frame["TUEVAL"].tolist(),
        _col(frame, "TUEVALID"),
        _col(frame, "TUACPTFL"),
        strict=True,
    )
    for index, (subject, link, role_c, role_o, loc, ev, evid, acpt) in enumerate(rows):
        row = file_row(index)
        column = "TUSTRESC" if role_c else "TUORRES"
        if not subject:
            raise CdiscFileError("USUBJID is empty", file=file, row=row, column="USUBJID")
        if not link:
            raise CdiscFileError("TULNKID is empty", file=file, row=row, column="TULNKID")
        role_text = (role_c or role_o).upper()
        role = ROLES.get(role_text)
        if role is None:
            raise CdiscFileError(
                f"unknown tumour role {role_text!r}; expected TARGET, NON-TARGET or NEW "
                "(NEW TARGET, NEW NON-TARGET: iRECIST, I-NEW-1)",
                file=file,
                row=row,
                column=column,
            )
        reader = reader_of(ev, evid)
        lesion = _TuLesion(
            link,
            role,
            loc,
            names_a_node(loc),
            acpt.upper() == "Y",
            row,
            CATEGORY_GROUPS.get(role_text),
        )
        known = out[(subject, reader)].get(link)
        if known is not None:
            if (known.role, known.site) != (lesion.role, lesion.site):
                raise CdiscFileError(
                    f"duplicate record: lesion {link} of subject {subject} ({reader}) is "
                    f"already identified at row {known.row} as {known.role} in "
                    f"{known.site or 'an unnamed site'}",
                    file=file,
                    row=row,
                    column="TULNKID",
                )
            notices.append(
                Notice(
                    "duplicate_record",
                    f"row repeats the identification of row {known.row}; read once",
                    subject=subject,
                    reader=reader,
                    lesion=link,
                    file=file,
                    row=row,
                )
            )
            continue
        out[(subject, reader)][link] = lesion
    return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# Units of a size (lower case): the factor to mm. An empty unit is taken as mm.
SIZE_UNITS = {"mm": 1, "cm": 10}
# Units of a volume (lower case): the factor to mL. An empty unit is taken as mL.
VOLUME_UNITS = {"ml": 1, "cm3": 1, "l": 1000}


def read_tr(
    frame: pd.DataFrame, *, file: str, notices: list[Notice] | None = None
) -> list[_TrRecord]:
    """TR records, checked one by one (test codes, numbers, units); SUMDIAM dropped.

    A size in cm is converted to mm with a ``converted_unit`` notice (in ``notices``).
    """
    from cdisc_io.csvio import file_row

    out: list[_TrRecord] = []
    rows = zip(
        frame["USUBJID"].tolist(),
        frame["TRLNKID"].tolist(),
        frame["TRTESTCD"].tolist(),
        frame["TRORRES"].tolist(),
        _col(frame, "TRSTRESC"),
        _col(frame, "TRSTRESN"),
        frame["VISIT"].tolist(),
        _col(frame, "VISITNUM"),
        frame["TRDTC"].tolist(),
        frame["TREVAL"].tolist(),
        _col(frame, "TREVALID"),
        _col(frame, "TRSTAT"),
        _col(frame, "TRREASND"),
        _col(frame, "TRACPTFL"),
        _col(frame, "TRGRPID"),
        _col(frame, "TRORRESU"),
        _col(frame, "TRSTRESU"),
        strict=True,
    )
    for index, item in enumerate(rows):
        (subject, link, test, orres, stresc, stresn, visit, visitnum, dtc, ev, evid, stat,
         reason, acpt, group, orresu, stresu) = item  # fmt: skip
        row = file_row(index)
        test = test.upper()
        if test not in KNOWN_TESTS:
            raise CdiscFileError(
                f"unknown test code {test!r}; known: {', '.join(KNOWN_TESTS)}",
                file=file,
                row=row,
                column="TRTESTCD",
            )
        if test == "SUMDIAM":  # derived by the sponsor; the engine sums itself (R-SEL-3)
            continue
        if not subject:
            raise CdiscFileError("USUBJID is empty", file=file, row=row, column="USUBJID")
        if not link:
            raise CdiscFileError(
                f"TRLNKID is empty on a {test} record", file=file, row=row, column="TRLNKID"
            )
        if not visit:
            raise CdiscFileError("VISIT is empty", file=file, row=row, column="VISIT")
        num = _number(visitnum) if visitnum else 0.0
        if num is None:
            raise CdiscFileError(
                f"VISITNUM {visitnum!r} is not a number", file=file, row=row, column="VISITNUM"
            )
        not_done = stat.upper() == NOT_DONE
        result = (stresc or orres).upper()
        number: float | None = None
        volume = test == VOLUME_TEST
        if ((test in SIZE_TESTS and not _too_small(result)) or volume) and not not_done:
            number = _number(stresn) if stresn else _number(stresc or orres)
            if number is None or number < 0:
                shown = stresn or stresc or orres
                raise CdiscFileError(
                    f"subject {subject}: VOLUME result {shown!r} of lesion {link} is not a "
                    "volume in mL ≥ 0 or TRSTAT NOT DONE (R-ELIG-VOLUME)"
                    if volume
                    else f"{test} result {shown!r} is not a size in mm ≥ 0, TOO SMALL TO "
                    "MEASURE or TRSTAT NOT DONE",
                    file=file,
                    row=row,
                    column="TRSTRESN" if stresn else "TRORRES",
                )
            standard = bool(stresn or stresc)
            unit_column = "TRSTRESU" if standard else "TRORRESU"
            unit = stresu if standard else orresu
            if not unit:  # the other unit column, when only it is filled
                unit_column = "TRORRESU" if standard else "TRSTRESU"
                unit = orresu if standard else stresu
            units = VOLUME_UNITS if volume else SIZE_UNITS
            factor = units.get(unit.lower()) if unit else 1
            if factor is None:
                raise CdiscFileError(
                    f"subject {subject}: VOLUME unit {unit!r} of lesion {link} is not mL, cm3 "
                    "or L; volumes are read in mL (R-ELIG-VOLUME)"
                    if volume
                    else f"subject {subject}: {test} unit {unit!r} is not mm or cm; sizes are "
                    "read in mm (cm is converted)",
                    file=file,
                    row=row,
                    column=unit_column,
                )
            if factor != 1:
                converted = round(number * factor, 6)
                if notices is not None:
                    notices.append(
                        Notice(
                            "converted_unit",
                            f"{test} {number:g} {unit} converted to {converted:g} "
                            + ("mL" if volume else "mm"),
                            subject=subject,
                            reader=reader_of(ev, evid),
                            visit=visit,
                            lesion=link,
                            file=file,
                            row=row,
                        )
                    )
                number = converted
            number = round(number, 6)  # drop binary noise such as 11.700000000000001
            if volume and number > MAX_VOLUME_ML:
                raise CdiscFileError(
                    f"subject {subject}: VOLUME {number:g} mL of lesion {link} is above "
                    f"{MAX_VOLUME_ML:g} mL, not a plausible lesion volume (R-PLAUS-SIZE)",
                    file=file,
                    row=row,
                    column="TRSTRESN" if stresn else "TRORRES",
                )
        out.append(
            _TrRecord(
                row,
                subject,
                reader_of(ev, evid),
                visit,
                num,
                dtc,
                link,
                test,
                result,
                number,
                not_done,
                reason,
                acpt.upper() == "Y",
                group.upper(),
            )
        )
    return out


def _is_merged(rec: _TrRecord) -> bool:
    """A part of a merged mass: result ``MERGED``, or not done for the reason of a merge."""
    return "MERGED" in rec.result or (rec.not_done and "MERGE" in rec.reason.upper())


def _too_small(result: str) -> bool:
    return any(word in result for word in TOO_SMALL_WORDS)


@dataclass(frozen=True, slots=True)
class SubjectData:
    """Subject-level data from ADSL (or DM) that a case needs."""

    arm: str | None = None
    randomized_on: date | None = None
    died_on: date | None = None
    last_known_alive_on: date | None = None
    new_therapy_on: date | None = None


def read_subjects(
    frame: pd.DataFrame,
    *,
    file: str,
    kind: str,
    rule: ImputationRule,
    notices: list[Notice],
) -> dict[str, SubjectData]:
    """ADSL (``RANDDT``, ``ARM``, ``DTHDT``, ``LSTALVDT``, ``NACTDT``) or DM (``ARM``, ``DTHDTC``).

    DM has no randomisation date, so with DM alone the origin is the baseline (§8).
    ``NACTDT`` (new anti-cancer therapy start, admiralonco's name) is optional.
    """
    from cdisc_io.csvio import file_row

    if kind == "adsl":
        columns = {
            "randomized_on": "RANDDT",
            "died_on": "DTHDT",
            "last_known_alive_on": "LSTALVDT",
            "new_therapy_on": "NACTDT",
        }
    else:
        columns = {"died_on": "DTHDTC"}
    out: dict[str, SubjectData] = {}
    subjects = frame["USUBJID"].tolist()
    arms = _col(frame, "ARM")
    values = {key: _col(frame, col) for key, col in columns.items()}
    for index, subject in enumerate(subjects):
        row = file_row(index)
        if not subject:
            raise CdiscFileError("USUBJID is empty", file=file, row=row, column="USUBJID")
        if subject in out:
            raise CdiscFileError(
                f"duplicate record: subject {subject} appears twice",
                file=file,
                row=row,
                column="USUBJID",
            )
        dates: dict[str, date | None] = {}
        for key, column in columns.items():
            text = values[key][index]
            if not text:
                dates[key] = None
                continue
            try:
                parsed = parse_dtc(text, rule)
            except ValueError as error:
                raise CdiscFileError(str(error), file=file, row=row, column=column) from None
            if parsed.imputed:
                notices.append(
                    Notice(
                        "imputed_date",
                        f"{column} {text} imputed as "
                        f"{parsed.value.isoformat()} (rule {rule.value})",
                        subject=subject,
                        file=file,
                        row=row,
                    )
                )
            dates[key] = parsed.value
        out[subject] = SubjectData(arm=arms[index] or None, **dates)
    return out


def _resolve(link: str, lesions: dict[str, _TuLesion]) -> list[str]:
    """The TU lesions a TR link id refers to: a merge's parts, a split's parent, or itself.

    Sponsors that also identify the fragments (T01.1) or the merged mass (T01/T02) in TU
    still get them counted for the baseline lesion they came from (R-SPLIT, R-MERGE).
    """
    if "/" in link:  # R-MERGE: T01/T02
        parts = [p.strip() for p in link.split("/")]
        if all(p in lesions for p in parts):
            return parts
    if "." in link:  # R-SPLIT: T01.1
        parent = link.rsplit(".", 1)[0]
        if parent in lesions:
            return [parent]
    if link in lesions:
        return [link]
    return []


def _assign_dates(
    records: list[_TrRecord], rule: ImputationRule, notices: list[Notice], file: str
) -> None:
    """Parse every record's date; complete partial ones (see the module docstring)."""
    by_visit: dict[tuple[str, str, str], list[_TrRecord]] = defaultdict(list)
    for rec in records:
        by_visit[(rec.subject, rec.reader, rec.visit)].append(rec)
    # Complete dates of the same subject visit, from any reader: one scan, one date.
    subject_visit_dates: dict[tuple[str, str], set[date]] = defaultdict(set)
    complete: dict[str, date] = {}
    for rec in records:
        if rec.dtc and not is_partial(rec.dtc):
            try:
                day = complete.get(rec.dtc) or complete.setdefault(
                    rec.dtc, parse_dtc(rec.dtc).value
                )
                subject_visit_dates[(rec.subject, rec.visit)].add(day)
            except ValueError:
                raise CdiscFileError(
                    f"TRDTC {rec.dtc!r} is not an ISO 8601 date",
                    file=file,
                    row=rec.row,
                    column="TRDTC",
                ) from None
    reported: set[tuple[str, str, str, str]] = set()
    parsed_texts: dict[str, ParsedDate] = {}  # thousands of records share a date
    for (subject, reader, visit), recs in by_visit.items():
        undated = [r for r in recs if not r.dtc]
        dated = [r for r in recs if r.dtc]
        if undated and not dated:
            raise CdiscFileError(
                f"TRDTC is empty for every record of subject {subject} ({reader}) at {visit}",
                file=file,
                row=undated[0].row,
                column="TRDTC",
            )
        for rec in recs:
            text = rec.dtc or dated[0].dtc
            try:
                parsed = parsed_texts.get(text) or parsed_texts.setdefault(
                    text, parse_dtc(text, rule)
                )
            except ValueError as error:
                raise CdiscFileError(
                    f"TRDTC: {error}", file=file, row=rec.row, column="TRDTC"
                ) from None
            if parsed.imputed:
                known = sorted(d for d in subject_visit_dates[(subject, visit)] if covers(text, d))
                how = f"rule {rule.value}"
                if known:
                    parsed = ParsedDate(known[0], parsed.flag, text)
                    how = "a complete date of the same visit"
                key = (subject, reader, visit, text)
                if key not in reported:
                    reported.add(key)
                    notices.append(
                        Notice(
                            "imputed_date",
                            f"partial date {text} completed as {parsed.value.isoformat()} "
                            f"from {how}",
                            subject=subject,
                            reader=reader,
                            visit=visit,
                            file=file,
                            row=rec.row,
                            # ADaM --DTF: only a date made up by the rule is imputed; one
                            # taken from the same visit's records is a collected date.
                            flag=None if known else parsed.flag,
                        )
                    )
            rec.when = parsed


def _split_visits(
    recs: list[_TrRecord], file: str, notices: list[Notice]
) -> list[tuple[str, list[_TrRecord]]]:
    """Group one reader's records into timepoints; refuse conflicting duplicates."""
    by_visit: dict[tuple[float, str], list[_TrRecord]] = defaultdict(list)
    for rec in recs:
        by_visit[(rec.visitnum, rec.visit)].append(rec)
    timepoints: list[tuple[str, list[_TrRecord]]] = []
    for (_, visit), group in by_visit.items():
        seen: dict[tuple[str, str], _TrRecord] = {}
        dates_differ = False
        for rec in group:
            key = (rec.lesion, rec.test)
            first = seen.get(key)
            if first is None:
                seen[key] = rec
                continue
            assert first.when is not None and rec.when is not None
            if first.when.value != rec.when.value:
                dates_differ = True  # two assessments under one visit name
        if not dates_differ:
            timepoints.append((visit, group))
            continue
        by_date: dict[date, list[_TrRecord]] = defaultdict(list)
        for rec in group:
            assert rec.when is not None
            by_date[rec.when.value].append(rec)
        for day, part in sorted(by_date.items()):
            timepoints.append((f"{visit} ({day.isoformat()})", part))
    out: list[tuple[str, list[_TrRecord]]] = []
    for name, group in timepoints:
        kept: dict[tuple[str, str], _TrRecord] = {}
        for rec in group:
            key = (rec.lesion, rec.test)
            first = kept.get(key)
            if first is None:
                kept[key] = rec
                continue
            same = (first.result, first.number, first.not_done) == (
                rec.result,
                rec.number,
                rec.not_done,
            )
            if not same:
                raise CdiscFileError(
                    f"duplicate record: subject {rec.subject} ({rec.reader}) {name} lesion "
                    f"{rec.lesion} {rec.test} is also recorded at row {first.row} with a "
                    "different result",
                    file=file,
                    row=rec.row,
                    column="TRORRES",
                )
            notices.append(
                Notice(
                    "duplicate_record",
                    f"row repeats row {first.row} (identical result); read once",
                    subject=rec.subject,
                    reader=rec.reader,
                    visit=name,
                    lesion=rec.lesion,
                    file=file,
                    row=rec.row,
                )
            )
        out.append((name, list(kept.values())))
    return out


def _target_value(rec: _TrRecord) -> Any:
    if rec.not_done:
        return "not_evaluated"
    if _too_small(rec.result):
        return "too_small"
    if rec.test == "TUMSTATE":
        state = NON_TARGET_STATES.get(rec.result)
        if state in ("absent", "not_evaluated"):
            return state
        return None
    return rec.number


def _size_record(recs: list[_TrRecord], nodal: bool, prefer_diameter: bool) -> _TrRecord | None:
    """R-NODE: a node's size is its short axis (LPERP); other lesions' the LD (LDIAM).

    With ``prefer_diameter`` the sponsor's own ``DIAMETER`` record (the value it summed in
    ``SUMDIAM``) comes first.
    """
    by_test = {r.test: r for r in recs}
    preferred: tuple[str, ...] = ("LPERP", "DIAMETER") if nodal else ("LDIAM", "DIAMETER")
    if prefer_diameter:
        preferred = ("DIAMETER", *preferred)
    for test in (*preferred, "TUMSTATE"):
        if test in by_test:
            return by_test[test]
    return None


def _build_case(
    subject: str,
    reader: str,
    lesions: dict[str, _TuLesion],
    recs: list[_TrRecord],
    subject_data: SubjectData | None,
    settings: dict[str, Any] | None,
    files: tuple[str, str],
    notices: list[Notice],
    subject_has_tu_flags: bool,
    prefer_diameter: bool,
    irecist: bool = False,
) -> dict[str, Any]:
    _, tr_file = files
    for rec in recs:
        if not _resolve(rec.lesion, lesions):
            raise CdiscFileError(
                f"lesion {rec.lesion} of subject {subject} ({reader}) is not in TU",
                file=tr_file,
                row=rec.row,
                column="TRLNKID",
            )
    timepoints = _split_visits(recs, tr_file, notices)

    def order(item: tuple[str, list[_TrRecord]]) -> tuple[date, float]:
        group = item[1]
        return (min(r.when.value for r in group if r.when), min(r.visitnum for r in group))

    timepoints.sort(key=order)
    baseline_lesions = [
        le for le in lesions.values() if le.role != "new" and _resolve(le.id, lesions) == [le.id]
    ]
    case_lesions: list[dict[str, Any]] = [
        {"id": le.id, "site": le.site.lower() or "unspecified", "kind": le.role, "nodal": le.nodal}
        if le.role == "target"
        else {"id": le.id, "site": le.site.lower() or "unspecified", "kind": le.role}
        for le in baseline_lesions
    ]
    # R-ELIG-VOLUME: the baseline visit's VOLUME records are the lesions' volume_ml.
    by_id = {le["id"]: le for le in case_lesions}
    for rec in timepoints[0][1] if timepoints else []:
        if rec.test == VOLUME_TEST and rec.number is not None and rec.lesion in by_id:
            by_id[rec.lesion]["volume_ml"] = rec.number
    out_tps: list[dict[str, Any]] = []
    listings: list[_Listing] | None = [] if irecist else None
    for name, group in timepoints:
        group = [rec for rec in group if rec.test != VOLUME_TEST]
        if group:
            out_tps.append(
                _timepoint(name, group, lesions, notices, tr_file, prefer_diameter, listings)
            )
    if listings is not None:
        _check_listings(listings, lesions, tr_file)
    if subject_has_tu_flags:
        accepted = any(le.accepted for le in lesions.values())
    else:  # no TUACPTFL for this subject: the read flagged on most of its TR records
        accepted = sum(1 for r in recs if r.accepted) * 2 > len(recs)
    case: dict[str, Any] = {"subject_id": subject, "reader": reader, "accepted": accepted}
    if subject_data is not None:
        if subject_data.arm:
            case["arm"] = subject_data.arm
        for key in ("randomized_on", "died_on", "new_therapy_on", "last_known_alive_on"):
            value = getattr(subject_data, key)
            if value is not None:
                case[key] = value.isoformat()
    if settings is not None:
        case["settings"] = dict(settings)
    case["lesions"] = case_lesions
    case["timepoints"] = out_tps
    return case


def _timepoint(
    name: str,
    group: list[_TrRecord],
    lesions: dict[str, _TuLesion],
    notices: list[Notice],
    file: str,
    prefer_diameter: bool,
    listings: list[_Listing] | None = None,
) -> dict[str, Any]:
    """One timepoint of a read; ``listings`` (iRECIST) collects the new lesions' listings."""
    # The visit's date is the one most of its records carry (ties: the earliest); lesions
    # scanned on another day keep their own date in scan_dates (§8 progression dating).
    counts = Counter(r.when.value for r in group if r.when)
    when = min(counts, key=lambda day: (-counts[day], day))
    by_lesion: dict[str, list[_TrRecord]] = defaultdict(list)
    for rec in group:
        by_lesion[rec.lesion].append(rec)
    targets: dict[str, Any] = {}
    non_targets: dict[str, str] = {}
    new_lesions: list[dict[str, Any]] = []
    scan_dates: dict[str, str] = {}
    fragments: dict[str, list[float]] = defaultdict(list)
    merged_away: set[str] = set()
    # Merge records (T01/T02) first, so that a part's own MERGED record defers to them.
    for link in sorted(by_lesion, key=lambda lk: ("/" not in lk, lk)):
        recs = by_lesion[link]
        parts = _resolve(link, lesions)
        lesion = lesions[parts[0]]
        if link in merged_away:
            continue  # R-MERGE: its size went to the target it merged into
        if lesion.role == "target" and len(parts) == 1 and any(_is_merged(r) for r in recs):
            raise CdiscFileError(
                f"target {link} is recorded as merged but no record such as T01/{link} gives "
                "the merged mass's size (R-MERGE)",
                file=file,
                row=recs[0].row,
                column="TRLNKID",
            )
        if lesion.role == "target":
            chosen = _size_record(recs, lesion.nodal, prefer_diameter)
        elif lesion.role == "new" and listings is not None:  # iRECIST: a size, else the state
            sized = [r for r in recs if r.test in SIZE_TESTS]
            chosen = _size_record(sized, lesion.nodal, prefer_diameter) or next(
                (r for r in recs if r.test == "TUMSTATE"), None
            )
        else:
            chosen = next((r for r in recs if r.test == "TUMSTATE"), None)
            if chosen is None and lesion.role == "new":  # measured: seen (R-NEW-1)
                sized = [r for r in recs if r.test in SIZE_TESTS]
                chosen = _size_record(sized, lesion.nodal, prefer_diameter)
        if chosen is None:
            continue
        if chosen.not_done and chosen.reason:
            notices.append(
                Notice(
                    "not_done",
                    f"{chosen.test} not done: {chosen.reason}",
                    subject=chosen.subject,
                    reader=chosen.reader,
                    visit=name,
                    lesion=link,
                    file=file,
                    row=chosen.row,
                )
            )
        assert chosen.when is not None
        if chosen.when.value != when:
            scan_dates[parts[0]] = chosen.when.value.isoformat()
        if lesion.role == "target":
            value = _target_value(chosen)
            if value is None:
                raise CdiscFileError(
                    f"target {link} has TUMSTATE {chosen.result!r}; a target needs a size",
                    file=file,
                    row=chosen.row,
                    column="TRORRES",
                )
            if len(parts) > 1:  # R-MERGE: the mass goes to the first, the rest count 0
                targets[parts[0]] = value
                for other in parts[1:]:
                    targets[other] = {"merged_into": parts[0]}
                merged_away.update(parts)
            elif link != parts[0]:  # R-SPLIT fragment
                if isinstance(value, float):
                    fragments[parts[0]].append(value)
            else:
                targets[link] = value
        elif lesion.role == "non-target":
            state = NON_TARGET_STATES.get("NOT DONE" if chosen.not_done else chosen.result)
            if state is None:
                raise CdiscFileError(
                    f"non-target {link} has TUMSTATE {chosen.result!r}; expected "
                    f"{', '.join(NON_TARGET_STATES)}",
                    file=file,
                    row=chosen.row,
                    column="TRORRES",
                )
            non_targets[link] = state
        elif listings is not None:  # iRECIST: sizes, states, categories (I-NEW-1..4)
            listing = _irecist_listing(name, link, recs, lesion, file, prefer_diameter)
            listings.append(listing)
            new_lesions.append(listing.listing)
        else:
            key = NOT_DONE if chosen.not_done else chosen.result
            if chosen.test != "TUMSTATE":  # a size without a TUMSTATE: seen unless not done
                key = NOT_DONE if chosen.not_done else "UNEQUIVOCAL"
            if key not in NEW_LESION_STATES:
                raise CdiscFileError(
                    f"subject {chosen.subject} ({chosen.reader}) visit {name}: "
                    f"new lesion {link} has TUMSTATE {chosen.result!r}; expected "
                    f"{', '.join(NEW_LESION_STATES)}",
                    file=file,
                    row=chosen.row,
                    column="TRORRES",
                )
            equivocal = NEW_LESION_STATES[key]
            if equivocal is not None:
                new_lesions.append(
                    {
                        "id": link,
                        "site": lesion.site.lower() or "unspecified",
                        "equivocal": equivocal,
                    }
                )
    for parent, sizes in fragments.items():
        targets[parent] = {"fragments": sizes}
    tp: dict[str, Any] = {
        "id": name,
        "date": when.isoformat(),
        "targets": targets,
        "non_targets": non_targets,
        "new_lesions": new_lesions,
    }
    if scan_dates:
        tp["scan_dates"] = scan_dates
    return tp


NODE_COUNTS_MM = 10.0  # R-NEW-1: a new node counts from this short axis


@dataclass(slots=True)
class _Listing:
    """One iRECIST new-lesion listing as read, with the rows its checks name."""

    visit: str
    lesion: str
    listing: dict[str, Any]
    subject: str
    reader: str
    category: str | None  # from TRGRPID
    category_row: int | None
    size_row: int | None


def _irecist_listing(
    visit: str,
    link: str,
    recs: list[_TrRecord],
    lesion: _TuLesion,
    file: str,
    prefer_diameter: bool,
) -> _Listing:
    """A new lesion at one visit under iRECIST: its size, state and category (I-NEW-1..4;
    the mapping is :mod:`cdisc_io.sdtm_irecist`'s)."""
    subject, reader = recs[0].subject, recs[0].reader
    where = f"subject {subject} ({reader}) visit {visit} new lesion {link}"
    category: str | None = None
    category_row: int | None = None
    for rec in recs:
        mine = CATEGORY_GROUPS.get(rec.group)
        if mine is None:
            continue
        if category is not None and mine != category:
            raise CdiscFileError(
                f"{where}: TRGRPID says NEW {mine.upper()} here but NEW {category.upper()} at "
                f"row {category_row}; a new lesion has one category (I-NEW-4)",
                file=file,
                row=rec.row,
                column="TRGRPID",
            )
        category, category_row = mine, category_row or rec.row
    size = _size_record([r for r in recs if r.test in SIZE_TESTS], lesion.nodal, prefer_diameter)
    tumstate = next((r for r in recs if r.test == "TUMSTATE"), None)
    equivocal, state = False, None
    if tumstate is not None:
        if tumstate.not_done:
            state = "not_evaluated"
        elif tumstate.result in SEEN_STATES:
            equivocal = SEEN_STATES[tumstate.result]
        elif tumstate.result in STATE_WORDS:
            state = STATE_WORDS[tumstate.result]
        else:
            known = ", ".join([*SEEN_STATES, *STATE_WORDS, "TRSTAT NOT DONE"])
            raise CdiscFileError(
                f"{where}: TUMSTATE {tumstate.result!r} is not a new lesion's state; expected "
                f"{known} (I-NEW-4)",
                file=file,
                row=tumstate.row,
                column="TRORRES",
            )
    if size is not None and state is not None:
        assert tumstate is not None
        raise CdiscFileError(
            f"{where}: {size.test} at row {size.row} and TUMSTATE "
            f"{'NOT DONE' if tumstate.not_done else tumstate.result} both given; a new lesion "
            "gives either its size (a new target) or its state (a new non-target), not both "
            "(I-NEW-4)",
            file=file,
            row=tumstate.row,
            column="TRTESTCD",
        )
    listing: dict[str, Any] = {"id": link}
    if lesion.site:
        listing["site"] = lesion.site.lower()
    if lesion.nodal:
        listing["nodal"] = True
    listing["equivocal"] = equivocal
    if size is not None:
        listing["size_mm"] = _target_value(size)
    if state is not None:
        listing["state"] = state
    if category is not None:
        listing["category"] = category
    return _Listing(
        visit,
        link,
        listing,
        subject,
        reader,
        category,
        category_row,
        size.row if size is not None and size.number is not None else None,
    )


def _check_listings(listings: list[_Listing], lesions: dict[str, _TuLesion], file: str) -> None:
    """A new lesion's category is fixed at its first sighting (TU's, or its first TRGRPID),
    and a declared new non-target is followed by its state, not a size (I-NEW-4)."""
    fixed: dict[str, tuple[str, str, int]] = {}  # lesion → (category, where, row)
    sighted: set[str] = set()  # lesions seen unequivocally (R-NEW-2)
    listed: set[str] = set()
    for item in listings:
        tu = lesions[item.lesion]
        where = (
            f"subject {item.subject} ({item.reader}) visit {item.visit} new lesion {item.lesion}"
        )
        if tu.category is not None and item.lesion not in fixed:
            fixed[item.lesion] = (tu.category, "its TU identification", tu.row)
            if item.category is None and item.lesion not in sighted:
                item.listing["category"] = tu.category
        known = fixed.get(item.lesion)
        if item.category is not None:
            if known is not None and known[0] != item.category:
                raise CdiscFileError(
                    f"{where}: TRGRPID NEW {item.category.upper()} differs from NEW "
                    f"{known[0].upper()} given by {known[1]} (row {known[2]}); a new lesion "
                    "keeps the category of its first sighting (I-NEW-4)",
                    file=file,
                    row=item.category_row,
                    column="TRGRPID",
                )
            if known is None:
                assert item.category_row is not None
                fixed[item.lesion] = (item.category, f"visit {item.visit}", item.category_row)
        declared = fixed.get(item.lesion, (None,))[0]
        # (a node keeps its short axis: R-NEW-1 reads it at every listing)
        later = item.lesion in sighted and not tu.nodal
        if declared == "non-target" and later and item.size_row is not None:
            raise CdiscFileError(
                f"{where}: a size is recorded for a new non-target lesion; a new non-target is "
                "followed by its TUMSTATE (PRESENT, ABSENT, UNEQUIVOCAL PROGRESSION or TRSTAT "
                "NOT DONE), only new targets are measured (I-NEW-4)",
                file=file,
                row=item.size_row,
                column="TRTESTCD",
            )
        if item.lesion in listed:  # site and nodal flag are the first listing's (I-NEW-4)
            item.listing.pop("site", None)
            item.listing.pop("nodal", None)
        listed.add(item.lesion)
        size = item.listing.get("size_mm")
        small_node = tu.nodal and isinstance(size, float) and size < NODE_COUNTS_MM
        if not item.listing["equivocal"] and not small_node:  # R-NEW-1, R-NEW-2
            sighted.add(item.lesion)


def build_cases(
    tu: pd.DataFrame,
    tr: pd.DataFrame,
    subjects: dict[str, SubjectData] | None = None,
    *,
    settings: dict[str, Any] | None = None,
    rule: ImputationRule = ImputationRule.LAST,
    files: tuple[str, str] = ("TU", "TR"),
    notices: list[Notice] | None = None,
    prefer_diameter: bool = False,
    new_therapy: dict[str, date] | None = None,
    subjects_file: str = "ADSL",
) -> ImportResult:
    """Build one case per subject and reader from TU and TR records.

    Parameters
    ----------
    tu, tr
        The domains as read by :func:`cdisc_io.csvio.read_domain` (all cells text).
    subjects
        Subject-level data by USUBJID (from :func:`read_subjects`), or ``None``.
    settings
        Protocol settings (keys of :class:`recist.settings.Settings`) put in every case.
    rule
        How partial dates are imputed.
    files
        The TU and TR file names used in error messages.
    prefer_diameter
        Size targets by the sponsor's ``DIAMETER`` test where present, instead of LDIAM
        (non-nodal) / LPERP (nodal short axis, R-NODE).
    new_therapy
        Start of new anti-cancer therapy by USUBJID (:mod:`cdisc_io.new_therapy`); the
        earlier of it and ADSL ``NACTDT`` becomes the case's ``new_therapy_on``.
    subjects_file
        The ADSL/DM file name used in ``date_order`` notices (LSTALVDT before RANDDT or
        before the last assessment).

    Returns
    -------
    ImportResult
        Cases ordered by subject then reader (investigator first), and the notices.

    Raises
    ------
    CdiscFileError
        A malformed record; the message names the file, row and column.
    """
    tu_file, tr_file = files
    notices = [] if notices is None else notices
    identities = read_tu(tu, file=tu_file, notices=notices)
    records = read_tr(tr, file=tr_file, notices=notices)
    _assign_dates(records, rule, notices, tr_file)
    by_read: dict[tuple[str, str], list[_TrRecord]] = defaultdict(list)
    for rec in records:
        by_read[(rec.subject, rec.reader)].append(rec)
    for key, recs in by_read.items():
        if key not in identities:
            raise CdiscFileError(
                f"lesion {recs[0].lesion} of subject {key[0]} ({key[1]}) is not in TU "
                "(TU has no lesions for this subject and reader)",
                file=tr_file,
                row=recs[0].row,
                column="TRLNKID",
            )
    cases: list[dict[str, Any]] = []
    missing_subjects: set[str] = set()
    flagged_subjects = {
        subject for (subject, _), ls in identities.items() if any(le.accepted for le in ls.values())
    }

    def read_order(key: tuple[str, str]) -> tuple[str, int, str]:
        return (key[0], 0 if key[1] == INVESTIGATOR else 1, key[1])

    for key in sorted(identities, key=read_order):
        subject, reader = key
        recs = by_read.get(key, [])
        if not recs:
            notices.append(
                Notice(
                    "no_measurements",
                    "lesions identified in TU but no TR records; no case",
                    subject=subject,
                    reader=reader,
                    file=tu_file,
                )
            )
            continue
        data = None
        if subjects is not None:
            data = subjects.get(subject)
            if data is None and subject not in missing_subjects:
                missing_subjects.add(subject)
                notices.append(
                    Notice(
                        "no_subject_data",
                        "subject not in ADSL/DM: no arm, origin or death date",
                        subject=subject,
                    )
                )
        started = (new_therapy or {}).get(subject)
        if started is not None:
            data = data or SubjectData()
            if data.new_therapy_on is None or started < data.new_therapy_on:
                data = replace(data, new_therapy_on=started)
        flags = subject in flagged_subjects
        cases.append(
            _build_case(
                subject,
                reader,
                identities[key],
                recs,
                data,
                settings,
                files,
                notices,
                flags,
                prefer_diameter,
                is_irecist(settings),
            )
        )
        _check_date_order(cases[-1], notices, subjects_file)
    for case in cases:
        # The one contract (recist.jsonio): an imported case is refused here, naming its
        # subject, timepoint, lesion, field and rule, before anything is written — never
        # later by the tool that reads the output.
        try:
            parse_case(case)
            if is_irecist(settings):
                # I-NEW-4's listings are checked against the categories the engine gives
                # the new lesions (a new target listed without its size…): assessing is
                # the only check that knows them.
                assess_json(case)
        except RecistError as error:
            if error.subject is None:
                error = error.located(subject=case["subject_id"])
            raise CdiscFileError(
                f"reader {case['reader']}: {error}", file=tr_file
            ) from None
    return ImportResult(cases, notices)


def _check_date_order(case: dict[str, Any], notices: list[Notice], file: str) -> None:
    """A ``date_order`` notice when LSTALVDT is before RANDDT or the read's last assessment.

    Overall survival is then censored on the origin or on LSTALVDT (endpoints/README.md),
    never at a negative time; the data manager should query the date.
    """
    alive = case.get("last_known_alive_on")
    if not alive or case.get("died_on"):
        return
    subject, reader = case["subject_id"], case.get("reader")
    randomized = case.get("randomized_on")
    if randomized and alive < randomized:
        if not any(n.kind == "date_order" and n.subject == subject for n in notices):
            notices.append(
                Notice(
                    "date_order",
                    f"LSTALVDT {alive} is before RANDDT {randomized}: overall survival is "
                    "censored at randomisation (AVAL 1)",
                    subject=subject,
                    file=file,
                )
            )
        return
    last = case["timepoints"][-1]["date"] if case.get("timepoints") else None
    if last and alive < last:
        notices.append(
            Notice(
                "date_order",
                f"LSTALVDT {alive} is before the last tumour assessment {last}: overall "
                "survival is censored on LSTALVDT",
                subject=subject,
                reader=reader,
                visit=case["timepoints"][-1]["id"],
                file=file,
            )
        )


def iter_jsonl(cases: Iterable[dict[str, Any]]) -> Iterable[str]:
    """Cases as JSON Lines (one compact object per line, keys in contract order)."""
    import json

    for case in cases:
        yield json.dumps(case, ensure_ascii=False, separators=(", ", ": ")) + "\n"
