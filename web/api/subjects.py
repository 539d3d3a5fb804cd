"""Subjects: list, register, import a whole case, read, change; the engine's result and
the baseline lesions of one subject."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api.blueprint import bp
from web.api.body import body_with, json_body
from web.api.common import SUBJECT, subject_summary
from web.auth import actor, requires
from web.services import InvalidInput, request_session
from web.services.cases import build_case
from web.services.common import get_subject, get_trial, list_subjects
from web.services.studies import rebind_imaging
from web.services.subjects import create_subject, import_case, update_subject


@bp.route("/trials/<trial_code>/subjects", methods=["GET"])
@requires("view")
def subjects(trial_code: str) -> Any:
    session = request_session()
    rows = list_subjects(session, get_trial(session, trial_code))
    return jsonify({"subjects": [subject_summary(s) for s in rows]})


@bp.route("/trials/<trial_code>/subjects", methods=["POST"])
@requires("manage_subjects")
def subject_create(trial_code: str) -> Any:
    body = json_body()
    allowed = {"subject_id", "arm", "randomized_on", "died_on", "new_therapy_on"}
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(
            f"unknown key {extra[0]!r}; a subject has {', '.join(sorted(allowed))} (POST a "
            "whole case to …/cases)",
            field=extra[0],
            pointer=f"/{extra[0]}",
        )
    subject = create_subject(
        request_session(),
        actor(),
        trial_code,
        code=body.get("subject_id"),  # type: ignore[arg-type]
        arm=body.get("arm"),
        randomized_on=body.get("randomized_on"),
        died_on=body.get("died_on"),
        new_therapy_on=body.get("new_therapy_on"),
    )
    return jsonify(subject_summary(subject)), 201


@bp.route("/trials/<trial_code>/cases", methods=["POST"])
@requires("import_cases")
def case_import(trial_code: str) -> Any:
    """Create a subject with its lesions and timepoints from one case of the contract."""
    subject = import_case(request_session(), actor(), trial_code, json_body())
    return jsonify({**subject_summary(subject), "result": subject.result_json}), 201


@bp.route(SUBJECT, methods=["GET"])
@requires("view")
def subject(trial_code: str, subject_code: str) -> Any:
    row = get_subject(request_session(), trial_code, subject_code)
    case = build_case(row)
    for item, tp in zip(case["timepoints"], row.timepoints, strict=True):
        item["version"] = tp.version
    return jsonify({**subject_summary(row), "case": case, "result": row.result_json})


@bp.route(SUBJECT, methods=["PATCH"])
@requires("manage_subjects")
def subject_update(trial_code: str, subject_code: str) -> Any:
    body = json_body()
    version = body.pop("version", None)
    reason = body.pop("reason", None)
    row = update_subject(
        request_session(),
        actor(),
        trial_code,
        subject_code,
        values=body,
        expected_version=version,
        reason=reason,
    )
    return jsonify({**subject_summary(row), "result": row.result_json})


@bp.route(SUBJECT + "/result", methods=["GET"])
@requires("view")
def result(trial_code: str, subject_code: str) -> Any:
    """The engine's result for the subject: responses per timepoint, BOR, PFS."""
    row = get_subject(request_session(), trial_code, subject_code)
    return jsonify({"subject_id": row.code, "result": row.result_json})


@bp.route(SUBJECT + "/lesions", methods=["GET"])
@requires("view")
def lesions(trial_code: str, subject_code: str) -> Any:
    row = get_subject(request_session(), trial_code, subject_code)
    located = {le.code: le.location for le in row.lesions}
    return jsonify(
        {
            "lesions": [
                {**le, "location": located[le["id"]]} if located.get(le["id"]) else le
                for le in build_case(row)["lesions"]
            ]
        }
    )


@bp.route(SUBJECT + "/imaging-binding", methods=["GET"])
@requires("view")
def imaging_binding(trial_code: str, subject_code: str) -> Any:
    """The pseudonymous patient key the subject's images are bound to (``null``: none yet)."""
    subject = get_subject(request_session(), trial_code, subject_code)
    return jsonify({"subject": subject.code, "subject_key": subject.imaging_key})


@bp.route(SUBJECT + "/imaging-binding", methods=["PUT"])
@requires("manage_subjects")
def imaging_rebind(trial_code: str, subject_code: str) -> Any:
    """Bind the subject's images to another patient key (or ``null``), with a reason: a
    trial manager correcting a study saved on the wrong subject. Audited."""
    body = body_with("subject_key", "reason")
    subject = rebind_imaging(
        request_session(),
        actor(),
        trial_code,
        subject_code,
        subject_key=body.get("subject_key"),
        reason=body.get("reason"),
    )
    return jsonify({"subject": subject.code, "subject_key": subject.imaging_key})
