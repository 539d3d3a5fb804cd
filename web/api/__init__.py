"""The JSON API (``/api/v1``): stateless assessment and the trial's resources.

Authentication is a bearer token (``recist users token NAME``); the session cookie is
never accepted here, which is why the blueprint needs no CSRF token. Errors are JSON:
``{"error": {"code", "message", "field", "pointer"}}`` where ``pointer`` is a JSON
pointer into the request body (RFC 6901) when the field came from it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for

from recist.safejson import INVALID_JSON, PAYLOAD_TOO_LARGE, JsonInputError, loads, size_text
from web import MAX_BODY_BYTES
from web.api.openapi import openapi_document
from web.auth import actor, public, requires
from web.services import (
    InvalidInput,
    assess_case,
    build_case,
    create_subject,
    create_trial,
    delete_timepoint,
    get_subject,
    get_timepoint,
    get_trial,
    import_case,
    list_subjects,
    list_trials,
    request_session,
    save_baseline,
    save_timepoint,
    timepoint_as_dict,
    update_subject,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

SUBJECT = "/trials/<trial_code>/subjects/<subject_code>"


class BodyRefused(InvalidInput):
    """The request body cannot be read as JSON (malformed, not UTF-8, beyond a limit):
    400 with the limit's code (``invalid_json``, ``json_too_deep``, ``number_too_long``,
    ``number_out_of_range``, ``duplicate_key``), 413 ``payload_too_large``."""

    def __init__(self, error: JsonInputError) -> None:
        if error.code == PAYLOAD_TOO_LARGE and error.limit is not None:
            message = f"the request body is larger than the {size_text(error.limit)} limit"
        elif error.code == INVALID_JSON:
            message = f"the request body is not valid JSON: {error.detail}"
        else:
            message = f"the request body is refused: {error.detail}"
        super().__init__(
            message, field=error.key, pointer="" if error.pointer is None else error.pointer
        )
        self.code = error.code
        self.status = 413 if error.code == PAYLOAD_TOO_LARGE else 400


# Free-text members of request bodies, with the most characters each may have: a string
# or null, anything else refused naming the member (never stored, never hashed into the
# audit trail as something else). 2000 is the services' limit of a reason (MAX_REASON).
TEXT_FIELDS: dict[str, int] = {
    "reason": 2000,
    "comment": 2000,
    "rationale": 2000,
    "password": 1024,
    "meaning": 64,
    "decision": 32,
    "call": 100,
    "title": 300,
}


def _text_field(
    body: dict[str, Any], name: str, *, required: bool = False, max_len: int | None = None
) -> str | None:
    """The member ``name`` of a request body as a string (``None`` when absent or null).

    Raises
    ------
    InvalidInput
        Naming the member (``/name``): not a string, longer than ``max_len`` (default:
        :data:`TEXT_FIELDS`' limit), or absent or empty when ``required``.
    """
    value = body.get(name)
    pointer = f"/{name}"
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name} is required", field=name, pointer=pointer)
        return None if value is None else ""
    if not isinstance(value, str):
        raise InvalidInput(
            f"{name} must be a string, not {type(value).__name__}", field=name, pointer=pointer
        )
    limit = max_len if max_len is not None else TEXT_FIELDS.get(name)
    if limit is not None and len(value) > limit:
        raise InvalidInput(
            f"{name} is {len(value):,} characters long; at most {limit:,}",
            field=name,
            pointer=pointer,
        )
    return value


def _body() -> dict[str, Any]:
    """The request's JSON object, read within the limits of :mod:`recist.safejson`; its
    free-text members (:data:`TEXT_FIELDS`) are checked to be strings."""
    if not request.is_json:
        raise InvalidInput(
            "the request body must be JSON (Content-Type: application/json)", pointer=""
        )
    text = request.get_data()  # bytes, not text: invalid UTF-8 is refused, never replaced
    try:
        data = loads(text, max_bytes=request.max_content_length or MAX_BODY_BYTES)
    except JsonInputError as error:
        raise BodyRefused(error) from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", pointer="")
    if b"\\u0000" in text:
        _refuse_nul(data, "")
    for name in TEXT_FIELDS:
        if name in data:
            _text_field(data, name)
    return data


def _refuse_nul(value: Any, pointer: str) -> None:
    """Refuse a NUL character (``\\u0000``) in any key or string: no database column keeps
    it (PostgreSQL refuses it), so it is refused before anything is written."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(
                "a string holds a NUL character (\\u0000), which cannot be stored",
                field=pointer.rsplit("/", 1)[-1] or None,
                pointer=pointer,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            _refuse_nul(key, pointer)
            _refuse_nul(item, f"{pointer}/{escaped}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{pointer}/{index}")


def _trial_json(trial: Any) -> dict[str, Any]:
    return {
        "code": trial.code,
        "title": trial.title,
        "settings": trial.settings,
        "arms": [{"code": a.code, "name": a.name} for a in trial.arms],
        "url": url_for("api.trial", trial_code=trial.code),
    }


def _subject_summary(subject: Any) -> dict[str, Any]:
    result = subject.result_json or {}
    return {
        "subject_id": subject.code,
        "arm": subject.arm.code if subject.arm else None,
        "randomized_on": subject.randomized_on.isoformat() if subject.randomized_on else None,
        "died_on": subject.died_on.isoformat() if subject.died_on else None,
        "new_therapy_on": subject.new_therapy_on.isoformat() if subject.new_therapy_on else None,
        "version": subject.version,
        "best_overall_response": result.get("best_overall_response"),
        "progression": result.get("progression"),
        "pfs": result.get("pfs"),
        "url": url_for("api.subject", trial_code=subject.trial.code, subject_code=subject.code),
    }


@bp.route("/openapi.json")
@public
def openapi() -> Any:
    return jsonify(openapi_document())


@bp.route("/assess", methods=["POST"])
@requires("assess")
def assess() -> Any:
    """Stateless: assess one case of the ``recist assess`` contract."""
    return jsonify(assess_case(_body()))


@bp.route("/trials", methods=["GET"])
@requires("view")
def trials() -> Any:
    return jsonify({"trials": [_trial_json(t) for t in list_trials(request_session())]})


@bp.route("/trials", methods=["POST"])
@requires("manage_trials")
def trial_create() -> Any:
    body = _body()
    arms = body.get("arms") or []
    if not isinstance(arms, list) or not all(isinstance(a, dict) and "code" in a for a in arms):
        raise InvalidInput("arms must be an array of {code, name}", field="arms", pointer="/arms")
    trial = create_trial(
        request_session(),
        actor(),
        code=body.get("code"),  # type: ignore[arg-type]
        title=str(body.get("title") or ""),
        settings=body.get("settings"),
        arms=[(a["code"], str(a.get("name") or a["code"])) for a in arms],
    )
    return jsonify(_trial_json(trial)), 201


@bp.route("/trials/<trial_code>", methods=["GET"])
@requires("view")
def trial(trial_code: str) -> Any:
    return jsonify(_trial_json(get_trial(request_session(), trial_code)))


@bp.route("/trials/<trial_code>/subjects", methods=["GET"])
@requires("view")
def subjects(trial_code: str) -> Any:
    session = request_session()
    rows = list_subjects(session, get_trial(session, trial_code))
    return jsonify({"subjects": [_subject_summary(s) for s in rows]})


@bp.route("/trials/<trial_code>/subjects", methods=["POST"])
@requires("manage_subjects")
def subject_create(trial_code: str) -> Any:
    body = _body()
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
    return jsonify(_subject_summary(subject)), 201


@bp.route("/trials/<trial_code>/cases", methods=["POST"])
@requires("import_cases")
def case_import(trial_code: str) -> Any:
    """Create a subject with its lesions and timepoints from one case of the contract."""
    subject = import_case(request_session(), actor(), trial_code, _body())
    return jsonify({**_subject_summary(subject), "result": subject.result_json}), 201


@bp.route(SUBJECT, methods=["GET"])
@requires("view")
def subject(trial_code: str, subject_code: str) -> Any:
    row = get_subject(request_session(), trial_code, subject_code)
    case = build_case(row)
    for item, tp in zip(case["timepoints"], row.timepoints, strict=True):
        item["version"] = tp.version
    return jsonify({**_subject_summary(row), "case": case, "result": row.result_json})


@bp.route(SUBJECT, methods=["PATCH"])
@requires("manage_subjects")
def subject_update(trial_code: str, subject_code: str) -> Any:
    body = _body()
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
    return jsonify({**_subject_summary(row), "result": row.result_json})


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
    return jsonify({"lesions": build_case(row)["lesions"]})


@bp.route(SUBJECT + "/baseline", methods=["PUT"])
@requires("enter_measurements")
def baseline(trial_code: str, subject_code: str) -> Any:
    """Select the baseline lesions: ``{id, date, lesions: [...], version?, reason?}``."""
    body = _body()
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
    return jsonify({**_subject_summary(row), "result": row.result_json})


@bp.route(SUBJECT + "/timepoints", methods=["GET"])
@requires("view")
def timepoints(trial_code: str, subject_code: str) -> Any:
    row = get_subject(request_session(), trial_code, subject_code)
    return jsonify({"timepoints": [timepoint_as_dict(row, tp) for tp in row.timepoints]})


@bp.route(SUBJECT + "/timepoints", methods=["POST"])
@requires("enter_measurements")
def timepoint_create(trial_code: str, subject_code: str) -> Any:
    body = _body()
    reason = body.pop("reason", None)
    row, tp = save_timepoint(
        request_session(), actor(), trial_code, subject_code, body, reason=reason
    )
    return jsonify({"timepoint": timepoint_as_dict(row, tp), "result": row.result_json}), 201


@bp.route(SUBJECT + "/timepoints/<tp_code>", methods=["GET"])
@requires("view")
def timepoint(trial_code: str, subject_code: str, tp_code: str) -> Any:
    row = get_subject(request_session(), trial_code, subject_code)
    return jsonify(timepoint_as_dict(row, get_timepoint(row, tp_code)))


@bp.route(SUBJECT + "/timepoints/<tp_code>", methods=["PUT"])
@requires("enter_measurements")
def timepoint_update(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """Replace a timepoint; ``version`` (from GET) is required and refused when stale."""
    body = _body()
    reason = body.pop("reason", None)
    version = body.pop("version", None)
    if version is None:
        raise InvalidInput(
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
    )
    return jsonify({"timepoint": timepoint_as_dict(row, tp), "result": row.result_json})


@bp.route(SUBJECT + "/timepoints/<tp_code>", methods=["DELETE"])
@requires("enter_measurements")
def timepoint_delete(trial_code: str, subject_code: str, tp_code: str) -> Any:
    body = _body()
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


# The review issue's routes (signing, progression review, central review, audit) live in
# their own module on this blueprint; importing it registers them.
from web.api import review as _review  # noqa: E402, F401
