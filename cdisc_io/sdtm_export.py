"""Cases + engine results → SDTM TU, TR and RS records that import back to the same cases.

The conventions are the ones :mod:`cdisc_io.sdtm_import` reads (see its docstring):

- TU: one ``TUMIDENT`` record per baseline lesion (at the baseline visit) and per new
  lesion (at the first visit that shows it); ``TULOC`` is the site in capitals, and a nodal
  lesion whose site does not name a node gets ``LYMPH NODE`` appended so that it stays
  nodal on import (R-MEAS-2).
- TR ``VOLUME`` (``Volume``, ``mL``): a baseline lesion's ``volume_ml`` at the baseline visit
  (R-ELIG-VOLUME), ``TRGRPID`` its role.
- TR: a target's size as ``LPERP`` (nodal short axis, R-NODE) or ``LDIAM``; ``too_small`` as
  ``TOO SMALL TO MEASURE``; ``absent`` as 0 mm; ``not_evaluated`` as ``TRSTAT = NOT DONE``;
  fragments as ``T01.1``, ``T01.2``…; a merged mass once as ``T01/T02``. Non-targets and new
  lesions as ``TUMSTATE``. ``TRDTC`` is the lesion's scan date (``scan_dates``) or the
  timepoint's date.
- RS (``RSCAT = RECIST 1.1``): per follow-up timepoint ``OVRLRESP``, ``TRGRESP`` (with
  targets), ``NTRGRESP`` (with non-targets) and ``NEWLPROG`` (``EQUIVOCAL`` /
  ``UNEQUIVOCAL``, when the timepoint shows new lesions), from the engine's result.
- RS of a case assessed with ``criteria: "irecist"`` (docs/rules.md §10): ``RSCAT =
  iRECIST`` and the iRECIST codes as pharmaversesdtm's ``rs_onco_irecist`` (the input of
  admiralonco's iRECIST ADRS) writes them — ``iCR``, ``iPR``, ``iSD``,
  ``NON-iCR/NON-iUPD``, ``iUPD``, ``iCPD``, ``NE`` in ``OVRLRESP``, ``TRGRESP`` and
  ``NTRGRESP``; ``NEWLIND`` (``Y`` / ``N``: an unequivocal new lesion is seen) at every
  follow-up; ``NEWLPROG`` ``UNEQUIVOCAL`` where the new lesions make or confirm the
  progression (their response ``iUPD`` / ``iCPD``), ``EQUIVOCAL`` where only an equivocal
  one is seen. The RECIST 1.1 result beside it (``recist1_1``) is not written: RS would
  then hold two overall responses per visit, told apart only by ``RSCAT``.
- TU/TR of an iRECIST case's new lesions: sizes, states and categories as
  :mod:`cdisc_io.sdtm_irecist` maps them (``TRGRPID`` ``NEW TARGET`` / ``NEW NON-TARGET``,
  ``LDIAM``/``LPERP``, ``TUMSTATE``), so that import-sdtm rebuilds them (I-NEW-1..4).

Readers: ``INVESTIGATOR`` → ``--EVAL = INVESTIGATOR``; any other reader → ``--EVAL =
INDEPENDENT ASSESSOR`` with ``--EVALID`` the reader; ``--ACPTFL = Y`` on the accepted read.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import TYPE_CHECKING, Any

from cdisc_io.sdtm_import import INVESTIGATOR
from cdisc_io.sdtm_irecist import export_listing
from recist.lesions import names_a_node

if TYPE_CHECKING:
    import pandas as pd

    from cdisc_io.cases import Assessed

TU_COLUMNS = [
    "STUDYID", "DOMAIN", "USUBJID", "TUSEQ", "TULNKID", "TUTESTCD", "TUTEST", "TUORRES",
    "TUSTRESC", "TULOC", "TUEVAL", "TUEVALID", "TUACPTFL", "VISITNUM", "VISIT", "TUDTC",
]  # fmt: skip
TR_COLUMNS = [
    "STUDYID", "DOMAIN", "USUBJID", "TRSEQ", "TRGRPID", "TRLNKID", "TRTESTCD", "TRTEST",
    "TRORRES", "TRORRESU", "TRSTRESC", "TRSTRESN", "TRSTRESU", "TRSTAT", "TRREASND", "TREVAL",
    "TREVALID", "TRACPTFL", "VISITNUM", "VISIT", "TRDTC",
]  # fmt: skip
RS_COLUMNS = [
    "STUDYID", "DOMAIN", "USUBJID", "RSSEQ", "RSTESTCD", "RSTEST", "RSCAT", "RSORRES",
    "RSSTRESC", "RSEVAL", "RSEVALID", "RSACPTFL", "VISITNUM", "VISIT", "RSDTC",
]  # fmt: skip
TEST_NAMES = {
    "LDIAM": "Longest Diameter",
    "LPERP": "Longest Perpendicular",
    "TUMSTATE": "Tumor State",
    "VOLUME": "Volume",
    "OVRLRESP": "Overall Response",
    "TRGRESP": "Target Response",
    "NTRGRESP": "Non-target Response",
    "NEWLPROG": "New Lesion Progression",
    "NEWLIND": "New Lesion Indicator",
}
IRECIST = "irecist"
# RSCAT: the criteria's short name (CDISC's RECIST 1.1 supplement; pharmaversesdtm's
# rs_onco_irecist for iRECIST).
RSCAT = {"recist1.1": "RECIST 1.1", IRECIST: "iRECIST"}
# I-NEW-4: the new lesions' own response when they make or confirm a progression.
_NEW_LESION_PROGRESSION = ("iUPD", "iCPD")
_GONE_OR_UNREAD = {"absent": "ABSENT", "not_evaluated": ""}
NON_TARGET_OUT = {
    "present": "PRESENT",
    "absent": "ABSENT",
    "progression": "UNEQUIVOCAL",
    "not_evaluated": "",
}
TOO_SMALL_TEXT = "TOO SMALL TO MEASURE"


def _reader_columns(case: dict[str, Any], prefix: str) -> dict[str, str]:
    reader = case.get("reader") or INVESTIGATOR
    independent = reader != INVESTIGATOR
    return {
        f"{prefix}EVAL": "INDEPENDENT ASSESSOR" if independent else INVESTIGATOR,
        f"{prefix}EVALID": reader if independent else "",
        f"{prefix}ACPTFL": "Y" if case.get("accepted") else "",
    }


def _number_text(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _loc(lesion: dict[str, Any]) -> str:
    site = str(lesion.get("site") or "").upper()
    site = "" if site == "UNSPECIFIED" else site
    if lesion.get("nodal") and not names_a_node(site):
        site = f"{site} LYMPH NODE".strip()
    return site


def _gone_or_unread(new: dict[str, Any]) -> str | None:
    """``absent`` / ``not_evaluated`` for an iRECIST listing that says so, else ``None``.

    Only iRECIST cases list a new lesion again with a ``state`` or a word for its size
    (I-NEW-4); RECIST 1.1 refuses both, so its listings always show the lesion.
    """
    for value in (new.get("state"), new.get("size_mm")):
        if value in _GONE_OR_UNREAD:
            return str(value)
    return None


def _irecist_new_lesion_tests(tp_result: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``NEWLIND`` and ``NEWLPROG`` of one iRECIST follow-up (as rs_onco_irecist has them):
    a new lesion seen (``Y``/``N``), and ``UNEQUIVOCAL`` where the new lesions make or
    confirm the progression, ``EQUIVOCAL`` where only an equivocal one is seen."""
    seen = tp_result.get("new_lesions")
    tests: list[tuple[str, str | None]] = [("NEWLIND", "Y" if seen == "yes" else "N")]
    if tp_result.get("new_lesion_response") in _NEW_LESION_PROGRESSION:
        tests.append(("NEWLPROG", "UNEQUIVOCAL"))
    elif seen == "equivocal":
        tests.append(("NEWLPROG", "EQUIVOCAL"))
    return tests


