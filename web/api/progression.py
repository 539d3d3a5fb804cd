"""Review of progression calls: the queue of PD calls, one subject's call with its review
history, and agreeing, querying, answering and overriding a call.

Each route calls the same service function as its page and needs the same permission
(:data:`web.auth.PERMISSIONS`). Readers of a blinded central-review trial get 403 (the
``before_request`` guard of :mod:`web.auth`, and :func:`web.auth.refuse_if_blinded` here).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, url_for

from web.api.blueprint import bp
from web.api.body import body_with, pointing_into, text
from web.api.common import utc
from web.auth import actor, refuse_if_blinded, requires
from web.services import InvalidInput, request_session
from web.services.common import get_trial, reload_subject
from web.services.progression import (
    QueueRow,
    answer_query,
    override_call,
    queue,
    review_call,
    subject_call,
)

CALLS = "/trials/<trial_code>/progression-calls"
CALL = CALLS + "/<subject_code>"


def seen_call(body: dict[str, Any]) -> str:
    """The call the client reviewed (``"W16/2021-04-26"``, the queue's ``call``)."""
    seen = text(body, "call")
    if not seen:
        raise InvalidInput(
            "send the call you reviewed (the queue's 'call', e.g. \"W16/2021-04-26\") so "
            "that a call that changed since is detected",
            field="call",
            pointer="/call",
        )
    return seen


def review_json(review: Any) -> dict[str, Any]:
    return {
        "action": review.action,
        "comment": review.comment,
        "by": review.username,
        "role": review.role,
        "at": utc(review.at),
        "call": {
            "timepoint": review.engine_timepoint,
            "date": review.engine_date.isoformat(),
            "rule": review.engine_rule,
        },
        "override_timepoint": review.override_timepoint,
        "override_date": review.override_date.isoformat() if review.override_date else None,
    }


def call_json(row: QueueRow) -> dict[str, Any]:
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
        "latest_review": review_json(row.latest) if row.latest else None,
        "history": [review_json(r) for r in row.history],
        "url": url_for(
            "api.progression_call", trial_code=trial_code, subject_code=row.subject.code
        ),
    }


def current_call(trial_code: str, subject_code: str) -> dict[str, Any]:
    """The subject's call as committed now (after a review of this request)."""
    session = request_session()
    subject = reload_subject(session, trial_code, subject_code)
    refuse_if_blinded(subject.trial)
    return call_json(subject_call(session, subject))


@bp.route(CALLS, methods=["GET"])
@requires("view")
def progression_calls(trial_code: str) -> Any:
    """Every PD call of the trial: rule fired, numbers, reader, sign-off, review state, and
    the call used for analysis beside the engine's."""
    session = request_session()
    trial = get_trial(session, trial_code)
    refuse_if_blinded(trial)
    return jsonify({"progression_calls": [call_json(row) for row in queue(session, trial)]})


@bp.route(CALL, methods=["GET"])
@requires("view")
def progression_call(trial_code: str, subject_code: str) -> Any:
    return jsonify(current_call(trial_code, subject_code))


@bp.route(CALL + "/review", methods=["POST"])
@requires("review_calls")
def progression_review(trial_code: str, subject_code: str) -> Any:
    """``{decision: agreed|queried, comment, call}``; a query needs a comment."""
    keys = ("decision", "comment", "call")
    body = body_with(*keys)
    with pointing_into(keys):
        review_call(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            decision=text(body, "decision"),
            comment=text(body, "comment"),
            seen_call=seen_call(body),
        )
    return jsonify(current_call(trial_code, subject_code))


@bp.route(CALL + "/answer", methods=["POST"])
@requires("answer_queries")
def progression_answer(trial_code: str, subject_code: str) -> Any:
    """``{comment, call}``: the reader's answer to the open query on the call."""
    keys = ("comment", "call")
    body = body_with(*keys)
    with pointing_into(keys):
        answer_query(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            comment=text(body, "comment"),
            seen_call=seen_call(body),
        )
    return jsonify(current_call(trial_code, subject_code))


@bp.route(CALL + "/override", methods=["POST"])
@requires("override_calls")
def progression_override(trial_code: str, subject_code: str) -> Any:
    """``{timepoint: follow-up id | null, reason, call}``: an adjudicator replaces the call
    used for analysis (``null``: no progression); the engine's call is kept beside it."""
    keys = ("timepoint", "reason", "call")
    body = body_with(*keys)
    if "timepoint" not in body:
        raise InvalidInput(
            "timepoint is required: the follow-up progression is called at, or null for no "
            "progression",
            field="timepoint",
            pointer="/timepoint",
        )
    with pointing_into(keys):
        override_call(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            timepoint=text(body, "timepoint") or None,
            reason=text(body, "reason"),
            seen_call=seen_call(body),
        )
    return jsonify(current_call(trial_code, subject_code))
