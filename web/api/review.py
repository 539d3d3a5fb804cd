"""``/api/v1`` routes of the review issue: signing reads, the progression-call review queue,
central-review adjudication and the audit trail.

Each route calls the same service function as its page in :mod:`web.review` and needs the
same permission (:data:`web.auth.PERMISSIONS`), so the API can do nothing a person could
not do on the page. Every write is one transaction of the service layer, audited there.

Signing through an API token still needs the signer's password in the body: the token says
who sent the request, the re-entered password is the signature (21 CFR 11.200(a)).

Readers of a blinded central-review trial get 403 from all of these routes (the
``before_request`` guard of :mod:`web.auth`); the central-review routes here are for the
roles that oversee the reads (overview) and for adjudicators (adjudication).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flask import jsonify, request, url_for

from web.api import _body, _text_field, bp
from web.auth import actor, refuse_if_blinded, requires
from web.models import AuditRecord, CentralRead, ProgressionReview, Timepoint
from web.services import (
    InvalidInput,
    NotFound,
    ServiceError,
    get_subject,
    get_timepoint,
    get_trial,
    request_session,
)
from web.services.audit import ACTIONS, AuditFilter, canonical_time, search, verify_chain
from web.services.central import adjudicate, metrics, overview
from web.services.progression import (
    QueueRow,
    answer_query,
    override_call,
    queue,
    review_call,
    subject_row,
)
from web.services.signing import sign_timepoint, unlock_timepoint

CALLS = "/trials/<trial_code>/progression-calls"
CALL = CALLS + "/<subject_code>"
TIMEPOINT = "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>"

# The audit search answers the newest records first; ``limit`` pages through no further
# (narrow the dates to see older records).
AUDIT_DEFAULT_LIMIT = 500
AUDIT_MAX_LIMIT = 5000
AUDIT_PARAMETERS = ("user", "entity", "action", "from", "to", "limit")


# ----------------------------------------------------------------------------- requests


def _body_with(*keys: str) -> dict[str, Any]:
    """The JSON body, refusing any key but ``keys`` (a misspelt key is never ignored)."""
    body = _body()
    extra = sorted(set(body) - set(keys))
    if extra:
        raise InvalidInput(
            f"unknown key {extra[0]!r}; this request takes {', '.join(keys)}",
            field=extra[0],
            pointer=f"/{extra[0]}",
        )
    return body


def _text(body: dict[str, Any], name: str) -> str:
    """A string member of the body, ``""`` when absent (the service says what is missing);
    anything but a string is refused naming the member (:func:`web.api._text_field`)."""
    return _text_field(body, name) or ""


def _seen_call(body: dict[str, Any]) -> str:
    """The call the client reviewed (``"W16/2021-04-26"``, the queue's ``call``)."""
    seen = _text(body, "call")
    if not seen:
        raise InvalidInput(
            "send the call you reviewed (the queue's 'call', e.g. \"W16/2021-04-26\") so "
            "that a call that changed since is detected",
            field="call",
            pointer="/call",
        )
    return seen


@contextmanager
def _pointing_into(keys: tuple[str, ...]) -> Iterator[None]:
    """Give a service error that names a member of the request its JSON pointer.

    The review services name the form field (``comment``, ``reason``…) but do not know
    the request is JSON; the field names are the body's keys (present or missing).
    """
    try:
        yield
    except ServiceError as error:
        if error.pointer is None and error.field in keys:
            error.pointer = f"/{error.field}"
        raise


def _utc(at: datetime | None) -> str | None:
    return None if at is None else canonical_time(at)


# ----------------------------------------------------------------------------- progression


def _review_json(review: ProgressionReview) -> dict[str, Any]:
    return {
        "action": review.action,
        "comment": review.comment,
        "by": review.username,
        "role": review.role,
        "at": _utc(review.at),
        "call": {
            "timepoint": review.engine_timepoint,
            "date": review.engine_date.isoformat(),
            "rule": review.engine_rule,
        },
        "override_timepoint": review.override_timepoint,
        "override_date": review.override_date.isoformat() if review.override_date else None,
    }


def _call_json(row: QueueRow) -> dict[str, Any]:
    call = row.call
    trial_code = row.subject.trial.code
    return {
        "subject_id": row.subject.code,
        "call": f"{call.timepoint}/{call.date.isoformat()}",
        "engine_call": {
            "timepoint": call.timepoint,
            "date": call.date.isoformat(),
            "rule": call.rule,
            "rule_fired": call.label,
            "back_dated": call.back_dated,
            "numbers": call.numbers,
            "reasons": call.reasons,
        },
        "used_call": row.used,
        "reader": row.reader,
        "signed": row.signed_by is not None,
        "signed_by": row.signed_by,
        "review_state": row.state,
        "latest_review": _review_json(row.latest) if row.latest else None,
        "history": [_review_json(r) for r in row.history],
        "url": url_for(
            "api.progression_call", trial_code=trial_code, subject_code=row.subject.code
        ),
    }


def _current_row(trial_code: str, subject_code: str) -> dict[str, Any]:
    session = request_session()
    session.expire_all()
    subject = get_subject(session, trial_code, subject_code)
    refuse_if_blinded(subject.trial)
    row = subject_row(session, subject)
    if row is None:
        raise NotFound(
            f"subject {subject_code} has no progression call: the engine calls no PD",
            field="subject",
        )
    return _call_json(row)


@bp.route(CALLS, methods=["GET"])
@requires("view")
def progression_calls(trial_code: str) -> Any:
    """Every PD call of the trial: rule fired, numbers, reader, sign-off, review state, and
    the call used for analysis beside the engine's."""
    session = request_session()
    trial = get_trial(session, trial_code)
    refuse_if_blinded(trial)
    return jsonify({"progression_calls": [_call_json(row) for row in queue(session, trial)]})


@bp.route(CALL, methods=["GET"])
@requires("view")
def progression_call(trial_code: str, subject_code: str) -> Any:
    return jsonify(_current_row(trial_code, subject_code))


@bp.route(CALL + "/review", methods=["POST"])
@requires("review_calls")
def progression_review(trial_code: str, subject_code: str) -> Any:
    """``{decision: agreed|queried, comment, call}``; a query needs a comment."""
    keys = ("decision", "comment", "call")
    body = _body_with(*keys)
    with _pointing_into(keys):
        review_call(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            decision=_text(body, "decision"),
            comment=_text(body, "comment"),
            seen_call=_seen_call(body),
        )
    return jsonify(_current_row(trial_code, subject_code))


@bp.route(CALL + "/answer", methods=["POST"])
@requires("answer_queries")
def progression_answer(trial_code: str, subject_code: str) -> Any:
    """``{comment, call}``: the reader's answer to the open query on the call."""
    keys = ("comment", "call")
    body = _body_with(*keys)
    with _pointing_into(keys):
        answer_query(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            comment=_text(body, "comment"),
            seen_call=_seen_call(body),
        )
    return jsonify(_current_row(trial_code, subject_code))


@bp.route(CALL + "/override", methods=["POST"])
@requires("override_calls")
def progression_override(trial_code: str, subject_code: str) -> Any:
    """``{timepoint: follow-up id | null, reason, call}``: an adjudicator replaces the call
    used for analysis (``null``: no progression); the engine's call is kept beside it."""
    keys = ("timepoint", "reason", "call")
    body = _body_with(*keys)
    if "timepoint" not in body:
        raise InvalidInput(
            "timepoint is required: the follow-up progression is called at, or null for no "
            "progression",
            field="timepoint",
            pointer="/timepoint",
        )
    with _pointing_into(keys):
        override_call(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            timepoint=_text(body, "timepoint") or None,
            reason=_text(body, "reason"),
            seen_call=_seen_call(body),
        )
    return jsonify(_current_row(trial_code, subject_code))


# ----------------------------------------------------------------------------- signing


def _signature_json(trial_code: str, subject_code: str, tp: Timepoint) -> dict[str, Any]:
    return {
        "subject_id": subject_code,
        "timepoint": tp.code,
        "version": tp.version,
        "locked": tp.locked,
        "signed_by": tp.signed_by,
        "signed_at": _utc(tp.signed_at),
        "meaning": tp.sign_meaning,
        "url": url_for(
            "api.timepoint", trial_code=trial_code, subject_code=subject_code, tp_code=tp.code
        ),
    }


def _signature_of(trial_code: str, subject_code: str, tp_code: str) -> dict[str, Any]:
    session = request_session()
    session.expire_all()
    tp = get_timepoint(get_subject(session, trial_code, subject_code), tp_code)
    return _signature_json(trial_code, subject_code, tp)


@bp.route(TIMEPOINT + "/signature", methods=["GET"])
@requires("view")
def signature(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """Whether the read is signed and locked, by whom, when (UTC) and with what meaning."""
    return jsonify(_signature_of(trial_code, subject_code, tp_code))


@bp.route(TIMEPOINT + "/sign", methods=["POST"])
@requires("sign_reads")
def sign(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """``{password, meaning: "read complete", version}``: sign the read and lock it.

    The password is checked even though the token authenticated the request: it is the
    signature's second component, entered again for this signing.
    """
    keys = ("password", "meaning", "version")
    body = _body_with(*keys)
    version = body.get("version")
    with _pointing_into(keys):
        sign_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            password=_text(body, "password"),
            meaning=_text(body, "meaning"),
            expected_version=version,
        )
    return jsonify(_signature_of(trial_code, subject_code, tp_code))


@bp.route(TIMEPOINT + "/unlock", methods=["POST"])
@requires("unlock_reads")
def unlock(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """``{reason}``: withdraw the signature so that the read can be corrected."""
    keys = ("reason",)
    body = _body_with(*keys)
    with _pointing_into(keys):
        unlock_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            reason=_text(body, "reason"),
        )
    return jsonify(_signature_of(trial_code, subject_code, tp_code))


# ----------------------------------------------------------------------------- audit


def _record_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": _utc(record.at),
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


def _audit_query() -> tuple[AuditFilter, int]:
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


def _audit(key: str) -> Any:
    filters, limit = _audit_query()
    records = search(request_session(), key, filters, limit=limit + 1)
    return jsonify(
        {
            "scope": key,
            "filters": filters.as_args(),
            "records": [_record_json(r) for r in records[:limit]],
            "truncated": len(records) > limit,
        }
    )


@bp.route("/trials/<trial_code>/audit", methods=["GET"])
@requires("view_audit")
def trial_audit(trial_code: str) -> Any:
    """The trial's audit records, newest first, filtered like the audit page."""
    return _audit(get_trial(request_session(), trial_code).code)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/audit", methods=["GET"])
@requires("view_audit")
def subject_audit(trial_code: str, subject_code: str) -> Any:
    """The subject's audit records (its lesions, timepoints, measurements, reviews…)."""
    subject = get_subject(request_session(), trial_code, subject_code)
    return _audit(f"{subject.trial.code}/{subject.code}")


@bp.route("/audit/verify", methods=["GET"])
@requires("view_audit")
def audit_verify() -> Any:
    """Walk the whole hash chain (as ``recist audit verify``) and report the first break."""
    report = verify_chain(request_session().connection())
    return jsonify(
        {
            "intact": report.intact,
            "records": report.records,
            "last_hash": report.last_hash,
            "problem": report.problem,
            "broken_seq": report.broken_seq,
        }
    )


# ----------------------------------------------------------------------------- central review


def _read_summary(read: CentralRead) -> dict[str, Any]:
    return {
        "read": read.slot,
        "reader": read.reader,
        "signed_at": _utc(read.signed_at),
        "accepted": read.accepted,
        "best_overall_response": read.result_json.get("best_overall_response"),
        "progression": read.result_json.get("progression"),
    }


def _central_json(row: Any, *, full: bool) -> dict[str, Any]:
    adjudication = row.adjudication
    reads = []
    for read in row.reads:
        item = _read_summary(read)
        if full:
            item["lesions"] = read.case_json.get("lesions")
            item["timepoints"] = read.case_json.get("timepoints")
            item["result"] = read.result_json
        reads.append(item)
    return {
        "subject_id": row.subject.code,
        "state": row.state,
        "disagreement": row.disagreement,
        "reads": reads,
        "adjudication": None
        if adjudication is None
        else {
            "accepted_read": adjudication.accepted_slot,
            "rationale": adjudication.rationale,
            "adjudicator": adjudication.adjudicator,
            "signed_at": _utc(adjudication.signed_at),
            "disagreement": adjudication.disagreement,
        },
    }


def _central_row(trial_code: str, subject_code: str) -> Any:
    session = request_session()
    session.expire_all()
    trial = get_trial(session, trial_code)
    subject = get_subject(session, trial_code, subject_code)
    return next(r for r in overview(session, trial) if r.subject.id == subject.id)


@bp.route("/trials/<trial_code>/central-review", methods=["GET"])
@requires("view_audit")
def central_review(trial_code: str) -> Any:
    """Every subject's reads (reader, BOR, progression, accepted), disagreement and
    adjudication, with the adjudication rate and each reader's adjudications won and lost."""
    session = request_session()
    trial = get_trial(session, trial_code)
    rows = overview(session, trial)
    return jsonify(
        {
            "central_review": trial.central_review,
            "subjects": [_central_json(row, full=False) for row in rows],
            "metrics": metrics(rows),
        }
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/central-review", methods=["GET"])
@requires("view_audit")
def central_review_subject(trial_code: str, subject_code: str) -> Any:
    """Both reads of a subject in full (lesions, timepoints, engine result), side by side."""
    return jsonify(_central_json(_central_row(trial_code, subject_code), full=True))


@bp.route("/trials/<trial_code>/subjects/<subject_code>/adjudication", methods=["POST"])
@requires("adjudicate")
def adjudication(trial_code: str, subject_code: str) -> Any:
    """``{accepted: 1|2, rationale, password}``: accept one of two disagreeing reads, signed
    with the adjudicator's password."""
    keys = ("accepted", "rationale", "password")
    body = _body_with(*keys)
    slot = body.get("accepted")
    with _pointing_into(keys):
        adjudicate(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            accepted_slot=slot if isinstance(slot, int) and not isinstance(slot, bool) else None,
            rationale=_text(body, "rationale"),
            password=_text(body, "password"),
        )
    return jsonify(_central_json(_central_row(trial_code, subject_code), full=False))
