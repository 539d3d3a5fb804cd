"""Access events have a page of their own (issue 11): administrators see logins, logouts,
failed logins and token use, filter them and download them; nobody else may."""

from __future__ import annotations

import csv
import io

from flask import Flask

from web.testing import bearer, login


def test_an_admin_sees_logins_failures_and_token_use_and_downloads_them(
    app: Flask, users: dict[str, str], trial: str
) -> None:
    reader = app.test_client()
    login(reader, "reader", "Tr0ub4dor-guess")
    login(reader, "reader")
    reader.post("/logout")
    reader.get(f"/api/v1/trials/{trial}", headers=bearer(users["reader"]))
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get("/access").data.decode()
    assert 'id="access-link"' in page
    for action in ("login_failed", "login", "logout", "use"):
        assert f'class="action-{action}"' in page, action
    assert "Tr0ub4dor" not in page  # the password tried is never recorded
    only = admin.get("/access?user=reader&action=login_failed").data.decode()
    assert only.count('class="action-login_failed"') == 1
    assert 'class="action-login"' not in only
    tokens = admin.get("/access?entity=api_token").data.decode()
    assert 'class="action-use"' in tokens and 'class="action-login"' not in tokens
    exported = admin.get("/access?download=csv&user=reader")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.data.decode())))
    assert {r["action"] for r in rows} >= {"login_failed", "login", "logout"}
    assert admin.get("/access?from=2026-13-01").status_code == 400


def test_only_administrators_open_the_access_events(
    app: Flask, users: dict[str, str]
) -> None:
    for role in ("reader", "adjudicator", "trial_manager", "reviewer"):
        client = app.test_client()
        login(client, role)
        assert client.get("/access").status_code == 403, role
        assert 'id="access-link"' not in client.get("/").data.decode()
