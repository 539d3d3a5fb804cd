"""Trials: list, create (protocol settings and arms), read one."""

from __future__ import annotations

from typing import Any

from flask import jsonify, url_for

from web.api.blueprint import bp
from web.api.body import json_body
from web.auth import actor, blinded, request_user_role, requires
from web.services import InvalidInput, request_session
from web.services.common import get_trial, list_trials
from web.services.trials import create_trial


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
    return jsonify({"trials": [trial_json(t) for t in list_trials(request_session())]})


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
