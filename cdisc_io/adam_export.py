"""Cases + engine results → ADaM ADRS and ADTTE, named and coded as pharmaverse's
admiralonco templates (``adrs_onco``, ``adtte_onco``) do.

ADRS parameters per read (``PARCAT2`` says whose; ``PARCAT3 = RECIST 1.1``):

====== ==================================================================== ==============
OVR    Overall Response (one record per follow-up timepoint)                AVALC response
BOR    Best Overall Response (confirmation not required; R-BOR-1)          AVALC response
CBOR   Best Confirmed Overall Response (R-BOR-CONF)                         AVALC response
RSP    Response (confirmation not required): BOR is CR or PR                Y / N
CRSP   Confirmed Response: CBOR is CR or PR                                 Y / N
PD     Disease Progression, ADT = progression date (back-dated, R-NEW-2)   Y / N
DEATH  Death                                                                Y / N
====== ==================================================================== ==============

Response AVAL codes as admiralonco: CR 1, PR 2, SD 3, NON-CR/NON-PD 4, PD 5, NE 6; Y 1,
N 0. BOR is derived with ``confirmation`` off and CBOR with it on, every other setting
being the case's own, so that each parameter means what its name says whatever the trial's
setting. ADT of BOR/CBOR is the date of the timepoint that gave it (for NE without one, the
first follow-up assessment). ADTF is ``D``/``M`` where import-sdtm imputed the visit date
by its rule (pass its ``--notices`` file); the case contract itself has no such field.

A read assessed with ``criteria: "irecist"`` (docs/rules.md §10) gets the parameters of
admiralonco's iRECIST vignette instead (``PARCAT3 = iRECIST``), from the engine's iRECIST
result:

====== ==================================================================== ==============
OVR    Overall Response (one record per follow-up timepoint)                AVALC response
IBOR   iRECIST Best Overall Response (confirmation not required; I-BOR)    AVALC response
ICBOR  iRECIST Best Confirmed Overall Response                              AVALC response
IRSP   iRECIST Response (confirmation not required): IBOR is iCR or iPR    Y / N
ICRSP  iRECIST Confirmed Response: ICBOR is iCR or iPR                      Y / N
ICPD   iRECIST Confirmation of Disease Progression; AVISIT/ADT: the iUPD   Y / N
       the iCPD confirmed (I-PFS)
IUPD   iRECIST Unconfirmed Disease Progression: the last iUPD followed     Y / N
       only by iUPD or NE (neither confirmed nor reset); AVISIT/ADT: it
DEATH  Death                                                                Y / N
====== ==================================================================== ==============

iRECIST AVAL codes as the vignette's ``aval_resp_new``: iCR 6, iPR 5, iSD 4,
NON-iCR/NON-iUPD 3, iUPD 2, iCPD 1, NE 8. The RECIST 1.1 result the engine gives beside it
(``recist1_1``) is not written: it would need parameter codes of its own.

ADTTE parameters: PFS (AVAL = ADT − STARTDT + 1 with STARTDT the randomisation date, CNSR
0 event / 1 censored), OS and RSD (duration of response, responders only); see
:mod:`endpoints.derive`. For an iRECIST read PFS is the engine's iRECIST PFS (the
confirmed progression, dated by its first iUPD: I-PFS) and RSD runs from the first iCR or
iPR.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdisc_io.sdtm_import import INVESTIGATOR

if TYPE_CHECKING:
    import pandas as pd

    from cdisc_io.cases import Assessed

AVAL_CODES = {"CR": 1, "PR": 2, "SD": 3, "NON-CR/NON-PD": 4, "PD": 5, "NE": 6}
# admiralonco's iRECIST vignette (aval_resp_new): ordered from worst to best, then NE.
IRECIST_AVAL_CODES = {
    "iCPD": 1, "iUPD": 2, "NON-iCR/NON-iUPD": 3, "iSD": 4, "iPR": 5, "iCR": 6, "NE": 8,
}  # fmt: skip
IRECIST = "irecist"
I_RESPONSES = ("iCR", "iPR")
ADRS_COLUMNS = [
    "STUDYID", "USUBJID", "ARM", "RANDDT", "RSEVAL", "RSEVALID", "RSACPTFL", "PARAMCD",
    "PARAM", "PARCAT1", "PARCAT2", "PARCAT3", "AVISIT", "ADT", "ADTF", "AVAL", "AVALC",
    "ANL01FL",
]  # fmt: skip
ADTTE_COLUMNS = [
    "STUDYID", "USUBJID", "ARM", "RSEVAL", "RSEVALID", "PARAMCD", "PARAM", "STARTDT", "ADT",
    "AVAL", "CNSR", "EVNTDESC", "CNSDTDSC", "SRCDOM", "SRCVAR",
]  # fmt: skip
ADTTE_PARAMS = {
    "PFS": "Progression Free Survival",
    "OS": "Overall Survival",
    "RSD": "Duration of Response",
}


def _who(reader: str) -> str:
    return "Investigator" if reader == INVESTIGATOR else reader.title()


def _variant(case: dict[str, Any], confirmation: bool) -> dict[str, Any]:
    from recist.jsonio import assess_json

    variant = dict(case)
    variant["settings"] = dict(case.get("settings") or {}) | {"confirmation": confirmation}
    return assess_json(variant)


def _best_date(result: dict[str, Any]) -> tuple[str, str]:
    """(AVISIT, ADT) of the timepoint that gave the best overall response."""
    by_id = {tp["id"]: tp for tp in result["timepoints"]}
    tp_id = result["best_overall_response_detail"].get("timepoint")
    if tp_id is None and len(result["timepoints"]) > 1:
        tp_id = result["timepoints"][1]["id"]
    if tp_id is None:
        return "", ""
    return tp_id, by_id[tp_id]["date"]


def imputation_flags(notices: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """ADTF per (subject, reader, visit) from import-sdtm's ``--notices`` records."""
    flags: dict[tuple[str, str, str], str] = {}
    for notice in notices:
        if notice.get("kind") == "imputed_date" and notice.get("flag") and notice.get("visit"):
            key = (notice.get("subject", ""), notice.get("reader") or INVESTIGATOR,
                   notice["visit"])  # fmt: skip
            flags[key] = notice["flag"]
    return flags


