"""Signing all of a subject's unsigned reads in one signature (issue 14): one password, the
reads listed as the signer saw them (timepoint and version), each signed "read complete",
locked and audited — or none of them; and signing a read on save, in the save's
transaction."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import follow_up, form_fields, read_subject
from web.models import AuditRecord, Timepoint, User
from web.services import (
    SYSTEM,
    Actor,
    ConcurrentEdit,
    InvalidInput,
    Locked,
    create_user,
    get_subject,
    save_timepoint,
)
from web.services.audit_replay import reconcile
from web.services.sign_all import sign_all, signable_reads
from web.services.signing import NotYourRead, SignatureRefused, sign_timepoint
from web.testing import PASSWORD, assign_everyone, bearer, login

READER = Actor("reader", "reader")
READER2 = Actor("reader2", "reader")
BASE = "/trials/TRIAL-1/subjects/S-001"


@pytest.fixture
def reads(session: Session, trial: str, users: dict[str, str]) -> dict[str, int]:
    """S-001 read by reader: BL, W8 (PR), W16 (PD); returns each read's version."""
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    assign_everyone(session)
    read_subject(
        session,
        trial,
        "S-001",
        follow_up("W8", "2021-03-01", 21.0, 14.0),
        follow_up("W16", "2021-04-26", 30.0, 14.0),
    )
    return _versions(session)


def _versions(session: Session) -> dict[str, int]:
    session.rollback()
    return {
        tp.code: tp.version for tp in session.scalars(select(Timepoint).order_by(Timepoint.date))
    }


def _listed(versions: dict[str, int]) -> list[dict[str, object]]:
    return [{"timepoint": code, "version": v} for code, v in versions.items()]


def _locked(session: Session) -> dict[str, bool]:
    session.rollback()
    return {
        tp.code: tp.locked for tp in session.scalars(select(Timepoint).order_by(Timepoint.date))
    }


def _records(session: Session, action: str) -> list[AuditRecord]:
    session.rollback()
    query = select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)
    return list(session.scalars(query))


NOTHING = {"BL": False, "W8": False, "W16": False}


def test_all_unsigned_reads_are_signed_with_one_password_and_each_is_audited(
    session: Session, trial: str, reads: dict[str, int]
) -> None:
    subject = get_subject(session, trial, "S-001")
    listed = signable_reads(session, READER, subject)
    assert [(r.code, r.date.isoformat(), r.response) for r in listed] == [
        ("BL", "2021-01-04", None),
        ("W8", "2021-03-01", "PR"),
        ("W16", "2021-04-26", "PD"),
    ]
    signed = sign_all(session, READER, trial, "S-001", password=PASSWORD, reads=_listed(reads))
    assert [tp.code for tp in signed] == ["BL", "W8", "W16"]
    assert _locked(session) == {"BL": True, "W8": True, "W16": True}
    signs = _records(session, "sign")
    assert [r.entity_key for r in signs] == [f"{trial}/S-001/{c}" for c in ("BL", "W8", "W16")]
    for record in signs:
        assert record.username == "reader" and record.reason == "read complete"
        assert re.fullmatch(r"reader · read complete · sha256:[0-9a-f]{64}", record.new or "")
    assert len({r.new for r in signs}) == 3  # each digest is of its own read's values
    assert [r.entity_key for r in _records(session, "lock")] == [r.entity_key for r in signs]
    # The trail explains every signature (recist audit verify's reconciliation).
    report = reconcile(session)
    session.rollback()
    assert report.differences == () and report.signatures == 3
    assert signable_reads(session, READER, get_subject(session, trial, "S-001")) == []


def test_a_wrong_password_signs_none_of_them(
    session: Session, trial: str, reads: dict[str, int]
) -> None:
    with pytest.raises(SignatureRefused, match=r"does not match reader's"):
        sign_all(session, READER, trial, "S-001", password="wrong", reads=_listed(reads))
    with pytest.raises(InvalidInput, match=r"signing needs your password"):
        sign_all(session, READER, trial, "S-001", password="", reads=_listed(reads))
    assert _locked(session) == NOTHING and _records(session, "sign") == []
    session.rollback()
    user = session.scalar(select(User).where(User.username == "reader"))
    assert user is not None and user.failed_logins == 1  # counted like a login