class _Seq:
    """Per-subject ``--SEQ`` counters (unique within a subject and domain)."""

    def __init__(self) -> None:
        self._next: dict[str, int] = defaultdict(int)

    def __call__(self, subject: str) -> int:
        self._next[subject] += 1
        return self._next[subject]


def _add_tr(
    rows: list[dict[str, Any]],
    seq: _Seq,
    base: dict[str, str],
    case: dict[str, Any],
    tp: dict[str, Any],
    visit: dict[str, str],
    link: str,
    group: str,
    test: str,
    text: str,
    number: str = "",
    stat: str = "",
    dated: str | None = None,
) -> None:
    """Add one TR record; ``dated`` is the lesion whose scan date applies (default ``link``)."""
    unit = "mm" if test in ("LDIAM", "LPERP") and (number or text) else ""
    if test == "VOLUME":
        unit = "mL"
    rows.append(
        base
        | {"DOMAIN": "TR", "TRSEQ": seq(base["USUBJID"]), "TRGRPID": group, "TRLNKID": link,
           "TRTESTCD": test, "TRTEST": TEST_NAMES[test], "TRORRES": text, "TRORRESU": unit,
           "TRSTRESC": text, "TRSTRESN": number, "TRSTRESU": unit, "TRSTAT": stat, "TRREASND": "",
           "TRDTC": tp.get("scan_dates", {}).get(dated or link, tp["date"])}
        | _reader_columns(case, "TR")
        | visit
    )  # fmt: skip


