"""Study upload: a zipped DICOM study measured by imaging_io to pre-fill a follow-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for

from web.auth import actor, requires
from web.pages import views as bp
from web.pages.common import imaging_from_token, imaging_token
from web.pages.forms import (
    timepoint_form_values,
)
from web.pages.timepoints import timepoint_page
from web.services import (
    InvalidInput,
    ServiceError,
    build_case,
    get_subject,
    get_timepoint,
    request_session,
    timepoint_as_dict,
)
from web.services.annotations import annotate_timepoint


@bp.route("/trials/<trial_code>/subjects/<subject_code>/upload", methods=["GET", "POST"])
@requires("enter_measurements")
def upload(trial_code: str, subject_code: str) -> Any:
    """Upload a study (zip) for a follow-up: imaging_io measures, the reader confirms."""
    from web.services.studies import check_binding
    from web.services.uploads import measure_upload

    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    case = build_case(row)
    measured = None
    error: ServiceError | None = None
    if request.method == "POST":
        file = request.files.get("study")
        try:
            if file is None or not file.filename:
                raise InvalidInput("choose a .zip file holding the study", field="study")
            measured = measure_upload(file.stream, store=Path(current_app.config["STUDY_STORE"]))
            # A study of another patient is refused now, before anything is pre-filled.
            check_binding(session, row, measured.get("image") or {})
        except ServiceError as exc:
            error = exc
    if measured is not None and not measured.get("lesions"):
        error = InvalidInput("the study holds no segmented lesion to measure", field="study")
    follow_ups = [tp.code for tp in row.timepoints[1:]]
    baseline = row.timepoints[0].code if row.timepoints else None
    if measured is not None and error is None and request.form.get("timepoint") == baseline:
        return _baseline_evidence_page(row, case, measured)
    if measured is not None and error is None:
        return prefilled_page(row, case, measured, request.form.get("timepoint") or None)
    return (
        render_template(
            "views/upload.html",
            trial=row.trial,
            subject=row,
            error=error,
            follow_ups=follow_ups,
            baseline=baseline,
        ),
        error.status if error is not None else 200,
    )


def prefilled_page(
    row: Any,
    case: dict[str, Any],
    measured: dict[str, Any],
    target: str | None,
    *,
    source: str = "the uploaded study",
    visit: str | None = None,
) -> Any:
    """The follow-up form pre-filled from what imaging_io measured (an upload or a study
    pulled from the PACS), with the evidence signed into it; the reader checks and saves."""
    from web.services.uploads import match_segments, non_targets_segmented, other_segments

    # The imaging evidence travels in the form between here and the save: signed with the
    # application's key, so what is stored is what imaging_io measured, not what a
    # browser sent back.
    follow_ups = [tp.code for tp in row.timepoints[1:]]
    # For an existing follow-up the stored values are kept where nothing was measured.
    tp = get_timepoint(row, target) if target is not None and target in follow_ups else None
    # With its annotations (key images, locations), which the re-saved form keeps.
    stored = annotate_timepoint(tp, timepoint_as_dict(row, tp)) if tp is not None else None
    prefill, notes, sources = match_segments(case, measured)
    evidence = {
        "image": measured.get("image") or {},
        "lesions": sources,
        "study": measured.get("study"),
        "segments": other_segments(measured, sources),
    }
    values = timepoint_form_values(stored, case)
    if visit and not values["code"]:
        values["code"] = visit  # a batch's manifest names the visit (the reader may change it)
    for code, mm in prefill.items():
        values["targets"][code].update(state="measured", mm=f"{mm:.1f}")
    for code, label in non_targets_segmented(case, measured).items():
        # A segmented non-target is there; whether it progressed unequivocally
        # (R-NT-PD) is the reader's call, never the pre-fill's.
        values["non_targets"][code] = "present"
        notes.append(f"{code} ← segment {label!r}: present (judge progression yourself)")
    study_date = (measured.get("image") or {}).get("study_date")
    if study_date and not values["date"]:
        values["date"] = study_date
        notes.append(f"scan date {study_date} from the study")
    flash(f"Measured from {source}; check every value before saving. " + "; ".join(notes))
    return timepoint_page(
        row,
        case,
        values,
        tp.code if tp else None,
        tp.version if tp else None,
        None,
        imaging_token=imaging_token(evidence),
    )


def _baseline_evidence_page(row: Any, case: dict[str, Any], measured: dict[str, Any]) -> Any:
    """What the study measured beside the baseline the reader entered, to attach the study
    as the baseline's evidence (its values stay the reader's: the baseline form sets them)."""
    from web.services.uploads import match_segments, other_segments

    _prefill, notes, sources = match_segments(case, measured)
    evidence = {
        "image": measured.get("image") or {},
        "lesions": sources,
        "study": measured.get("study"),
        "segments": other_segments(measured, sources),
    }
    baseline = case["timepoints"][0]
    return render_template(
        "views/upload_baseline.html",
        trial=row.trial,
        subject=row,
        baseline=baseline["id"],
        sources=sources,
        entered=baseline.get("targets", {}),
        notes=notes,
        imaging_token=imaging_token(evidence),
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/baseline/evidence", methods=["POST"])
@requires("enter_measurements")
def baseline_evidence(trial_code: str, subject_code: str) -> Any:
    """Attach a measured study to the baseline as its imaging evidence (key images)."""
    from web.services.studies import attach_imaging

    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    if not row.timepoints:
        raise InvalidInput(f"subject {subject_code} has no baseline yet", field="timepoint")
    attach_imaging(
        session,
        actor(),
        trial_code,
        subject_code,
        row.timepoints[0].code,
        imaging_from_token(request.form.get("imaging", "")),
    )
    flash(f"The study is kept as the evidence of {row.timepoints[0].code}.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))