def test_one_stale_version_refuses_the_whole_batch_naming_the_timepoint(
    session: Session, trial: str, reads: dict[str, int]
) -> None:
    save_timepoint(
        session,
        READER,
        trial,
        "S-001",
        follow_up("W16", "2021-04-26", 31.0, 14.0),
        expected_version=reads["W16"],
        reason="re-measured",
    )
    with pytest.raises(ConcurrentEdit, match=r"subject S-001: timepoint W16 changed after you"):
        sign_all(session, READER, trial, "S-001", password=PASSWORD, reads=_listed(reads))
    assert _locked(session) == NOTHING and _records(session, "sign") == []


def test_a_read_signed_meanwhile_refuses_the_whole_batch(
    session: Session, trial: str, reads: dict[str, int]
) -> None:
    sign_timepoint(
        session,
        READER,
        trial,
        "S-001",
        "W8",
        password=PASSWORD,
        meaning="read complete",
        expected_version=reads["W8"],
    )
    with pytest.raises(Locked, match=r"subject S-001: timepoint W8 was signed by reader"):
        sign_all(session, READER, trial, "S-001", password=PASSWORD, reads=_listed(reads))
    assert _locked(session) == {"BL": False, "W8": True, "W16": False}
    assert len(_records(session, "sign")) == 1


def test_a_read_someone_else_entered_refuses_the_batch_before_the_password(
    session: Session, trial: str, reads: dict[str, int]
) -> None:
    """Partial eligibility: W16 re-saved by reader2 is theirs now; listing it refuses all
    three, names W16 and its reader, and checks no password (no guess through it)."""
    save_timepoint(
        session,
        READER2,
        trial,
        "S-001",
        follow_up("W16", "2021-04-26", 31.0, 14.0),
        expected_version=reads["W16"],
        reason="second look",
    )
    versions = _versions(session)
    with pytest.raises(NotYourRead, match=r"timepoint W16 was entered by reader2, not by you"):
        sign_all(session, READER, trial, "S-001", password="a guess", reads=_listed(versions))
    assert _locked(session) == NOTHING and _records(session, "sign") == []
    session.rollback()
    user = session.scalar(select(User).where(User.username == "reader"))
    assert user is not None and user.failed_logins == 0
    listed = signable_reads(session, READER, get_subject(session, trial, "S-001"))
    assert [r.code for r in listed] == ["BL", "W8"]  # the form offers only reader's own


