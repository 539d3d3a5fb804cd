"""The JSON API of the review issue: signing and unlocking reads, the progression-call
review queue, central-review adjudication and the audit trail — the same services and
the same roles as the pages, JSON errors naming the field, every write audited."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.web.helpers import PD_READ, SD_READ, follow_up, read_subject
from web.services import (
    SYSTEM,
    Actor,
    create_subject,
    create_token,
    create_trial,
    create_user,
    save_timepoint,
)
from web.services.central import set_central_review, submit_read
from web.services.progression import review_call
from web.services.signing import sign_timepoint
from web.testing import PASSWORD, ROLES, assign_everyone, bearer

READER = Actor("reader", "reader")
REVIEWER = Actor("reviewer", "reviewer")
CENTRAL = "CENTRAL-1"
GROW_CALL = "W16/2021-04-26"
NEW_CALL = "W8/2021-03-01"


@pytest.fixture
def calls(session: Session, trial: str, users: dict[str, str]) -> int:
    """TRIAL-1: S-GROW (target PD at W16; W8 unsigned) and S-NEW (new lesion at W8, the
    call queried by the reviewer, W8 signed by the reader); returns S-GROW W8's version."""
    grow_w8 = read_subject(session, trial, "S-GROW", follow_up("W8", "2021-03-01", 21.0, 14.0))
    save_timepoint(session, READER, trial, "S-GROW", follow_up("W16", "2021-04-26", 30.0, 14.0))
    new_w8 = read_subject(
        session,
        trial,
        "S-NEW",
        follow_up("W8", "2021-03-01", 29.0, 19.0, [{"id": "NL01", "site": "liver"}]),
    )
    review_call(
        session,
        REVIEWER,
        trial,
        "S-NEW",
        decision="queried",
        comment="is NL01 a cyst?",
        seen_call=NEW_CALL,
    )
    sign_timepoint(
        session,
        READER,
        trial,
        "S-NEW",
        "W8",
        password=PASSWORD,
        meaning="read complete",
        expected_version=new_w8,
    )
    session.expunge_all()
    session.rollback()
    return grow_w8


@pytest.fixture
def central(session: Session, users: dict[str, str]) -> str:
    """CENTRAL-1: central review on; S-1 read PD by reader and SD by reader2 (awaiting
    adjudication), S-2 read SD by both (agreed). reader2 gets a token in ``users``."""
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    users["reader2"] = create_token(session, SYSTEM, username="reader2", name="tests")
    create_trial(session, SYSTEM, code=CENTRAL, title="central", arms=[("A", "arm A")])
    assign_everyone(session)
    set_central_review(session, SYSTEM, CENTRAL, on=True)
    for code in ("S-1", "S-2"):
        create_subject(session, SYSTEM, CENTRAL, code=code, arm="A", randomized_on="2021-01-04")
    submit_read(session, READER, CENTRAL, "S-1", read=PD_READ, password=PASSWORD)
    submit_read(
        session, Actor("reader2", "reader"), CENTRAL, "S-1", read=SD_READ, password=PASSWORD
    )
    for name in ("reader", "reader2"):
        submit_read(session, Actor(name, "reader"), CENTRAL, "S-2", read=SD_READ, password=PASSWORD)
    session.expunge_all()
    session.rollback()
    return CENTRAL


@pytest.fixture
def world(calls: int, central: str) -> dict[str, Any]:
    """Both trials: :func:`calls` and :func:`central`."""
    return {"grow_w8": calls}


@pytest.fixture
def api(client: FlaskClient, users: dict[str, str]) -> Any:
    """Call the API as a role: api("reader", "GET", path, json=...)."""

    def call(role: str, method: str, path: str, **kwargs: Any) -> Any:
        return client.open("/api/v1" + path, method=method, headers=bearer(users[role]), **kwargs)

    return call


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    error: dict[str, Any] = response.get_json()["error"]
    return error


# ----------------------------------------------------------------------------- permissions

ALL = set(ROLES)
OVERSIGHT = {"adjudicator", "trial_manager", "reviewer", "admin"}
T = "/trials/TRIAL-1"

