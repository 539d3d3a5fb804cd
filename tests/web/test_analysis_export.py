"""The trial's CDISC exports for analysis carry the responses, BOR and PFS as used — after an
adjudicator's override of the progression call (R-BOR-USED, §8) or from the central read an
adjudicator accepted — with where each value came from; a subject without either exports
exactly as its read does; central reads that are not final are refused, not mixed in.

Before this export existed, the only CDISC export of the web app was the central-review
page's, of every central read's own engine result: a site read's override reached no export.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from cdisc_io.adam_export import ADRS_COLUMNS, ADTTE_COLUMNS, export_adam
from cdisc_io.cases import Assessed
from cdisc_io.sdtm_export import export_sdtm
from tests.recist.conftest import fu
from tests.web.helpers import central_read, follow_up, read_subject
from web.services import SYSTEM, Actor, create_subject, create_user, get_subject
from web.services.cases import build_case
from web.services.central import adjudicate, set_central_review, submit_read
from web.services.progression import override_call
from web.testing import PASSWORD, assign_everyone, bearer, login

ADJUDICATOR = Actor("adjudicator", "adjudicator")
R1, R2 = Actor("reader", "reader"), Actor("reader2", "reader")


def _csv(client: FlaskClient, trial: str, domain: str) -> list[dict[str, str]]:
    response = client.get(f"/trials/{trial}/exports/{domain}.csv")
    assert response.status_code == 200, response.data[:500]
    return list(csv.DictReader(io.StringIO(response.data.decode())))


def _client(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "reviewer")
    return client


@pytest.fixture
def overridden(session: Session, trial: str, users: dict[str, str]) -> str:
    """S-OVR: site read PR at W8, PD by the target sum at W16 (engine) and W24; the
    adjudicator moves the progression to W24. S-NEW: a new lesion at W8 (PD), overridden to
    no progression. S-PLAIN: no override."""
    read_subject(
        session,
        trial,
        "S-OVR",
        follow_up("W8", "2021-03-01", 21.0, 14.0),  # 35 mm, −30 %: PR
        follow_up("W16", "2021-04-26", 30.0, 14.0),  # 44 mm, +26 % from 35: PD (R-TGT-PD)
        follow_up("W24", "2021-06-21", 31.0, 14.0),
    )
    override_call(
        session, ADJUDICATOR, trial, "S-OVR", timepoint="W24",
        reason="W16 growth is within measurement error", seen_call=None,
    )  # fmt: skip
    read_subject(
        session,
        trial,
        "S-NEW",
        follow_up("W8", "2021-03-01", 29.0, 19.0, [{"id": "NL01", "site": "liver"}]),
    )
    override_call(
        session, ADJUDICATOR, trial, "S-NEW", timepoint=None, reason="cyst", seen_call=None
    )
    read_subject(
        session,
        trial,
        "S-PLAIN",
        follow_up("W8", "2021-03-01", 21.0, 14.0),
        follow_up("W16", "2021-04-26", 30.0, 14.0),
    )
    return trial


def test_the_analysis_export_follows_an_override_of_the_progression_call(
    app: Flask, overridden: str
) -> None:
    client = _client(app)
    rs = [r for r in _csv(client, overridden, "rs") if r["USUBJID"] == "S-OVR"]
    ovr = [
        (r["RSSEQ"], r["VISIT"], r["RSSTRESC"], r["RSEVAL"], r["RSEVALID"], r["RSACPTFL"])
        for r in rs
        if r["RSTESTCD"] == "OVRLRESP"
    ]
    # The read's own PD at W16 stays, not accepted; the adjudicator's record follows it
    # (R-BOR-USED: a PD before the call used counts as NE).
    assert [o[1:] for o in ovr] == [
        ("W8", "PR", "INVESTIGATOR", "", "Y"),
        ("W16", "PD", "INVESTIGATOR", "", ""),
        ("W16", "NE", "INDEPENDENT ASSESSOR", "ADJUDICATOR", "Y"),
        ("W24", "PD", "INVESTIGATOR", "", "Y"),
    ]
    assert [r["RSSEQ"] for r in rs] == [str(n) for n in range(1, len(rs) + 1)]
    adjudicator_seq = ovr[2][0]

    adrs = {
        (r["PARAMCD"], r["AVISIT"]): r
        for r in _csv(client, overridden, "adrs")
        if r["USUBJID"] == "S-OVR"
    }
    assert [(v, r["AVALC"]) for (p, v), r in adrs.items() if p == "OVR"] == [
        ("W8", "PR"), ("W16", "NE"), ("W24", "PD"),
    ]  # fmt: skip
    w16 = adrs[("OVR", "W16")]
    assert (w16["RSEVALID"], w16["SRCDOM"], w16["SRCSEQ"], w16["USEDSRC"], w16["USEDBY"]) == (
        "ADJUDICATOR", "RS", adjudicator_seq, "OVERRIDE", "adjudicator",
    )  # fmt: skip
    assert (adrs[("OVR", "W8")]["USEDSRC"], adrs[("OVR", "W8")]["USEDBY"]) == ("ENGINE", "")
    pd_row = adrs[("PD", "W24")]
    assert (pd_row["AVALC"], pd_row["ADT"], pd_row["USEDSRC"]) == ("Y", "2021-06-21", "OVERRIDE")
    bor = next(r for (p, _), r in adrs.items() if p == "BOR")
    assert (bor["AVALC"], bor["AVISIT"], bor["USEDSRC"]) == ("PR", "W8", "OVERRIDE")

    adtte = {r["PARAMCD"]: r for r in _csv(client, overridden, "adtte") if r["USUBJID"] == "S-OVR"}
    # PFS: the engine's rule (§8) on the call used — an event at W24, not at W16.
    assert (adtte["PFS"]["ADT"], adtte["PFS"]["CNSR"], adtte["PFS"]["USEDSRC"]) == (
        "2021-06-21", "0", "OVERRIDE",
    )  # fmt: skip
    assert adtte["OS"]["USEDSRC"] == "ENGINE"


def test_an_override_to_no_progression_changes_the_bor_and_censors_pfs(
    app: Flask, overridden: str
) -> None:
    client = _client(app)
    adrs = {r["PARAMCD"]: r for r in _csv(client, overridden, "adrs") if r["USUBJID"] == "S-NEW"}
    assert (adrs["OVR"]["AVALC"], adrs["OVR"]["RSEVALID"]) == ("NE", "ADJUDICATOR")
    assert adrs["BOR"]["AVALC"] == "NE"  # the engine's own BOR is PD
    assert (adrs["PD"]["AVALC"], adrs["PD"]["ADT"]) == ("N", "")
    pfs = next(
        r
        for r in _csv(client, overridden, "adtte")
        if r["USUBJID"] == "S-NEW" and r["PARAMCD"] == "PFS"
    )
    assert pfs["CNSR"] == "1" and pfs["USEDSRC"] == "OVERRIDE"


def test_a_subject_without_an_override_exports_exactly_as_its_read(
    app: Flask, session: Session, overridden: str
) -> None:
    """The as-used export of S-PLAIN equals what the per-read exporters write of its read."""
    subject = get_subject(session, overridden, "S-PLAIN")
    read = [Assessed(build_case(subject), subject.result_json)]
    adrs_before, adtte_before = export_adam(read, studyid=overridden)
    tu_before, tr_before, rs_before = export_sdtm(read, studyid=overridden)
    client = _client(app)

    def mine(domain: str, columns: list[str]) -> list[list[str]]:
        rows = [r for r in _csv(client, overridden, domain) if r["USUBJID"] == "S-PLAIN"]
        return [[r[c] for c in columns] for r in rows]

    def before(frame: Any) -> list[list[str]]:
        return [[str(v) for v in row] for row in frame.itertuples(index=False)]

    assert mine("adrs", ADRS_COLUMNS) == before(adrs_before[ADRS_COLUMNS])
    assert mine("adtte", ADTTE_COLUMNS) == before(adtte_before[ADTTE_COLUMNS])
    for domain, frame in (("rs", rs_before), ("tr", tr_before), ("tu", tu_before)):
        assert mine(domain, list(frame.columns)) == before(frame), domain
    sources = {r["USEDSRC"] for r in _csv(client, overridden, "adrs") if r["USUBJID"] == "S-PLAIN"}
    assert sources == {"ENGINE"}


@pytest.fixture
def central(session: Session, trial: str, users: dict[str, str]) -> str:
    """Central review on. S-1: read 1 PD at W16, read 2 SD at W16 then PD at W24 (the reads
    disagree: adjudication). S-2: both reads SD (agreed)."""
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    assign_everyone(session)
    set_central_review(session, Actor("trial_manager", "trial_manager"), trial, on=True)
    for code in ("S-1", "S-2"):
        create_subject(session, SYSTEM, trial, code=code, arm="A", randomized_on="2021-01-04")
    w8, w16, w24 = ({"id": v} for v in ("W8", "W16", "W24"))
    pd_w16 = central_read(
        fu(**w8, targets={"T1": 28.0}), fu(**w16, targets={"T1": 40.0}),
        fu(**w24, targets={"T1": 45.0}),
    )  # fmt: skip
    pd_w24 = central_read(
        fu(**w8, targets={"T1": 28.0}), fu(**w16, targets={"T1": 31.0}),
        fu(**w24, targets={"T1": 40.0}),
    )  # fmt: skip
    sd = central_read(fu(**w8, targets={"T1": 28.0}), fu(**w16, targets={"T1": 31.0}))
    submit_read(session, R1, trial, "S-1", read=pd_w16, password=PASSWORD)
    submit_read(session, R2, trial, "S-1", read=pd_w24, password=PASSWORD)
    submit_read(session, R1, trial, "S-2", read=sd, password=PASSWORD)
    submit_read(session, R2, trial, "S-2", read=sd, password=PASSWORD)
    return trial


def test_an_unfinished_adjudication_is_refused_naming_the_subject_and_visits(
    app: Flask, session: Session, central: str
) -> None:
    # S-3 has one central read of two; S-4 no read at all (in no analysis: not named).
    for code in ("S-3", "S-4"):
        create_subject(session, SYSTEM, central, code=code, arm="A")
    one = central_read(fu(id="W8", targets={"T1": 28.0}))
    submit_read(session, R1, central, "S-3", read=one, password=PASSWORD)
    client = _client(app)
    for domain in ("rs", "adrs", "adtte"):
        response = client.get(f"/trials/{central}/exports/{domain}.csv")
        assert response.status_code == 409
        text = response.data.decode()
        assert "subject S-1: awaiting adjudication" in text
        assert (
            "subject S-1: awaiting adjudication (read 1 by reader: PD at W16 on 2021-04-26, "
            "read 2 by reader2: PD at W24 on 2021-06-21)"
        ) in text
        assert "subject S-3: 1 of 2 reads (read 1 by reader: no progression)" in text
        assert "S-2" not in text and "S-4" not in text  # agreed; nothing read


def test_the_adjudicated_central_read_is_the_one_exported_with_its_provenance(
    app: Flask, session: Session, central: str
) -> None:
    adjudicate(
        session, ADJUDICATOR, central, "S-1", accepted_slot=2,
        rationale="W16 growth is within measurement error", password=PASSWORD,
    )  # fmt: skip
    client = _client(app)
    rs = [
        (r["VISIT"], r["RSSTRESC"], r["RSEVALID"], r["RSACPTFL"])
        for r in _csv(client, central, "rs")
        if r["USUBJID"] == "S-1" and r["RSTESTCD"] == "OVRLRESP"
    ]
    assert rs == [("W8", "SD", "reader2", "Y"), ("W16", "SD", "reader2", "Y"),
                  ("W24", "PD", "reader2", "Y")]  # fmt: skip
    adrs = [r for r in _csv(client, central, "adrs") if r["USUBJID"] == "S-1"]
    assert [(r["AVISIT"], r["AVALC"]) for r in adrs if r["PARAMCD"] == "OVR"] == [
        ("W8", "SD"), ("W16", "SD"), ("W24", "PD"),
    ]  # fmt: skip
    assert {(r["USEDSRC"], r["USEDBY"], r["RSEVALID"]) for r in adrs} == {
        ("CENTRAL ADJUDICATED", "adjudicator", "reader2")
    }
    assert next(r for r in adrs if r["PARAMCD"] == "BOR")["AVALC"] == "SD"
    pfs = next(
        r for r in _csv(client, central, "adtte") if r["USUBJID"] == "S-1" and r["PARAMCD"] == "PFS"
    )
    assert (pfs["ADT"], pfs["CNSR"], pfs["RSEVALID"]) == ("2021-06-21", "0", "reader2")
    s2 = {r["USEDSRC"] for r in _csv(client, central, "adrs") if r["USUBJID"] == "S-2"}
    assert s2 == {"CENTRAL AGREED"}
    # The per-read view stays: both of S-1's reads, each with its own PFS.
    body = client.get(f"/trials/{central}/central-review/adtte.csv").data.decode()
    per_read = {
        r["RSEVALID"]: r["ADT"]
        for r in csv.DictReader(io.StringIO(body))
        if r["USUBJID"] == "S-1" and r["PARAMCD"] == "PFS"
    }
    assert per_read == {"reader": "2021-04-26", "reader2": "2021-06-21"}


def test_an_unknown_export_is_404_and_readers_may_not_export(app: Flask, overridden: str) -> None:
    client = _client(app)
    response = client.get(f"/trials/{overridden}/exports/xpt.csv")
    assert response.status_code == 404 and b"there is no analysis export" in response.data
    reader = app.test_client()
    login(reader, "reader")
    assert reader.get(f"/trials/{overridden}/exports/adrs.csv").status_code == 403


def test_the_api_serves_the_same_export_and_refuses_unfinished_adjudication_as_json(
    app: Flask, session: Session, central: str, users: dict[str, str]
) -> None:
    client = app.test_client()
    url = f"/api/v1/trials/{central}/exports/adtte.csv"
    response = client.get(url, headers=bearer(users["reviewer"]))
    assert response.status_code == 409
    assert "subject S-1: awaiting adjudication" in response.get_json()["error"]["message"]
    adjudicate(
        session, ADJUDICATOR, central, "S-1", accepted_slot=2, rationale="noise",
        password=PASSWORD,
    )  # fmt: skip
    response = client.get(url, headers=bearer(users["reviewer"]))
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.data == _client(app).get(f"/trials/{central}/exports/adtte.csv").data
    assert client.get(url, headers=bearer(users["reader"])).status_code == 403


REVIEWER = Actor("reviewer", "reviewer")


def test_a_queried_progression_call_holds_the_export_back_until_it_is_answered(
    app: Flask, session: Session, overridden: str
) -> None:
    """S-PLAIN's call (PD at W16, the target sum) is queried: the PFS event the export would
    carry is disputed, so every analysis domain is refused naming the subject, the call, the
    reviewer and the query; the trial page says so before anyone clicks. The reader's answer
    releases it (an adjudicator's override would too, as S-OVR's did)."""
    from web.services.progression import answer_query, review_call

    review_call(
        session, REVIEWER, overridden, "S-PLAIN", decision="queried",
        comment="W16 T1 measured  on a different phase?", seen_call=None,
    )  # fmt: skip
    client = _client(app)
    for domain in ("rs", "adrs", "adtte", "tu", "tr"):
        response = client.get(f"/trials/{overridden}/exports/{domain}.csv")
        assert response.status_code == 409, domain
        text = response.data.decode()
        assert "progression calls under an open query" in text
        assert (
            "subject S-PLAIN: progression call PD at W16 on 2021-04-26 (target sum (R-TGT-PD)) "
            "queried by reviewer on "
        ) in text
        assert "“W16 T1 measured on a different phase?”" in text
        assert "S-OVR" not in text and "S-NEW" not in text  # overridden calls: settled
    page = client.get(f"/trials/{overridden}").data.decode()
    assert 'id="export-blockers"' in page and "1 subject holds the export back" in page
    assert "subject S-PLAIN: progression call PD at W16" in page

    answer_query(
        session, R1, overridden, "S-PLAIN", comment="same phase; growth is real", seen_call=None
    )
    assert client.get(f"/trials/{overridden}/exports/adtte.csv").status_code == 200
    assert 'id="export-blockers"' not in client.get(f"/trials/{overridden}").data.decode()


def test_a_query_after_an_override_does_not_hold_the_export(
    app: Flask, session: Session, overridden: str
) -> None:
    """S-OVR's call was overridden (W24 used): a reviewer's later query on the engine's
    call does not dispute the call the analysis uses, so the export stays available."""
    from web.services.common import get_trial
    from web.services.progression import open_queries, review_call

    review_call(
        session, REVIEWER, overridden, "S-OVR", decision="queried", comment="W16 again?",
        seen_call=None,
    )  # fmt: skip
    session.rollback()
    queued = open_queries(session, get_trial(session, overridden))
    assert [row.subject.code for row in queued] == ["S-OVR"]  # open in the queue, yet:
    client = _client(app)
    assert client.get(f"/trials/{overridden}/exports/adtte.csv").status_code == 200
    assert 'id="export-blockers"' not in client.get(f"/trials/{overridden}").data.decode()


def test_the_api_refuses_a_queried_call_as_json_naming_the_field(
    app: Flask, session: Session, overridden: str, users: dict[str, str]
) -> None:
    from web.services.progression import review_call

    review_call(
        session, REVIEWER, overridden, "S-PLAIN", decision="queried", comment="check W16",
        seen_call=None,
    )  # fmt: skip
    response = app.test_client().get(
        f"/api/v1/trials/{overridden}/exports/adrs.csv", headers=bearer(users["reviewer"])
    )
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["field"] == "progression_review"
    assert "subject S-PLAIN: progression call PD at W16" in error["message"]
