"""The baseline form and its live check (the engine's findings as the reader types)."""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for

from web.auth import actor, requires
from web.models import SITES
from web.pages import views as bp
from web.pages.baseline_form import (
    NEW_BASELINE_ROWS,
    baseline_form_rows,
    baseline_form_values,
    baseline_rows,
    lesions_from_form,
    ml_text,
)
from web.pages.common import version_of
from web.pages.form_errors import baseline_input
from web.pages.timepoints import signer_on_save
from web.services import (
    ReasonRequired,
    ServiceError,
    baseline_case,
    baseline_findings,
    baseline_lesions,
    build_case,
    get_subject,
    request_session,
    save_baseline,
)
from web.services.cases import imaging_volumes


@bp.route("/trials/<trial_code>/subjects/<subject_code>/baseline", methods=["GET", "POST"])
@requires("enter_measurements")
def baseline(trial_code: str, subject_code: str) -> Any:
    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    case = build_case(row)
    version = row.timepoints[0].version if row.timepoints else None
    if request.method == "GET":
        notes: dict[str, dict[str, Any]] = {
            le.code: {"location": le.location} for le in row.lesions
        }
        for rec in row.timepoints[0].records if row.timepoints else []:
            notes[rec.lesion.code].update(series=rec.series, image=rec.image)
        return _baseline_page(row, baseline_form_values(case, notes), version, None, [])
    form = request.form
    values: dict[str, Any] = {
        "date": form.get("date", ""),
        "code": form.get("code", "BL") or "BL",
        "rows": baseline_rows(form),
    }
    posted_version = version_of(form.get("version"))
    try:
        lesions = lesions_from_form(form, subject_code)

        saved = save_baseline(
            session,
            actor(),
            trial_code,
            subject_code,
            date_value=values["date"],
            code=values["code"],
            lesions=lesions,
            expected_version=posted_version,
            reason=form.get("reason"),
            # asked by save_baseline once the save passed every check (as on the follow-up
            # form): a baseline that cannot be saved never counts a password failure
            ask_signer=signer_on_save(session, form, trial_code, subject_code, None),
        )
    except ReasonRequired as error:
        return _baseline_page(row, values, posted_version, error, error.details)
    except ServiceError as error:
        baseline_input(error, baseline_form_rows(form))
        return _baseline_page(row, values, posted_version, error, [])
    signed = saved.timepoints[0].locked  # signed on save: a locked baseline is never saved
    flash("Baseline saved" + (" and signed (read complete, locked)." if signed else "."))
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


def _baseline_page(
    row: Any,
    values: dict[str, Any],
    version: int | None,
    error: ServiceError | None,
    findings: list[dict[str, Any]],
) -> Any:
    if len(values["rows"]) < NEW_BASELINE_ROWS:
        values["rows"] = (
            values["rows"]
            + baseline_form_values(None)["rows"][: NEW_BASELINE_ROWS - len(values["rows"])]
        )
    return (
        render_template(
            "views/baseline.html",
            trial=row.trial,
            subject=row,
            values=values,
            version=version,
            error=error,
            findings=findings,
            sites=SITES,
            # A signed baseline offers no "sign on save" (its save is refused: locked).
            locked=bool(row.timepoints and row.timepoints[0].locked),
            stored_read=row.timepoints[0] if row.timepoints else None,
            # R-ELIG-VOLUME: volumes imaging gave are shown as such and not editable.
            imaging_volumes={k: ml_text(v) for k, v in imaging_volumes(row).items()},
        ),
        error.status if error is not None else 200,
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/baseline/check", methods=["POST"])
@requires("enter_measurements")
def baseline_check(trial_code: str, subject_code: str) -> Any:
    """Findings (R-MEAS, R-SEL) for the baseline form as typed; used by the page's script."""
    row = get_subject(request_session(), trial_code, subject_code)
    rows: list[int] = []
    try:
        # The same validation as Save (one contract); targets still without a size are
        # left out of the live check, which reports the findings of what is typed so far.
        pairs = zip(
            lesions_from_form(request.form, subject_code),
            baseline_form_rows(request.form),
            strict=True,
        )
        typed = [(le, i) for le, i in pairs if le["kind"] != "target" or "size" in le]
        rows = [i for _, i in typed]  # the form row of each lesion checked
        case = baseline_case(
            row,
            date_value=request.form.get("date") or row.randomized_on or "2000-01-01",
            code=request.form.get("code") or "BL",
            lesions=baseline_lesions([le for le, _ in typed], subject_code),
        )
        return jsonify({"findings": baseline_findings(case), "error": None})
    except ServiceError as error:
        baseline_input(error, rows)
        return jsonify({"findings": [], "error": error.message, "field": error.field})
