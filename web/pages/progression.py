"""Review of progression calls: the queue, a subject's evidence, review, answer, override."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from web.auth import actor, refuse_if_blinded, requires
from web.pages import review as bp
from web.services import ServiceError, get_subject, get_trial, request_session
from web.services.progression import (
    answer_query,
    override_call,
    queue,
    queue_csv,
    review_call,
    subject_row,
)

# The evidence's numbers in people's words (the API keeps the engine's keys).
NUMBER_LABELS = {
    "sum_mm": "Sum of diameters (mm)",
    "nadir_mm": "Nadir before this visit (mm)",
    "change_from_nadir_pct": "Change from nadir (%)",
    "change_from_baseline_pct": "Change from baseline (%)",
    "target_response": "Target response",
    "non_target_response": "Non-target response",
    "new_lesions": "New lesions",
    "overall_response": "Overall response",
}


@bp.route("/trials/<trial_code>/progression")
@requires("view")
def progression_queue(trial_code: str) -> Any:
    session = request_session()
    trial = get_trial(session, trial_code)
    refuse_if_blinded(trial)
    rows = queue(session, trial)
    return render_template("review/progression_queue.html", trial=trial, rows=rows)


@bp.route("/trials/<trial_code>/progression.csv")
@requires("view")
def progression_csv(trial_code: str) -> Any:
    session = request_session()
    trial = get_trial(session, trial_code)
    refuse_if_blinded(trial)
    return Response(
        queue_csv(queue(session, trial)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{trial.code}_progression.csv"'},
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/progression")
@requires("view")
def progression(trial_code: str, subject_code: str) -> Any:
    return _progression_page(trial_code, subject_code)


def _progression_page(trial_code: str, subject_code: str, error: ServiceError | None = None) -> Any:
    from web.pages.grid import build_grid, key_image_links
    from web.services import build_case
    from web.services.annotations import locations_of
    from web.services.studies import segment_named

    session = request_session()
    subject = get_subject(session, trial_code, subject_code)
    refuse_if_blinded(subject.trial)
    case = build_case(subject)
    links = key_image_links(subject)
    located = locations_of(subject)
    grid = build_grid(case, subject.result_json, links, located) if case["timepoints"] else None
    return (
        render_template(
            "review/progression.html",
            links=links,
            segment_named=segment_named,
            number_labels=NUMBER_LABELS,
            trial=subject.trial,
            subject=subject,
            row=subject_row(session, subject),
            grid=grid,
            grid_values={
                tp["id"]: {k: v for k, v in tp["targets"].items() if isinstance(v, float | int)}
                for tp in case["timepoints"]
            },
            error=error,
        ),
        error.status if error is not None else 200,
    )


def _progression_write(trial_code: str, subject_code: str, write: Any, done: str) -> Any:
    try:
        write()
    except ServiceError as error:
        return _progression_page(trial_code, subject_code, error)
    flash(done)
    return redirect(url_for("review.progression", trial_code=trial_code, subject_code=subject_code))


@bp.route("/trials/<trial_code>/subjects/<subject_code>/progression/review", methods=["POST"])
@requires("review_calls")
def progression_review(trial_code: str, subject_code: str) -> Any:
    form = request.form
    return _progression_write(
        trial_code,
        subject_code,
        lambda: review_call(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            decision=form.get("decision", ""),
            comment=form.get("comment", ""),
            seen_call=form.get("call") or None,
        ),
        f"Progression call marked {form.get('decision')}.",
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/progression/answer", methods=["POST"])
@requires("answer_queries")
def progression_answer(trial_code: str, subject_code: str) -> Any:
    form = request.form
    return _progression_write(
        trial_code,
        subject_code,
        lambda: answer_query(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            comment=form.get("comment", ""),
            seen_call=form.get("call") or None,
        ),
        "Your answer was sent to the reviewer.",
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/progression/override", methods=["POST"])
@requires("override_calls")
def progression_override(trial_code: str, subject_code: str) -> Any:
    form = request.form
    return _progression_write(
        trial_code,
        subject_code,
        lambda: override_call(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            timepoint=form.get("timepoint") or None,
            reason=form.get("reason", ""),
            seen_call=form.get("call") or None,
        ),
        "Progression call overridden; the engine's call is kept beside it.",
    )
