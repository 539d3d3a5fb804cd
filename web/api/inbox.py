"""The user's inbox, and signing all of a subject's unsigned reads in one signature."""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify

from web.api.blueprint import bp
from web.api.body import body_with, pointing_into, text
from web.api.common import SUBJECT
from web.api.signing import signature_of
from web.auth import actor, request_user, requires
from web.services import request_session
from web.services.inbox import counts, items
from web.services.sign_all import sign_all


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@bp.route("/inbox", methods=["GET"])
@requires("view")
def inbox() -> Any:
    """What waits for the token's user, part by part, with the counts of the header."""
    user = request_user()
    if user is None:  # pragma: no cover - wrapped by requires()
        abort(401)
    session = request_session()
    numbers = counts(session, user)
    parts = {
        part: [{k: _jsonable(v) for k, v in row.items()} for row in rows]
        for part, rows in items(session, user).items()
    }
    return jsonify(
        {"user": user.username, "total": numbers.total, "counts": numbers.parts, "items": parts}
    )


@bp.route(SUBJECT + "/sign-all", methods=["POST"])
@requires("sign_reads")
def sign_all_reads(trial_code: str, subject_code: str) -> Any:
    """``{password, reads: [{timepoint, version}, …], meaning?}``: sign exactly the reads
    listed, each "read complete", all or nothing; answers each read's signature."""
    keys = ("password", "reads", "meaning")
    body = body_with(*keys)
    with pointing_into(keys):
        signed = sign_all(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            password=text(body, "password"),
            reads=body.get("reads"),
            meaning=body.get("meaning", "read complete"),
        )
    codes = [tp.code for tp in signed]
    return jsonify({"signed": [signature_of(trial_code, subject_code, c) for c in codes]})
