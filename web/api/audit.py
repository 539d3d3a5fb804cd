"""The audit trail: a trial's or a subject's records, filtered like the audit page, and
verification of the whole hash chain."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from web.api.blueprint import bp
from web.api.common import SUBJECT, utc
from web.auth import requires
from web.services import InvalidInput, request_session
from web.services.audit import ACTIONS, AuditFilter, search, verify_trail
from web.services.audit_replay import reconcile
from web.services.common import get_subject, get_trial

# The audit search answers the newest records first; ``limit`` pages through no further
# (narrow the dates to see older records).
AUDIT_DEFAULT_LIMIT = 500
AUDIT_MAX_LIMIT = 5000
AUDIT_PARAMETERS = ("user", "entity", "action", "from", "to", "limit")


def record_json(record: Any) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": utc(record.at),
        "user": record.username,
        "action": record.action,
        "entity": record.entity,
        "entity_key": record.entity_key,
        "field": record.field,
        "old": record.old,
        "new": record.new,
        "reason": record.reason,
        "hash": record.hash,
    }


def audit_query() -> tuple[AuditFilter, int]:
    """The filters and limit from the query string, refusing unknown parameters."""
    args = request.args
    unknown = sorted(set(args) - set(AUDIT_PARAMETERS))
    if unknown:
        raise InvalidInput(
            f"unknown query parameter {unknown[0]!r}; the audit search takes "
            f"{', '.join(AUDIT_PARAMETERS)} (dates as YYYY-MM-DD, UTC)",
            field=unknown[0],
        )
    try:
        filters = AuditFilter.from_args(args)
    except ValueError as error:
        raise InvalidInput(str(error), field=str(error).split(":")[0]) from None
    if filters.action and filters.action not in ACTIONS:
        raise InvalidInput(
            f"action {filters.action!r} is not one of: {', '.join(ACTIONS)}", field="action"
        )
    raw = args.get("limit", "").strip()
    if not raw:
        return filters, AUDIT_DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= AUDIT_MAX_LIMIT:
        raise InvalidInput(
            f"limit {raw!r} is not a whole number from 1 to {AUDIT_MAX_LIMIT}", field="limit"
        )
    return filters, int(raw)


def audit_records(key: str) -> Any:
    """The records of ``key`` and everything under it, newest first, as JSON."""
    filters, limit = audit_query()
    records = search(request_session(), key, filters, limit=limit + 1)
    return jsonify(
        {
            "scope": key,
            "filters": filters.as_args(),
            "records": [record_json(r) for r in records[:limit]],
            "truncated": len(records) > limit,
        }
    )


@bp.route("/trials/<trial_code>/audit", methods=["GET"])
@requires("view_audit")
def trial_audit(trial_code: str) -> Any:
    """The trial's audit records, newest first, filtered like the audit page."""
    return audit_records(get_trial(request_session(), trial_code).code)


@bp.route(SUBJECT + "/audit", methods=["GET"])
@requires("view_audit")
def subject_audit(trial_code: str, subject_code: str) -> Any:
    """The subject's audit records (its lesions, timepoints, measurements, reviews…)."""
    subject = get_subject(request_session(), trial_code, subject_code)
    return audit_records(f"{subject.trial.code}/{subject.code}")


@bp.route("/audit/verify", methods=["GET"])
@requires("view_audit")
def audit_verify() -> Any:
    """Walk the whole hash chain (as ``recist audit verify``) and report the first break;
    then replay the trail against the data (measurements, locks, signatures, central
    review, cached results) and report the first difference. Anchors are checked by
    ``recist audit verify --anchors``: their key is kept away from the application."""
    session = request_session()
    report = verify_trail(session)
    agreed = reconcile(session)
    return jsonify(
        {
            "intact": report.intact,
            "records": report.records,
            "last_hash": report.last_hash,
            "problem": report.problem,
            "broken_seq": report.broken_seq,
            "reconciliation": {
                "agree": agreed.agree,
                "subjects": agreed.subjects,
                "measurements": agreed.measurements,
                "signatures": agreed.signatures,
                "central_reads": agreed.central_reads,
                "differences": len(agreed.differences),
                "problem": agreed.problem,
            },
        }
    )
