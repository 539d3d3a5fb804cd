"""The baseline: selecting a subject's target and non-target lesions."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api.blueprint import bp
from web.api.body import body_with
from web.api.common import SUBJECT, subject_summary
from web.api.signing import sign_on_save, signature_of, signer_for
from web.auth import actor, requires
from web.services import request_session
from web.services.baseline import BASELINE_KEYS, save_baseline


@bp.route(SUBJECT + "/baseline", methods=["PUT"])
@requires("enter_measurements")
def baseline(trial_code: str, subject_code: str) -> Any:
    """Select the baseline lesions: ``{id, date, lesions: [...], version?, reason?, sign?}``;
    with ``sign: {password}`` the baseline read is signed as it is saved (one step)."""
    body = body_with(*BASELINE_KEYS, "sign")
    password = sign_on_save(body)
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
        # asked once the save passed every check (rehearsed; only when it signs): an
        # entry that cannot be saved never counts a password failure
        ask_signer=signer_for(trial_code, subject_code, password, version=body.get("version")),
    )
    out = {**subject_summary(row), "result": row.result_json}
    if row.timepoints[0].locked:  # signed on save (a locked baseline is never saved)
        out["signature"] = signature_of(trial_code, subject_code, row.timepoints[0].code)
    return jsonify(out)