@pytest.mark.parametrize(
    ("reads", "message"),
    [
        ([], r"list the reads you sign"),
        ([{"timepoint": "W8"}], r"reads\[0\] \(timepoint W8\): 'version' is the version"),
        ([{"timepoint": "W8", "version": 1}] * 2, r"timepoint W8 is listed twice"),
        ([{"timepoint": "W8", "version": 1, "x": 1}], r"'timepoint' and 'version' only"),
    ],
)
def test_a_malformed_list_is_refused_naming_the_entry(
    session: Session, trial: str, reads: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        sign_all(session, READER, trial, "S-001", password=PASSWORD, reads=reads)


def test_the_subject_page_signs_all_with_one_password(
    app: Flask, session: Session, trial: str, reads: dict[str, int]
) -> None:
    client: FlaskClient = app.test_client()
    login(client, "reader")
    page = client.get(BASE).data.decode()
    assert 'id="sign-all-form"' in page
    fields = form_fields(page, "sign-all-form")
    assert "read complete" in html.unescape(page.split('id="sign-all"')[1])
    wrong = client.post(BASE + "/sign-all", data={**fields, "password": "wrong"})
    assert wrong.status_code == 400 and "nothing was signed" in html.unescape(wrong.data.decode())
    # The form lists every read with the version shown; a browser posts both lists.
    form = page.split('id="sign-all-form"')[1].split("</form>")[0]
    codes = re.findall(r'name="timepoint" value="([^"]+)"', form)
    versions = re.findall(r'name="version" value="(\d+)"', form)
    assert list(zip(codes, map(int, versions), strict=True)) == list(reads.items())
    posted = {"password": PASSWORD, "timepoint": codes, "version": versions}
    done = client.post(BASE + "/sign-all", data=posted, follow_redirects=True)
    text = html.unescape(done.data.decode())
    assert "Signed (read complete) and locked in one signature: BL, W8, W16." in text
    assert _locked(session) == {"BL": True, "W8": True, "W16": True}
    assert 'id="sign-all-form"' not in text  # nothing left to sign
    # Another reader is offered no sign-all form for reads they did not enter.
    other = app.test_client()
    login(other, "reader2")
    assert 'id="sign-all-form"' not in other.get(BASE).data.decode()


def test_the_api_signs_exactly_the_reads_listed(
    app: Flask, session: Session, trial: str, reads: dict[str, int], users: dict[str, str]
) -> None:
    client = app.test_client()
    url = f"/api/v1{BASE}/sign-all"
    stale = {**reads, "W8": reads["W8"] + 1}
    refused = client.post(
        url, json={"password": PASSWORD, "reads": _listed(stale)}, headers=bearer(users["reader"])
    )
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "concurrent_edit"
    assert "timepoint W8" in refused.get_json()["error"]["message"]
    bad = client.post(
        url,
        json={"password": PASSWORD, "reads": [{"timepoint": "W8"}]},
        headers=bearer(users["reader"]),
    )
    assert bad.status_code == 400 and bad.get_json()["error"]["pointer"] == "/reads/0/version"
    assert _locked(session) == NOTHING
    some = {k: v for k, v in reads.items() if k != "W16"}
    answer = client.post(
        url, json={"password": PASSWORD, "reads": _listed(some)}, headers=bearer(users["reader"])
    )
    assert answer.status_code == 200, answer.get_json()
    signed = answer.get_json()["signed"]
    assert [(s["timepoint"], s["locked"], s["signer"]) for s in signed] == [
        ("BL", True, "reader"),
        ("W8", True, "reader"),
    ]
    assert _locked(session) == {"BL": True, "W8": True, "W16": False}
    # Not a signer's role: 403 before anything.
    forbidden = client.post(
        url, json={"password": PASSWORD, "reads": _listed(reads)}, headers=bearer(users["reviewer"])
    )
    assert forbidden.status_code == 403


def _new_visit(client: FlaskClient) -> dict[str, str]:
    fields = form_fields(client.get(BASE + "/timepoints/new").data.decode(), "timepoint-form")
    fields.update(code="W24", date="2021-06-21", t_T01_mm="30", t_T02_mm="14")
    return fields


def test_sign_on_save_signs_the_saved_read_in_the_same_transaction(
    app: Flask, session: Session, trial: str, reads: dict[str, int]
) -> None:
    client = app.test_client()
    login(client, "reader")
    fields = _new_visit(client)
    assert "sign_password" in fields  # the form offers it
    # An entry that cannot be saved is refused by its own checks, the password never tried.
    bad = client.post(
        BASE + "/timepoints/new",
        data={**fields, "t_T01_mm": "-4", "sign_on_save": "1", "sign_password": "wrong"},
    )
    assert bad.status_code == 400
    assert "negative size" in html.unescape(bad.data.decode())
    assert "does not match" not in html.unescape(bad.data.decode())
    session.rollback()
    reader = session.scalars(select(User).where(User.username == "reader")).one()
    assert reader.failed_logins == 0
    wrong = client.post(
        BASE + "/timepoints/new", data={**fields, "sign_on_save": "1", "sign_password": "wrong"}
    )
    assert wrong.status_code == 400
    assert "does not match reader's" in html.unescape(wrong.data.decode())
    assert "nothing was saved or signed" in html.unescape(wrong.data.decode())
    empty = client.post(BASE + "/timepoints/new", data={**fields, "sign_on_save": "1"})
    assert empty.status_code == 400
    assert "signing on save needs your password" in html.unescape(empty.data.decode())
    session.rollback()
    assert "W24" not in _locked(session)  # refused entirely: nothing saved
    saved = client.post(
        BASE + "/timepoints/new",
        follow_redirects=True,
        data={**fields, "sign_on_save": "1", "sign_password": PASSWORD},
    )
    assert "Timepoint W24 saved and signed (read complete, locked)" in saved.data.decode()
    assert _locked(session)["W24"] is True
    (signed,) = _records(session, "sign")
    assert signed.entity_key == f"{trial}/S-001/W24" and signed.username == "reader"
    created = [r for r in _records(session, "create") if r.entity_key == f"{trial}/S-001/W24"]
    assert created and created[0].seq < signed.seq
    report = reconcile(session)
    session.rollback()
    assert report.differences == ()
    # Without the box ticked, a save signs nothing.
    plain = {**fields, "code": "W32", "date": "2021-08-16"}
    client.post(BASE + "/timepoints/new", data=plain)
    assert _locked(session)["W32"] is False


@pytest.fixture
def baseline_form(
    session: Session, trial: str, users: dict[str, str], logged_in: Callable[[str], FlaskClient]
) -> tuple[FlaskClient, str, dict[str, str]]:
    """S-002 without a baseline: reader's client, the baseline form's URL and the fields
    it posts, T01 (liver, 30 mm) typed on 2021-01-04."""
    from web.services import create_subject

    create_subject(session, SYSTEM, trial, code="S-002", arm="A")
    client = logged_in("reader")
    url = f"/trials/{trial}/subjects/S-002/baseline"
    fields = form_fields(client.get(url).data.decode(), "baseline-form")
    assert "sign_password" in fields  # the form offers sign on save
    fields.update(date="2021-01-04", code_0="T01", kind_0="target", site_0="liver", size_0="30")
    return client, url, fields


def test_sign_on_save_on_the_baseline_form(
    session: Session, trial: str, baseline_form: tuple[FlaskClient, str, dict[str, str]]
) -> None:
    """The baseline is a read too: sign on save there, or nothing saved on a wrong password."""
    client, url, fields = baseline_form
    fields.update(code_1="T02", kind_1="target", site_1="lung", size_1="20")
    wrong = client.post(url, data={**fields, "sign_on_save": "1", "sign_password": "wrong"})
    assert wrong.status_code == 400
    assert "nothing was saved or signed" in html.unescape(wrong.data.decode())
    session.rollback()
    assert get_subject(session, trial, "S-002").timepoints == []
    saved = client.post(
        url,
        follow_redirects=True,
        data={**fields, "sign_on_save": "1", "sign_password": PASSWORD},
    )
    assert "Baseline saved and signed (read complete, locked)." in saved.data.decode()
    session.rollback()
    (baseline,) = get_subject(session, trial, "S-002").timepoints
    assert (baseline.locked, baseline.signed_by) == (True, "reader")
    (signed,) = _records(session, "sign")
    assert signed.entity_key == f"{trial}/S-002/BL"


def test_baseline_sign_on_save_checks_the_entry_once_a_request(
    session: Session,
    trial: str,
    baseline_form: tuple[FlaskClient, str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sign on save on the baseline form runs the entry's input checks once a save, still
    before the password: a bad entry counts no password failure, a wrong password saves
    nothing, findings (R-MEAS-1) are still shown and need a reason."""
    import web.services.baseline as baseline_service

    calls: list[str] = []
    checked = baseline_service.check_baseline_input

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(str(args[0]))
        return checked(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(baseline_service, "check_baseline_input", counting)
    client, url, fields = baseline_form
    signing = {**fields, "sign_on_save": "1"}

    def post(data: dict[str, str], **kwargs: bool) -> tuple[int, str]:
        calls.clear()
        response = client.post(url, data=data, **kwargs)
        return response.status_code, html.unescape(response.data.decode())

    def failures() -> int:
        session.rollback()
        return session.scalars(select(User).where(User.username == "reader")).one().failed_logins

    # An entry that cannot be saved: refused by its checks, the password never tried.
    status, page = post({**signing, "date": "", "sign_password": "wrong"})
    assert (status, calls) == (400, ["S-002"])
    assert "the baseline needs a date" in page and "does not match" not in page
    assert failures() == 0
    # A wrong password: checked once, nothing saved, the failure counted.
    status, page = post({**signing, "sign_password": "wrong"})
    assert (status, calls) == (400, ["S-002"])
    assert "nothing was saved or signed" in page
    assert failures() == 1
    assert get_subject(session, trial, "S-002").timepoints == []
    # Findings still shown (an 8 mm liver target, R-MEAS-1) and the save needs a reason.
    status, page = post({**signing, "size_0": "8", "sign_password": PASSWORD})
    assert (status, calls) == (422, ["S-002"])
    assert "R-MEAS-1" in page and "needs a reason" in page
    session.rollback()
    assert get_subject(session, trial, "S-002").timepoints == []
    # The right password: checked once, saved and signed.
    status, page = post({**signing, "sign_password": PASSWORD}, follow_redirects=True)
    assert (status, calls) == (200, ["S-002"])
    assert "Baseline saved and signed (read complete, locked)." in page
    session.rollback()
    (baseline,) = get_subject(session, trial, "S-002").timepoints
    assert (baseline.locked, baseline.signed_by) == (True, "reader")


def _failed_logins(session: Session, username: str) -> int:
    session.rollback()
    return session.scalars(select(User).where(User.username == username)).one().failed_logins


def test_the_forms_do_not_sign_on_save_a_read_someone_else_entered(
    app: Flask, session: Session, trial: str, reads: dict[str, int]
) -> None:
    """As in the API (not_your_read): reader2 correcting reader's W8 is not offered "Sign on
    save", and a posted one is refused before the password — nothing saved, no failure
    counted. Saved without it, the read is reader2's own and reader2 may sign it."""
    client = app.test_client()
    login(client, "reader2")
    page = html.unescape(client.get(BASE + "/timepoints/W8").data.decode())
    assert "This read was entered by reader:" in page
    assert 'id="sign-on-save"' not in page
    fields = form_fields(page, "timepoint-form")
    assert "sign_password" not in fields
    changed = {**fields, "t_T01_mm": "22", "reason": "re-measured on the portal phase"}
    refused = client.post(
        BASE + "/timepoints/W8", data={**changed, "sign_on_save": "1", "sign_password": "wrong"}
    )
    text = html.unescape(refused.data.decode())
    assert refused.status_code == 403
    assert "subject S-001: timepoint W8 was entered by reader; sign on save signs only" in text
    assert "'Sign on save' unticked" in text and "does not match" not in text
    assert _failed_logins(session, "reader2") == 0
    assert _versions(session)["W8"] == reads["W8"] and _records(session, "sign") == []
    # The baseline reader entered: the same on its form.
    baseline = html.unescape(client.get(BASE + "/baseline").data.decode())
    assert "This read was entered by reader:" in baseline and 'id="sign-on-save"' not in baseline
    bl_fields = form_fields(baseline, "baseline-form")
    refused = client.post(
        BASE + "/baseline", data={**bl_fields, "sign_on_save": "1", "sign_password": PASSWORD}
    )
    assert refused.status_code == 403
    assert "timepoint BL was entered by reader" in html.unescape(refused.data.decode())
    assert _versions(session)["BL"] == reads["BL"] and _records(session, "sign") == []
    # Saved without signing, W8 is reader2's read: the form offers sign on save again.
    saved = client.post(BASE + "/timepoints/W8", data=changed)
    assert saved.status_code == 302, html.unescape(saved.data.decode())
    again = html.unescape(client.get(BASE + "/timepoints/W8").data.decode())
    assert 'id="sign-on-save"' in again and "This read was entered by" not in again
    # reader still sees the box on their own reads (W16).
    own = app.test_client()
    login(own, "reader")
    assert 'id="sign-on-save"' in own.get(BASE + "/timepoints/W16").data.decode()
