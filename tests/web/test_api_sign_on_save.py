"""Sign on save through the API: a follow-up or the baseline saved and signed in one
request (``"sign": {"password", "meaning"?}``), all or nothing, with the password counted
like a login and the trail the page writes (save records, then ``sign`` and ``lock``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from web.models import AuditRecord, Timepoint, User
from web.services import (
    MAX_FAILED_LOGINS,
    SYSTEM,
    Actor,
    create_subject,
    create_token,
    create_user,
    save_baseline,
    save_timepoint,
)
from web.services.audit_replay import reconcile
from web.testing import PASSWORD, assign_everyone, baseline_lesions, bearer

READER = Actor("reader", "reader")
READER2 = Actor("reader2", "reader")
SUBJECT = "/api/v1/trials/TRIAL-1/subjects/S-001"
W8 = {
    "id": "W8",
    "date": "2021-03-01",
    "targets": {"T01": 21.0, "T02": 14.0},
    "non_targets": {"NT01": "present"},
}
BASELINE = {"id": "BL", "date": "2021-01-04", "lesions": baseline_lesions()}
SIGN = {"password": PASSWORD, "meaning": "read complete"}


@pytest.fixture
def subject(session: Session, trial: str, users: dict[str, str]) -> str:
    """S-001 (arm A), no reads yet; a second reader (reader2) exists with a token."""
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    users["reader2"] = create_token(session, SYSTEM, username="reader2", name="tests")
    assign_everyone(session)
    create_subject(session, SYSTEM, trial, code="S-001", arm="A")
    return "S-001"


@pytest.fixture
def baseline(session: Session, trial: str, subject: str) -> str:
    """S-001 with reader's baseline (unsigned)."""
    save_baseline(
        session, READER, trial, subject, date_value="2021-01-04", lesions=baseline_lesions()
    )
    return subject


def _call(client: FlaskClient, token: str, method: str, path: str, body: Any) -> Any:
    return client.open(SUBJECT + path, method=method, headers=bearer(token), json=body)


def _timepoints(session: Session) -> dict[str, Timepoint]:
    session.rollback()
    return {tp.code: tp for tp in session.scalars(select(Timepoint))}


def _records(session: Session, *actions: str) -> list[AuditRecord]:
    session.rollback()
    query = select(AuditRecord).where(AuditRecord.action.in_(actions)).order_by(AuditRecord.seq)
    return list(session.scalars(query))


def _failures(session: Session, username: str = "reader") -> int:
    session.rollback()
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None
    return int(user.failed_logins or 0)


