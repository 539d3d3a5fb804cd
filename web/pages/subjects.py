"""Subject pages: registration, the lesion × timepoint grid, arm and dates."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from web.auth import actor, allowed, refuse_if_blinded, request_user_role, requires
from web.pages import views as bp
from web.pages.common import version_of
from web.pages.grid import build_grid, key_image_links
from web.pages.trials import summary_as_used, trial_page
from web.services import (
    ServiceError,
    audit_trail,
    build_case,
    create_subject,
    get_subject,
    request_session,
    update_subject,
)
from web.services.annotations import locations_of


@bp.route("/trials/<trial_code>/subjects", methods=["POST"])
@requires("manage_subjects")
def subject_create(trial_code: str) -> Any:
    form = request.form
    try:
        subject = create_subject(
            request_session(),
            actor(),
            trial_code,
            code=form.get("code", "").strip(),
            arm=form.get("arm") or None,
            randomized_on=form.get("randomized_on") or None,
        )
    except ServiceError as error:
        return trial_page(trial_code, error, form)
    if allowed(request_user_role(), "enter_measurements"):
        flash(f"Subject {subject.code} created; enter the baseline next.")
        return redirect(url_for("views.baseline", trial_code=trial_code, subject_code=subject.code))
    # A trial manager registers subjects; a reader enters their baseline.
    flash(f"Subject {subject.code} created; a reader enters the baseline next.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject.code))


@bp.route("/trials/<trial_code>/subjects/<subject_code>")
@requires("view")
def subject(trial_code: str, subject_code: str) -> Any:
    return subject_page(trial_code, subject_code)


def subject_page(trial_code: str, subject_code: str, error: ServiceError | None = None) -> Any:
    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    refuse_if_blinded(row.trial)
    case = build_case(row)
    result = row.result_json
    versions = {tp.code: tp.version for tp in row.timepoints}
    audit = audit_trail(session, f"{trial_code}/{subject_code}", limit=50)
    from web.services.as_used import used_result
    from web.services.pacs import awaiting
    from web.services.progression import subject_row

    review = subject_row(session, row)
    used = review.used if review is not None and review.override is not None else None
    shown = used_result(case, result, used) if used is not None and result else result
    links, located = key_image_links(row), locations_of(row)
    grid = build_grid(case, shown, links, located) if case["timepoints"] else None
    pulled = awaiting(session, row)
    return (
        render_template(
            "views/subject.html",
            trial=row.trial,
            subject=row,
            case=case,
            result=result,
            summary=summary_as_used(row, result, used),
            grid=grid,
            versions=versions,
            audit=audit,
            review=review,
            pulled=pulled,
            error=error,
        ),
        error.status if error is not None else 200,
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/edit", methods=["POST"])
@requires("manage_subjects")
def subject_update(trial_code: str, subject_code: str) -> Any:
    form = request.form
    values = {
        name: form.get(name, "") or None
        for name in ("arm", "randomized_on", "died_on", "new_therapy_on")
    }
    try:
        update_subject(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            values=values,
            expected_version=version_of(form.get("version")),
            reason=form.get("reason") or None,
        )
    except ServiceError as error:
        return subject_page(trial_code, subject_code, error)
    flash("Subject details saved; the assessment was recomputed.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))
