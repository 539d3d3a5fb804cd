"""Follow-up timepoints: list, add, read, replace, delete; measurements per lesion."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api.blueprint import bp
from web.api.body import json_body
from web.api.common import SUBJECT
from web.api.signing import sign_on_save, signature_of, signer_for
from web.auth import actor, requires
from web.services import ConcurrentEdit, request_session
from web.services.annotations import annotate_timepoint
from web.services.cases import timepoint_as_dict as contract_timepoint
from web.services.common import get_subject, get_timepoint
from web.services.timepoints import delete_timepoint, save_timepoint


def timepoint_as_dict(subject: Any, tp: Any) -> dict[str, Any]:
    """The timepoint as the contract has it, with the web's annotations beside it."""
    return annotate_timepoint(tp, contract_timepoint(subject, tp))


@bp.route(SUBJECT + "/timepoints", methods=["GET"])
@requires("view")
def timepoints(trial_code: str, subject_code: str) -> Any:
    row = get_subject(request_session(), trial_code, subject_code)
    return jsonify({"timepoints": [timepoint_as_dict(row, tp) for tp in row.timepoints]})


@bp.route(SUBJECT + "/timepoints", methods=["POST"])
@requires("enter_measurements")
def timepoint_create(trial_code: str, subject_code: str) -> Any:
    """Add a follow-up; with ``sign: {password}`` it is signed as it is saved (one step)."""
    body = json_body()
    reason = body.pop("reason", None)
    password = sign_on_save(body)
    code = body.get("id") if isinstance(body.get("id"), str) else None
    row, tp = save_timepoint(
        request_session(), actor(), trial_code, subject_code, body, reason=reason,
        # asked once the save passed every check (rehearsed; only when it signs)
        ask_signer=signer_for(trial_code, subject_code, password, tp_code=code),
    )  # fmt: skip
    out = {"timepoint": timepoint_as_dict(row, tp), "result": row.result_json}
    if tp.locked:  # signed on save (a locked read is never saved)
        out["signature"] = signature_of(trial_code, subject_code, tp.code)
    return jsonify(out), 201


@bp.route(SUBJECT + "/timepoints/<tp_code>", methods=["GET"])
@requires("view")
def timepoint(trial_code: str, subject_code: str, tp_code: str) -> Any:
    row = get_subject(request_session(), trial_code, subject_code)
    return jsonify(timepoint_as_dict(row, get_timepoint(row, tp_code)))


@bp.route(SUBJECT + "/timepoints/<tp_code>", methods=["PUT"])
@requires("enter_measurements")
def timepoint_update(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """Replace a timepoint; ``version`` (from GET) is required and refused when stale.
    With ``sign: {password}`` the saved read is signed in the same transaction."""
    body = json_body()
    reason = body.pop("reason", None)
    version = body.pop("version", None)
    password = sign_on_save(body)
    if version is None:
        # A missing version is refused as a stale one is: never a silent overwrite.
        raise ConcurrentEdit(
            "send the timepoint's version (from GET) so that a concurrent edit is detected",
            field="version",
            pointer="/version",
        )
    body.setdefault("id", tp_code)
    row, tp = save_timepoint(
        request_session(),
        actor(),
        trial_code,
        subject_code,
        body,
        expected_version=version,
        original_code=tp_code,
        reason=reason,
        ask_signer=signer_for(trial_code, subject_code, password, tp_code=tp_code, version=version),
    )
    out = {"timepoint": timepoint_as_dict(row, tp), "result": row.result_json}
    if tp.locked:  # signed on save, as in timepoint_create
        out["signature"] = signature_of(trial_code, subject_code, tp.code)
    return jsonify(out)


@bp.route(SUBJECT + "/timepoints/<tp_code>", methods=["DELETE"])
@requires("enter_measurements")
def timepoint_delete(trial_code: str, subject_code: str, tp_code: str) -> Any:
    body = json_body()
    row = delete_timepoint(
        request_session(),
        actor(),
        trial_code,
        subject_code,
        tp_code,
        expected_version=body.get("version"),
        reason=body.get("reason"),
    )
    return jsonify({"result": row.result_json})


@bp.route(SUBJECT + "/timepoints/<tp_code>/measurements", methods=["GET"])
@requires("view")
def measurements(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """One row per lesion at this timepoint (targets, non-targets, new lesions)."""
    row = get_subject(request_session(), trial_code, subject_code)
    item = timepoint_as_dict(row, get_timepoint(row, tp_code))
    rows: list[dict[str, Any]] = []
    for code, value in item["targets"].items():
        rows.append({"lesion": code, "kind": "target", "value": value})
    for code, value in item["non_targets"].items():
        rows.append({"lesion": code, "kind": "non-target", "value": value})
    for new in item["new_lesions"]:
        rows.append({"lesion": new["id"], "kind": "new", "value": new})
    return jsonify({"timepoint": tp_code, "version": item["version"], "measurements": rows})
