"""Pages for people: trials, subjects, the lesion × timepoint grid and the entry forms.

Views stay thin (style.md): parse the form, call one service function, render. A refused
save re-renders the form with what was typed and the service's message.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from web.auth import actor, allowed, blinded, refuse_if_blinded, request_user_role, requires
from web.forms import (
    NEW_BASELINE_ROWS,
    baseline_form_values,
    baseline_rows,
    lesions_from_form,
    timepoint_form_values,
    timepoint_from_form,
    timepoint_values_from_post,
)
from web.grid import build_grid, follow_up_reference, response_css, subject_summary
from web.models import NON_TARGET_STATES, SITES, TARGET_STATES
from web.services import (
    InvalidInput,
    ReasonRequired,
    ServiceError,
    audit_trail,
    baseline_case,
    baseline_findings,
    baseline_lesions,
    build_case,
    create_subject,
    create_trial,
    delete_timepoint,
    get_subject,
    get_timepoint,
    get_trial,
    list_subjects,
    list_trials,
    request_session,
    save_baseline,
    save_timepoint,
    subject_counts,
    timepoint_as_dict,
    update_subject,
)
from web.services.plots import PLOTS

bp = Blueprint("views", __name__)


@bp.app_template_filter("response_css")
def _response_css(code: str | None) -> str:
    return response_css(code)


def _version(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


@bp.route("/")
@requires("view")
def trials() -> Any:
    return _trials_page()


def _trials_page(error: ServiceError | None = None, form: Any = None) -> Any:
    from recist.settings import Settings

    return (
        render_template(
            "trials.html",
            trials=list_trials(request_session()),
            counts=subject_counts(request_session()),
            defaults=Settings().to_dict(),
            error=error,
            form=form or {},
        ),
        error.status if error is not None else 200,
    )


# Protocol settings on the trial form: (name, kind); kinds mirror recist.settings.Settings.
SETTING_FIELDS = (
    ("confirmation", "flag"),
    ("confirmation_min_days", "days"),
    ("confirmation_max_ne_between", "days"),
    ("sd_min_days", "days"),
    ("visit_interval_days", "days_or_off"),
    ("pr_hold", "flag"),
    ("strict", "flag"),
    ("cut_at_new_therapy", "flag"),
    ("previously_treated_targets", "flag"),
    ("progression_date", "choice"),
)


def _settings_from_form(form: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name, kind in SETTING_FIELDS:
        raw = form.get(f"s_{name}", "").strip()
        if kind == "flag":
            settings[name] = raw == "on"
        elif kind == "choice":
            settings[name] = raw or "earliest"
        elif raw == "" and kind == "days_or_off":
            settings[name] = None
        else:
            if not raw.isdigit():
                raise InvalidInput(
                    f"setting {name}: {raw!r} is not a whole number of days",
                    field=f"settings.{name}",
                )
            settings[name] = int(raw)
    return settings


@bp.route("/trials", methods=["POST"])
@requires("manage_trials")
def trial_create() -> Any:
    """Create a trial with its arms ("CODE: name" per line) and protocol settings."""
    form = request.form
    try:
        arms = []
        for line in form.get("arms", "").splitlines():
            if line.strip():
                code, _, name = line.partition(":")
                arms.append((code.strip(), name.strip() or code.strip()))
        trial_row = create_trial(
            request_session(),
            actor(),
            code=form.get("code", "").strip(),
            title=form.get("title", "").strip(),
            settings=_settings_from_form(form),
            arms=arms,
        )
    except ServiceError as error:
        return _trials_page(error, form)
    flash(f"Trial {trial_row.code} created.")
    return redirect(url_for("views.trial", trial_code=trial_row.code))


@bp.route("/trials/<trial_code>", methods=["GET"])
@requires("view")
def trial(trial_code: str) -> Any:
    return _trial_page(trial_code)


def _trial_page(trial_code: str, error: ServiceError | None = None, form: Any = None) -> Any:
    session = request_session()
    trial_row = get_trial(session, trial_code)
    if blinded(request_user_role(), trial_row):
        # Independent central review: a reader's view of the trial is their reading list.
        return redirect(url_for("review.central_reads", trial_code=trial_code))
    from web.services.progression import open_queries, overrides

    overridden = overrides(session, trial_row)
    rows = [
        (s, _summary_as_used(s, s.result_json, overridden.get(s.id)))
        for s in list_subjects(session, trial_row)
    ]

    # Queries on progression calls go back to the readers: list them where they look.
    queries = (
        open_queries(session, trial_row) if allowed(request_user_role(), "answer_queries") else []
    )
    status = error.status if error is not None else 200
    return (
        render_template(
            "trial.html",
            trial=trial_row,
            rows=rows,
            plots=PLOTS,
            queries=queries,
            error=error,
            form=form or {},
        ),
        status,
    )


def _summary_as_used(
    subject: Any, result: dict[str, Any] | None, used: dict[str, Any] | None
) -> dict[str, Any]:
    """A subject's summary with the progression call analyses use.

    Without an override this is the engine's result. With one, progression and PFS are
    the override's (PFS derived again by the engine's rule, :func:`web.services.progression.
    used_result`) and the engine's stay beside them as ``engine_progression`` /
    ``engine_pfs``, so that no screen shows one call without saying the other exists.
    """
    summary = subject_summary(result)
    if used is None or not result:
        return summary
    from web.services.progression import used_result

    as_used = subject_summary(used_result(build_case(subject), result, used))
    return {
        **summary,
        "progression": as_used["progression"],
        "pfs": as_used["pfs"],
        "engine_progression": summary["progression"],
        "engine_pfs": summary["pfs"],
        "override": used,
    }


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
        return _trial_page(trial_code, error, form)
    if allowed(request_user_role(), "enter_measurements"):
        flash(f"Subject {subject.code} created; enter the baseline next.")
        return redirect(url_for("views.baseline", trial_code=trial_code, subject_code=subject.code))
    # A trial manager registers subjects; a reader enters their baseline.
    flash(f"Subject {subject.code} created; a reader enters the baseline next.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject.code))


@bp.route("/trials/<trial_code>/subjects/<subject_code>")
@requires("view")
def subject(trial_code: str, subject_code: str) -> Any:
    return _subject_page(trial_code, subject_code)


def _subject_page(trial_code: str, subject_code: str, error: ServiceError | None = None) -> Any:
    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    refuse_if_blinded(row.trial)
    case = build_case(row)
    result = row.result_json
    grid = build_grid(case, result) if case["timepoints"] else None
    versions = {tp.code: tp.version for tp in row.timepoints}
    audit = audit_trail(session, f"{trial_code}/{subject_code}", limit=50)
    from web.services.progression import subject_row

    review = subject_row(session, row)
    used = review.used if review is not None and review.override is not None else None
    return (
        render_template(
            "subject.html",
            trial=row.trial,
            subject=row,
            case=case,
            result=result,
            summary=_summary_as_used(row, result, used),
            grid=grid,
            versions=versions,
            audit=audit,
            review=review,
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
            expected_version=_version(form.get("version")),
            reason=form.get("reason") or None,
        )
    except ServiceError as error:
        return _subject_page(trial_code, subject_code, error)
    flash("Subject details saved; the assessment was recomputed.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


# ----------------------------------------------------------------------------- baseline


@bp.route("/trials/<trial_code>/subjects/<subject_code>/baseline", methods=["GET", "POST"])
@requires("enter_measurements")
def baseline(trial_code: str, subject_code: str) -> Any:
    session = request_session()
    row = get_subject(session, trial_code, subject_code)
    case = build_case(row)
    version = row.timepoints[0].version if row.timepoints else None
    if request.method == "GET":
        return _baseline_page(row, baseline_form_values(case), version, None, [])
    form = request.form
    values: dict[str, Any] = {
        "date": form.get("date", ""),
        "code": form.get("code", "BL") or "BL",
        "rows": baseline_rows(form),
    }
    posted_version = _version(form.get("version"))
    try:
        lesions = lesions_from_form(form)
        save_baseline(
            session,
            actor(),
            trial_code,
            subject_code,
            date_value=values["date"],
            code=values["code"],
            lesions=lesions,
            expected_version=posted_version,
            reason=form.get("reason"),
        )
    except ReasonRequired as error:
        return _baseline_page(row, values, posted_version, error, error.details)
    except ServiceError as error:
        return _baseline_page(row, values, posted_version, error, [])
    flash("Baseline saved.")
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
            "baseline.html",
            trial=row.trial,
            subject=row,
            values=values,
            version=version,
            error=error,
            findings=findings,
            sites=SITES,
        ),
        error.status if error is not None else 200,
    )


@bp.route("/trials/<trial_code>/subjects/<subject_code>/baseline/check", methods=["POST"])
@requires("enter_measurements")
def baseline_check(trial_code: str, subject_code: str) -> Any:
    """Findings (R-MEAS, R-SEL) for the baseline form as typed; used by the page's script."""
    row = get_subject(request_session(), trial_code, subject_code)
    try:
        # The same validation as Save (one contract); targets still without a size are
        # left out of the live check, which reports the findings of what is typed so far.
        typed = [
            le for le in lesions_from_form(request.form) if le["kind"] != "target" or "size" in le
        ]
        case = baseline_case(
            row,
            date_value=request.form.get("date") or row.randomized_on or "2000-01-01",
            code=request.form.get("code") or "BL",
            lesions=baseline_lesions(typed, subject_code),
        )
        return jsonify({"findings": baseline_findings(case), "error": None})
    except ServiceError as error:
        return jsonify({"findings": [], "error": error.message})