def is_irecist(result: dict[str, Any]) -> bool:
    """Whether the engine answered in iRECIST's codes (``criteria: "irecist"``)."""
    return result.get("criteria") == IRECIST


def as_recist_words(result: dict[str, Any]) -> dict[str, Any]:
    """An iRECIST result whose overall responses read as their RECIST 1.1 class
    (``recist.irecist.RECIST_CLASS``: iCR → CR, iPR → PR, iCPD → PD…), for
    :mod:`endpoints.derive`'s first response and duration of response; iUPD stays iUPD, as
    it ends nothing: only a confirmed progression does (I-BOR, I-PFS)."""
    from recist.irecist import recist_class

    timepoints = [
        {**tp, "overall_response": code if code in (None, "iUPD") else recist_class(code)}
        for tp in result["timepoints"]
        for code in [tp.get("overall_response")]
    ]
    return {**result, "timepoints": timepoints}


def _last_unconfirmed_iupd(result: dict[str, Any]) -> tuple[str, str] | None:
    """(AVISIT, ADT) of admiralonco's IUPD: the last iUPD when only iUPD or NE follow it."""
    follow_ups = result["timepoints"][1:]
    last = max(
        (i for i, tp in enumerate(follow_ups) if tp.get("overall_response") == "iUPD"),
        default=None,
    )
    if last is None:
        return None
    if any(tp.get("overall_response") not in ("iUPD", "NE") for tp in follow_ups[last:]):
        return None
    return follow_ups[last]["id"], follow_ups[last]["date"]