# (endpoint, method, path, body, the roles that get 200; every other role gets 403).
# The roles are written out, not read from web.auth: this table is the policy under test.
MATRIX: list[tuple[str, str, str, dict[str, Any] | None, set[str]]] = [
    ("queue", "GET", T + "/progression-calls", None, ALL),
    ("one call", "GET", T + "/progression-calls/S-GROW", None, ALL),
    (
        "review",
        "POST",
        T + "/progression-calls/S-GROW/review",
        {"decision": "agreed", "call": GROW_CALL},
        {"reviewer", "adjudicator"},
    ),
    (
        "answer",
        "POST",
        T + "/progression-calls/S-NEW/answer",
        {"comment": "a new metastasis, not a cyst", "call": NEW_CALL},
        {"reader", "adjudicator"},
    ),
    (
        "override",
        "POST",
        T + "/progression-calls/S-GROW/override",
        {"timepoint": None, "reason": "W16 growth is measurement error", "call": GROW_CALL},
        {"adjudicator"},
    ),
    ("signature", "GET", T + "/subjects/S-GROW/timepoints/W8/signature", None, ALL),
    (
        "sign",
        "POST",
        T + "/subjects/S-GROW/timepoints/W8/sign",
        {"password": PASSWORD, "meaning": "read complete", "version": "grow_w8"},
        # Only the reader who entered W8 signs it "read complete" (issue 11); the other
        # roles that may sign reads are refused by the service, naming why (REFUSALS).
        {"reader"},
    ),
    (
        "unlock",
        "POST",
        T + "/subjects/S-NEW/timepoints/W8/unlock",
        {"reason": "NL01 re-read after the query"},
        {"adjudicator", "trial_manager"},
    ),
    ("trial audit", "GET", T + "/audit", None, OVERSIGHT),
    ("subject audit", "GET", T + "/subjects/S-NEW/audit", None, OVERSIGHT),
    ("verify", "GET", "/audit/verify", None, OVERSIGHT),
    ("central overview", "GET", f"/trials/{CENTRAL}/central-review", None, OVERSIGHT),
    ("central subject", "GET", f"/trials/{CENTRAL}/subjects/S-1/central-review", None, OVERSIGHT),
    (
        "adjudication",
        "POST",
        f"/trials/{CENTRAL}/subjects/S-1/adjudication",
        {
            "accepted": 2,
            "rationale": "FU2 growth is within measurement error",
            "password": PASSWORD,
        },
        {"adjudicator"},
    ),
]


# Refusals that are not the permission table's: the service refuses a signer who did not
# enter the read (an adjudicator must sign acting as adjudicator).
REFUSALS = {
    ("sign", "adjudicator"): "W8 was entered by reader; an adjudicator signs another "
    "reader's read only acting as adjudicator",
}


@pytest.mark.parametrize("role", ROLES)
def test_every_review_endpoint_answers_each_role_as_the_permission_table_says(
    api: Any, world: dict[str, Any], role: str
) -> None:
    outcomes = {}
    for name, method, path, body, _allowed in MATRIX:
        if body is not None and body.get("version") == "grow_w8":
            body = {**body, "version": world["grow_w8"]}
        response = (
            api(role, method, path, json=body) if body is not None else api(role, method, path)
        )
        outcomes[name] = response.status_code
        if response.status_code == 403:
            # Readers of the central-review trial are refused by the blinding guard first.
            refusal = (
                "blinded independent central review"
                if role == "reader" and CENTRAL in path
                else REFUSALS.get((name, role), f"your role {role!r} does not allow this")
            )
            assert refusal in response.get_json()["error"]["message"], name
    expected = {name: 200 if role in allowed else 403 for name, _m, _p, _b, allowed in MATRIX}
    assert outcomes == expected


def _template(path: str) -> str:
    """A MATRIX path as its Flask rule (``/trials/<trial_code>/…``)."""
    for value, arg in (
        (CENTRAL, "trial_code"),
        ("TRIAL-1", "trial_code"),
        ("S-GROW", "subject_code"),
        ("S-NEW", "subject_code"),
        ("S-1", "subject_code"),
        ("W8", "tp_code"),
    ):
        path = path.replace(value, f"<{arg}>")
    return path


# The API modules of the review issue's areas (signing, progression review, central review,
# audit): the MATRIX must cover every route they serve.
REVIEW_MODULES = {"web.api.signing", "web.api.progression", "web.api.central", "web.api.audit"}