def _error(response: Any, status: int, code: str, field: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    return str(error["message"])


def _w8(session: Session, trial: str, actor: Actor = READER) -> int:
    """W8 saved (unsigned) by ``actor``; its version."""
    _subject, tp = save_timepoint(session, actor, trial, "S-001", W8)
    return int(tp.version)


def test_a_new_follow_up_is_saved_and_signed_in_one_request(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    response = _call(client, users["reader"], "POST", "/timepoints", {**W8, "sign": SIGN})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    signature = body["signature"]
    assert signature["locked"] is True and signature["timepoint"] == "W8"
    assert (signature["signed_by"], signature["signer"]) == ("reader", "reader")
    assert signature["meaning"] == "read complete" and signature["signed_at"]
    assert body["timepoint"]["targets"] == {"T01": 21.0, "T02": 14.0}
    stored = _timepoints(session)["W8"]
    assert stored.locked and stored.signed_by == "reader" and stored.updated_by == "reader"
    assert signature["version"] == stored.version
    # The trail: the save's records, then the signature and the lock, as the page writes.
    trail = _records(session, "create", "update", "save", "sign", "lock")
    w8 = [r for r in trail if r.entity_key.startswith(f"{trial}/S-001/W8")]
    assert w8[0].action == "create" and [r.action for r in w8[-2:]] == ["sign", "lock"]
    assert re.fullmatch(r"reader · read complete · sha256:[0-9a-f]{64}", w8[-2].new or "")
    report = reconcile(session)
    session.rollback()
    assert report.differences == () and report.signatures == 1
    assert _failures(session) == 0


def test_a_replaced_follow_up_is_saved_and_signed_and_a_null_sign_only_saves(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    version = _w8(session, trial)
    changed = {**W8, "targets": {"T01": 19.0, "T02": 14.0}, "reason": "re-measured"}
    saved = _call(
        client,
        users["reader"],
        "PUT",
        "/timepoints/W8",
        {**changed, "version": version, "sign": None},
    )
    assert saved.status_code == 200 and "signature" not in saved.get_json()
    assert not _timepoints(session)["W8"].locked
    version = saved.get_json()["timepoint"]["version"]
    again = {**changed, "targets": {"T01": 18.0, "T02": 14.0}, "version": version}
    response = _call(client, users["reader"], "PUT", "/timepoints/W8", {**again, "sign": SIGN})
    assert response.status_code == 200, response.get_data(as_text=True)
    stored = _timepoints(session)["W8"]
    assert stored.locked and response.get_json()["signature"]["version"] == stored.version
    assert response.get_json()["timepoint"]["targets"]["T01"] == 18.0
    t01 = [r for r in _records(session, "update") if r.entity_key == f"{trial}/S-001/W8/T01"]
    assert [(r.old, r.new) for r in t01][-1] == ("19.0", "18.0")  # the save is in the trail


def test_the_baseline_is_saved_and_signed_in_one_request(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], subject: str
) -> None:
    body = {**BASELINE, "sign": {"password": PASSWORD}}  # the meaning may be left out
    response = _call(client, users["reader"], "PUT", "/baseline", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    signature = response.get_json()["signature"]
    assert (signature["timepoint"], signature["locked"], signature["meaning"]) == (
        "BL",
        True,
        "read complete",
    )
    stored = _timepoints(session)["BL"]
    assert stored.locked and stored.signed_by == "reader"
    assert signature["version"] == stored.version
    keys = [r.entity_key for r in _records(session, "sign", "lock")]
    assert keys == [f"{trial}/S-001/BL"] * 2


def test_a_wrong_password_saves_nothing_and_counts_towards_the_lock(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    version = _w8(session, trial)
    changed = {**W8, "targets": {"T01": 5.0, "T02": 14.0}, "version": version, "reason": "re-read"}
    wrong = {"password": "not the password"}
    response = _call(client, users["reader"], "PUT", "/timepoints/W8", {**changed, "sign": wrong})
    message = _error(response, 400, "signature_refused", "sign.password")
    assert "nothing was saved" in message
    assert response.get_json()["error"]["pointer"] == "/sign/password"
    stored = _timepoints(session)["W8"]
    assert stored.version == version and not stored.locked
    assert _failures(session) == 1
    # A new follow-up and a baseline correction: nothing saved either.
    w16 = {**W8, "id": "W16", "date": "2021-04-26", "sign": wrong}
    _error(_call(client, users["reader"], "POST", "/timepoints", w16), 400,
           "signature_refused", "sign.password")  # fmt: skip
    bl = {**BASELINE, "date": "2021-01-05", "version": _timepoints(session)["BL"].version,
          "reason": "scan date corrected"}  # fmt: skip
    _error(_call(client, users["reader"], "PUT", "/baseline", {**bl, "sign": wrong}), 400,
           "signature_refused", "sign.password")  # fmt: skip
    after = _timepoints(session)
    assert set(after) == {"BL", "W8"} and after["BL"].date.isoformat() == "2021-01-04"
    assert _records(session, "sign", "lock") == []
    assert _failures(session) == 3


def test_a_malformed_entry_is_refused_before_the_password_is_counted(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    """A malformed read (shape, sizes, dates) with a wrong password gets the entry's own
    error, and the password is never checked: a client sending bad data cannot lock its
    user out (follow-ups as the baseline)."""
    wrong = {"password": "not the password"}
    bad_size = {**W8, "targets": {"T01": -4.0, "T02": 14.0}, "sign": wrong}
    message = _error(_call(client, users["reader"], "POST", "/timepoints", bad_size), 400,
                     "invalid_input", "targets.T01")  # fmt: skip
    assert "negative size -4.0 mm" in message
    bad_date = {**W8, "date": "2021-02-30", "sign": wrong}
    _error(_call(client, users["reader"], "POST", "/timepoints", bad_date), 400,
           "invalid_input", "date")  # fmt: skip
    version = _w8(session, trial)
    bad_put = {**W8, "targets": {"T01": "huge"}, "version": version, "sign": wrong}
    _error(_call(client, users["reader"], "PUT", "/timepoints/W8", bad_put), 400,
           "invalid_input", "targets.T01")  # fmt: skip
    bad_bl = {**BASELINE, "date": "2021-13-01", "version": _timepoints(session)["BL"].version}
    _error(_call(client, users["reader"], "PUT", "/baseline", {**bad_bl, "sign": wrong}), 400,
           "invalid_input", "date")  # fmt: skip
    assert _failures(session) == 0
    assert _timepoints(session)["W8"].version == version and _records(session, "sign") == []
    # The same well-formed read with the wrong password is a counted failure.
    good_put = {**W8, "targets": {"T01": 5.0, "T02": 14.0}, "version": version, "sign": wrong,
                "reason": "re-read"}  # fmt: skip
    _error(_call(client, users["reader"], "PUT", "/timepoints/W8", good_put), 400,
           "signature_refused", "sign.password")  # fmt: skip
    assert _failures(session) == 1


def test_what_the_stored_subject_refuses_comes_before_the_password(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    """The checks that need the stored subject — a date before the baseline, a second
    visit on one date, the engine's refusals, a baseline dated after a follow-up — refuse
    a save signed with a wrong password in their own words, and count no failure: the
    save is rehearsed (and rolled back) before the password is asked for."""
    wrong = {"password": "not the password"}
    before = {**W8, "date": "2020-12-01", "sign": wrong}
    message = _error(_call(client, users["reader"], "POST", "/timepoints", before), 400,
                     "invalid_input", "date")  # fmt: skip
    assert "before the baseline" in message
    version = _w8(session, trial)
    twin = {**W8, "id": "W9", "sign": wrong}  # W8's date
    message = _error(_call(client, users["reader"], "POST", "/timepoints", twin), 400,
                     "invalid_input", "date")  # fmt: skip
    assert "W8 is already dated 2021-03-01" in message
    merged = {**W8, "targets": {"T01": {"merged_into": "NT01"}, "T02": 14.0}, "version": version,
              "reason": "merged"}  # fmt: skip
    response = _call(client, users["reader"], "PUT", "/timepoints/W8", {**merged, "sign": wrong})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert "R-MERGE" in response.get_json()["error"]["message"]
    late_bl = {**BASELINE, "date": "2021-04-01", "version": _timepoints(session)["BL"].version}
    message = _error(_call(client, users["reader"], "PUT", "/baseline", {**late_bl, "sign": wrong}),
                     400, "invalid_input", "date")  # fmt: skip
    assert "after the follow-up W8" in message
    assert _failures(session) == 0
    stored = _timepoints(session)
    assert set(stored) == {"BL", "W8"} and stored["W8"].version == version
    assert _records(session, "sign", "login_failed") == []
    # The rehearsal leaves nothing behind: the right password then saves and signs.
    response = _call(client, users["reader"], "PUT", "/timepoints/W8",
                     {**W8, "version": version, "sign": SIGN})  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _timepoints(session)["W8"].locked and len(_records(session, "sign")) == 1
    report = reconcile(session)
    session.rollback()
    assert report.differences == () and report.signatures == 1


def test_repeated_wrong_passwords_lock_the_account_as_signing_does(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    version = _w8(session, trial)
    body = {**W8, "version": version, "sign": {"password": "guess"}}
    for _ in range(MAX_FAILED_LOGINS):
        response = _call(client, users["reader"], "PUT", "/timepoints/W8", body)
        _error(response, 400, "signature_refused", "sign.password")
    session.rollback()
    user = session.scalar(select(User).where(User.username == "reader"))
    assert user is not None and user.locked_until is not None
    # Locked: the right password is refused too, and still nothing is saved or signed.
    right = {**body, "sign": SIGN}
    message = _error(
        _call(client, users["reader"], "PUT", "/timepoints/W8", right),
        400,
        "signature_refused",
        "sign.password",
    )
    assert "locked" in message
    stored = _timepoints(session)["W8"]
    assert stored.version == version and not stored.locked


@pytest.mark.parametrize(
    "sign", [{}, {"password": ""}, {"password": None}, {"meaning": "read complete"}]
)
def test_a_missing_password_saves_nothing_and_names_sign_password(
    client: FlaskClient,
    session: Session,
    trial: str,
    users: dict[str, str],
    baseline: str,
    sign: dict[str, Any],
) -> None:
    response = _call(client, users["reader"], "POST", "/timepoints", {**W8, "sign": sign})
    message = _error(response, 400, "invalid_input", "sign.password")
    assert "needs your password" in message
    assert "W8" not in _timepoints(session) and _failures(session) == 0
    before = _timepoints(session)["BL"].version
    corrected = {**BASELINE, "date": "2021-01-05", "version": before, "sign": sign}
    response = _call(client, users["reader"], "PUT", "/baseline", corrected)
    _error(response, 400, "invalid_input", "sign.password")
    bl = _timepoints(session)["BL"]
    assert bl.version == before and bl.date.isoformat() == "2021-01-04"
    assert _records(session, "sign") == []


def test_signing_a_read_someone_else_entered_saves_nothing_before_the_password(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    version = _w8(session, trial, READER2)
    changed = {**W8, "targets": {"T01": 9.0, "T02": 14.0}, "version": version, "reason": "re-read"}
    response = _call(
        client, users["reader"], "PUT", "/timepoints/W8", {**changed, "sign": {"password": "x"}}
    )
    message = _error(response, 403, "not_your_read", "sign")
    assert "timepoint W8 was entered by reader2" in message and "nothing was saved" in message
    stored = _timepoints(session)["W8"]
    assert stored.version == version and stored.updated_by == "reader2" and not stored.locked
    assert _failures(session) == 0  # refused before the password: no guess through it
    # The baseline reader2 did not enter is refused to reader2 the same way.
    bl = {**BASELINE, "version": _timepoints(session)["BL"].version, "sign": SIGN}
    _error(_call(client, users["reader2"], "PUT", "/baseline", bl), 403, "not_your_read", "sign")
    assert _timepoints(session)["BL"].updated_by == "reader"
    assert _records(session, "sign", "lock") == []


def test_a_stale_version_saves_and_signs_nothing(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    version = _w8(session, trial)
    save_timepoint(
        session,
        READER,
        trial,
        "S-001",
        {**W8, "targets": {"T01": 20.0, "T02": 14.0}},
        expected_version=version,
        reason="second look",
    )
    body = {**W8, "targets": {"T01": 7.0, "T02": 14.0}, "version": version, "sign": SIGN}
    response = _call(client, users["reader"], "PUT", "/timepoints/W8", body)
    message = _error(response, 409, "concurrent_edit", "version")
    assert "timepoint W8 changed after you opened it" in message
    stored = _timepoints(session)["W8"]
    assert stored.version == version + 1 and not stored.locked
    assert _records(session, "sign", "lock") == []
    assert _failures(session) == 0
    # The baseline: a stale version refused the same way.
    bl = {**BASELINE, "version": 99, "sign": SIGN}
    _error(_call(client, users["reader"], "PUT", "/baseline", bl), 409, "concurrent_edit",
           "version")  # fmt: skip
    assert not _timepoints(session)["BL"].locked


def test_a_signed_read_refuses_a_save_and_sign(
    client: FlaskClient, session: Session, trial: str, users: dict[str, str], baseline: str
) -> None:
    first = _call(client, users["reader"], "POST", "/timepoints", {**W8, "sign": SIGN})
    version = first.get_json()["signature"]["version"]
    body = {**W8, "targets": {"T01": 1.0, "T02": 14.0}, "version": version, "sign": SIGN}
    response = _call(client, users["reader"], "PUT", "/timepoints/W8", body)
    _error(response, 409, "locked", "timepoint")
    assert _timepoints(session)["W8"].version == version
    assert len(_records(session, "sign")) == 1


@pytest.mark.parametrize(
    ("sign", "field"),
    [
        ("correct horse battery", "sign"),
        ([PASSWORD], "sign"),
        (5, "sign"),
        (True, "sign"),
        ({"password": PASSWORD, "extra": 1}, "sign"),
        ({"password": PASSWORD, "meaning": "approved"}, "sign.meaning"),
        (
            {"password": PASSWORD, "meaning": "read complete (acting as adjudicator)"},
            "sign.meaning",
        ),
        ({"password": PASSWORD, "meaning": ["read complete"]}, "sign.meaning"),
        ({"password": 5}, "sign.password"),
        ({"password": {"a": 1}}, "sign.password"),
        ({"password": "x" * 5000}, "sign.password"),
    ],
)
def test_hostile_sign_values_are_refused_naming_the_member(
    client: FlaskClient,
    session: Session,
    trial: str,
    users: dict[str, str],
    baseline: str,
    sign: Any,
    field: str,
) -> None:
    for method, path, body in (
        ("POST", "/timepoints", {**W8, "sign": sign}),
        ("PUT", "/baseline", {**BASELINE, "version": 1, "sign": sign}),
    ):
        response = _call(client, users["reader"], method, path, body)
        message = _error(response, 400, "invalid_input", field)
        assert "nothing was saved" in message or "at most" in message
        assert len(message) < 600
    assert "W8" not in _timepoints(session) and _failures(session) == 0
    assert _records(session, "sign") == []


def test_the_openapi_documents_the_sign_member_and_the_signature(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert schemas["Timepoint"]["properties"]["sign"] == {"$ref": "#/components/schemas/SignOnSave"}
    assert schemas["SignOnSave"]["required"] == ["password"]
    base = "/trials/{trial_code}/subjects/{subject_code}"
    baseline_body = doc["paths"][base + "/baseline"]["put"]["requestBody"]
    assert "sign" in baseline_body["content"]["application/json"]["schema"]["properties"]
    for path, method, status in (
        (base + "/baseline", "put", "200"),
        (base + "/timepoints", "post", "201"),
        (base + "/timepoints/{tp_code}", "put", "200"),
    ):
        answer = doc["paths"][path][method]["responses"][status]["content"]["application/json"]
        assert answer["schema"]["properties"]["signature"] == {
            "$ref": "#/components/schemas/Signature"
        }


def test_only_a_save_that_signs_is_rehearsed(session: Session, users: dict[str, str]) -> None:
    """``save_then_sign``: a plain save runs once; a save that signs runs twice (the
    rehearsal, rolled back, then the real one), asks for the signer in between and signs
    what the real one saved."""
    from web.services.sign_all import save_then_sign

    steps: list[str] = []

    def save() -> int:
        steps.append("save")
        return len(steps)

    def ask() -> User | None:
        steps.append("ask")
        return None

    def sign(_signer: User, saved: int) -> None:
        steps.append(f"sign {saved}")

    assert save_then_sign(session, save, None, sign) == 1
    assert steps == ["save"]
    steps.clear()
    assert save_then_sign(session, save, ask, sign) == 3
    assert steps == ["save", "ask", "save"]  # no signer given: nothing signed
    steps.clear()
    signer = session.scalar(select(User).where(User.username == "reader"))
    assert signer is not None
    assert save_then_sign(session, save, lambda: signer, sign) == 2
    assert steps == ["save", "save", "sign 2"]
