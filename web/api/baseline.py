"""The baseline: selecting a subject's target and non-target lesions."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api.blueprint import bp
from web.api.body import json_body
from web.api.common import SUBJECT, subject_summary
from web.auth import actor, requires
from web.services import InvalidInput, request_session
from web.services.baseline import save_baseline


@bp.route(SUBJECT + "/baseline", methods=["PUT"])
@requires("enter_measurements")
def baseline(trial_code: str, subject_code: str) -> Any:
    """Select the baseline lesions: ``{id, date, lesions: [...], version?, reason?}``."""
    body = json_body()
    allowed = {"id", "date", "lesions", "version", "reason"}
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(f"unknown key {extra[0]!r}", field=extra[0], pointer=f"/{extra[0]}")
    row = save_baseline(
        request_session(),
        actor(),
        trial_code,
        subject_code,
        date_value=body.get("date"),
        code=body.get("id") or "BL",
        lesions=body.get("lesions"),
        expected_version=body.get("version"),
        reason=body.get("reason"),
    )
    return jsonify({**subject_summary(row), "result": row.result_json})
