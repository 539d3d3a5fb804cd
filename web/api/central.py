"""Independent central review: the overview of every subject's reads with the reader
metrics, one subject's reads in full, and adjudication of two disagreeing reads.

These routes are for the roles that oversee the reads (overview) and for adjudicators
(adjudication); readers of a blinded central-review trial get 403 (the ``before_request``
guard of :mod:`web.auth`).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api.blueprint import bp
from web.api.body import body_with, pointing_into, text
from web.api.common import SUBJECT, utc
from web.auth import actor, requires
from web.services import request_session
from web.services.central import SubjectReview, adjudicate, metrics, overview, subject_review
from web.services.common import get_trial


def read_summary(read: Any) -> dict[str, Any]:
    return {
        "read": read.slot,
        "reader": read.reader,
        "signed_at": utc(read.signed_at),
        "accepted": read.accepted,
        "best_overall_response": read.result_json.get("best_overall_response"),
        "progression": read.result_json.get("progression"),
    }


def central_json(row: SubjectReview, *, full: bool) -> dict[str, Any]:
    adjudication = row.adjudication
    reads = []
    for read in row.reads:
        item = read_summary(read)
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
            "signed_at": utc(adjudication.signed_at),
            "disagreement": adjudication.disagreement,
        },
    }


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
            "subjects": [central_json(row, full=False) for row in rows],
            "metrics": metrics(rows),
        }
    )


@bp.route(SUBJECT + "/central-review", methods=["GET"])
@requires("view_audit")
def central_review_subject(trial_code: str, subject_code: str) -> Any:
    """Both reads of a subject in full (lesions, timepoints, engine result), side by side."""
    row = subject_review(request_session(), trial_code, subject_code)
    return jsonify(central_json(row, full=True))


@bp.route(SUBJECT + "/adjudication", methods=["POST"])
@requires("adjudicate")
def adjudication(trial_code: str, subject_code: str) -> Any:
    """``{accepted: 1|2, rationale, password}``: accept one of two disagreeing reads, signed
    with the adjudicator's password."""
    keys = ("accepted", "rationale", "password")
    body = body_with(*keys)
    slot = body.get("accepted")
    with pointing_into(keys):
        adjudicate(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            accepted_slot=slot if isinstance(slot, int) and not isinstance(slot, bool) else None,
            rationale=text(body, "rationale"),
            password=text(body, "password"),
        )
    row = subject_review(request_session(), trial_code, subject_code)
    return jsonify(central_json(row, full=False))
