"""The bad-input catalogue (issue 11), fed to every entry point systematically.

Every JSON route of ``/api/v1`` that takes a body, every HTML form that posts, the study
upload and ``recist assess`` get a catalogue of malformed, truncated, oversized, deeply
nested, wrongly typed, duplicated-key, NaN/Infinity/huge-number and Unicode-tricky input.
Each must be refused with a clear answer (4xx and the documented error shape for the API,
an error page or the form again for the pages, exit 2 and one line for the CLI), never a
500 or a traceback, and the clinical data and the audit trail stay unchanged. The routes
are read from the application's URL map, so a new route is covered without being listed.

The number of cases per entry point is written to ``test-output/robustness/`` and printed
at the end of the run (``tests/robustness/conftest.py``).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import tests.web.conftest as web_fixtures
from web.models import AuditRecord
from web.testing import bearer, login, seed_subject_with_follow_up

app, client, database = web_fixtures.app, web_fixtures.client, web_fixtures.database
session, trial, users = web_fixtures.session, web_fixtures.trial, web_fixtures.users

COUNTS = Path(__file__).resolve().parents[2] / "test-output" / "robustness"
ROLES = ("admin", "trial_manager", "reader", "adjudicator", "reviewer")

# Raw JSON bodies: (name, bytes). None of them is a valid request of any route.
JSON_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'{"id": "W8", "date": "2021-0'),
    ("not an object", b"[1, 2, 3]"),
    ("a string", b'"W8"'),
    ("null", b"null"),
    ("duplicate keys", b'{"reason": "a", "reason": "b", "version": 1, "version": 2}'),
    ("NaN", b'{"version": NaN, "reason": "x"}'),
    ("Infinity", b'{"targets": {"T01": Infinity}}'),
    ("huge exponent", b'{"targets": {"T01": 1e999}}'),
    ("5000-digit integer", b'{"version": ' + b"9" * 5000 + b"}"),
    ("deep nesting", b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("invalid UTF-8", b'{"reason": "\xff\xfe"}'),
    ("lone surrogate", b'{"reason": "\\ud800", "version": 1}'),
    ("NUL in text", b'{"reason": "a\\u0000b", "id": "W\\u00008"}'),
    ("wrong types", b'{"version": "1", "reason": 7, "date": 20210101, "targets": [],'
                    b' "lesions": {}, "password": 5, "meaning": [], "accepted": "1"}'),
    ("unknown keys only", b'{"\\u202eevil": 1, "__proto__": {}}'),
    # Sign on save (a save's "sign" member): hostile shapes refused before any password.
    ("sign not an object", b'{"version": 1, "sign": "correct horse battery"}'),
    ("sign wrong types", b'{"version": 1, "sign": {"password": 5, "meaning": []}}'),
    ("sign unknown key", b'{"version": 1, "sign": {"password": "x", "\\u202e": 1}}'),
    ("sign nested", b'{"version": 1, "sign": {"password": {"password": [null]}}}'),
    ("sign empty password", b'{"version": 1, "sign": {"password": ""}}'),
    ("oversized", b'{"reason": "' + b"x" * (6 * 1024 * 1024) + b'"}'),
]  # fmt: skip

# Form fields posted to every HTML form: hostile text in every field a form reads.
LONG = "9" * 100_000
FORM_VALUES: list[tuple[str, str]] = [
    ("NUL", "a\x00b"),
    ("100k digits", LONG),
    ("superscript digit", "²"),
    ("RTL override", "W8\u202e"),
    ("NaN", "nan"),
    ("1e308", "1e308"),
    ("negative", "-1"),
    ("markup", "<script>alert(1)</script>"),
]
FORM_FIELDS = (
    "version", "reason", "date", "code", "id", "rows", "size_0", "kind_0", "site_0",
    "code_0", "t_T01_mm", "t_T01_state", "t_T01_fragments", "t_T01_merged", "nt_NT01",
    "new_0_id", "new_0_site", "new_0_sa", "password", "meaning", "comment", "call",
    "decision", "subject_id", "arm", "randomized_on", "died_on", "title", "settings",
    "arms", "accepted", "rationale", "timepoint", "read", "sheet", "username",
    "location_0", "series_0", "image_0", "volume_0", "new_0_location", "new_0_series",
    "new_0_image", "img_T01_series", "img_T01_location", "new_0_state", "new_0_category",
    "sign_on_save", "sign_password", "folder", "s_elig_sites", "s_elig_max_lesions",
    "s_elig_excluded_sites", "cell_T01_0", "visit_0", "date_0",
)  # fmt: skip


def _record(name: str, counts: dict[str, int]) -> None:
    COUNTS.mkdir(parents=True, exist_ok=True)
    (COUNTS / f"{name}.json").write_text(json.dumps(counts, indent=1, sort_keys=True))


def _clinical(session: Session) -> int:
    session.rollback()
    query = select(func.count()).select_from(AuditRecord)
    return int(session.scalar(query.where(AuditRecord.entity.not_in(("access", "api_token")))))


def _url(rule: Any, trial_code: str) -> str:
    values = {
        "trial_code": trial_code,
        "subject_code": "S-001",
        "tp_code": "W8",
        "kind": "waterfall",
        "domain": "adrs",
        "token_id": "1",
        "job_id": "1",
    }
    template = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)  # <int:job_id> too
    return template.format(**{arg: values.get(arg, "x") for arg in rule.arguments})


def _routes(flask_app: Flask, *, api: bool) -> list[tuple[str, str, str]]:
    """(endpoint, method, url template) of every route that takes a body."""
    out = []
    for rule in flask_app.url_map.iter_rules():
        is_api = rule.endpoint.startswith("api.")
        if is_api != api or rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            out.append((rule.endpoint, method, rule))
    return out


def test_every_api_route_refuses_the_catalogue(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    seed_subject_with_follow_up(session, trial)
    api = app.test_client()
    counts: dict[str, int] = {}
    before = _clinical(session)
    for endpoint, method, rule in _routes(app, api=True):
        url = _url(rule, trial)
        # The first role the route lets in: the catalogue must reach the body's reader.
        role = next(
            (
                r
                for r in ROLES
                if api.open(url, method=method, headers=bearer(users[r]), json={}).status_code
                not in (401, 403)
            ),
            None,
        )
        if role is None:  # pragma: no cover - every write route admits some role
            continue
        for name, body in JSON_BODIES:
            response = api.open(
                url,
                method=method,
                headers={**bearer(users[role]), "Content-Type": "application/json"},
                data=body,
            )
            where = f"{method} {url} ({endpoint}) with {name}"
            assert 400 <= response.status_code < 500, f"{where}: {response.status_code}"
            error = response.get_json()["error"]
            assert error["code"] and error["message"], where
            assert len(error["message"]) < 2000, where  # echoed input is cut
            counts[f"{method} {rule.rule}"] = counts.get(f"{method} {rule.rule}", 0) + 1
    assert _clinical(session) == before  # nothing written by any refused request
    assert len(counts) >= 15
    _record("api", counts)


def test_every_form_refuses_hostile_fields_without_a_500(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    seed_subject_with_follow_up(session, trial)
    counts: dict[str, int] = {}
    clients = {}
    for role in ROLES:
        clients[role] = app.test_client()
        login(clients[role], role)
    before = _clinical(session)
    for endpoint, method, rule in _routes(app, api=False):
        if endpoint in ("auth.logout", "auth.login"):
            continue  # covered below (they end or start the session used here)
        url = _url(rule, trial)
        role = next(
            (r for r in ROLES if clients[r].open(url, method=method, data={}).status_code != 403),
            None,
        )
        if role is None:
            continue
        for name, value in FORM_VALUES:
            data = {field: value for field in FORM_FIELDS}
            response = clients[role].open(url, method=method, data=data)
            where = f"{method} {url} ({endpoint}) with {name}"
            assert response.status_code < 500, f"{where}: {response.status_code}"
            if response.status_code >= 400:
                assert "Traceback" not in response.get_data(as_text=True), where
            counts[f"{method} {rule.rule}"] = counts.get(f"{method} {rule.rule}", 0) + 1
    for name, value in FORM_VALUES:
        response = app.test_client().post("/login", data={"username": value, "password": value})
        assert response.status_code < 500, f"login with {name}"
        counts["POST /login"] = counts.get("POST /login", 0) + 1
    assert _clinical(session) == before
    assert len(counts) >= 10
    _record("forms", counts)


def test_the_upload_refuses_what_is_not_a_study(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    seed_subject_with_follow_up(session, trial)
    reader = app.test_client()
    login(reader, "reader")
    url = f"/trials/{trial}/subjects/S-001/upload"
    uploads = [
        ("empty file", b""),
        ("random bytes", bytes(range(256)) * 40),
        ("truncated zip", b"PK\x03\x04" + b"\x00" * 50),
        ("JSON", b'{"not": "a zip"}'),
        ("NUL name", b"PK\x05\x06" + b"\x00" * 18),
    ]
    before = _clinical(session)
    for name, payload in uploads:
        response = reader.post(
            url,
            data={"study": (io.BytesIO(payload), f"study-{name}.zip")},
            content_type="multipart/form-data",
        )
        assert 400 <= response.status_code < 500, f"upload {name}: {response.status_code}"
        assert "Traceback" not in response.get_data(as_text=True)
    assert _clinical(session) == before
    _record("upload", {f"POST {url.replace(trial, '<trial>')}": len(uploads)})


def test_recist_assess_refuses_the_catalogue_in_one_line() -> None:
    counts = {"recist assess": 0}
    for name, body in JSON_BODIES:
        if name == "oversized":
            continue  # a 6 MB case file is a valid size for the CLI; it is malformed JSON
        run = subprocess.run(
            [sys.executable, "-m", "recist", "assess", "-"],
            input=body,
            capture_output=True,
            check=False,
        )
        err = run.stderr.decode("utf-8", "replace")
        assert run.returncode == 2, f"{name}: exit {run.returncode}"
        assert run.stdout == b"", name
        assert err.count("\n") == 1 and "Traceback" not in err, f"{name}: {err}"
        counts["recist assess"] += 1
    _record("cli", counts)
