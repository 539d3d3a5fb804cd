"""Trial-level exports for analysis: one read per subject, with its responses, best overall
response and PFS *as used* — after an adjudicator's override of the progression call
(R-BOR-USED), or from the central read an adjudicator accepted — and where each value
came from.

This module derives no rule: the caller gives, per subject, the read's own engine result
and the result as analyses use it (the web app takes both from
:mod:`web.services.as_used`, the one place the as-used rules live). It only writes them:

* **RS** (and TU, TR): the read's own records, as :func:`cdisc_io.sdtm_export.export_sdtm`
  writes them. At each visit whose overall response an override changed, an ``OVRLRESP``
  record of the adjudicator follows the read's: ``RSEVAL = INDEPENDENT ASSESSOR``,
  ``RSEVALID = ADJUDICATOR``, the response used. In such a subject every ``OVRLRESP``
  record used for analysis has ``RSACPTFL = Y`` and the read's replaced one is blank (the
  SDTMIG's accepted record when more than one assessor evaluates), and ``RSSEQ`` is numbered
  again in visit order. A subject without an override is written exactly as the per-read
  export writes it.
* **ADRS**: :func:`cdisc_io.adam_export.adrs_records` of the result as used (OVR per visit,
  BOR, CBOR, RSP, CRSP and PD from the responses as used; ``variants`` give BOR/CBOR with
  confirmation off and on, as used), plus the traceability variables ``SRCDOM = RS``,
  ``SRCVAR = RSSTRESC`` and ``SRCSEQ`` (the ``RSSEQ`` of the accepted ``OVRLRESP`` record of
  the row's visit) and ``USEDSRC`` / ``USEDBY`` (:data:`SOURCES`; who decided). An OVR row an
  override changed carries the adjudicator's ``RSEVAL``/``RSEVALID``/``RSACPTFL``.
* **ADTTE**: :func:`cdisc_io.adam_export.adtte_records` of the result as used (PFS from its
  progression, §8), plus ``USEDSRC`` / ``USEDBY``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdisc_io.adam_export import ADRS_COLUMNS, ADTTE_COLUMNS, adrs_records, adtte_records

if TYPE_CHECKING:
    import pandas as pd

# USEDSRC: where the read used for a subject, or a value of it, comes from.
ENGINE = "ENGINE"  # the read's own engine value (a site read without an override)
OVERRIDE = "OVERRIDE"  # follows an adjudicator's override of the progression call
CENTRAL_AGREED = "CENTRAL AGREED"  # read 1 of two concordant central reads
CENTRAL_ADJUDICATED = "CENTRAL ADJUDICATED"  # the central read an adjudicator accepted
SOURCES = (ENGINE, OVERRIDE, CENTRAL_AGREED, CENTRAL_ADJUDICATED)

ADJUDICATOR = "ADJUDICATOR"
INDEPENDENT = "INDEPENDENT ASSESSOR"
# The ADRS parameters (and ADTTE ones) that follow the progression call used: in a subject
# with an override they come from the adjudicated course (R-BOR-USED, §8).
FOLLOW_THE_CALL = {"BOR", "CBOR", "RSP", "CRSP", "PD", "ICPD", "PFS", "RSD"}

AS_USED_ADRS_COLUMNS = [*ADRS_COLUMNS, "SRCDOM", "SRCVAR", "SRCSEQ", "USEDSRC", "USEDBY"]
AS_USED_ADTTE_COLUMNS = [*ADTTE_COLUMNS, "USEDSRC", "USEDBY"]


@dataclass(frozen=True)
class UsedRead:
    """One subject's read as the analysis uses it.

    ``own`` is the read's own engine result, ``used`` the result as used (``own`` itself
    without an override); ``variants`` the results as used with ``confirmation`` off and
    on (``None``: the engine's, assessed again); ``source`` one of :data:`SOURCES`;
    ``decided_by`` the adjudicator, if any.
    """

    case: dict[str, Any]
    own: dict[str, Any]
    used: dict[str, Any]
    variants: tuple[dict[str, Any], dict[str, Any]] | None
    source: str
    decided_by: str = ""


def _changed(item: UsedRead) -> dict[str, str]:
    """Visit → the response used, where an override changed the read's (R-BOR-USED)."""
    if item.source != OVERRIDE:
        return {}
    return {
        tp["id"]: tp["overall_response"]
        for tp in item.used["timepoints"][1:]
        if "engine_overall_response" in tp and tp.get("overall_response")
    }


def _rs_records(rows: list[dict[str, str]], item: UsedRead) -> list[dict[str, str]]:
    """The read's RS rows with the adjudicator's OVRLRESP records where an override changed
    the response, the accepted flags, and RSSEQ numbered again (unchanged without one)."""
    changed = _changed(item)
    if not changed:
        return rows
    by_visit: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_visit[row["VISIT"]].append(dict(row))
    out: list[dict[str, str]] = []
    numbers = {tp["id"]: str(i + 1) for i, tp in enumerate(item.case["timepoints"])}
    for tp in item.used["timepoints"][1:]:
        visit = by_visit.get(tp["id"], [])
        for row in visit:
            if row["RSTESTCD"] == "OVRLRESP":
                row["RSACPTFL"] = "" if tp["id"] in changed else "Y"
        if tp["id"] in changed:
            template = next((r for r in visit if r["RSTESTCD"] == "OVRLRESP"), None)
            adjudicated = dict(template) if template else {
                "STUDYID": rows[0]["STUDYID"] if rows else "", "DOMAIN": "RS",
                "USUBJID": item.case["subject_id"], "RSTESTCD": "OVRLRESP",
                "RSTEST": "Overall Response", "RSCAT": "RECIST 1.1",
                "VISITNUM": numbers.get(tp["id"], ""), "VISIT": tp["id"], "RSDTC": tp["date"],
            }  # fmt: skip
            adjudicated |= {
                "RSORRES": changed[tp["id"]], "RSSTRESC": changed[tp["id"]],
                "RSEVAL": INDEPENDENT, "RSEVALID": ADJUDICATOR, "RSACPTFL": "Y",
            }  # fmt: skip
            at = next((i + 1 for i, r in enumerate(visit) if r["RSTESTCD"] == "OVRLRESP"), 0)
            visit = [*visit[:at], adjudicated, *visit[at:]]
        out += visit
    for number, row in enumerate(out, start=1):
        row["RSSEQ"] = str(number)
    return out


def _accepted_seq(rs: list[dict[str, str]]) -> dict[str, int]:
    """Visit → RSSEQ of the OVRLRESP record analyses use at that visit."""
    out: dict[str, int] = {}
    for row in rs:
        if row["RSTESTCD"] != "OVRLRESP":
            continue
        if row["VISIT"] not in out or row["RSACPTFL"] == "Y":
            out[row["VISIT"]] = int(row["RSSEQ"])
    return out


def export_as_used(used: list[UsedRead], *, studyid: str = "RECIST") -> dict[str, pd.DataFrame]:
    """TU, TR, RS, ADRS and ADTTE (keys ``tu``… ``adtte``) of one read per subject, as used.

    See the module docstring for what each carries beyond the per-read exports.
    """
    import pandas as pd

    from cdisc_io.cases import Assessed
    from cdisc_io.sdtm_export import RS_COLUMNS, export_sdtm

    frames: dict[str, list[Any]] = {"tu": [], "tr": [], "rs": []}
    adrs: list[dict[str, Any]] = []
    adtte: list[dict[str, Any]] = []
    for item in used:
        tu, tr, rs_frame = export_sdtm([Assessed(item.case, item.own)], studyid=studyid)
        rs = _rs_records(rs_frame.to_dict("records"), item)
        frames["tu"].append(tu)
        frames["tr"].append(tr)
        frames["rs"].append(pd.DataFrame(rs, columns=RS_COLUMNS))
        changed = _changed(item)
        seq = _accepted_seq(rs)
        by = item.decided_by if item.source != ENGINE else ""
        for row in adrs_records(Assessed(item.case, item.used), studyid, variants=item.variants):
            source = item.source
            if item.source == OVERRIDE and not (
                row["PARAMCD"] in FOLLOW_THE_CALL
                or (row["PARAMCD"] == "OVR" and row["AVISIT"] in changed)
            ):
                source = ENGINE
            if row["PARAMCD"] == "OVR" and row["AVISIT"] in changed:
                row |= {"RSEVAL": INDEPENDENT, "RSEVALID": ADJUDICATOR, "RSACPTFL": "Y"}
            traced = row["PARAMCD"] != "DEATH" and row["AVISIT"] in seq
            row |= {
                "SRCDOM": "RS" if traced else "",
                "SRCVAR": "RSSTRESC" if traced else "",
                "SRCSEQ": seq[row["AVISIT"]] if traced else "",
                "USEDSRC": source,
                "USEDBY": by if source != ENGINE else "",
            }
            adrs.append(row)
        for row in adtte_records(Assessed(item.case, item.used), studyid):
            source = item.source
            if item.source == OVERRIDE and row["PARAMCD"] not in FOLLOW_THE_CALL:
                source = ENGINE
            adtte.append(row | {"USEDSRC": source, "USEDBY": by if source != ENGINE else ""})

    def joined(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
        if not parts:
            return pd.DataFrame([], columns=columns)
        return pd.concat(parts, ignore_index=True)[columns].fillna("").astype(str)

    from cdisc_io.sdtm_export import TR_COLUMNS, TU_COLUMNS

    return {
        "tu": joined(frames["tu"], TU_COLUMNS),
        "tr": joined(frames["tr"], TR_COLUMNS),
        "rs": joined(frames["rs"], RS_COLUMNS),
        "adrs": pd.DataFrame(adrs, columns=AS_USED_ADRS_COLUMNS).fillna(""),
        "adtte": pd.DataFrame(adtte, columns=AS_USED_ADTTE_COLUMNS).fillna(""),
    }
