"""Independent central review: two blinded, signed reads per subject; adjudication when
they disagree on the progression date or BOR; reader metrics; ADRS with both reads."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from tests.recist.conftest import fu
from tests.web.helpers import PD_READ, SD_READ, central_read, two_reads_each
from web.services import (
    SYSTEM,
    Actor,
    Conflict,
    InvalidInput,
    create_subject,
    create_user,
    get_subject,
    get_trial,
)
from web.services.central import adjudicate, metrics, overview, submit_read
from web.services.signing import SignatureRefused
from web.testing import PASSWORD, login

R1 = Actor("reader", "reader")
R2 = Actor("reader2", "reader")
ADJ = Actor("adjudicator", "adjudicator")


@pytest.fixture
def central(session: Session, trial: str, users: dict[str, str]) -> str:
    """Central review on; S-1 read PD by reader and SD by reader2; S-2 read SD by both."""
    two_reads_each(session, trial)
    session.expunge_all()
    session.rollback()
    return trial


def _rows(session: Session, trial: str) -> dict[str, Any]:
    session.expunge_all()
    session.rollback()
    return {r.subject.code: r for r in overview(session, get_trial(session, trial))}


def test_reads_that_disagree_on_progression_go_to_adjudication_and_agreeing_reads_do_not(
    session: Session, central: str
) -> None:
    rows = _rows(session, central)
    s1, s2 = rows["S-1"], rows["S-2"]
    assert s1.disagreement == "progression: read 1 2021-04-26, read 2 none"
    assert s1.state == "awaiting adjudication" and not any(r.accepted for r in s1.reads)
    assert s2.disagreement is None and s2.state == "agreed"
    assert [r.accepted for r in s2.reads] == [True, False]  # concordant: read 1 is used


def test_the_adjudicator_accepts_one_read_with_a_signed_rationale(
    session: Session, central: str
) -> None:
    with pytest.raises(SignatureRefused, match=r"the password does not match adjudicator's"):
        adjudicate(session, ADJ, central, "S-1", accepted_slot=2, rationale="x", password="no")
    with pytest.raises(InvalidInput, match=r"an adjudication needs a rationale"):
        adjudicate(session, ADJ, central, "S-1", accepted_slot=2, rationale=" ", password=PASSWORD)
    with pytest.raises(InvalidInput, match=r"the two reads agree; there is nothing to adjudicate"):
        adjudicate(session, ADJ, central, "S-2", accepted_slot=1, rationale="x", password=PASSWORD)
    adjudicate(
        session,
        ADJ,
        central,
        "S-1",
        accepted_slot=2,
        rationale="FU2 growth is within measurement error",
        password=PASSWORD,
    )
    s1 = _rows(session, central)["S-1"]
    assert s1.state == "adjudicated" and [r.accepted for r in s1.reads] == [False, True]
    with pytest.raises(Conflict, match=r"subject S-1 is already adjudicated"):
        adjudicate(session, ADJ, central, "S-1", accepted_slot=1, rationale="x", password=PASSWORD)
    m = metrics(list(_rows(session, central).values()))
    assert (
        m["subjects_with_two_reads"],
        m["needing_adjudication"],
        m["adjudication_rate_pct"],
    ) == (
        2,
        1,
        50.0,
    )
    assert m["readers"]["reader"] == {
        "reads": 2,
        "adjudications": 1,
        "won": 0,
        "lost": 1,
        "won_pct": 0.0,
        "lost_pct": 100.0,
    }
    assert m["readers"]["reader2"]["won_pct"] == 100.0


def test_a_reader_reads_a_subject_once_and_only_two_reads_are_taken(
    session: Session, central: str
) -> None:
    with pytest.raises(Conflict, match=r"you have already read this subject"):
        submit_read(session, R1, central, "S-1", read=SD_READ, password=PASSWORD)
    create_user(session, SYSTEM, username="reader3", password=PASSWORD, role="reader")
    with pytest.raises(InvalidInput, match=r"S-1 already has its two independent reads"):
        submit_read(
            session, Actor("reader3", "reader"), central, "S-1", read=SD_READ, password=PASSWORD
        )
    with pytest.raises(InvalidInput, match=r"not 'arm' \(reads are blinded\)"):
        submit_read(session, R1, central, "S-1", read={**SD_READ, "arm": "A"}, password=PASSWORD)


def test_the_engine_refusing_a_read_names_the_field(session: Session, central: str) -> None:
    create_subject(session, SYSTEM, central, code="S-3")
    bad = central_read(fu(targets={"T1": -1.0}))
    with pytest.raises(InvalidInput, match=r"T1"):
        submit_read(session, R1, central, "S-3", read=bad, password=PASSWORD)


def test_adrs_export_carries_both_reads_and_the_accepted_flag(
    app: Flask, session: Session, central: str
) -> None:
    adjudicate(session, ADJ, central, "S-1", accepted_slot=2, rationale="noise", password=PASSWORD)
    client = app.test_client()
    login(client, "reviewer")
    body = client.get(f"/trials/{central}/central-review/adrs.csv").data.decode()
    rows = [r for r in csv.DictReader(io.StringIO(body)) if r["PARAMCD"] == "BOR"]
    flags = {(r["USUBJID"], r["RSEVALID"]): (r["AVALC"], r["RSACPTFL"]) for r in rows}
    assert flags == {
        ("S-1", "reader"): ("SD", ""),
        ("S-1", "reader2"): ("SD", "Y"),
        ("S-2", "reader"): ("SD", "Y"),
        ("S-2", "reader2"): ("SD", ""),
    }
    body = client.get(f"/trials/{central}/central-review/tr.csv").data.decode()
    tr = list(csv.DictReader(io.StringIO(body)))
    fu2 = {
        (r["USUBJID"], r["TREVALID"]): (r["TRSTRESC"], r["TRACPTFL"])
        for r in tr
        if r["VISIT"] == "FU2" and r["TRTESTCD"] == "LDIAM"
    }
    assert fu2[("S-1", "reader")] == ("40", "") and fu2[("S-1", "reader2")] == ("31", "Y")
    response = client.get(f"/trials/{central}/central-review/xpt.csv")
    assert response.status_code == 404 and b"there is no export &#39;xpt&#39;" in response.data
    page = client.get(f"/trials/{central}/central-review").data.decode()
    assert 'id="adjudication-rate">50.0 %' in page
    assert "read 2 (reader2)" in page


def test_central_adtte_takes_death_from_the_subject_as_the_trial_plots_do(
    app: Flask, session: Session, central: str
) -> None:
    """A blinded read has no death date; once the reads are in, the export adds it."""
    from web.services import update_subject
    from web.services.plots import trial_plot

    # S-2 (SD in both reads, last assessment FU2 2021-04-26) dies 2021-05-20: within the
    # missed-visit window, so PFS is an event at death (§8), and OS is an event.
    update_subject(
        session, Actor("trial_manager", "trial_manager"), central, "S-2",
        values={"died_on": "2021-05-20"}, reason="death reported",
        expected_version=get_subject(session, central, "S-2").version,
    )  # fmt: skip
    client = app.test_client()
    login(client, "reviewer")
    body = client.get(f"/trials/{central}/central-review/adtte.csv").data.decode()
    rows = {
        (r["USUBJID"], r["RSEVALID"], r["PARAMCD"]): r for r in csv.DictReader(io.StringIO(body))
    }
    for reader in ("reader", "reader2"):
        for param in ("PFS", "OS"):
            row = rows[("S-2", reader, param)]
            assert (row["ADT"], row["CNSR"]) == ("2021-05-20", "0"), (reader, param, row)
    session.expunge_all()
    session.rollback()
    km = trial_plot(session, get_trial(session, central), "km-pfs")
    s2 = next(p for p in km.points if p["USUBJID"] == "S-2")
    assert (s2["ADT"], s2["CNSR"]) == ("2021-05-20", 0)


def test_readers_are_blinded_to_the_site_read_the_arm_and_the_other_read(
    app: Flask, central: str
) -> None:
    client = app.test_client()
    login(client, "reader2")
    response = client.get(f"/trials/{central}/subjects/S-1")
    assert response.status_code == 403
    assert b"blinded independent central review" in response.data
    response = client.get(f"/trials/{central}")
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"/trials/{central}/central-reads"
    )
    for url in (f"/trials/{central}/progression", f"/trials/{central}/plots/waterfall.svg"):
        assert client.get(url).status_code == 403, url
    page = client.get(f"/trials/{central}/subjects/S-1/central-read").data.decode()
    assert 'id="my-bor">SD<' in page and "PD at" not in page and "arm" not in page.lower()
    assert client.get(f"/trials/{central}/central-review").status_code == 403


def test_a_reader_submits_a_read_through_the_page_with_their_password(
    app: Flask, session: Session, central: str
) -> None:
    import json

    create_subject(session, SYSTEM, central, code="S-4")
    client = app.test_client()
    login(client, "reader")
    url = f"/trials/{central}/subjects/S-4/central-read"
    response = client.post(url, data={"read": "{not json", "password": PASSWORD})
    assert (
        response.status_code == 400
        and b"the read is not valid JSON (line 1, column 2)" in response.data
    )
    response = client.post(url, data={"read": json.dumps(PD_READ), "password": "wrong"})
    assert response.status_code == 400 and b"the password does not match" in response.data
    response = client.post(url, data={"read": json.dumps(PD_READ), "password": PASSWORD})
    assert response.status_code == 302
    page = client.get(url).data.decode()
    assert 'id="my-bor">SD<' in page and 'id="my-pd">PD at FU2, 2021-04-26<' in page


def test_blinded_readers_get_403_from_every_other_page_and_api_route_of_the_trial(
    app: Flask, central: str, users: dict[str, str]
) -> None:
    from web.testing import bearer

    base = f"/trials/{central}/subjects/S-1"
    client = app.test_client()
    login(client, "reader")
    for url in (base + "/baseline", base + "/timepoints/new", base + "/progression"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"readers see only their own reads" in response.data
    api = f"/api/v1/trials/{central}"
    for method, url in (
        ("GET", api),
        ("GET", api + "/subjects"),
        ("GET", api + "/subjects/S-1/result"),
        ("PUT", api + "/subjects/S-1/baseline"),
    ):
        response = client.open(url, method=method, headers=bearer(users["reader"]))
        assert response.status_code == 403, (method, url)
        assert "blinded independent central review" in response.get_json()["error"]["message"]
    # Other roles are not blinded.
    response = client.get(api + "/subjects/S-1/result", headers=bearer(users["reviewer"]))
    assert response.status_code == 200
