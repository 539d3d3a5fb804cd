"""The demo seed shows the review features, writes them through the services (so the audit
chain holds them and verifies) and creates nothing on a second run."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.audit import verify_chain
from web.central import metrics, overview
from web.demo import (
    DEMO_CENTRAL_TRIAL,
    DEMO_SECOND_READER,
    DEMO_TRIAL,
    DEMO_USERS,
    seed_demo,
    seed_users,
)
from web.models import AuditRecord, Subject, Timepoint
from web.progression import open_queries, queue
from web.services import get_trial
from web.trial_plots import trial_plot


@pytest.fixture
def seeded(session: Session) -> dict[str, list[str]]:
    users = seed_users(session)
    passwords = {name: password for name, (_, password) in users.items()}
    created = seed_demo(session, subjects=6, passwords=passwords)
    session.expunge_all()
    session.rollback()
    return created


def _audit(session: Session, **where: Any) -> list[AuditRecord]:
    query = select(AuditRecord).order_by(AuditRecord.seq)
    for name, value in where.items():
        query = query.where(getattr(AuditRecord, name) == value)
    return list(session.scalars(query))


def test_the_demo_trial_has_an_agreed_a_queried_and_an_overridden_progression_call(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    trial = get_trial(session, DEMO_TRIAL)
    rows = {row.state: row for row in queue(session, trial)}
    assert {"agreed", "queried", "overridden"} <= set(rows)
    agreed, queried, overridden = rows["agreed"], rows["queried"], rows["overridden"]
    assert agreed.latest is not None and agreed.latest.username == DEMO_USERS["reviewer"]
    assert queried.latest is not None
    assert (queried.latest.comment or "").startswith("please check the ")
    assert [r.subject.code for r in open_queries(session, trial)] == [queried.subject.code]
    used = overridden.used
    assert (used["source"], used["by"]) == ("override", DEMO_USERS["adjudicator"])
    assert used["why"] and used["engine"]["timepoint"] == overridden.call.timepoint
    assert (used["timepoint"], used["date"]) != (
        overridden.call.timepoint,
        overridden.call.date.isoformat(),
    )
    # The reads behind the agreed and overridden calls are signed by the reader who read them.
    for row in (agreed, overridden):
        assert (row.reader, row.signed_by) == (DEMO_USERS["reader"], DEMO_USERS["reader"])
    assert queried.signed_by is None
    # The plots use the override for that subject and say so.
    km = trial_plot(session, trial, "km-pfs")
    sources = {p["USUBJID"]: p["source"] for p in km.points}
    assert sources[overridden.subject.code] == "override"
    assert sources[agreed.subject.code] == "engine"


def test_the_demo_reviews_are_in_the_audit_trail_and_the_chain_verifies(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    signed = session.scalar(select(func.count()).select_from(Timepoint).where(Timepoint.locked))
    assert signed == 3
    assert [r.action for r in _audit(session, entity="timepoint", field="signature")] == [
        "sign"
    ] * 3
    progression = _audit(session, entity="progression")
    assert [(r.action, r.field) for r in progression] == [
        ("review", "agreed"),
        ("review", "queried"),
        ("override", "overridden"),
    ]
    assert [r.username for r in progression] == [
        DEMO_USERS["reviewer"],
        DEMO_USERS["reviewer"],
        DEMO_USERS["adjudicator"],
    ]
    assert progression[2].reason  # the override's reason
    assert (
        _audit(session, entity="adjudication", action="adjudicate")[0].username
        == (DEMO_USERS["adjudicator"])
    )
    report = verify_chain(session.connection())
    assert report.intact, report.problem
    assert report.records == len(_audit(session))


def test_the_central_review_demo_has_agreeing_adjudicated_and_waiting_subjects(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    trial = get_trial(session, DEMO_CENTRAL_TRIAL)
    assert trial.central_review
    rows = overview(session, trial)
    assert [r.state for r in rows] == ["agreed", "adjudicated", "1 of 2 reads"]
    adjudicated = rows[1]
    assert adjudicated.disagreement is not None and "progression" in adjudicated.disagreement
    assert adjudicated.adjudication is not None
    accepted = [r for r in adjudicated.reads if r.accepted]
    assert [r.reader for r in accepted] == [DEMO_SECOND_READER]
    assert metrics(rows)["readers"][DEMO_SECOND_READER]["won"] == 1
    km = trial_plot(session, trial, "km-pfs")
    assert [(p["USUBJID"], p["source"]) for p in km.points] == [
        (rows[0].subject.code, "central"),
        (rows[1].subject.code, "central"),
    ]


def test_a_second_seed_creates_nothing(session: Session, seeded: dict[str, list[str]]) -> None:
    assert set(seeded) == {DEMO_TRIAL, DEMO_CENTRAL_TRIAL}
    records = len(_audit(session))
    subjects = session.scalar(select(func.count()).select_from(Subject))
    assert seed_users(session) == {}
    assert seed_demo(session, subjects=6) == {}
    session.expunge_all()
    session.rollback()
    assert len(_audit(session)) == records
    assert session.scalar(select(func.count()).select_from(Subject)) == subjects


def test_without_the_users_passwords_the_demo_has_reviews_but_no_signatures_or_central_trial(
    session: Session,
) -> None:
    seed_users(session)  # created earlier: their passwords are gone
    created = seed_demo(session, subjects=6)
    assert list(created) == [DEMO_TRIAL]
    session.expunge_all()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Timepoint).where(Timepoint.locked)) == 0
    states = {row.state for row in queue(session, get_trial(session, DEMO_TRIAL))}
    assert {"agreed", "queried", "overridden"} <= states
