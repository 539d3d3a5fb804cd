"""Trials: list, create (protocol settings and arms), read one."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for

from web.api.blueprint import bp
from web.api.body import body_with, json_body, text_field
from web.auth import actor, blinded, request_user, request_user_role, requires
from web.services import InvalidInput, request_session
from web.services.common import get_trial, list_trials
from web.services.membership import add_member, members_of, remove_member, visible_trials
from web.services.trials import create_trial, update_settings


def trial_json(trial: Any) -> dict[str, Any]:
    """A trial; a reader of a blinded trial (independent central review) never gets its
    arms (``"arms": null``), whichever route lists it."""
    hidden = blinded(request_user_role(), trial)
    return {
        "code": trial.code,
        "title": trial.title,
        "settings": trial.settings,
        "central_review": bool(trial.central_review),
        "arms": None if hidden else [{"code": a.code, "name": a.name} for a in trial.arms],
        "url": url_for("api.trial", trial_code=trial.code),
    }


@bp.route("/trials", methods=["GET"])
@requires("view")
def trials() -> Any:
    session = request_session()
    shown = visible_trials(session, request_user(), list_trials(session))
    return jsonify({"trials": [trial_json(t) for t in shown]})


@bp.route("/trials", methods=["POST"])
@requires("manage_trials")
def trial_create() -> Any:
    body = json_body()
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
    return jsonify(trial_json(trial)), 201


@bp.route("/trials/<trial_code>", methods=["GET"])
@requires("view")
def trial(trial_code: str) -> Any:
    return jsonify(trial_json(get_trial(request_session(), trial_code)))


@bp.route("/trials/<trial_code>/settings", methods=["PATCH"])
@requires("manage_trials")
def trial_settings(trial_code: str) -> Any:
    """Change protocol settings (those given), with a reason; every subject is
    re-assessed; refused (409) if a signed read's result would change."""
    body = body_with("settings", "reason")
    trial_row, changed = update_settings(
        request_session(),
        actor(),
        trial_code,
        body.get("settings"),
        reason=body.get("reason"),
    )
    return jsonify({**trial_json(trial_row), "subjects_changed": changed})


def member_json(user: Any, row: Any) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role,
        "added_at": row.added_at.isoformat(),
        "added_by": row.added_by,
    }


@bp.route("/trials/<trial_code>/members", methods=["GET"])
@requires("manage_members")
def trial_members(trial_code: str) -> Any:
    rows = members_of(request_session(), trial_code)
    return jsonify({"members": [member_json(user, row) for user, row in rows]})


@bp.route("/trials/<trial_code>/members", methods=["POST"])
@requires("manage_members")
def trial_member_add(trial_code: str) -> Any:
    body = body_with("username")
    name = text_field(body, "username", required=True) or ""
    added = add_member(request_session(), actor(), username=name, trial_code=trial_code)
    rows = dict(
        (user.username, (user, row)) for user, row in members_of(request_session(), trial_code)
    )
    return jsonify(member_json(*rows[name])), 201 if added else 200


@bp.route("/trials/<trial_code>/members/<username>", methods=["DELETE"])
@requires("manage_members")
def trial_member_remove(trial_code: str, username: str) -> Any:
    body = body_with("reason") if request.get_data() else {}
    reason = text_field(body, "reason")
    remove_member(
        request_session(), actor(), username=username, trial_code=trial_code, reason=reason
    )
    return jsonify({"removed": username, "trial": trial_code})


@bp.route("/trials/<trial_code>/exports/<domain>.csv", methods=["GET"])
@requires("view_audit")
def analysis_export(trial_code: str, domain: str) -> Any:
    """The trial's CDISC export for analysis (``rs``, ``tu``, ``tr``, ``adrs``, ``adtte``) as
    CSV: one read per subject, responses, BOR and PFS as used (:mod:`web.services.exports`);
    409 naming the subjects while the trial is not ready for analysis."""
    from flask import Response

    from web.services.exports import analysis_file

    text, name = analysis_file(request_session(), trial_code, domain)
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
