"""Unblinding (issue 11): switching a trial's independent central review off needs a reason
and an explicit confirmation, is audited, and while signed blinded reads exist needs an
adjudicator's or admin's password signature; readers of a blinded trial never see its
arms, by any API route."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import PD_READ, SD_READ
from web.models import AuditRecord, Trial, User
from web.services import (
    SYSTEM,
    Actor,
    InvalidInput,
    ReasonRequired,
    create_subject,
    create_token,
    create_trial,
    create_user,
)
from web.services.central import (
    UNBLIND_CONFIRMATION,
    UnblindingRefused,
    set_central_review,
    submit_read,
)
from web.services.signing import SignatureRefused
from web.testing import PASSWORD, assign_everyone, bearer, login

MANAGER = Actor("trial_manager", "trial_manager")
ADMIN = Actor("admin", "admin")


@pytest.fixture
def blinded(session: Session, trial: str, users: dict[str, str]) -> str:
    """TRIAL-1 under independent central review with two signed blinded reads of S-1;
    OPEN-1 (arms X, Y) without central review. reader2 gets a token in ``users``."""
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    users["reader2"] = create_token(session, SYSTEM, username="reader2", name="tests")
    set_central_review(session, MANAGER, trial, on=True)
    create_subject(session, SYSTEM, trial, code="S-1", arm="A", randomized_on="2021-01-04")
    submit_read(session, Actor("reader", "reader"), trial, "S-1", read=PD_READ, password=PASSWORD)
    submit_read(session, Actor("reader2", "reader"), trial, "S-1", read=SD_READ, password=PASSWORD)
    create_trial(session, SYSTEM, code="OPEN-1", title="open", arms=[("X", "arm X"), ("Y", "Y")])
    assign_everyone(session)
    session.expunge_all()
    session.rollback()
    return trial


def _central(session: Session, trial: str = "TRIAL-1") -> bool:
    session.rollback()
    return bool(session.scalar(select(Trial.central_review).where(Trial.code == trial)))


def _records(session: Session, trial: str = "TRIAL-1") -> list[tuple[str, str, str, str, str]]:
    """The trial's own audit records after it was switched on: (user, action, field, new,
    reason)."""
    session.rollback()
    rows = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity == "trial", AuditRecord.entity_key == trial)
        .order_by(AuditRecord.seq)
    ).all()
    return [(r.username, r.action, r.field or "", r.new or "", r.reason or "") for r in rows][2:]


def _off(session: Session, who: Actor = MANAGER, **kwargs: Any) -> Trial:
    options: dict[str, Any] = {"reason": "database lock", "confirmed": True}
    options.update(kwargs)
    return set_central_review(session, who, "TRIAL-1", on=False, **options)


def test_switching_off_needs_a_reason_and_an_explicit_confirmation(
    session: Session, blinded: str
) -> None:
    with pytest.raises(
        ReasonRequired, match=r"off in trial TRIAL-1 unblinds it; it needs a reason"
    ):
        _off(session, reason=None)
    with pytest.raises(ReasonRequired):
        _off(session, reason="   ")
    with pytest.raises(InvalidInput, match=r"unblinds it; confirm it: I understand that") as no:
        _off(session, confirmed=False)
    assert (no.value.field, no.value.status) == ("confirm", 400)
    assert _central(session) and _records(session) == []


def test_with_blinded_reads_only_an_adjudicators_or_admins_signature_unblinds(
    session: Session, blinded: str
) -> None:
    needs = r"trial TRIAL-1 holds 2 signed blinded read\(s\): switching central review off needs "
    who = r"the signature of an adjudicator or admin, and trial_manager is a trial_manager"
    with pytest.raises(UnblindingRefused, match=needs + who) as refused:
        _off(session)
    assert (refused.value.status, refused.value.code) == (403, "unblinding_refused")
    with pytest.raises(UnblindingRefused, match=r"and reader is a reader"):
        _off(session, signer="reader", password=PASSWORD)
    with pytest.raises(UnblindingRefused, match=r"and nobody is no user"):
        _off(session, signer="nobody", password=PASSWORD)
    with pytest.raises(InvalidInput, match=needs + r"adjudicator's password, entered again"):
        _off(session, signer="adjudicator")
    with pytest.raises(SignatureRefused, match=r"the password does not match adjudicator's"):
        _off(session, signer="adjudicator", password="a guess")
    failed = session.scalar(select(User.failed_logins).where(User.username == "adjudicator"))
    assert failed == 1  # counted like a failed login
    assert _central(session) and _records(session) == []
    _off(session, signer="adjudicator", password=PASSWORD)
    assert not _central(session)
    assert _records(session) == [
        ("trial_manager", "update", "central_review", "false", "database lock"),
        ("trial_manager", "update", "unblinding", UNBLIND_CONFIRMATION, "database lock"),
        (
            "adjudicator",
            "sign",
            "signature",
            "adjudicator · unblinding approved (2 blinded reads)",
            "database lock",
        ),
    ]


def test_an_admin_signs_their_own_unblinding(session: Session, blinded: str) -> None:
    _off(session, ADMIN, password=PASSWORD)
    assert not _central(session)
    assert _records(session)[-1][:2] == ("admin", "sign")


def test_without_blinded_reads_a_reason_and_a_confirmation_suffice(
    session: Session, blinded: str
) -> None:
    set_central_review(session, MANAGER, "OPEN-1", on=True)
    with pytest.raises(ReasonRequired):
        set_central_review(session, MANAGER, "OPEN-1", on=False)
    set_central_review(
        session, MANAGER, "OPEN-1", on=False, reason="switched on by mistake", confirmed=True
    )
    assert not _central(session, "OPEN-1")
    assert [r[1:3] for r in _records(session, "OPEN-1")] == [
        ("update", "central_review"),
        ("update", "unblinding"),
    ]


def test_the_trial_pages_switch_asks_for_reason_confirmation_and_signature(
    app: Flask, session: Session, blinded: str
) -> None:
    manager = app.test_client()
    login(manager, "trial_manager")
    url = "/trials/TRIAL-1/central-review/setting"
    # The trial page's checkbox, unticked, posts nothing else: the unblinding form answers.
    response = manager.post(url, data={})
    page = response.data.decode()
    assert response.status_code == 422
    assert "switching independent central review off in trial TRIAL-1 unblinds it" in page
    assert 'id="unblind-form"' in page and 'name="confirm"' in page and 'name="signer"' in page
    assert 'id="blinded-reads">2<' in page
    form = {"reason": "database lock", "confirm": "yes", "signer": "adjudicator"}
    response = manager.post(url, data={**form, "confirm": "", "password": PASSWORD})
    assert response.status_code == 400 and b"unblinds it; confirm it: I understand" in response.data
    response = manager.post(url, data={**form, "password": "a guess"})
    assert response.status_code == 400 and b"the password does not match" in response.data
    assert _central(session)
    reader = app.test_client()
    login(reader, "reader")
    assert reader.get("/trials/TRIAL-1/subjects/S-1").status_code == 403
    response = manager.post(url, data={**form, "password": PASSWORD})
    assert response.status_code == 302
    assert not _central(session)
    assert (
        "Independent central review off: the trial is unblinded."
        in manager.get(response.headers["Location"]).data.decode()
    )
    # Unblinded: the readers now see the trial like any other.
    assert reader.get("/trials/TRIAL-1/subjects/S-1").status_code == 200
    assert 'id="central-state">off<' in manager.get(url).data.decode()


def test_readers_never_see_the_arms_of_a_blinded_trial_through_the_api(
    client: Any, blinded: str, users: dict[str, str]
) -> None:
    for reader in ("reader", "reader2"):
        listed = client.get("/api/v1/trials", headers=bearer(users[reader])).get_json()
        trials = {t["code"]: t for t in listed["trials"]}
        assert trials["TRIAL-1"]["central_review"] is True
        assert trials["TRIAL-1"]["arms"] is None
        assert [a["code"] for a in trials["OPEN-1"]["arms"]] == ["X", "Y"]
        response = client.get("/api/v1/trials/TRIAL-1", headers=bearer(users[reader]))
        assert response.status_code == 403
        assert '"arms"' not in response.get_data(as_text=True)
    listed = client.get("/api/v1/trials", headers=bearer(users["reviewer"])).get_json()
    trials = {t["code"]: t for t in listed["trials"]}
    assert [a["code"] for a in trials["TRIAL-1"]["arms"]] == ["A", "B"]
    one = client.get("/api/v1/trials/TRIAL-1", headers=bearer(users["adjudicator"])).get_json()
    assert [a["code"] for a in one["arms"]] == ["A", "B"]


def test_readers_never_see_the_arms_of_a_blinded_trial_on_the_trial_list(
    app: Flask, blinded: str
) -> None:
    from web.testing import login

    reader = app.test_client()
    login(reader, "reader")
    page = reader.get("/").get_data(as_text=True)
    row = page[page.index("TRIAL-1</a>") :].split("</tr>")[0]
    assert "blinded" in row and "A, B" not in row
    assert "X, Y" in page  # an open trial's arms are shown
    reviewer = app.test_client()
    login(reviewer, "reviewer")
    page = reviewer.get("/").get_data(as_text=True)
    assert "A, B" in page[page.index("TRIAL-1</a>") :].split("</tr>")[0]
