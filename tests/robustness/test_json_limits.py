"""JSON in, safely (issue 10): hostile or broken JSON is refused naming the limit and the
place, by the one reader (:mod:`recist.safejson`) of the API, the forms and every CLI;
never a traceback, never a 500, never anything written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import tests.web.conftest as web_fixtures
import tests.web.test_api_review as review_fixtures
from recist.safejson import (
    MAX_NUMBER_CHARS,
    JsonInputError,
    Limits,
    _suspicious_tokens,
    loads,
    parse_cases,
)
from web.models import AuditRecord, Subject
from web.testing import PASSWORD, bearer, login, seed_subject_with_follow_up

# The web suite's fixtures: an app on the test database (SQLite, and PostgreSQL when
# TEST_DATABASE_URL is set), a user and a token per role, TRIAL-1 with progression calls
# (S-GROW, S-NEW) and CENTRAL-1 with two reads of S-1.
app, client, database = web_fixtures.app, web_fixtures.client, web_fixtures.database
session, trial, users = web_fixtures.session, web_fixtures.trial, web_fixtures.users
calls, central, world = review_fixtures.calls, review_fixtures.central, review_fixtures.world

CASE = {
    "subject_id": "S-1",
    "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
    "timepoints": [
        {"id": "BL", "date": "2021-01-04", "targets": {"T1": 30.0}},
        {"id": "W8", "date": "2021-03-01", "targets": {"T1": 20.0}},
    ],
}
GOOD = json.dumps(CASE)
DEEP = "[" * 10_000 + "]" * 10_000

# name -> (JSON text, error code, words the message must hold)
HOSTILE: dict[str, tuple[str | bytes, str, tuple[str, ...]]] = {
    "5,000-digit integer": (
        GOOD.replace("30.0", "1" * 5000),
        "number_too_long",
        ("5,000 characters", "limit of 50 characters", "line 1, column"),
    ),
    "10,000-deep nesting": (
        GOOD.replace("30.0", DEEP),
        "json_too_deep",
        ("limit of 64 levels", "line 1, column"),
    ),
    "NaN literal": (GOOD.replace("30.0", "NaN"), "invalid_json", ("NaN", "line 1, column")),
    "Infinity literal": (
        GOOD.replace("30.0", "-Infinity"),
        "invalid_json",
        ("-Infinity", "line 1, column"),
    ),
    "1e400": (GOOD.replace("30.0", "1e400"), "number_out_of_range", ("1e400", "out of range")),
    "duplicate key": (
        GOOD.replace('"T1": 30.0', '"T1": 30.0, "T1": 50.0'),
        "duplicate_key",
        ("duplicate key 'T1'", "line 1, column"),
    ),
    "truncated": (GOOD[:-7], "invalid_json", ("Expecting ',' delimiter", "line 1, column")),
    "invalid UTF-8": (
        GOOD.encode().replace(b"liver", b"liv\xffr"),
        "invalid_json",
        ("not UTF-8", "0xff", "line 1, column"),
    ),
    "unpaired surrogate": (
        GOOD.replace("liver", "\\ud800"),
        "invalid_json",
        ("unpaired surrogate", "line 1, column"),
    ),
}


# ----------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("name", HOSTILE)
def test_loads_refuses_naming_the_limit_and_the_place(name: str) -> None:
    text, code, words = HOSTILE[name]
    with pytest.raises(JsonInputError) as caught:
        loads(text, source="case.json")
    error = caught.value
    assert error.code == code
    assert str(error).startswith("case.json: ")
    for word in words:
        assert word in str(error), (word, str(error))
    assert error.line == 1 and error.column is not None


def test_the_pointer_names_the_value_refused() -> None:
    pointers = {
        "5,000-digit integer": "/timepoints/0/targets/T1",
        "10,000-deep nesting": "/timepoints/0/targets/T1" + "/0" * 60,  # 64 levels
        "NaN literal": "/timepoints/0/targets/T1",
        "duplicate key": "/timepoints/0/targets/T1",
    }
    for name, pointer in pointers.items():
        with pytest.raises(JsonInputError) as caught:
            loads(HOSTILE[name][0])
        assert caught.value.pointer == pointer, name


def test_limits_are_inclusive_and_strings_are_only_strings() -> None:
    for opening, closing in (("[", "]"), ('{"a": [', "]}"), ('[{"a": ', "}]")):
        levels = len(opening.replace('"a": ', ""))
        for depth in (64, 65, 66, 100, 128, 130):
            text = opening * (depth // levels) + "0" + closing * (depth // levels)
            if depth // levels * levels <= 64:
                assert loads(text) is not None
            else:
                with pytest.raises(JsonInputError, match="limit of 64 levels"):
                    loads(text)
    many = "[" + ",".join(["[" * 60 + "]" * 60] * 20_000) + "]"  # wide but not deep
    assert len(loads(many, max_bytes=None)) == 20_000
    assert loads("1" * 50) == int("1" * 50)
    with pytest.raises(JsonInputError, match="limit of 50 characters"):
        loads("1" * 51)
    odd = {"a": "[[[[ NaN Infinity 1e400 " + "9" * 80 + ' \\" {{', "b\\": [1e308, -0.0]}
    assert loads(json.dumps(odd)) == odd
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"  # a surrogate pair is one character
    assert loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a byte order mark is ignored
    assert loads('{"a": {"b": 1}, "b": {"a": 2}}') == {"a": {"b": 1}, "b": {"a": 2}}


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TEXT = st.text(alphabet='[]{}"\\ ,:a\u00e9\U0001f600', max_size=8)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON, max_depth=st.integers(1, 6), ensure_ascii=st.booleans())
def test_the_cheap_pass_never_lets_a_deeper_text_through(
    value: Any, max_depth: int, ensure_ascii: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    if _depth(value) <= max_depth:
        assert loads(text, max_depth=max_depth) == value
    else:
        with pytest.raises(JsonInputError, match=f"limit of {max_depth} levels"):
            loads(text, max_depth=max_depth)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.dictionaries(st.text(max_size=3), _JSON, max_size=3), min_size=2, max_size=4
    ),
    max_depth=st.integers(1, 6),
)
def test_json_lines_are_vouched_for_only_when_no_line_is_too_deep(
    values: list[dict[str, Any]], max_depth: int
) -> None:
    """The depth of JSON Lines is judged line by line (a line's brackets bound its depth):
    the lines go to the one-pass reader only when none nests deeper than the limit."""
    text = "\n".join(json.dumps(value) for value in values) + "\n"
    cases = parse_cases(text, "c.jsonl", max_depth=max_depth)
    assert cases.form == "lines"
    too_deep = any(_depth(value) > max_depth for value in values)
    if too_deep:
        assert cases.checked_lines() is None
    elif not _suspicious_tokens(text.encode(), Limits(max_depth, MAX_NUMBER_CHARS, None)):
        assert cases.checked_lines() is not None  # the depth alone never holds lines back
    for item, value in zip(cases, values, strict=True):
        if _depth(value) > max_depth:
            assert f"limit of {max_depth} levels" in str(item.error)
        else:
            assert item.error is None and item.value == value


def test_many_brackets_on_a_shallow_line_are_walked_not_refused() -> None:
    wide = {"subject_id": "S-[{", "lesions": [[] for _ in range(70)]}  # 141 brackets, depth 3
    deep: Any = {}
    for _ in range(70):
        deep = {"a": deep}
    shallow = parse_cases(json.dumps(wide) + "\n" + json.dumps(wide) + "\n", "w.jsonl")
    assert shallow.checked_lines() is not None
    mixed = parse_cases(json.dumps(wide) + "\n" + json.dumps(deep) + "\n", "m.jsonl")
    assert mixed.checked_lines() is None
    assert [item.error is None for item in mixed] == [True, False]


def test_size_limit_names_the_limit() -> None:
    with pytest.raises(JsonInputError) as caught:
        loads("[" + "0," * 3_000_000 + "0]")
    assert caught.value.code == "payload_too_large"
    assert "limit of 5 MB" in str(caught.value)
    assert loads("[" + "0," * 3_000_000 + "0]", max_bytes=None)[-1] == 0


def test_json_lines_are_scanned_once_and_a_bad_line_is_refused_alone() -> None:
    lines = [GOOD, HOSTILE["10,000-deep nesting"][0], GOOD, GOOD[:-7], GOOD]
    cases = parse_cases("\n".join(str(line) for line in lines) + "\n", "c.jsonl")
    assert cases.form == "lines" and len(cases) == 5
    items = list(cases)
    assert [item.error is None for item in items] == [True, False, True, False, True]
    assert str(items[1].error).startswith("c.jsonl line 2: nesting deeper than the limit of 64")
    assert str(items[3].error).startswith("c.jsonl line 4: malformed JSON: ")
    assert "at column" in str(items[3].error)
    assert items[4].value == CASE


# ----------------------------------------------------------------------------- recist assess


def assess(*args: str, stdin: str | bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "recist", "assess", *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", HOSTILE)
def test_assess_refuses_a_hostile_case_in_one_line(name: str) -> None:
    text, _code, words = HOSTILE[name]
    done = assess("-", stdin=text)
    err = done.stderr.decode()
    assert done.returncode == 2 and done.stdout == b""
    assert err.startswith("recist assess: <stdin>: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_a_hostile_item_of_an_array_refuses_the_array_naming_line_and_column() -> None:
    text = "[\n" + GOOD + ",\n" + GOOD.replace("30.0", "NaN") + "\n]\n"
    done = assess("-", stdin=text)
    err = done.stderr.decode()
    assert done.returncode == 2 and done.stdout == b"" and err.count("\n") == 1
    assert err.startswith("recist assess: <stdin>: malformed JSON: NaN is not a JSON number")
    assert "at line 3, column" in err


def test_assess_survives_a_size_of_1e308_naming_line_and_subject() -> None:
    huge = {**CASE, "subject_id": "S-HUGE"}
    huge["timepoints"] = [{"id": "BL", "date": "2021-01-04", "targets": {"T1": 1e308}}]
    batch = "\n".join([GOOD, json.dumps(huge), GOOD]) + "\n"
    done = assess("-", stdin=batch)
    err = done.stderr.decode()
    assert done.returncode == 2 and done.stdout == b"" and "Traceback" not in err
    assert err.startswith("recist assess: <stdin> line 2: subject S-HUGE") and err.count("\n") == 1
    done = assess("--keep-going", "-", stdin=batch)
    assert done.returncode == 2 and len(done.stdout.splitlines()) == 2
    assert (
        done.stderr.decode().count("\n") == 1 and "line 2: subject S-HUGE" in done.stderr.decode()
    )


@pytest.mark.parametrize("name", HOSTILE)
def test_keep_going_goes_past_a_hostile_line(name: str) -> None:
    text, _code, words = HOSTILE[name]
    bad = text if isinstance(text, bytes) else text.encode()
    batch = b"\n".join([GOOD.encode(), bad, GOOD.encode()]) + b"\n"
    done = assess("--keep-going", "-", stdin=batch)
    err = done.stderr.decode()
    if name == "invalid UTF-8":  # the input as a whole is not text: refused whole
        assert done.returncode == 2 and done.stdout == b""
        assert err.startswith("recist assess: <stdin>: malformed JSON: not UTF-8")
        assert "line 2, column" in err
        return
    assert done.returncode == 2 and "Traceback" not in err
    assert [json.loads(line)["subject_id"] for line in done.stdout.splitlines()] == ["S-1"] * 2
    assert err.startswith("recist assess: <stdin> line 2: ") and err.count("\n") == 1, err
    assert words[0] in err


def test_an_engine_bug_on_one_case_is_one_line_and_keep_going_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import recist.contract
    from recist.cli import main

    real = recist.contract.assess

    # The engine itself fails (both ways a line is read, the one-pass reader of checked
    # JSON Lines and the usual one, assess through it).
    def flaky(case: Any) -> Any:
        if case.subject_id == "S-BUG":
            raise OverflowError("int too large to convert to float")
        return real(case)

    monkeypatch.setattr(recist.contract, "assess", flaky)
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([GOOD, json.dumps({**CASE, "subject_id": "S-BUG"}), GOOD]) + "\n")
    assert main(["assess", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"recist assess: {path} line 2: subject S-BUG: internal error")
    assert "OverflowError: int too large to convert to float" in err
    assert main(["assess", "--keep-going", str(path)]) == 2
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and "line 2: subject S-BUG: internal error" in err


@pytest.mark.parametrize("command", ["export-sdtm", "export-adam", "endpoints", "compare"])
def test_every_cases_command_refuses_hostile_json_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from recist.cli import main

    path = tmp_path / "c.jsonl"
    path.write_text(GOOD + "\n" + str(HOSTILE["10,000-deep nesting"][0]) + "\n")
    args = [command, str(path), "--out", str(tmp_path / "o")]
    if command == "compare":
        (tmp_path / "rs.csv").write_text("USUBJID,RSTESTCD,VISIT,RSEVAL,RSORRES\n")
        args += ["--recorded", str(tmp_path / "rs.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "c.jsonl line 2: nesting deeper than the limit of 64 levels at column" in err, err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- the API


@pytest.fixture
def api(client: FlaskClient, users: dict[str, str]) -> Any:
    """Send a raw body as a role: api("reader", "POST", path, body)."""

    def call(role: str, method: str, path: str, body: str | bytes | dict[str, Any]) -> Any:
        data = json.dumps(body) if isinstance(body, dict) else body
        return client.open(
            "/api/v1" + path,
            method=method,
            headers=bearer(users[role]),
            data=data,
            content_type="application/json",
        )

    return call


def audit_count(session: Session) -> int:
    session.rollback()
    # Clinical records only: access events (token use per route family) are audited too.
    query = select(func.count()).select_from(AuditRecord)
    query = query.where(AuditRecord.entity.not_in(("access", "api_token")))
    return int(session.scalar(query) or 0)


def refusal(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error: dict[str, Any] = response.get_json()["error"]
    assert set(error) >= {"code", "message", "field", "pointer"}
    assert error["code"] == code, error
    return error


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("path", ["/assess", "/trials/TRIAL-1/cases"])
def test_the_api_refuses_hostile_json_with_its_code_and_writes_nothing(
    api: Any, session: Session, trial: str, name: str, path: str
) -> None:
    text, code, words = HOSTILE[name]
    before = audit_count(session)
    error = refusal(api("trial_manager", "POST", path, text), 400, code)
    assert error["message"].startswith("the request body ")
    for word in words:
        assert word in error["message"], (word, error["message"])
    assert audit_count(session) == before
    assert session.scalar(select(func.count()).select_from(Subject)) == 0


def test_the_api_names_where_the_limit_was_broken(api: Any) -> None:
    error = refusal(
        api("reader", "POST", "/assess", HOSTILE["duplicate key"][0]), 400, "duplicate_key"
    )
    assert error["pointer"] == "/timepoints/0/targets/T1" and error["field"] == "T1"
    error = refusal(
        api("reader", "POST", "/assess", HOSTILE["NaN literal"][0]), 400, "invalid_json"
    )
    assert error["pointer"] == "/timepoints/0/targets/T1"


def test_an_oversize_body_is_413_payload_too_large_naming_the_limit(api: Any) -> None:
    error = refusal(api("reader", "POST", "/assess", b"[" + b"0," * 3_000_000 + b"0]"), 413,
                    "payload_too_large")  # fmt: skip
    assert error["message"] == "the request body is larger than the 5 MB limit"


def test_a_nul_character_is_refused_before_anything_is_stored(
    api: Any, session: Session, trial: str
) -> None:
    before = audit_count(session)
    case = {**CASE, "lesions": [{"id": "T1", "site": "liv\u0000er", "kind": "target"}]}
    error = refusal(
        api("trial_manager", "POST", "/trials/TRIAL-1/cases", case), 400, "invalid_input"
    )
    assert error["pointer"] == "/lesions/0/site" and "NUL" in error["message"]
    assert audit_count(session) == before


NOT_TEXT = [7, 1.5, True, ["x"], {"x": 1}]


@pytest.mark.parametrize("value", NOT_TEXT)
def test_a_reason_that_is_not_text_is_refused_on_every_subject_write(
    api: Any, session: Session, trial: str, value: Any
) -> None:
    seed_subject_with_follow_up(session, trial)
    subject = "/trials/TRIAL-1/subjects/S-001"
    row = session.scalar(select(Subject).where(Subject.code == "S-001"))
    assert row is not None
    version = row.version
    writes = [
        ("PATCH", subject, {"arm": "B", "version": version}),
        ("PUT", subject + "/baseline", {"date": "2021-01-04", "lesions": [], "version": 1}),
        ("POST", subject + "/timepoints", {"id": "W16", "date": "2021-05-01", "targets": {}}),
        ("PUT", subject + "/timepoints/W8", {"date": "2021-03-01", "version": 1}),
        ("DELETE", subject + "/timepoints/W8", {"version": 1}),
    ]
    before = audit_count(session)
    for method, path, body in writes:
        role = "trial_manager" if method == "PATCH" else "reader"  # who may write each
        error = refusal(api(role, method, path, {**body, "reason": value}), 400, "invalid_input")
        assert (error["field"], error["pointer"]) == ("reason", "/reason"), (method, path)
        assert error["message"] == f"reason must be a string, not {type(value).__name__}"
    assert audit_count(session) == before
    session.expire_all()
    assert session.scalar(select(Subject.version).where(Subject.code == "S-001")) == version


REVIEW_WRITES = [
    ("reviewer", "/trials/TRIAL-1/progression-calls/S-GROW/review", "comment",
     {"decision": "queried", "comment": "why?", "call": "W16/2021-04-26"}),
    ("reader", "/trials/TRIAL-1/progression-calls/S-NEW/answer", "comment",
     {"comment": "a metastasis", "call": "W8/2021-03-01"}),
    ("adjudicator", "/trials/TRIAL-1/progression-calls/S-GROW/override", "reason",
     {"timepoint": None, "reason": "error", "call": "W16/2021-04-26"}),
    ("reader", "/trials/TRIAL-1/subjects/S-GROW/timepoints/W8/sign", "password",
     {"password": PASSWORD, "meaning": "read complete", "version": 1}),
    ("reader", "/trials/TRIAL-1/subjects/S-GROW/timepoints/W8/sign", "meaning",
     {"password": PASSWORD, "meaning": "read complete", "version": 1}),
    ("adjudicator", "/trials/TRIAL-1/subjects/S-NEW/timepoints/W8/unlock", "reason",
     {"reason": "re-read"}),
    ("adjudicator", "/trials/CENTRAL-1/subjects/S-1/adjudication", "rationale",
     {"accepted": 2, "rationale": "within error", "password": PASSWORD}),
]  # fmt: skip


@pytest.mark.parametrize("value", [7, ["x"], {"x": 1}, "x" * 5000])
def test_review_writes_refuse_a_text_field_that_is_not_text(
    api: Any, session: Session, world: dict[str, Any], value: Any
) -> None:
    before = audit_count(session)
    for role, path, field, body in REVIEW_WRITES:
        error = refusal(api(role, "POST", path, {**body, field: value}), 400, "invalid_input")
        assert (error["field"], error["pointer"]) == (field, f"/{field}"), path
        if isinstance(value, str):
            assert "characters long; at most" in error["message"]
        else:
            assert error["message"] == f"{field} must be a string, not {type(value).__name__}"
    for role, path, _field, _body in REVIEW_WRITES:
        refusal(api(role, "POST", path, DEEP), 400, "json_too_deep")
        refusal(api(role, "POST", path, str(HOSTILE["duplicate key"][0])), 400, "duplicate_key")
    assert audit_count(session) == before


# ----------------------------------------------------------------------------- the pages


def test_the_central_read_form_refuses_hostile_json_on_the_page(
    client: FlaskClient, users: dict[str, str], world: dict[str, Any]
) -> None:
    login(client, "reader")
    page = "/trials/CENTRAL-1/subjects/S-1/central-read"
    for text, words in (
        (json.dumps({"lesions": []}).replace("[]", DEEP), b"the read is refused: nesting deeper"),
        ('{"lesions": [], "lesions": []}', b"the read is refused: duplicate key"),
        ('{"lesions": [', b"the read is not valid JSON (line 1, column 14)"),
    ):
        response = client.post(page, data={"read": text, "action": "check", "password": PASSWORD})
        assert response.status_code == 400 and words in response.data.replace(b"&#39;", b"'")


def test_a_5000_digit_version_on_a_form_is_400_not_500(
    client: FlaskClient, users: dict[str, str], world: dict[str, Any]
) -> None:
    login(client, "reader")
    response = client.post(
        "/trials/TRIAL-1/subjects/S-GROW/timepoints/W8/sign",
        data={"password": PASSWORD, "meaning": "read complete", "version": "1" * 5000},
    )
    assert response.status_code == 400
    assert b"a number in the request cannot be read" in response.data


def test_a_genuine_bug_is_still_a_500_with_the_error_shape(app: Flask) -> None:
    def boom() -> Any:
        raise ZeroDivisionError("a bug")

    def deep() -> Any:
        return json.loads(DEEP)  # JSON read without recist.safejson: still never a 500

    app.add_url_rule("/api/v1/test-boom", "test_boom", boom, methods=["POST"])
    app.add_url_rule("/api/v1/test-deep", "test_deep", deep, methods=["POST"])
    client = app.test_client()
    response = client.post("/api/v1/test-boom", json={})
    assert response.status_code == 500
    assert response.get_json()["error"] == {
        "code": "internal_error",
        "message": "an unexpected error occurred; it was logged",
        "field": None,
        "pointer": None,
    }
    response = client.post("/api/v1/test-deep", json={})
    refusal(response, 400, "json_too_deep")
