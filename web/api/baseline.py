"""The baseline: selecting a subject's target and non-target lesions."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api.blueprint import bp
from web.api.body import body_with
from web.api.common import SUBJECT, subject_summary
from web.auth import actor, requires
from web.services import request_session
from web.services.baseline import BASELINE_KEYS, save_baseline


@bp.route(SUBJECT + "/baseline", methods=["PUT"])
@requires("enter_measurements")
def baseline(trial_code: str, subject_code: str) -> Any:
    """Select the baseline lesions: ``{id, date, lesions: [...], version?, reason?}``."""
    body = body_with(*BASELINE_KEYS)
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
