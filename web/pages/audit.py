"""Audit trail pages and their CSV exports."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    render_template,
    request,
)

from web.auth import requires
from web.pages import review as bp
from web.services import InvalidInput, get_subject, get_trial, request_session
from web.services.audit import (
    ACCESS_ENTITIES,
    ACTIONS,
    AuditFilter,
    access_events,
    entities,
    search,
    to_csv,
)

# The page shows the newest records; the CSV export has them all.
PAGE_LIMIT = 500


def _filters() -> AuditFilter:
    try:
        return AuditFilter.from_args(request.args)
    except ValueError as error:
        raise InvalidInput(str(error), field=str(error).split(":")[0]) from None


def _audit_scope(trial_code: str, subject_code: str | None) -> tuple[Any, Any, str]:
    session = request_session()
    trial = get_trial(session, trial_code)
    if subject_code is None:
        return trial, None, trial.code
    subject = get_subject(session, trial_code, subject_code)
    return trial, subject, f"{trial.code}/{subject.code}"


@bp.route("/trials/<trial_code>/audit")
@requires("view_audit")
def trial_audit(trial_code: str) -> Any:
    return _audit_page(trial_code, None)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/audit")
@requires("view_audit")
def subject_audit(trial_code: str, subject_code: str) -> Any:
    return _audit_page(trial_code, subject_code)


def _audit_page(trial_code: str, subject_code: str | None) -> Any:
    filters = _filters()
    trial, subject, key = _audit_scope(trial_code, subject_code)
    session = request_session()
    records = search(session, key, filters, limit=PAGE_LIMIT + 1)
    return render_template(
        "review/audit.html",
        trial=trial,
        subject=subject,
        records=records[:PAGE_LIMIT],
        truncated=len(records) > PAGE_LIMIT,
        filters=filters,
        args=filters.as_args(),
        actions=ACTIONS,
        entities=entities(session),
    )


@bp.route("/trials/<trial_code>/audit.csv")
@requires("view_audit")
def trial_audit_csv(trial_code: str) -> Any:
    return _audit_csv(trial_code, None)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/audit.csv")
@requires("view_audit")
def subject_audit_csv(trial_code: str, subject_code: str) -> Any:
    return _audit_csv(trial_code, subject_code)


def _audit_csv(trial_code: str, subject_code: str | None) -> Any:
    filters = _filters()
    _trial, _subject, key = _audit_scope(trial_code, subject_code)
    body = to_csv(search(request_session(), key, filters, limit=None))
    name = key.replace("/", "_") + "_audit.csv"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/access")
@requires("manage_users")
def access_log() -> Any:
    """Access events for administrators: logins, logouts, failed logins, sessions ended,
    API tokens created, revoked and used (with ``.csv`` export: ``?download=csv``)."""
    filters = _filters()
    session = request_session()
    if request.args.get("download") == "csv":
        return Response(
            to_csv(access_events(session, filters, limit=None)),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="access_events.csv"'},
        )
    records = access_events(session, filters, limit=PAGE_LIMIT + 1)
    return render_template(
        "review/access.html",
        records=records[:PAGE_LIMIT],
        truncated=len(records) > PAGE_LIMIT,
        filters=filters,
        args=filters.as_args(),
        entities=ACCESS_ENTITIES,
    )