def export_sdtm(
    assessed: list[Assessed], *, studyid: str = "RECIST"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The TU, TR and RS domains of a batch of assessed cases.

    Parameters
    ----------
    assessed
        Cases with their engine results (:func:`cdisc_io.cases.assess_cases`).
    studyid
        The ``STUDYID`` written on every record (cases do not carry one).

    Returns
    -------
    tuple of pandas.DataFrame
        TU, TR and RS, columns in SDTM order, every cell text.
    """
    import pandas as pd

    tu_rows: list[dict[str, Any]] = []
    tr_rows: list[dict[str, Any]] = []
    rs_rows: list[dict[str, Any]] = []
    tu_seq, tr_seq, rs_seq = _Seq(), _Seq(), _Seq()
    for item in assessed:
        case, result = item.case, item.result
        subject = case["subject_id"]
        base = {"STUDYID": studyid, "USUBJID": subject}
        lesions = {le["id"]: le for le in case["lesions"]}
        timepoints = case["timepoints"]
        visitnum = {tp["id"]: str(i + 1) for i, tp in enumerate(timepoints)}
        baseline = timepoints[0]
        for lesion in case["lesions"]:
            role = "TARGET" if lesion["kind"] == "target" else "NON-TARGET"
            tu_rows.append(
                base
                | {"DOMAIN": "TU", "TUSEQ": tu_seq(subject), "TULNKID": lesion["id"],
                   "TUTESTCD": "TUMIDENT", "TUTEST": "Tumor Identification", "TUORRES": role,
                   "TUSTRESC": role, "TULOC": _loc(lesion), "VISITNUM": "1",
                   "VISIT": baseline["id"], "TUDTC": baseline["date"]}
                | _reader_columns(case, "TU")
            )  # fmt: skip
        seen_new: set[str] = set()
        irecist = result.get("criteria") == IRECIST
        new_lesions: dict[str, dict[str, Any]] = {}  # first listing of each new lesion
        declared: dict[str, str] = {}  # the category the case gave a new lesion
        # I-NEW-1: where the engine first counted each new lesion (R-NEW-1, R-NEW-2)
        first_seen = {
            n["id"]: n["first_seen"] for n in result.get("new_lesion_categories") or []
        }
        for tp in timepoints:
            scan_dates = tp.get("scan_dates", {})
            visit: dict[str, str] = {"VISITNUM": visitnum[tp["id"]], "VISIT": tp["id"]}

            tr = partial(_add_tr, tr_rows, tr_seq, base, case, tp, visit)

            merged: dict[str, list[str]] = defaultdict(list)
            for link, value in tp.get("targets", {}).items():
                if isinstance(value, dict) and "merged_into" in value:
                    merged[value["merged_into"]].append(link)
            for link, value in tp.get("targets", {}).items():
                test = "LPERP" if lesions[link].get("nodal") else "LDIAM"
                if isinstance(value, dict) and "merged_into" in value:
                    continue  # written with the target it merged into (R-MERGE)
                out_link = "/".join([link, *merged[link]]) if merged.get(link) else link
                if isinstance(value, dict) and "fragments" in value:  # R-SPLIT
                    for i, size in enumerate(value["fragments"], start=1):
                        text = _number_text(float(size))
                        tr(f"{link}.{i}", "TARGET", test, text, text, dated=link)
                elif value == "too_small":
                    tr(out_link, "TARGET", test, TOO_SMALL_TEXT, dated=link)
                elif value == "not_evaluated":
                    tr(out_link, "TARGET", test, "", stat="NOT DONE", dated=link)
                else:
                    size = 0.0 if value == "absent" else float(value)
                    text = _number_text(size)
                    tr(out_link, "TARGET", test, text, text, dated=link)
            if tp is baseline:  # R-ELIG-VOLUME: the volumes imaging gave at baseline
                for lesion in case["lesions"]:
                    if lesion.get("volume_ml") is not None:
                        text = _number_text(float(lesion["volume_ml"]))
                        group = "TARGET" if lesion["kind"] == "target" else "NON-TARGET"
                        tr(lesion["id"], group, "VOLUME", text, text)
            for link, state in tp.get("non_targets", {}).items():
                stat = "NOT DONE" if state == "not_evaluated" else ""
                tr(link, "NON-TARGET", "TUMSTATE", NON_TARGET_OUT[state], stat=stat)
            for new in tp.get("new_lesions", []):
                role = "NEW"
                if irecist:  # sizes, states and categories of I-NEW-1..4
                    first = new_lesions.setdefault(new["id"], new)
                    if new.get("category") and not new.get("equivocal"):  # as export_listing
                        declared.setdefault(new["id"], new["category"])
                    seen_at = first_seen.get(new["id"])
                    listing = export_listing(
                        new,
                        first=seen_at is None or int(visitnum[seen_at]) >= int(visitnum[tp["id"]]),
                        declared=declared.get(new["id"]),
                        nodal=bool(first.get("nodal")),
                    )
                    if first is new:
                        role = listing.group
                    if listing.size is not None:
                        test = "LPERP" if first.get("nodal") else "LDIAM"
                        if listing.size == "too_small":
                            tr(new["id"], listing.group, test, TOO_SMALL_TEXT)
                        else:
                            text = _number_text(float(listing.size))
                            tr(new["id"], listing.group, test, text, text)
                    if listing.tumstate is not None:
                        stat = "NOT DONE" if listing.not_done else ""
                        tr(new["id"], listing.group, "TUMSTATE", listing.tumstate, stat=stat)
                else:
                    gone = _gone_or_unread(new)
                    if gone is not None:  # listed again, gone or not read (I-NEW-4)
                        stat = "NOT DONE" if gone == "not_evaluated" else ""
                        tr(new["id"], "NEW", "TUMSTATE", _GONE_OR_UNREAD[gone], stat=stat)
                    else:
                        state = "EQUIVOCAL" if new.get("equivocal") else "UNEQUIVOCAL"
                        tr(new["id"], "NEW", "TUMSTATE", state)
                if new["id"] not in seen_new:
                    seen_new.add(new["id"])
                    tu_rows.append(
                        base
                        | {"DOMAIN": "TU", "TUSEQ": tu_seq(subject), "TULNKID": new["id"],
                           "TUTESTCD": "TUMIDENT", "TUTEST": "Tumor Identification",
                           "TUORRES": role, "TUSTRESC": role,
                           "TULOC": _loc({"site": new.get("site"), "nodal": new.get("nodal")}),
                           "TUDTC": scan_dates.get(new["id"], tp["date"])}
                        | _reader_columns(case, "TU")
                        | visit
                    )  # fmt: skip
        criteria = result.get("criteria", "recist1.1")
        for tp_result in result["timepoints"][1:]:
            responses = [("OVRLRESP", tp_result.get("overall_response"))]
            if tp_result.get("target_response") is not None:
                responses.append(("TRGRESP", tp_result["target_response"]))
            if tp_result.get("non_target_response") is not None:
                responses.append(("NTRGRESP", tp_result["non_target_response"]))
            if criteria == IRECIST:
                responses += _irecist_new_lesion_tests(tp_result)
            elif tp_result.get("new_lesions") in ("equivocal", "yes"):
                responses.append(
                    ("NEWLPROG", "EQUIVOCAL" if tp_result["new_lesions"] == "equivocal"
                     else "UNEQUIVOCAL")
                )  # fmt: skip
            for test, response in responses:
                if response is None:
                    continue
                rs_rows.append(
                    base
                    | {"DOMAIN": "RS", "RSSEQ": rs_seq(subject), "RSTESTCD": test,
                       "RSTEST": TEST_NAMES[test], "RSCAT": RSCAT[criteria], "RSORRES": response,
                       "RSSTRESC": response, "VISITNUM": visitnum.get(tp_result["id"], ""),
                       "VISIT": tp_result["id"], "RSDTC": tp_result["date"]}
                    | _reader_columns(case, "RS")
                )  # fmt: skip

    def frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
        out = pd.DataFrame(rows, columns=columns).fillna("")
        return out.astype(str)

    return frame(tu_rows, TU_COLUMNS), frame(tr_rows, TR_COLUMNS), frame(rs_rows, RS_COLUMNS)


SUPP_COLUMNS = [
    "STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG",
    "QEVAL",
]  # fmt: skip
LOCATION_QNAM = "TULOCDTL"  # ≤ 8 characters, as SUPPQUAL's QNAM must be
LOCATION_QLABEL = "Location Detail"


def export_supptu(
    assessed: list[Assessed],
    locations: dict[tuple[str, str], str],
    *,
    studyid: str = "RECIST",
) -> pd.DataFrame:
    """SUPPTU: a lesion's free-text location ("segment VII", "right lower lobe") as the
    supplemental qualifier ``TULOCDTL`` of its TU record.

    ``TULOC`` keeps the controlled site that :mod:`cdisc_io.sdtm_import` reads back (a
    free text there would not import as a site); the detail is not part of the case
    contract, so it comes beside the cases: ``locations`` maps (subject id, lesion id)
    to the text. Records link by ``IDVAR = TULNKID`` (the lesion id, one per subject and
    reader), ``QEVAL`` is the reader's ``TUEVAL``. Lesions without a location, and
    locations of lesions the case does not have, give no record.
    """
    import pandas as pd

    rows: list[dict[str, str]] = []
    for item in assessed:
        case = item.case
        subject = case["subject_id"]
        ids = [le["id"] for le in case["lesions"]]
        for tp in case["timepoints"][1:]:
            ids += [n["id"] for n in tp.get("new_lesions", []) if n["id"] not in ids]
        evaluator = _reader_columns(case, "TU")["TUEVAL"]
        for lesion_id in ids:
            text = locations.get((subject, lesion_id))
            if not text:
                continue
            rows.append(
                {"STUDYID": studyid, "RDOMAIN": "TU", "USUBJID": subject, "IDVAR": "TULNKID",
                 "IDVARVAL": lesion_id, "QNAM": LOCATION_QNAM, "QLABEL": LOCATION_QLABEL,
                 "QVAL": text, "QORIG": "CRF", "QEVAL": evaluator}
            )  # fmt: skip
    return pd.DataFrame(rows, columns=SUPP_COLUMNS).fillna("").astype(str)
