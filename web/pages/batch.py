"""A trial's batches on the pages (trial manager): start one from an uploaded manifest or
a folder under the server's batch root, and follow it (the page reloads itself while the
batch runs); the measured studies wait on their subjects' pages for a reader."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for

from web.auth import actor, requires
from web.pages import views as bp
from web.services import ServiceError, get_trial, request_session
from web.services.batch import get_job, job_json, list_jobs
from web.services.batch_run import begin


def batches_page(trial_code: str, error: ServiceError | None = None) -> Any:
    session = request_session()
    trial = get_trial(session, trial_code)
    jobs = [job_json(job) for job in list_jobs(session, trial_code)]
    root = current_app.config.get("BATCH_ROOT")
    return (
        render_template(
            "views/batches.html",
            trial=trial,
            jobs=jobs,
            error=error,
            form=request.form,
            configured=bool(root or _root_from_environment()),
        ),
        error.status if error is not None else 200,
    )


def _root_from_environment() -> str | None:
    import os

    from web.services.batch import BATCH_ROOT_ENV

    return os.environ.get(BATCH_ROOT_ENV) or None


@bp.route("/trials/<trial_code>/batches")
@requires("manage_trials")
def batches(trial_code: str) -> Any:
    return batches_page(trial_code)


@bp.route("/trials/<trial_code>/batches", methods=["POST"])
@requires("manage_trials")
def batch_start(trial_code: str) -> Any:
    """Start a batch: the uploaded manifest if one was sent, else the folder named."""
    upload = request.files.get("manifest")
    try:
        if upload is not None and upload.filename:
            job = begin(
                current_app,
                request_session(),
                actor(),
                trial_code,
                manifest=upload.read(),
                manifest_name=upload.filename,
            )
        else:
            job = begin(
                current_app,
                request_session(),
                actor(),
                trial_code,
                folder=request.form.get("folder"),
            )
    except ServiceError as error:
        return batches_page(trial_code, error)
    return redirect(url_for("views.batch", trial_code=trial_code, job_id=job.id))


@bp.route("/trials/<trial_code>/batches/<int:job_id>")
@requires("manage_trials")
def batch(trial_code: str, job_id: int) -> Any:
    session = request_session()
    job = get_job(session, trial_code, job_id)
    return render_template("views/batch.html", trial=job.trial, job=job_json(job))
