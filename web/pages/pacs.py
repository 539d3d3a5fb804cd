"""The trial's PACS on the pages: its URL and "check the PACS now" (trial manager), and a
subject's studies pulled from it, which a reader opens pre-filled, checks and saves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, request, url_for

from web.auth import actor, requires
from web.pages import views as bp
from web.pages.trials import trial_page
from web.pages.uploads import prefilled_page
from web.services import ServiceError, build_case, get_subject, request_session
from web.services.pacs import check_pacs, pacs_study, set_pacs_url
from web.services.studies import check_binding


def pull_folder() -> Path:
    """Where studies pulled from a PACS are written (beside the study store)."""
    return Path(current_app.config["STUDY_STORE"]).parent / "pacs-pulls"


@bp.route("/trials/<trial_code>/pacs", methods=["POST"])
@requires("manage_trials")
def trial_pacs(trial_code: str) -> Any:
    """Save the PACS URL, or (``action=check``) check the PACS now."""
    session = request_session()
    try:
        if request.form.get("action") == "check":
            report = check_pacs(
                session,
                actor(),
                trial_code,
                store=Path(current_app.config["STUDY_STORE"]),
                pulls=pull_folder(),
            )
            flash(f"PACS checked: {report.summary()}.")
            for line in report.failed:
                flash(f"Not pulled: {line}")
        else:
            set_pacs_url(
                session,
                actor(),
                trial_code,
                request.form.get("pacs_url", ""),
                request.form.get("reason") or None,
            )
            flash("PACS URL saved.")
    except ServiceError as error:
        return trial_page(trial_code, error)
    return redirect(url_for("views.trial", trial_code=trial_code) + "#pacs")


@bp.route("/trials/<trial_code>/subjects/<subject_code>/pacs/<int:study_id>")
@requires("enter_measurements")
def pacs_prefill(trial_code: str, subject_code: str, study_id: int) -> Any:
    """A study pulled from the PACS as a pre-filled follow-up: the reader confirms it."""
    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    study = pacs_study(session, row, study_id)
    check_binding(session, row, study.measured.get("image") or {})
    target = study.timepoint if study.timepoint in {tp.code for tp in row.timepoints[1:]} else None
    return prefilled_page(
        row,
        build_case(row),
        study.measured,
        target,
        source=f"the study of {study.study_date or 'unknown date'} "
        f"{'pulled from the PACS' if study.source == 'pacs' else 'measured by a batch'} "
        f"(visit {study.timepoint}"
        + (f"; from a {study.measured['input']}" if study.measured.get("input") else "")
        + ")",
        visit=study.timepoint if study.source == "batch" else None,
    )
