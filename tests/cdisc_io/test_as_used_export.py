"""cdisc_io.as_used_export: one read per subject as the analysis uses it (R-BOR-USED, §8).

The as-used results come from web.services.as_used (pure functions, the one source of the
rules); this module only writes them, with the adjudicator's RS records and the ADaM
traceability variables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cdisc_io.adam_export import ADRS_COLUMNS, ADTTE_COLUMNS, export_adam
from cdisc_io.as_used_export import ENGINE, OVERRIDE, UsedRead, export_as_used
from cdisc_io.cases import Assessed
from cdisc_io.sdtm_export import export_sdtm
from recist.jsonio import assess_json
from tests.recist.conftest import case, fu
from web.services.as_used import used_result

# PR at FU1 (30 → 20 mm), PD by the target sum at FU2 (30 mm) and FU3 (31 mm).
PR_THEN_PD = case(
    {"T1": 30.0}, fu(targets={"T1": 20.0}), fu(targets={"T1": 30.0}), fu(targets={"T1": 31.0}),
    subject_id="S-OVR", randomized_on="2021-01-04",
)  # fmt: skip
PLAIN = [
    case({"T1": 30.0}, fu(targets={"T1": 28.0}), fu(targets={"T1": 31.0}), subject_id="S-SD"),
    case({"T1": 30.0, "T2": 20.0}, fu(targets={"T1": 10.0, "T2": 8.0}),
         fu(targets={"T1": 10.0, "T2": 8.0}, new_lesions=[{"id": "N1", "site": "liver"}]),
         subject_id="S-NEW", died_on="2021-06-01"),
]  # fmt: skip


def _override(c: dict[str, Any], timepoint: str | None) -> UsedRead:
    """``c`` with its progression call overridden to ``timepoint`` (``None``: no PD)."""
    own = assess_json(c)
    tp = next((t for t in c["timepoints"] if t["id"] == timepoint), None)
    used = {"source": "override", "timepoint": timepoint, "date": tp["date"] if tp else None,
            "by": "adj", "why": "noise"}  # fmt: skip

    def variant(on: bool) -> dict[str, Any]:
        v = {**c, "settings": dict(c.get("settings") or {}) | {"confirmation": on}}
        return used_result(v, assess_json(v), used)

    return UsedRead(c, own, used_result(c, own, used), (variant(False), variant(True)),
                    OVERRIDE, "adj")  # fmt: skip


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    return [[str(v) for v in row] for row in frame[columns].itertuples(index=False)]


def test_reads_without_an_override_export_exactly_as_the_per_read_exporters_write_them() -> None:
    reads = [Assessed(c, assess_json(c)) for c in [PR_THEN_PD, *PLAIN]]
    out = export_as_used([UsedRead(a.case, a.result, a.result, None, ENGINE) for a in reads])
    tu, tr, rs = export_sdtm(reads)
    adrs, adtte = export_adam(reads)
    for name, frame in (("tu", tu), ("tr", tr), ("rs", rs)):
        assert _rows(out[name], list(frame.columns)) == _rows(frame, list(frame.columns)), name
    assert _rows(out["adrs"], ADRS_COLUMNS) == _rows(adrs, ADRS_COLUMNS)
    assert _rows(out["adtte"], ADTTE_COLUMNS) == _rows(adtte, ADTTE_COLUMNS)
    assert set(out["adrs"]["USEDSRC"]) == {ENGINE} and set(out["adrs"]["USEDBY"]) == {""}


def test_an_override_adds_the_adjudicators_record_and_the_adam_traces_to_it() -> None:
    out = export_as_used([_override(PR_THEN_PD, "FU3")])
    rs = out["rs"]
    ovr = rs[rs["RSTESTCD"] == "OVRLRESP"]
    assert _rows(ovr, ["RSSEQ", "VISIT", "RSSTRESC", "RSEVALID", "RSACPTFL"]) == [
        ["1", "FU1", "PR", "", "Y"],
        ["3", "FU2", "PD", "", ""],  # the read's own PD, replaced
        ["4", "FU2", "NE", "ADJUDICATOR", "Y"],  # R-BOR-USED: a PD before the call used
        ["6", "FU3", "PD", "", "Y"],
    ]
    assert list(rs["RSSEQ"]) == [str(n) for n in range(1, len(rs) + 1)]
    adrs = out["adrs"].set_index(["PARAMCD", "AVISIT"])
    assert adrs.loc[("OVR", "FU2"), "SRCSEQ"] == 4
    assert adrs.loc[("OVR", "FU2"), "USEDSRC"] == OVERRIDE
    assert adrs.loc[("OVR", "FU1"), "USEDSRC"] == ENGINE
    assert (adrs.loc[("PD", "FU3"), "AVALC"], adrs.loc[("PD", "FU3"), "SRCSEQ"]) == ("Y", 6)
    pfs = out["adtte"].set_index("PARAMCD").loc["PFS"]
    fu3 = PR_THEN_PD["timepoints"][3]["date"]
    assert (pfs["ADT"], pfs["CNSR"], pfs["USEDSRC"], pfs["USEDBY"]) == (fu3, 0, OVERRIDE, "adj")


def test_the_bor_and_cbor_come_from_the_variants_as_used_not_the_engine_again() -> None:
    """Override to no progression: every PD counts as NE (R-BOR-USED); BOR is PR either way
    but CBOR, with the engine's PD at FU2 gone, is still unconfirmed and PD is N."""
    item = _override(PR_THEN_PD, None)
    adrs = export_as_used([item])["adrs"].set_index("PARAMCD")
    assert adrs.loc["BOR", "AVALC"] == item.variants[0]["best_overall_response"]  # type: ignore[index]
    assert adrs.loc["CBOR", "AVALC"] == item.variants[1]["best_overall_response"]  # type: ignore[index]
    assert adrs.loc["PD", "AVALC"] == "N"
    engine = export_adam([Assessed(PR_THEN_PD, assess_json(PR_THEN_PD))])[0].set_index("PARAMCD")
    assert engine.loc["PD", "AVALC"] == "Y"
    ovr = adrs.loc["OVR"]
    assert list(ovr["AVALC"]) == ["PR", "NE", "NE"]
    assert list(ovr["RSEVALID"]) == ["", "ADJUDICATOR", "ADJUDICATOR"]
