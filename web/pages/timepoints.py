"""Follow-up forms: enter, edit (with the version it edits) and delete a timepoint."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from web.auth import actor, allowed, request_user_role, requires
from web.clock import today
from web.models import NEW_CATEGORIES, NON_TARGET_STATES, SITES, TARGET_STATES
from web.pages import views as bp
from web.pages.common import imaging_from_token, version_of
from web.pages.form_errors import timepoint_input
from web.pages.forms import (
    MAX_CARRIED,
    NEW_FORM_STATES,
    NEW_LESION_ROWS,
    is_irecist,
    timepoint_form_values,
    timepoint_from_form,
    timepoint_values_from_post,
)
from web.pages.grid import follow_up_reference
from web.pages.subjects import subject_page
from web.services import (
    ServiceError,
    build_case,
    delete_timepoint,
    get_subject,
    get_timepoint,
    request_session,
    save_timepoint,
    timepoint_as_dict,
)
from web.services.annotations import annotate_timepoint, locations_of
from web.services.sheet import next_visit
from web.services.sign_all import signer_for_stored_read


@bp.route("/trials/<trial_code>/subjects/<subject_code>/timepoints/new", methods=["GET", "POST"])
@requires("enter_measurements")
def timepoint_new(trial_code: str, subject_code: str) -> Any:
    return _timepoint_form(trial_code, subject_code, None)


@bp.route(
    "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>", methods=["GET", "POST"]
)
@requires("enter_measurements")
def timepoint_edit(trial_code: str, subject_code: str, tp_code: str) -> Any:
    return _timepoint_form(trial_code, subject_code, tp_code)


def _timepoint_form(trial_code: str, subject_code: str, tp_code: str | None) -> Any:
    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    if not row.timepoints:
        flash("Enter the baseline first.")
        return redirect(url_for("views.baseline", trial_code=trial_code, subject_code=subject_code))
    case = build_case(row)
    tp = get_timepoint(row, tp_code) if tp_code is not None else None
    if tp is not None and tp is row.timepoints[0]:
        return redirect(url_for("views.baseline", trial_code=trial_code, subject_code=subject_code))
    stored = annotate_timepoint(tp, timepoint_as_dict(row, tp)) if tp is not None else None
    version = tp.version if tp is not None else None
    if request.method == "GET":
        values = timepoint_form_values(stored, case)
        if stored is None:  # a new visit: its code and expected date from the schedule
            values["code"], values["date"] = next_visit(case, today())
            values["suggested"] = bool(values["code"])
        located = locations_of(row)
        for carried in (n for n in values["new"] if n.get("carried") and not n["location"]):
            carried["location"] = located.get(carried["id"], "")  # R-NEW-2: the same lesion
        return timepoint_page(row, case, values, tp_code, version, None)
    form = request.form
    posted_version = version_of(form.get("version"))
    token = form.get("imaging") or None
    new_rows: dict[str, int] = {}
    try:
        data = timepoint_from_form(form, case, new_rows)
        imaging = imaging_from_token(token) if token else None
        _subject, saved = save_timepoint(
            session,
            actor(),
            trial_code,
            subject_code,
            data,
            expected_version=posted_version,
            original_code=tp_code,
            reason=form.get("reason") or None,
            imaging=imaging,
            # after every check of the save: an entry that cannot be saved never counts a
            # password failure (only a save that signs is rehearsed first)
            # a new visit's code is not stored yet (""): nobody else entered it
            ask_signer=signer_on_save(
                session, form, trial_code, subject_code, tp_code or form.get("code") or ""
            ),
        )
    except ServiceError as error:
        timepoint_input(error, new_rows)
        values = timepoint_values_from_post(form, case)
        return timepoint_page(
            row, case, values, tp_code, posted_version, error, imaging_token=token
        )
    signed = " and signed (read complete, locked)" if saved.locked else ""
    flash(f"Timepoint {saved.code} saved{signed}; the assessment was recomputed.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


def signer_on_save(
    session: Any, form: Any, trial_code: str, subject_code: str, tp_code: str | None
) -> Any:
    """How the save asks for its signer when "sign on save" is ticked by a role that signs
    reads, its ``ask_signer``: the read as stored (``tp_code``, the baseline when ``None``)
    must be the user's own, then the password is checked, as in the API
    (:func:`web.services.sign_all.signer_for_stored_read`). Else ``None``: the save is
    neither rehearsed nor signed."""
    if not form.get("sign_on_save") or not allowed(request_user_role(), "sign_reads"):
        return None
    return lambda: signer_for_stored_read(
        session,
        actor(),
        trial_code,
        subject_code,
        password=form.get("sign_password"),
        tp_code=tp_code,
        expected_version=version_of(form.get("version")),
        api=False,
    )


def timepoint_page(
    row: Any,
    case: dict[str, Any],
    values: dict[str, Any],
    tp_code: str | None,
    version: int | None,
    error: ServiceError | None,
    imaging_token: str | None = None,
) -> Any:
    stored = next((t for t in row.timepoints if tp_code and t.code == tp_code), None)
    return (
        render_template(
            "views/timepoint.html",
            locked=stored if stored is not None and stored.locked else None,
            stored_read=stored,  # "sign on save" is offered on one's own read only
            locations=locations_of(row),
            reference=follow_up_reference(case, row.result_json, tp_code),
            imaging_token=imaging_token,
            trial=row.trial,
            subject=row,
            case=case,
            values=values,
            tp_code=tp_code,
            version=version,
            error=error,
            sites=SITES,
            target_states=TARGET_STATES,
            non_target_states=NON_TARGET_STATES,
            irecist=is_irecist(case),
            new_states=NEW_FORM_STATES,
            max_new_rows=NEW_LESION_ROWS + MAX_CARRIED,
            new_categories=NEW_CATEGORIES,
            targets=[le for le in case["lesions"] if le["kind"] == "target"],
            non_targets=[le for le in case["lesions"] if le["kind"] != "target"],
        ),
        error.status if error is not None else 200,
    )


@bp.route(
    "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>/delete", methods=["POST"]
)
@requires("enter_measurements")
def timepoint_delete(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """Delete a follow-up entered by mistake (version and reason required; audited)."""
    form = request.form
    try:
        delete_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            expected_version=version_of(form.get("version")),
            reason=form.get("reason"),
        )
    except ServiceError as error:
        return subject_page(trial_code, subject_code, error)
    flash(f"Timepoint {tp_code} deleted; the assessment was recomputed.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))