def adrs_records(
    item: Assessed,
    studyid: str,
    flags: dict[tuple[str, str, str], str] | None = None,
    variants: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The ADRS records of one read; ``flags`` give ADTF of imputed visit dates.

    ``variants`` are the results (confirmation off, on) that BOR/CBOR, RSP/CRSP and
    IBOR/ICBOR… come from; by default the engine assesses the case again with
    ``confirmation`` off and on. :mod:`cdisc_io.as_used_export` passes the results as an
    analysis uses them (after an adjudicator's override, R-BOR-USED).
    """
    from endpoints.derive import first_response

    case, result = item.case, item.result
    irecist = is_irecist(result)
    reader = case.get("reader") or INVESTIGATOR
    who = _who(reader)
    base = {
        "STUDYID": studyid,
        "USUBJID": case["subject_id"],
        "ARM": case.get("arm") or "",
        "RANDDT": case.get("randomized_on") or "",
        "RSEVAL": INVESTIGATOR if reader == INVESTIGATOR else "INDEPENDENT ASSESSOR",
        "RSEVALID": "" if reader == INVESTIGATOR else reader,
        "RSACPTFL": "Y" if case.get("accepted") else "",
        "PARCAT1": "Tumor Response",
        "PARCAT2": who,
        "PARCAT3": "iRECIST" if irecist else "RECIST 1.1",
        "ANL01FL": "Y",
    }
    rows: list[dict[str, Any]] = []

    codes = IRECIST_AVAL_CODES if irecist else AVAL_CODES

    def add(code: str, param: str, avalc: str, visit: str = "", adt: str = "") -> None:
        aval = codes.get(avalc, {"Y": 1, "N": 0}.get(avalc, ""))
        adtf = (flags or {}).get((case["subject_id"], reader, visit), "") if visit else ""
        rows.append(base | {"PARAMCD": code, "PARAM": param, "AVISIT": visit, "ADT": adt,
                            "ADTF": adtf, "AVAL": aval, "AVALC": avalc})  # fmt: skip

    for tp in result["timepoints"][1:]:
        if tp.get("overall_response"):
            add("OVR", f"Overall Response by {who}", tp["overall_response"], tp["id"], tp["date"])
    if variants is None:
        variants = (_variant(case, confirmation=False), _variant(case, confirmation=True))
    unconfirmed, confirmed = variants
    bor, cbor = unconfirmed["best_overall_response"], confirmed["best_overall_response"]
    if irecist:
        _irecist_parameters(add, who, case, result, unconfirmed, confirmed)
        return rows
    add("BOR", f"Best Overall Response by {who} (confirmation not required)", bor,
        *_best_date(unconfirmed))  # fmt: skip
    add("CBOR", f"Best Confirmed Overall Response by {who}", cbor, *_best_date(confirmed))
    first = first_response(unconfirmed)
    responded = bor in ("CR", "PR") and first is not None
    visit, day = (first[0], first[1].isoformat()) if responded and first else ("", "")
    add("RSP", f"Response by {who} (confirmation not required)", "Y" if responded else "N",
        visit, day)  # fmt: skip
    first_confirmed = first_response(confirmed)
    confirmed_response = cbor in ("CR", "PR") and first_confirmed is not None
    visit, day = (
        (first_confirmed[0], first_confirmed[1].isoformat())
        if confirmed_response and first_confirmed
        else ("", "")
    )
    add("CRSP", f"Confirmed Response by {who}", "Y" if confirmed_response else "N", visit, day)
    progression = result.get("progression")
    if progression:
        add("PD", f"Disease Progression by {who}", "Y", progression["timepoint"],
            progression["date"])  # fmt: skip
    else:
        add("PD", f"Disease Progression by {who}", "N")
    add("DEATH", "Death", "Y" if case.get("died_on") else "N", "", case.get("died_on") or "")
    return rows


def _irecist_parameters(
    add: Any,
    who: str,
    case: dict[str, Any],
    result: dict[str, Any],
    unconfirmed: dict[str, Any],
    confirmed: dict[str, Any],
) -> None:
    """IBOR, ICBOR, IRSP, ICRSP, ICPD, IUPD and DEATH of an iRECIST read (admiralonco's
    iRECIST vignette names and words), after its OVR records."""
    from endpoints.derive import first_response

    bor, cbor = unconfirmed["best_overall_response"], confirmed["best_overall_response"]
    add("IBOR", f"iRECIST Best Overall Response by {who} (confirmation not required)", bor,
        *_best_date(unconfirmed))  # fmt: skip
    add("ICBOR", f"iRECIST Best Confirmed Overall Response by {who}", cbor,
        *_best_date(confirmed))  # fmt: skip
    for code, param, best, variant in (
        ("IRSP", f"iRECIST Response by {who} (confirmation not required)", bor, unconfirmed),
        ("ICRSP", f"iRECIST Confirmed Response by {who}", cbor, confirmed),
    ):
        first = first_response(as_recist_words(variant))
        if best in I_RESPONSES and first is not None:
            add(code, param, "Y", first[0], first[1].isoformat())
        else:
            add(code, param, "N")
    progression = result.get("progression")
    param = f"iRECIST Confirmation of Disease Progression by {who}"
    if progression:  # I-PFS: dated by the iUPD the iCPD confirmed
        add("ICPD", param, "Y", progression["iupd_timepoint"], progression["date"])
    else:
        add("ICPD", param, "N")
    unconfirmed_iupd = _last_unconfirmed_iupd(result)
    param = f"iRECIST Unconfirmed Disease Progression by {who}"
    if unconfirmed_iupd is not None:
        add("IUPD", param, "Y", *unconfirmed_iupd)
    else:
        add("IUPD", param, "N")
    add("DEATH", "Death", "Y" if case.get("died_on") else "N", "", case.get("died_on") or "")


def adtte_records(item: Assessed, studyid: str) -> list[dict[str, Any]]:
    """The ADTTE records of one read: PFS, OS and, for a responder, RSD."""
    from endpoints.derive import duration_of_response, overall_survival, pfs

    case, result = item.case, item.result
    if is_irecist(result):
        result = as_recist_words(result)  # RSD from the first iCR/iPR (I-BOR)
    reader = case.get("reader") or INVESTIGATOR
    records = [pfs(case, result), overall_survival(case)]
    dor = duration_of_response(case, result)
    if dor is not None:
        records.append(dor)
    rows = []
    for record in records:
        censor_text = ""
        if not record.event:
            censor_text = "Alive During Study" if record.param == "OS" else record.description
        rows.append({
            "STUDYID": studyid,
            "USUBJID": case["subject_id"],
            "ARM": case.get("arm") or "",
            "RSEVAL": INVESTIGATOR if reader == INVESTIGATOR else "INDEPENDENT ASSESSOR",
            "RSEVALID": "" if reader == INVESTIGATOR else reader,
            "PARAMCD": record.param,
            "PARAM": ADTTE_PARAMS[record.param],
            "STARTDT": record.start.isoformat(),
            "ADT": record.end.isoformat(),
            "AVAL": record.days,
            "CNSR": record.cnsr,
            "EVNTDESC": record.description,
            "CNSDTDSC": censor_text,
            "SRCDOM": record.source[0],
            "SRCVAR": record.source[1],
        })  # fmt: skip
    return rows


def select_reads(assessed: list[Assessed], reader: str) -> list[Assessed]:
    """``all`` reads, the ``accepted`` ones, or those of one named reader."""
    if reader == "all":
        return list(assessed)
    if reader == "accepted":
        return [a for a in assessed if a.case.get("accepted")]
    return [a for a in assessed if (a.case.get("reader") or INVESTIGATOR) == reader]


def export_adam(
    assessed: list[Assessed],
    *,
    studyid: str = "RECIST",
    flags: dict[tuple[str, str, str], str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ADRS and ADTTE of a batch of assessed cases (every cell text or integer).

    ``flags`` (:func:`imputation_flags`) set ADRS ADTF where a visit date was imputed.
    """
    import pandas as pd

    adrs: list[dict[str, Any]] = []
    adtte: list[dict[str, Any]] = []
    for item in assessed:
        adrs += adrs_records(item, studyid, flags)
        adtte += adtte_records(item, studyid)
    return (
        pd.DataFrame(adrs, columns=ADRS_COLUMNS).fillna(""),
        pd.DataFrame(adtte, columns=ADTTE_COLUMNS).fillna(""),
    )
