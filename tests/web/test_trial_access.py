"""The guard every request naming a trial passes (web.auth._trial_guard) asks one question
of the database: membership and central review at once (membership.trial_access)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from web.models import Trial, User
from web.services import SYSTEM, create_trial
from web.services.membership import remove_member, trial_access


def _statements(session: Session) -> list[str]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(session.get_bind(), "before_cursor_execute", count)
    return seen


def test_membership_and_central_review_come_from_one_statement(
    session: Session, trial: str, users: dict[str, str]
) -> None:
    create_trial(session, SYSTEM, code="ICR", title="Central", settings={}, arms=[("A", "a")])
    session.execute(update(Trial).where(Trial.code == "ICR").values(central_review=True))
    session.commit()
    reader = session.scalar(select(User).where(User.username == "reader"))
    admin = session.scalar(select(User).where(User.username == "admin"))
    assert reader is not None and admin is not None
    seen = _statements(session)
    assert trial_access(session, reader, trial) == (True, False)
    assert len(seen) == 1
    # Not a member of ICR (created after the fixtures assigned everyone): not reached.
    assert trial_access(session, reader, "ICR") == (False, True)
    assert trial_access(session, admin, "ICR") == (True, True)
    # An unknown trial is "reached": its route answers 404 as for everyone.
    assert trial_access(session, reader, "NOPE") == (True, False)
    assert len(seen) == 4
    remove_member(session, SYSTEM, username="reader", trial_code=trial, reason="left")
    assert trial_access(session, reader, trial) == (False, False)
