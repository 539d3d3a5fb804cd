"""A trial's batches (trial manager): start one from a folder under the server's batch
root or from a manifest sent in the body, and read its progress and outcomes."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, url_for

from web.api.blueprint import bp
from web.api.body import body_with, text_field
from web.auth import actor, requires
from web.services import InvalidInput, NotFound, request_session
from web.services.batch import MAX_MANIFEST_BYTES, get_job, job_json
from web.services.batch_run import begin


def _json(job: Any) -> dict[str, Any]:
    return {**job_json(job), "url": url_for("api.batch", trial_code=job.trial.code, job_id=job.id)}


@bp.route("/trials/<trial_code>/batches", methods=["POST"])
@requires("manage_trials")
def batch_start(trial_code: str) -> Any:
    """``{"folder": "dir/under/root"}`` or ``{"manifest": "<CSV or JSON Lines text>",
    "manifest_name": "x.csv"}``: 202 with the queued job; poll its ``url``."""
    body = body_with("folder", "manifest", "manifest_name")
    folder = text_field(body, "folder", max_len=1000)
    manifest = text_field(body, "manifest", max_len=MAX_MANIFEST_BYTES)
    name = text_field(body, "manifest_name", max_len=200)
    if (folder is None) == (manifest is None):
        raise InvalidInput("give either folder or manifest", field="folder", pointer="")
    job = begin(
        current_app,
        request_session(),
        actor(),
        trial_code,
        folder=folder,
        manifest=manifest.encode("utf-8") if manifest is not None else None,
        manifest_name=name
        or ("manifest.jsonl" if (manifest or "").lstrip().startswith("{") else "manifest.csv"),
    )
    return jsonify(_json(job)), 202


@bp.route("/trials/<trial_code>/batches/<job_id>", methods=["GET"])
@requires("manage_trials")
def batch(trial_code: str, job_id: str) -> Any:
    """A batch: status, counts, rate and ETA, and one outcome per finished study."""
    if not job_id.isdigit() or len(job_id) > 18:
        raise NotFound(f"trial {trial_code} has no batch {job_id!r}")
    return jsonify(_json(get_job(request_session(), trial_code, int(job_id))))