# ----------------------------------------------------------------------------- follow-ups


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
    stored = timepoint_as_dict(row, tp) if tp is not None else None
    version = tp.version if tp is not None else None
    if request.method == "GET":
        values = timepoint_form_values(stored, case)
        return _timepoint_page(row, case, values, tp_code, version, None)
    form = request.form
    posted_version = _version(form.get("version"))
    token = form.get("imaging") or None
    try:
        data = timepoint_from_form(form, case)
        imaging = _imaging_from_token(token) if token else None
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
        )
    except ServiceError as error:
        values = timepoint_values_from_post(form, case)
        return _timepoint_page(
            row, case, values, tp_code, posted_version, error, imaging_token=token
        )
    flash(f"Timepoint {saved.code} saved; the assessment was recomputed.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


def _timepoint_page(
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
            "timepoint.html",
            locked=stored if stored is not None and stored.locked else None,
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
            expected_version=_version(form.get("version")),
            reason=form.get("reason"),
        )
    except ServiceError as error:
        return _subject_page(trial_code, subject_code, error)
    flash(f"Timepoint {tp_code} deleted; the assessment was recomputed.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


@bp.route("/trials/<trial_code>/subjects/<subject_code>/upload", methods=["GET", "POST"])
@requires("enter_measurements")
def upload(trial_code: str, subject_code: str) -> Any:
    """Upload a study (zip) for a follow-up: imaging_io measures, the reader confirms."""
    from web.services.uploads import match_segments, measure_upload, non_targets_segmented

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
            measured = measure_upload(file.stream)
        except ServiceError as exc:
            error = exc
    if measured is not None and not measured.get("lesions"):
        error = InvalidInput("the study holds no segmented lesion to measure", field="study")
    follow_ups = [tp.code for tp in row.timepoints[1:]]
    if measured is not None and error is None:
        # For an existing follow-up the stored values are kept where nothing was measured.
        target = request.form.get("timepoint") or None
        tp = get_timepoint(row, target) if target in follow_ups else None
        stored = timepoint_as_dict(row, tp) if tp is not None else None
        prefill, notes, sources = match_segments(case, measured)
        evidence = {"image": measured.get("image") or {}, "lesions": sources}
        values = timepoint_form_values(stored, case)
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
        flash(
            "Measured from the uploaded study; check every value before saving. " + "; ".join(notes)
        )
        return _timepoint_page(
            row,
            case,
            values,
            tp.code if tp else None,
            tp.version if tp else None,
            None,
            imaging_token=_imaging_serializer().dumps(evidence),
        )
    return (
        render_template(
            "upload.html", trial=row.trial, subject=row, error=error, follow_ups=follow_ups
        ),
        error.status if error is not None else 200,
    )


# The imaging evidence travels in the form between the upload and the save: signed with
# the application's key, so what is stored is what imaging_io measured, not what a
# browser sent back.
IMAGING_SALT = "recist-imaging-evidence"
IMAGING_MAX_AGE_S = 24 * 3600


def _imaging_serializer() -> Any:
    from flask import current_app
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=IMAGING_SALT)


def _imaging_from_token(token: str) -> dict[str, Any]:
    from itsdangerous import BadSignature

    try:
        evidence: dict[str, Any] = _imaging_serializer().loads(token, max_age=IMAGING_MAX_AGE_S)
    except BadSignature:
        raise InvalidInput(
            "the imaging measurements attached to this form are not valid (altered, or older "
            "than a day); upload the study again",
            field="imaging",
        ) from None
    return evidence