def test_the_matrix_covers_every_review_route_of_the_api(app: Flask) -> None:
    routes = {
        (method, rule.rule.removeprefix("/api/v1"))
        for rule in app.url_map.iter_rules()
        if app.view_functions[rule.endpoint].__module__ in REVIEW_MODULES
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert routes == {(method, _template(path)) for _n, method, path, _b, _a in MATRIX}


def test_a_blinded_central_reader_gets_403_from_every_review_route_of_the_trial(
    api: Any, central: str
) -> None:
    base = f"/trials/{CENTRAL}"
    for method, path in (
        ("GET", base + "/progression-calls"),
        ("GET", base + "/progression-calls/S-1"),
        ("GET", base + "/subjects/S-1/timepoints/FU1/signature"),
        ("POST", base + "/subjects/S-1/timepoints/FU1/sign"),
    ):
        error = _error(api("reader2", method, path, json={}), 403)
        assert "blinded independent central review" in error["message"], path
    for path in (base + "/central-review", base + "/subjects/S-1/central-review", base + "/audit"):
        error = _error(api("reader2", "GET", path), 403)
        assert "blinded independent central review" in error["message"], path


# ----------------------------------------------------------------------------- progression


def test_the_queue_lists_each_pd_call_with_rule_numbers_reader_sign_off_and_call_used(
    api: Any, calls: int
) -> None:
    response = api("reviewer", "GET", T + "/progression-calls")
    assert response.status_code == 200
    rows = {row["subject_id"]: row for row in response.get_json()["progression_calls"]}
    assert sorted(rows) == ["S-GROW", "S-NEW"]
    grow = rows["S-GROW"]
    assert grow["call"] == GROW_CALL
    engine = grow["engine_call"]
    assert (engine["timepoint"], engine["date"], engine["rule"], engine["rule_fired"]) == (
        "W16",
        "2021-04-26",
        "PD_TARGET",
        "target sum (R-TGT-PD)",
    )
    # 30 + 14 = 44 mm against the nadir 21 + 14 = 35 mm: +25.7 %.
    assert engine["numbers"]["sum_mm"] == 44.0 and engine["numbers"]["nadir_mm"] == 35.0
    assert engine["numbers"]["change_from_nadir_pct"] == 25.7
    assert any(reason.startswith("R-TGT-PD") for reason in engine["reasons"])
    assert (grow["reader"], grow["signed"], grow["review_state"]) == ("reader", False, "pending")
    assert grow["used_call"] == {
        "source": "engine",
        "timepoint": "W16",
        "date": "2021-04-26",
        "engine": {"timepoint": "W16", "date": "2021-04-26"},
    }
    new = rows["S-NEW"]
    assert new["engine_call"]["rule_fired"] == "new lesion (R-NEW-1)"
    # S-NEW's W8 read was signed in the fixture: the queue shows the sign-off.
    assert (new["signed"], new["signed_by"]) == (True, "reader")
    assert new["review_state"] == "queried"
    assert new["latest_review"]["comment"] == "is NL01 a cyst?"
    assert new["latest_review"]["by"] == "reviewer"
    assert api("reviewer", "GET", new["url"].removeprefix("/api/v1")).get_json() == new


def test_a_subject_without_a_pd_call_has_no_progression_call_to_show(
    api: Any, calls: int, session: Session
) -> None:
    read_subject(session, "TRIAL-1", "S-PR", follow_up("W8", "2021-03-01", 20.0, 10.0))
    error = _error(api("reviewer", "GET", T + "/progression-calls/S-PR"), 404)
    assert error["message"] == "subject S-PR has no progression call: the engine calls no PD"


def test_a_query_is_answered_by_the_reader_and_then_agreed_and_each_step_is_audited(
    api: Any, calls: int
) -> None:
    path = T + "/progression-calls/S-NEW"
    response = api(
        "reader", "POST", path + "/answer", json={"comment": "metastasis", "call": NEW_CALL}
    )
    assert response.status_code == 200
    assert response.get_json()["review_state"] == "answered"
    response = api(
        "reviewer", "POST", path + "/review", json={"decision": "agreed", "call": NEW_CALL}
    )
    body = response.get_json()
    assert response.status_code == 200
    assert body["review_state"] == "agreed"
    assert [(r["action"], r["by"]) for r in body["history"]] == [
        ("queried", "reviewer"),
        ("answered", "reader"),
        ("agreed", "reviewer"),
    ]
    records = api(
        "trial_manager", "GET", T + "/subjects/S-NEW/audit?entity=progression"
    ).get_json()["records"]
    assert [(r["action"], r["field"], r["user"], r["reason"]) for r in records] == [
        ("review", "agreed", "reviewer", ""),
        ("review", "answered", "reader", "metastasis"),
        ("review", "queried", "reviewer", "is NL01 a cyst?"),
    ]
    assert records[0]["old"] == "PD W8 2021-03-01 (PD_NEW_LESION)"


def test_an_override_replaces_the_call_used_and_keeps_the_engine_call_beside_it(
    api: Any, calls: int
) -> None:
    path = T + "/progression-calls/S-GROW/override"
    response = api(
        "adjudicator",
        "POST",
        path,
        json={"timepoint": "W8", "reason": "the new nodule was visible at W8", "call": GROW_CALL},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["review_state"] == "overridden"
    assert body["used_call"] == {
        "source": "override",
        "timepoint": "W8",
        "date": "2021-03-01",
        "engine": {"timepoint": "W16", "date": "2021-04-26"},
        "by": "adjudicator",
        "why": "the new nodule was visible at W8",
    }
    assert body["engine_call"]["timepoint"] == "W16"
    records = api("adjudicator", "GET", T + "/audit?action=override").get_json()["records"]
    assert [(r["entity_key"], r["old"], r["new"]) for r in records] == [
        ("TRIAL-1/S-GROW", "PD W16 2021-04-26 (PD_TARGET)", "PD W8 2021-03-01")
    ]


def test_review_input_errors_name_the_field_and_point_into_the_body(api: Any, calls: int) -> None:
    path = T + "/progression-calls/S-GROW"
    error = _error(
        api("reviewer", "POST", path + "/review", json={"decision": "queried", "call": GROW_CALL}),
        400,
    )
    assert error["message"] == "a query needs a comment that tells the reader what to check"
    assert (error["field"], error["pointer"]) == ("comment", "/comment")
    error = _error(
        api("reviewer", "POST", path + "/review", json={"decision": "agree", "call": GROW_CALL}),
        400,
    )
    assert error["message"] == "decision 'agree' is not one of: agreed, queried"
    assert (error["field"], error["pointer"]) == ("decision", "/decision")
    error = _error(api("reviewer", "POST", path + "/review", json={"decision": "agreed"}), 400)
    assert error["message"].startswith("send the call you reviewed")
    assert (error["field"], error["pointer"]) == ("call", "/call")
    error = _error(
        api(
            "reviewer",
            "POST",
            path + "/review",
            json={"decision": "agreed", "call": GROW_CALL, "comments": "typo"},
        ),
        400,
    )
    assert error["message"] == "unknown key 'comments'; this request takes decision, comment, call"
    assert error["pointer"] == "/comments"
    error = _error(
        api("reviewer", "POST", path + "/review", json={"decision": 1, "call": GROW_CALL}), 400
    )
    assert error["message"] == "decision must be a string, not int"
    assert error["pointer"] == "/decision"
    # The call changed since the client looked at it: never reviewed by mistake.
    error = _error(
        api("reviewer", "POST", path + "/review", json={"decision": "agreed", "call": NEW_CALL}),
        409,
    )
    assert error["code"] == "concurrent_edit"
    assert (
        "the progression call changed to W16 (2021-04-26) after you opened it" in (error["message"])
    )
    error = _error(
        api("adjudicator", "POST", path + "/override", json={"reason": "x", "call": GROW_CALL}),
        400,
    )
    assert error["message"].startswith("timepoint is required")
    assert error["pointer"] == "/timepoint"
    error = _error(
        api(
            "adjudicator",
            "POST",
            path + "/override",
            json={"timepoint": "W8", "reason": "  ", "call": GROW_CALL},
        ),
        400,
    )
    assert error["message"] == "overriding a progression call needs a reason"
    assert (error["field"], error["pointer"]) == ("reason", "/reason")
    error = _error(
        api(
            "adjudicator",
            "POST",
            path + "/override",
            json={"timepoint": "W99", "reason": "x", "call": GROW_CALL},
        ),
        400,
    )
    assert error["message"] == "subject S-GROW: 'W99' is not one of its follow-ups"
    assert error["pointer"] == "/timepoint"
    error = _error(
        api(
            "reader",
            "POST",
            T + "/progression-calls/S-GROW/answer",
            json={"comment": "fine", "call": GROW_CALL},
        ),
        400,
    )
    assert error["message"] == "subject S-GROW: the progression call has no open query"
    error = _error(
        api("reviewer", "POST", path + "/review", data="agreed", content_type="text/plain"), 400
    )
    assert error["message"].startswith("the request body must be JSON")


# ----------------------------------------------------------------------------- signing


def test_a_token_signs_a_read_only_with_the_password_and_the_signed_read_refuses_a_put(
    api: Any, calls: int
) -> None:
    tp = T + "/subjects/S-GROW/timepoints/W8"
    version = calls
    body = {"password": "not my password", "meaning": "read complete", "version": version}
    error = _error(api("reader", "POST", tp + "/sign", json=body), 400)
    assert error["code"] == "signature_refused"
    assert error["message"] == (
        "the password does not match reader's (or the account is locked after repeated "
        "failures); nothing was signed"
    )
    assert error["pointer"] == "/password"
    assert api("reader", "GET", tp + "/signature").get_json()["locked"] is False
    error = _error(
        api(
            "reader",
            "POST",
            tp + "/sign",
            json={**body, "password": PASSWORD, "meaning": "approved"},
        ),
        400,
    )
    assert error["message"] == (
        "meaning 'approved' is not one of: read complete, read complete (acting as adjudicator)"
    )
    assert error["pointer"] == "/meaning"
    error = _error(
        api(
            "reader", "POST", tp + "/sign", json={"password": PASSWORD, "meaning": "read complete"}
        ),
        400,
    )
    assert error["message"].startswith("signing needs the version of the read you checked")
    assert error["pointer"] == "/version"
    error = _error(
        api("reader", "POST", tp + "/sign", json={"meaning": "read complete", "version": version}),
        400,
    )
    assert error["message"] == "signing needs your password, entered again"
    assert error["pointer"] == "/password"
    error = _error(
        api(
            "reader",
            "POST",
            tp + "/sign",
            json={**body, "password": PASSWORD, "version": version - 1},
        ),
        409,
    )
    assert error["code"] == "concurrent_edit"

    response = api("reader", "POST", tp + "/sign", json={**body, "password": PASSWORD})
    assert response.status_code == 200
    signed = response.get_json()
    assert (signed["locked"], signed["signed_by"], signed["meaning"]) == (
        True,
        "reader",
        "read complete",
    )
    assert signed["signed_at"].endswith("Z")
    assert api("reviewer", "GET", tp + "/signature").get_json() == signed
    records = api(
        "reviewer", "GET", T + "/subjects/S-GROW/audit?user=reader&from=2000-01-01"
    ).get_json()["records"]
    assert [(r["action"], r["field"], r["new"].split(" · sha256:")[0]) for r in records[:2]] == [
        ("lock", "locked", "true"),
        ("sign", "signature", "reader · read complete"),
    ]

    # The existing PUT refuses to change the signed read, and says who must unlock it.
    current = api("reader", "GET", tp).get_json()
    del current["id"]
    error = _error(api("reader", "PUT", tp, json={**current, "reason": "re-measured"}), 409)
    assert error["code"] == "locked"
    assert error["message"] == (
        "subject S-GROW: timepoint W8 was signed by reader (read complete) and is locked; an "
        "adjudicator or trial manager must unlock it, with a reason, before it can change"
    )
    error = _error(
        api(
            "reader",
            "POST",
            tp + "/sign",
            json={**body, "password": PASSWORD, "version": current["version"]},
        ),
        409,
    )
    assert error["code"] == "locked"


def test_unlocking_needs_a_reason_withdraws_the_signature_and_lets_the_read_change(
    api: Any, calls: int
) -> None:
    tp = T + "/subjects/S-NEW/timepoints/W8"
    error = _error(api("trial_manager", "POST", tp + "/unlock", json={"reason": " "}), 400)
    assert error["message"] == "unlocking a signed read needs a reason"
    assert (error["field"], error["pointer"]) == ("reason", "/reason")
    response = api("trial_manager", "POST", tp + "/unlock", json={"reason": "NL01 re-read"})
    assert response.status_code == 200
    unlocked = response.get_json()
    assert (unlocked["locked"], unlocked["signed_by"], unlocked["signed_at"]) == (False, None, None)
    error = _error(api("trial_manager", "POST", tp + "/unlock", json={"reason": "again"}), 409)
    assert error["message"] == "subject S-NEW: timepoint W8 is not locked"
    records = api("reviewer", "GET", T + "/audit?action=unlock").get_json()["records"]
    assert {(r["user"], r["field"], r["reason"]) for r in records} == {
        ("trial_manager", "locked", "NL01 re-read"),
        ("trial_manager", "signature", "NL01 re-read"),
    }
    current = api("reader", "GET", tp).get_json()
    del current["id"]
    current["new_lesions"] = []
    response = api("reader", "PUT", tp, json={**current, "reason": "NL01 is a cyst"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["result"]["progression"] is None


# ----------------------------------------------------------------------------- audit


def test_the_audit_search_filters_like_the_audit_page_and_scopes_to_the_subject(
    api: Any, calls: int
) -> None:
    everything = api("reviewer", "GET", T + "/audit").get_json()
    assert everything["scope"] == "TRIAL-1" and everything["truncated"] is False
    seqs = [r["seq"] for r in everything["records"]]
    assert seqs == sorted(seqs, reverse=True)
    assert {r["entity_key"].split("/")[0] for r in everything["records"]} == {"TRIAL-1"}
    signed = api("reviewer", "GET", T + "/audit?action=sign&user=reader").get_json()
    assert [(r["entity_key"], r["new"].split(" · sha256:")[0]) for r in signed["records"]] == [
        ("TRIAL-1/S-NEW/W8", "reader · read complete")
    ]
    assert signed["filters"] == {"user": "reader", "action": "sign"}
    scoped = api("reviewer", "GET", T + "/subjects/S-GROW/audit").get_json()
    assert scoped["scope"] == "TRIAL-1/S-GROW"
    assert {r["entity_key"].split("/")[1] for r in scoped["records"]} == {"S-GROW"}
    measurements = api(
        "reviewer", "GET", T + "/subjects/S-GROW/audit?entity=measurement"
    ).get_json()
    assert measurements["records"] and {r["entity"] for r in measurements["records"]} == {
        "measurement"
    }
    none_yet = api("reviewer", "GET", T + "/audit?to=2000-12-31").get_json()
    assert none_yet["records"] == []
    two = api("reviewer", "GET", T + "/audit?limit=2").get_json()
    assert [r["seq"] for r in two["records"]] == seqs[:2] and two["truncated"] is True


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (
            "since=2021-01-01",
            "since",
            "unknown query parameter 'since'; the audit search takes user, entity, action, "
            "from, to, limit (dates as YYYY-MM-DD, UTC)",
        ),
        ("from=yesterday", "from", "from: 'yesterday' is not a date (YYYY-MM-DD)"),
        ("to=2021-13-01", "to", "to: '2021-13-01' is not a date (YYYY-MM-DD)"),
        (
            "action=signed",
            "action",
            "action 'signed' is not one of: create, update, save, delete, lock, sign, unlock, "
            "review, adjudicate, override",
        ),
        ("limit=0", "limit", "limit '0' is not a whole number from 1 to 5000"),
        ("limit=ten", "limit", "limit 'ten' is not a whole number from 1 to 5000"),
    ],
)
def test_a_bad_audit_filter_is_refused_naming_the_parameter(
    api: Any, trial: str, query: str, field: str, message: str
) -> None:
    error = _error(api("reviewer", "GET", f"{T}/audit?{query}"), 400)
    assert (error["field"], error["message"]) == (field, message)


def test_verify_walks_the_whole_chain(api: Any, calls: int) -> None:
    report = api("admin", "GET", "/audit/verify").get_json()
    assert report["intact"] is True and report["problem"] is None
    newest = api("admin", "GET", T + "/audit?limit=1").get_json()["records"][0]
    # The trial's newest record is the newest of all (the users were created before it).
    assert (report["records"], report["last_hash"]) == (newest["seq"], newest["hash"])


# ----------------------------------------------------------------------------- central review


def test_the_central_review_overview_shows_reads_disagreement_and_metrics(
    api: Any, central: str
) -> None:
    body = api("reviewer", "GET", f"/trials/{CENTRAL}/central-review").get_json()
    assert body["central_review"] is True
    rows = {row["subject_id"]: row for row in body["subjects"]}
    s1 = rows["S-1"]
    assert s1["state"] == "awaiting adjudication"
    assert s1["disagreement"] == "progression: read 1 2021-04-26, read 2 none"
    assert [
        (r["read"], r["reader"], r["accepted"], r["best_overall_response"]) for r in s1["reads"]
    ] == [
        (1, "reader", False, "SD"),
        (2, "reader2", False, "SD"),
    ]
    assert s1["reads"][0]["progression"]["date"] == "2021-04-26"
    assert rows["S-2"]["state"] == "agreed"
    assert [r["accepted"] for r in rows["S-2"]["reads"]] == [True, False]
    assert body["metrics"]["needing_adjudication"] == 1
    assert body["metrics"]["adjudication_rate_pct"] == 50.0
    full = api("adjudicator", "GET", f"/trials/{CENTRAL}/subjects/S-1/central-review").get_json()
    assert full["reads"][0]["timepoints"] == PD_READ["timepoints"]
    assert full["reads"][1]["result"]["progression"] is None


def test_the_adjudicator_accepts_a_read_with_a_signed_rationale_through_the_api(
    api: Any, central: str
) -> None:
    path = f"/trials/{CENTRAL}/subjects/S-1/adjudication"
    body = {
        "accepted": 2,
        "rationale": "FU2 growth is within measurement error",
        "password": PASSWORD,
    }
    error = _error(api("adjudicator", "POST", path, json={**body, "password": "nope"}), 400)
    assert error["message"] == (
        "the password does not match adjudicator's (or the account is locked after repeated "
        "failures); nothing was signed"
    )
    assert error["pointer"] == "/password"
    error = _error(api("adjudicator", "POST", path, json={**body, "accepted": "2"}), 400)
    assert error["message"] == "choose read 1 or read 2"
    assert (error["field"], error["pointer"]) == ("accepted", "/accepted")
    error = _error(api("adjudicator", "POST", path, json={**body, "rationale": ""}), 400)
    assert error["message"] == "an adjudication needs a rationale"
    assert error["pointer"] == "/rationale"
    error = _error(
        api("adjudicator", "POST", f"/trials/{CENTRAL}/subjects/S-2/adjudication", json=body), 400
    )
    assert error["message"] == "subject S-2: the two reads agree; there is nothing to adjudicate"
    response = api("adjudicator", "POST", path, json=body)
    assert response.status_code == 200
    row = response.get_json()
    assert row["state"] == "adjudicated"
    assert [r["accepted"] for r in row["reads"]] == [False, True]
    assert row["adjudication"]["accepted_read"] == 2
    assert row["adjudication"]["rationale"] == body["rationale"]
    error = _error(api("adjudicator", "POST", path, json=body), 409)
    assert error["message"] == "subject S-1 is already adjudicated"
    records = api("reviewer", "GET", f"/trials/{CENTRAL}/audit?entity=adjudication").get_json()[
        "records"
    ]
    assert [(r["action"], r["new"], r["reason"]) for r in records] == [
        ("sign", "adjudicator · adjudication complete", body["rationale"]),
        ("adjudicate", "read 2", body["rationale"]),
    ]


# ----------------------------------------------------------------------------- OpenAPI


def test_every_body_the_tests_send_matches_the_documented_request_schema(
    client: FlaskClient,
) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    for _name, method, path, body, _allowed in MATRIX:
        if body is None:
            continue
        template = _template(path).replace("<", "{").replace(">", "}")
        operation = doc["paths"][template][method.lower()]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        sent = {**body, "version": 3} if "version" in body else body
        jsonschema.Draft202012Validator(schema).validate(sent)
        with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
            jsonschema.Draft202012Validator(schema).validate({**sent, "unexpected": 1})
