"""The inbox (issue 14): per role, what waits for the user in the trials they are members
of — their unsigned reads, queries on their reads, PACS studies awaiting a reader; calls
awaiting review, answered queries, disagreeing central reads; a trial manager's blockers —
and its count in the header, asked in one SQL statement whatever the data."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests.web.helpers import PD_READ, SD_READ, follow_up, read_subject
from web.models import PacsStudy, Subject, Timepoint, Trial, User
from web.services import SYSTEM, Actor, create_subject, create_trial, create_user
from web.services.central import adjudicate, set_central_review, submit_read
from web.services.inbox import counts, items
from web.services.membership import add_member
from web.services.progression import answer_query, review_call
from web.testing import PASSWORD, assign_everyone, bearer

READER = Actor("reader", "reader")
READER2 = Actor("reader2", "reader")
REVIEWER = Actor("reviewer", "reviewer")
ADJUDICATOR = Actor("adjudicator", "adjudicator")
STUDY = "ab" * 32  # a stored study's id (SHA-256 hex)
OTHER = "TRIAL-B"


def _user(session: Session, name: str) -> User:
    session.rollback()
    user = session.scalar(select(User).where(User.username == name))
    assert user is not None
    return user


def _counts(session: Session, name: str) -> dict[str, int]:
    return counts(session, _user(session, name)).parts


def _items(session: Session, name: str) -> dict[str, Any]:
    return items(session, _user(session, name))


def _pull(session: Session, trial: str, subject: str, study_id: str, day: str) -> None:
    """A study pulled from the PACS for ``subject``, awaiting a reader (as check_pacs
    records it)."""
    from datetime import date

    session.rollback()
    row = session.scalar(select(Subject).where(Subject.code == subject))
    assert row is not None and row.trial.code == trial
    session.add(
        PacsStudy(
            subject_id=row.id,
            study_uid=f"1.2.3.{study_id[:6]}",
            timepoint=day,
            study_date=date.fromisoformat(day),
            measured={"study": {"id": study_id}, "lesions": []},
            pulled_by="trial_manager",
        )
    )
    session.commit()


def _grown(session: Session, trial: str, code: str) -> None:
    """``code`` read by reader: BL, W8 (PR), W16 (PD by the target sum), all unsigned."""
    read_subject(
        session,
        trial,
        code,
        follow_up("W8", "2021-03-01", 21.0, 14.0),
        follow_up("W16", "2021-04-26", 30.0, 14.0),
    )


def _review(session: Session, trial: str, decision: str, comment: str = "") -> None:
    """The reviewer's decision on S-GROW's progression call (PD at W16)."""
    review_call(
        session,
        REVIEWER,
        trial,
        "S-GROW",
        decision=decision,
        comment=comment,
        seen_call="W16/2021-04-26",
    )


@pytest.fixture
def reader2(session: Session, users: dict[str, str]) -> str:
    """A second reader, a member of every trial."""
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    assign_everyone(session)
    return "reader2"


@pytest.fixture
def work(session: Session, trial: str, reader2: str) -> str:
    """S-GROW (reader): BL, W8 (PR), W16 (PD by the target sum) — three unsigned reads
    and a progression call; S-OTHER: BL and W8 by reader2; two PACS studies of S-GROW,
    one of them already saved as W8 (used), one awaiting a reader."""
    _grown(session, trial, "S-GROW")
    from web.services import save_baseline, save_timepoint
    from web.testing import baseline_lesions

    create_subject(session, SYSTEM, trial, code="S-OTHER", arm="A")
    save_baseline(
        session, READER2, trial, "S-OTHER", date_value="2021-01-04", lesions=baseline_lesions()
    )
    save_timepoint(session, READER2, trial, "S-OTHER", follow_up("W8", "2021-03-01", 29, 19))
    _pull(session, trial, "S-GROW", STUDY, "2021-03-01")
    _pull(session, trial, "S-GROW", "cd" * 32, "2021-06-21")
    session.rollback()
    w8 = session.scalar(
        select(Timepoint).join(Subject).where(Subject.code == "S-GROW", Timepoint.code == "W8")
    )
    assert w8 is not None
    w8.imaging_json = {"study": {"id": STUDY}, "lesions": {}}
    session.commit()
    return trial


def test_a_reader_sees_their_unsigned_reads_queries_on_their_reads_and_pacs_studies(
    session: Session, work: str
) -> None:
    assert _counts(session, "reader") == {"unsigned": 3, "queries": 0, "pacs": 1, "central": 0}
    found = _items(session, "reader")
    assert [(r["subject"], r["timepoint"]) for r in found["unsigned"]] == [
        ("S-GROW", "BL"),
        ("S-GROW", "W8"),
        ("S-GROW", "W16"),
    ]
    # Only the study no saved visit uses waits (web.services.pacs.awaiting).
    assert [(r["subject"], r["timepoint"]) for r in found["pacs"]] == [("S-GROW", "2021-06-21")]
    # reader2's reads are reader2's: two unsigned, no query, and the same PACS study.
    assert _counts(session, "reader2") == {"unsigned": 2, "queries": 0, "pacs": 1, "central": 0}

    _review(session, work, "queried", "check T01")
    assert _counts(session, "reader")["queries"] == 1
    assert [(r["subject"], r["timepoint"]) for r in _items(session, "reader")["queries"]] == [
        ("S-GROW", "W16")
    ]
    assert _counts(session, "reader2")["queries"] == 0  # not their read
    answer_query(
        session,
        READER,
        work,
        "S-GROW",
        comment="T01 re-measured, PD stands",
        seen_call="W16/2021-04-26",
    )
    assert _counts(session, "reader")["queries"] == 0


def test_a_reviewer_sees_calls_awaiting_review_and_the_answers_to_their_queries(
    session: Session, work: str
) -> None:
    assert _counts(session, "reviewer") == {"pending_review": 1, "answered": 0}
    assert [r["subject"] for r in _items(session, "reviewer")["pending_review"]] == ["S-GROW"]
    _review(session, work, "queried", "check T01")
    assert _counts(session, "reviewer") == {"pending_review": 0, "answered": 0}
    answer_query(session, READER, work, "S-GROW", comment="PD stands", seen_call="W16/2021-04-26")
    assert _counts(session, "reviewer") == {"pending_review": 0, "answered": 1}
    answered = _items(session, "reviewer")["answered"]
    assert [(r["subject"], r["timepoint"], r["date"]) for r in answered] == [
        ("S-GROW", "W16", "2021-04-26")
    ]
    # The adjudicator reviews calls too, but did not raise this query.
    assert _counts(session, "adjudicator")["answered"] == 0
    _review(session, work, "agreed")
    assert _counts(session, "reviewer") == {"pending_review": 0, "answered": 0}


def test_a_changed_call_awaits_review_again(session: Session, work: str) -> None:
    _review(session, work, "agreed")
    assert _counts(session, "reviewer")["pending_review"] == 0
    from web.services import save_timepoint

    # A new earlier PD (W12, new lesion) changes the engine's call: pending again.
    save_timepoint(
        session,
        READER,
        work,
        "S-GROW",
        follow_up("W12", "2021-03-29", 21.0, 14.0, [{"id": "NL01", "site": "liver"}]),
    )
    assert _counts(session, "reviewer")["pending_review"] == 1


def test_an_adjudicator_sees_disagreeing_central_reads_they_did_not_read(
    session: Session, trial: str, reader2: str
) -> None:
    set_central_review(session, Actor("trial_manager", "trial_manager"), trial, on=True)
    for code in ("S-1", "S-2", "S-3"):
        create_subject(session, SYSTEM, trial, code=code, arm="A", randomized_on="2021-01-04")
    submit_read(session, READER, trial, "S-1", read=PD_READ, password=PASSWORD)
    submit_read(session, READER2, trial, "S-1", read=SD_READ, password=PASSWORD)
    submit_read(session, READER, trial, "S-2", read=SD_READ, password=PASSWORD)
    submit_read(session, READER2, trial, "S-2", read=SD_READ, password=PASSWORD)  # agree
    submit_read(session, READER, trial, "S-3", read=PD_READ, password=PASSWORD)  # one read
    assert _counts(session, "adjudicator")["adjudication"] == 1
    assert [r["subject"] for r in _items(session, "adjudicator")["adjudication"]] == ["S-1"]
    manager = _items(session, "trial_manager")["blockers"]
    assert [(b["trial"], b["adjudication"]) for b in manager] == [(trial, 1)]
    adjudicate(
        session,
        ADJUDICATOR,
        trial,
        "S-1",
        accepted_slot=1,
        rationale="PD is clear",
        password=PASSWORD,
    )
    assert _counts(session, "adjudicator")["adjudication"] == 0


def test_a_trial_manager_sees_what_holds_up_each_of_their_trials(
    session: Session, work: str
) -> None:
    _review(session, work, "queried", "check T01")
    blockers = _items(session, "trial_manager")["blockers"]
    assert blockers == [
        {
            "trial": work,
            "unsigned": 5,
            "queries": 1,
            "pending_review": 0,
            "adjudication": 0,
            "pacs": 1,
            "central": 0,
            "total": 7,
        }
    ]
    numbers = _counts(session, "trial_manager")
    assert {k: v for k, v in numbers.items() if v} == {
        "blockers.unsigned": 5,
        "blockers.queries": 1,
        "blockers.pacs": 1,
    }


def test_only_the_trials_a_user_is_a_member_of_count(session: Session, work: str) -> None:
    """Trial B's reads, call and study are reader's, but reader is not a member of B: a
    user of trial A sees nothing of trial B (nor does anyone else not in B)."""
    create_trial(session, SYSTEM, code=OTHER, title="B", settings={}, arms=[("A", "arm A")])
    _grown(session, OTHER, "B-1")
    _pull(session, OTHER, "B-1", "ef" * 32, "2021-06-21")
    before = {name: _counts(session, name) for name in ("reader", "reviewer", "trial_manager")}
    assert before["reader"] == {"unsigned": 3, "queries": 0, "pacs": 1, "central": 0}
    assert before["reviewer"]["pending_review"] == 1
    assert [b["trial"] for b in _items(session, "trial_manager")["blockers"]] == [work]
    found = _items(session, "reader")
    assert {r["trial"] for part in found.values() for r in part} == {work}
    # Once a member of B, the same user sees B's items too.
    for name in ("reader", "reviewer", "trial_manager"):
        add_member(session, SYSTEM, username=name, trial_code=OTHER)
    assert _counts(session, "reader") == {"unsigned": 6, "queries": 0, "pacs": 2, "central": 0}
    assert _counts(session, "reviewer")["pending_review"] == 2
    assert [b["trial"] for b in _items(session, "trial_manager")["blockers"]] == [work, OTHER]


def test_a_reader_blinded_by_central_review_gets_no_site_reads_of_that_trial(
    session: Session, work: str
) -> None:
    assert _counts(session, "reader")["unsigned"] == 3
    set_central_review(session, Actor("trial_manager", "trial_manager"), work, on=True)
    subjects = sorted(session.scalars(select(Subject.code).join(Trial).where(Trial.code == work)))
    # No site reads any more; every subject now awaits the reader's blinded read.
    assert _counts(session, "reader") == {
        "unsigned": 0, "queries": 0, "pacs": 0, "central": len(subjects)
    }  # fmt: skip
    assert [r["subject"] for r in _items(session, "reader")["central"]] == subjects
    blockers = _items(session, "trial_manager")["blockers"]
    assert blockers[0]["central"] == len(subjects)
    # The adjudicator is not blinded: the calls still await review.
    assert _counts(session, "adjudicator")["pending_review"] == 1


def _badge(page: str) -> str | None:
    found = re.search(r'id="inbox-count"[^>]*>(\d+)<', page)
    return found[1] if found else None


def test_the_header_shows_the_count_on_an_inbox_link_and_the_inbox_lists_the_items(
    logged_in: Callable[[str], FlaskClient], work: str
) -> None:
    client = logged_in("reader")
    home = client.get("/").data.decode()
    assert 'id="inbox-link"' in home and _badge(home) == "4"
    page = client.get("/inbox").data.decode()
    assert _badge(page) == "4"
    assert 'id="inbox-unsigned"' in page and 'id="inbox-pacs"' in page
    assert 'data-subject="TRIAL-1/S-GROW" data-tp="W16"' in page
    assert "/trials/TRIAL-1/subjects/S-GROW#sign-all" in page
    assert 'id="inbox-pending_review"' not in page  # not a reader's part
    admin = logged_in("admin")
    assert 'id="inbox-link"' not in admin.get("/").data.decode()  # no clinical role
    manager = logged_in("trial_manager")
    managed = manager.get("/inbox").data.decode()
    assert 'id="inbox-blockers"' in managed and _badge(managed) == "7"  # 5 + 1 + 1


def test_the_api_answers_the_same_inbox(app: Flask, work: str, users: dict[str, str]) -> None:
    answer = app.test_client().get("/api/v1/inbox", headers=bearer(users["reader"]))
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["total"] == 4
    assert body["counts"] == {"unsigned": 3, "queries": 0, "pacs": 1, "central": 0}
    assert body["items"]["unsigned"][2] == {
        "trial": "TRIAL-1",
        "subject": "S-GROW",
        "timepoint": "W16",
        "date": "2021-04-26",
        "version": 1,
    }


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements the application runs meanwhile."""
    seen: list[str] = []
    engine = app.extensions["recist_engine"]

    def note(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


@pytest.mark.parametrize("role", ["reader", "adjudicator", "reviewer", "trial_manager"])
def test_the_counts_are_one_sql_statement_whatever_the_data(
    app: Flask, session: Session, work: str, role: str
) -> None:
    user = _user(session, role)
    with statements(app) as seen:
        small = counts(session, user)
    assert len(seen) == 1 and seen[0].lstrip().upper().startswith("SELECT")
    for n in range(5):  # five more subjects, each with unsigned reads and a PD call
        _grown(session, work, f"S-{n}")
    user = _user(session, role)
    with statements(app) as seen:
        large = counts(session, user)
    assert len(seen) == 1
    assert large.total > small.total


def test_pages_run_as_many_statements_with_many_items_as_with_few(
    app: Flask, session: Session, work: str, logged_in: Callable[[str], FlaskClient]
) -> None:
    """The header's count and the inbox page do not load item by item: the number of SQL
    statements of a page does not grow with the number of items waiting."""
    client = logged_in("reader")

    def run(path: str) -> int:
        with statements(app) as seen:
            assert client.get(path).status_code == 200
        return len(seen)

    before = {path: run(path) for path in ("/inbox", "/account")}
    for n in range(5):
        read_subject(session, work, f"S-{n}", follow_up("W8", "2021-03-01", 21.0, 14.0))
    session.rollback()
    assert _badge(client.get("/inbox").data.decode()) == str(4 + 5 * 2)
    after = {path: run(path) for path in ("/inbox", "/account")}
    assert after == before
    assert before["/inbox"] <= 12  # session, user, one count, one query per part
    # The badge is one statement: the same page for an admin (no inbox) runs one fewer.
    admin = logged_in("admin")
    with statements(app) as seen:
        assert admin.get("/account").status_code == 200
    assert len(seen) == before["/account"] - 1
