"""The progression-call review queue: every PD call with its rule and numbers; reviewers
agree or query, readers answer, adjudicators override — never silently."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import follow_up, read_subject
from web.models import AuditRecord
from web.services import (
    Actor,
    ConcurrentEdit,
    InvalidInput,
    get_subject,
    get_trial,
    save_timepoint,
)
from web.services.progression import answer_query, override_call, queue, review_call, subject_row
from web.testing import login

READER = Actor("reader", "reader")
REVIEWER = Actor("reviewer", "reviewer")
ADJUDICATOR = Actor("adjudicator", "adjudicator")


@pytest.fixture
def calls(session: Session, trial: str, users: dict[str, str]) -> str:
    """S-GROW: target PD at W16; S-NEW: new lesion at W8; S-EQ: equivocal at W8 confirmed
    at W16 (back-dated); S-PR: a responder without progression."""
    read_subject(
        session,
        trial,
        "S-GROW",
        follow_up("W8", "2021-03-01", 21.0, 14.0),
        follow_up("W16", "2021-04-26", 30.0, 14.0),
    )
    read_subject(
        session,
        trial,
        "S-NEW",
        follow_up("W8", "2021-03-01", 29.0, 19.0, [{"id": "NL01", "site": "liver"}]),
    )
    read_subject(
        session,
        trial,
        "S-EQ",
        follow_up(
            "W8", "2021-03-01", 29.0, 19.0, [{"id": "NL01", "site": "lung", "equivocal": True}]
        ),
        follow_up("W16", "2021-04-26", 29.0, 19.0, [{"id": "NL01", "site": "lung"}]),
    )
    read_subject(session, trial, "S-PR", follow_up("W8", "2021-03-01", 20.0, 10.0))
    session.expunge_all()
    session.rollback()
    return trial


def _queue(session: Session, trial: str) -> dict[str, Any]:
    session.expunge_all()
    session.rollback()
    return {row.subject.code: row for row in queue(session, get_trial(session, trial))}


def test_the_queue_lists_every_pd_call_with_its_rule_numbers_and_reader(
    session: Session, calls: str
) -> None:
    rows = _queue(session, calls)
    assert sorted(rows) == ["S-EQ", "S-GROW", "S-NEW"]
    grow = rows["S-GROW"]
    assert (grow.call.timepoint, grow.call.date.isoformat(), grow.call.label) == (
        "W16",
        "2021-04-26",
        "target sum (R-TGT-PD)",
    )
    # 30 + 14 = 44 mm against the nadir 21 + 14 = 35 mm: +25.7 %.
    assert grow.call.numbers["sum_mm"] == 44.0 and grow.call.numbers["nadir_mm"] == 35.0
    assert grow.call.numbers["change_from_nadir_pct"] == 25.7
    assert any(r.startswith("R-TGT-PD") for r in grow.call.reasons)
    assert rows["S-NEW"].call.label == "new lesion (R-NEW-1)"
    eq = rows["S-EQ"]
    assert eq.call.label == "back-dated equivocal new lesion (R-NEW-2)"
    assert (eq.call.timepoint, eq.call.date.isoformat()) == ("W16", "2021-03-01")
    assert {r.reader for r in rows.values()} == {"reader"}
    assert {r.state for r in rows.values()} == {"pending"}
    assert all(r.used["source"] == "engine" for r in rows.values())


def test_a_query_goes_back_to_the_reader_who_answers_and_the_reviewer_agrees(
    session: Session, calls: str
) -> None:
    with pytest.raises(InvalidInput, match=r"a query needs a comment"):
        review_call(
            session, REVIEWER, calls, "S-NEW", decision="queried", comment="", seen_call=None
        )
    with pytest.raises(InvalidInput, match=r"decision 'maybe' is not one of: agreed, queried"):
        review_call(session, REVIEWER, calls, "S-NEW", decision="maybe", comment="", seen_call=None)
    with pytest.raises(InvalidInput, match=r"has no open query"):
        answer_query(session, READER, calls, "S-NEW", comment="fine", seen_call=None)
    review_call(
        session,
        REVIEWER,
        calls,
        "S-NEW",
        decision="queried",
        comment="NL01 may be the known cyst",
        seen_call="W8/2021-03-01",
    )
    assert _queue(session, calls)["S-NEW"].state == "queried"
    answer_query(session, READER, calls, "S-NEW", comment="new on CT, 14 mm", seen_call=None)
    assert _queue(session, calls)["S-NEW"].state == "answered"
    review_call(session, REVIEWER, calls, "S-NEW", decision="agreed", comment="", seen_call=None)
    row = _queue(session, calls)["S-NEW"]
    assert row.state == "agreed" and [h.action for h in row.history] == [
        "queried",
        "answered",
        "agreed",
    ]
    records = session.scalars(
        select(AuditRecord).where(AuditRecord.entity == "progression").order_by(AuditRecord.seq)
    ).all()
    assert [(r.action, r.field, r.username, r.old) for r in records] == [
        ("review", "queried", "reviewer", "PD W8 2021-03-01 (PD_NEW_LESION)"),
        ("review", "answered", "reader", "PD W8 2021-03-01 (PD_NEW_LESION)"),
        ("review", "agreed", "reviewer", "PD W8 2021-03-01 (PD_NEW_LESION)"),
    ]


def test_a_review_never_carries_over_to_a_call_that_changed(session: Session, calls: str) -> None:
    review_call(session, REVIEWER, calls, "S-GROW", decision="agreed", comment="", seen_call=None)
    assert _queue(session, calls)["S-GROW"].state == "agreed"
    version = get_subject(session, calls, "S-GROW").timepoints[1].version
    save_timepoint(
        session,
        READER,
        calls,
        "S-GROW",
        follow_up("W8", "2021-03-01", 60.0, 14.0),
        expected_version=version,
        reason="re-measured",
    )
    row = _queue(session, calls)["S-GROW"]
    assert (row.call.timepoint, row.state, row.latest) == ("W8", "pending", None)
    assert len(row.history) == 1  # the old review stays in the history
    with pytest.raises(ConcurrentEdit, match=r"the progression call changed to W8 \(2021-03-01\)"):
        review_call(
            session,
            REVIEWER,
            calls,
            "S-GROW",
            decision="agreed",
            comment="",
            seen_call="W16/2021-04-26",
        )


def test_an_override_keeps_the_engine_call_beside_it_with_who_and_why(
    session: Session, calls: str
) -> None:
    with pytest.raises(InvalidInput, match=r"overriding a progression call needs a reason"):
        override_call(
            session, ADJUDICATOR, calls, "S-EQ", timepoint=None, reason=" ", seen_call=None
        )
    with pytest.raises(InvalidInput, match=r"'W99' is not one of its follow-ups"):
        override_call(
            session, ADJUDICATOR, calls, "S-EQ", timepoint="W99", reason="x", seen_call=None
        )
    with pytest.raises(InvalidInput, match=r"the engine already calls PD at W16, dated 2021-04-26"):
        override_call(
            session, ADJUDICATOR, calls, "S-GROW", timepoint="W16", reason="x", seen_call=None
        )
    # S-EQ: the engine back-dates to W8's date; PD at W16 on W16's own date is a new call.
    override_call(
        session,
        ADJUDICATOR,
        calls,
        "S-EQ",
        timepoint="W16",
        reason="W8 finding was inflammatory; PD at confirmation",
        seen_call=None,
    )
    row = _queue(session, calls)["S-EQ"]
    assert row.state == "overridden"
    assert row.used == {
        "source": "override",
        "timepoint": "W16",
        "date": "2021-04-26",
        "engine": {"timepoint": "W16", "date": "2021-03-01"},
        "by": "adjudicator",
        "why": "W8 finding was inflammatory; PD at confirmation",
    }
    # The engine's own result is untouched.
    subject = get_subject(session, calls, "S-EQ")
    assert subject.result_json["progression"]["date"] == "2021-03-01"
    (record,) = session.scalars(select(AuditRecord).where(AuditRecord.action == "override")).all()
    assert (record.old, record.new, record.reason) == (
        "PD W16 2021-03-01 (PD_NEW_LESION)",
        "PD W16 2021-04-26",
        "W8 finding was inflammatory; PD at confirmation",
    )


def test_queue_pages_and_csv_show_the_engine_call_beside_the_call_used(
    app: Flask, calls: str, session: Session
) -> None:
    override_call(
        session, ADJUDICATOR, calls, "S-NEW", timepoint=None, reason="cyst", seen_call=None
    )
    client = app.test_client()
    login(client, "reviewer")
    page = client.get(f"/trials/{calls}/progression").data.decode()
    assert page.count('<tr data-subject="') == 3
    assert "back-dated equivocal new lesion (R-NEW-2)" in page
    assert "sum 44.0 mm, nadir 35.0 mm (+25.7 %)" in page
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/trials/{calls}/progression.csv").data.decode()))
    )
    new = next(r for r in rows if r["subject"] == "S-NEW")
    assert (new["engine_timepoint"], new["used_source"], new["used_timepoint"]) == (
        "W8",
        "override",
        "",
    )
    assert (new["override_by"], new["override_reason"]) == ("adjudicator", "cyst")
    grow = next(r for r in rows if r["subject"] == "S-GROW")
    assert (grow["used_source"], grow["used_timepoint"], grow["used_date"]) == (
        "engine",
        "W16",
        "2021-04-26",
    )
    evidence = client.get(f"/trials/{calls}/subjects/S-GROW/progression").data.decode()
    assert 'id="grid"' in evidence and 'id="review-form"' in evidence
    assert 'id="override-form"' not in evidence  # reviewers do not override
    response = client.post(
        f"/trials/{calls}/subjects/S-GROW/progression/review",
        data={"decision": "agreed", "comment": "", "call": "W16/2021-04-26"},
    )
    assert response.status_code == 302
    assert (
        client.post(
            f"/trials/{calls}/subjects/S-GROW/progression/override", data={"reason": "x"}
        ).status_code
        == 403
    )
    page = client.get(f"/trials/{calls}/subjects/S-GROW").data.decode()
    assert "Progression call review: <strong>agreed</strong> by reviewer" in page


def test_the_evidence_page_of_a_subject_without_progression_says_so(
    app: Flask, calls: str, session: Session
) -> None:
    client = app.test_client()
    login(client, "adjudicator")
    page = client.get(f"/trials/{calls}/subjects/S-PR/progression").data.decode()
    assert "The engine calls no progression for this subject." in page
    response = client.post(
        f"/trials/{calls}/subjects/S-PR/progression/override", data={"reason": "x"}
    )
    assert response.status_code == 400
    assert b"subject S-PR has no progression call to review" in response.data
    assert subject_row(session, get_subject(session, calls, "S-PR")) is None


def test_open_queries_are_listed_for_the_readers_on_the_trial_page(
    app: Flask, calls: str, session: Session
) -> None:
    review_call(
        session,
        REVIEWER,
        calls,
        "S-NEW",
        decision="queried",
        comment="is NL01 the cyst?",
        seen_call=None,
    )
    reader = app.test_client()
    login(reader, "reader")
    page = reader.get(f"/trials/{calls}").data.decode()
    assert 'id="open-queries"' in page
    assert "S-NEW</a>: PD at W8 — reviewer asks “is NL01 the cyst?”" in page
    answer_query(session, READER, calls, "S-NEW", comment="no: new on CT", seen_call=None)
    assert 'id="open-queries"' not in reader.get(f"/trials/{calls}").data.decode()
    manager = app.test_client()
    login(manager, "trial_manager")
    review_call(
        session, REVIEWER, calls, "S-GROW", decision="queried", comment="check T01", seen_call=None
    )
    assert 'id="open-queries"' not in manager.get(f"/trials/{calls}").data.decode()


def test_an_override_shows_on_the_subject_list_and_summary_with_the_engine_call_beside_it(
    app: Flask, calls: str, session: Session
) -> None:
    override_call(
        session, ADJUDICATOR, calls, "S-NEW", timepoint=None, reason="cyst", seen_call=None
    )
    client = app.test_client()
    login(client, "reviewer")
    listing = client.get(f"/trials/{calls}").data.decode()
    row = listing.split('subjects/S-NEW"', 1)[1].split("</tr>", 1)[0]
    # No progression is used: PFS is censored, and the engine's PD stays visible beside it.
    assert "censored" in row and "PD_NEW_LESION" not in row
    assert "overridden · engine: PD 2021-03-01" in row and "adjudicator adjudicator: cyst" in row
    grow = listing.split('subjects/S-GROW"', 1)[1].split("</tr>", 1)[0]
    assert "PD 2021-04-26" in grow and "overridden" not in grow
    page = client.get(f"/trials/{calls}/subjects/S-NEW").data.decode()
    assert '<strong id="progression">none</strong>' in page
    assert (
        "adjudicator's override by adjudicator (“cyst”); engine's call: PD at W8, dated 2021-03-01"
    ) in page
    assert 'id="engine-pfs">engine\'s call: event · 2021-03-01' in page


def test_the_call_names_the_rule_that_fired_a_node_back_after_cr_is_r_reappear() -> None:
    """Issue 14: a node that reappeared after CR is R-REAPPEAR, not "target sum"."""
    from recist.jsonio import assess_json
    from web.services.progression import engine_call

    case = {
        "subject_id": "S",
        "lesions": [
            {"id": "T1", "site": "lymph node", "kind": "target", "nodal": True},
            {"id": "T2", "site": "liver", "kind": "target"},
        ],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 20.0, "T2": 30.0}},
            {"id": "W8", "date": "2021-03-01", "targets": {"T1": 5.0, "T2": 0.0}},
            {"id": "W16", "date": "2021-04-26", "targets": {"T1": 12.0, "T2": 0.0}},
        ],
    }
    for tp in case["timepoints"]:
        tp["non_targets"] = {}
    call = engine_call(assess_json(case))
    assert call is not None and call.rule == "PD_TARGET"
    assert call.label == "lesion reappeared after CR (R-REAPPEAR)"
    # Without a CR before it, the same growth is the sum's progression.
    case["timepoints"][1]["targets"] = {"T1": 12.0, "T2": 15.0}
    case["timepoints"][2]["targets"] = {"T1": 20.0, "T2": 30.0}
    call = engine_call(assess_json(case))
    assert call is not None and call.label == "target sum (R-TGT-PD)"


def test_comments_and_reasons_longer_than_the_stated_limit_are_refused(
    app: Flask, session: Session, calls: str
) -> None:
    """Free text has a stated maximum (MAX_REASON): the form says it and refuses more."""
    long = "x" * 2001
    with pytest.raises(InvalidInput, match=r"comment is 2001 characters long; at most 2000"):
        review_call(
            session, REVIEWER, calls, "S-NEW", decision="queried", comment=long, seen_call=None
        )
    with pytest.raises(InvalidInput, match=r"reason is 2001 characters long; at most 2000"):
        override_call(
            session, ADJUDICATOR, calls, "S-NEW", timepoint="", reason=long, seen_call=None
        )
    assert _queue(session, calls)["S-NEW"].history == []
    client = app.test_client()
    login(client, "reviewer")
    page = client.get(f"/trials/{calls}/subjects/S-NEW/progression").data.decode()
    assert 'name="comment" size="50" maxlength="2000"' in page
    assert "at most 2000 characters" in page
