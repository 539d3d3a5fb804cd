"""Pages of the review issue: the audit trail (view, CSV), signing and unlocking reads,
the progression-call review queue, plots.

Views stay thin (style.md): parse the query or form, call one service or
:mod:`web.services.audit` function, render.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from web.auth import actor, refuse_if_blinded, requires
from web.models import SITES
from web.read_sheet import Sheet, SheetError
from web.services import InvalidInput, ServiceError, get_subject, get_trial, request_session
from web.services.audit import ACTIONS, AuditFilter, entities, search, to_csv
from web.services.progression import (
    answer_query,
    override_call,
    queue,
    queue_csv,
    review_call,
    subject_row,
)
from web.services.signing import sign_timepoint, unlock_timepoint

bp = Blueprint("review", __name__)

# The page shows the newest records; the CSV export has them all.
PAGE_LIMIT = 500


def _filters() -> AuditFilter:
    try:
        return AuditFilter.from_args(request.args)
    except ValueError as error:
        raise InvalidInput(str(error), field=str(error).split(":")[0]) from None


def _audit_scope(trial_code: str, subject_code: str | None) -> tuple[Any, Any, str]:
    session = request_session()
    trial = get_trial(session, trial_code)
    if subject_code is None:
        return trial, None, trial.code
    subject = get_subject(session, trial_code, subject_code)
    return trial, subject, f"{trial.code}/{subject.code}"


@bp.route("/trials/<trial_code>/audit")
@requires("view_audit")
def trial_audit(trial_code: str) -> Any:
    return _audit_page(trial_code, None)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/audit")
@requires("view_audit")
def subject_audit(trial_code: str, subject_code: str) -> Any:
    return _audit_page(trial_code, subject_code)


def _audit_page(trial_code: str, subject_code: str | None) -> Any:
    filters = _filters()
    trial, subject, key = _audit_scope(trial_code, subject_code)
    session = request_session()
    records = search(session, key, filters, limit=PAGE_LIMIT + 1)
    return render_template(
        "audit.html",
        trial=trial,
        subject=subject,
        records=records[:PAGE_LIMIT],
        truncated=len(records) > PAGE_LIMIT,
        filters=filters,
        args=filters.as_args(),
        actions=ACTIONS,
        entities=entities(session),
    )


@bp.route("/trials/<trial_code>/audit.csv")
@requires("view_audit")
def trial_audit_csv(trial_code: str) -> Any:
    return _audit_csv(trial_code, None)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/audit.csv")
@requires("view_audit")
def subject_audit_csv(trial_code: str, subject_code: str) -> Any:
    return _audit_csv(trial_code, subject_code)


def _audit_csv(trial_code: str, subject_code: str | None) -> Any:
    filters = _filters()
    _trial, _subject, key = _audit_scope(trial_code, subject_code)
    body = to_csv(search(request_session(), key, filters, limit=None))
    name = key.replace("/", "_") + "_audit.csv"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# ----------------------------------------------------------------------------- signing


def _subject_error(trial_code: str, subject_code: str, error: ServiceError) -> Any:
    from web.views import _subject_page

    return _subject_page(trial_code, subject_code, error)


@bp.route(
    "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>/sign", methods=["POST"]
)
@requires("sign_reads")
def sign(trial_code: str, subject_code: str, tp_code: str) -> Any:
    form = request.form
    version = form.get("version", "")
    try:
        sign_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            password=form.get("password", ""),
            meaning=form.get("meaning", ""),
            expected_version=int(version) if version.isdigit() else None,
        )
    except ServiceError as error:
        return _subject_error(trial_code, subject_code, error)
    flash(f"Timepoint {tp_code} signed ({form.get('meaning')}) and locked.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


@bp.route(
    "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>/unlock", methods=["POST"]
)
@requires("unlock_reads")
def unlock(trial_code: str, subject_code: str, tp_code: str) -> Any:
    try:
        unlock_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            reason=request.form.get("reason", ""),
        )
    except ServiceError as error:
        return _subject_error(trial_code, subject_code, error)
    flash(f"Timepoint {tp_code} unlocked; its signature was withdrawn.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


# ----------------------------------------------------------------------------- progression


@bp.route("/trials/<trial_code>/progression")
@requires("view")
def progression_queue(trial_code: str) -> Any:
    session = request_session()
    trial = get_trial(session, trial_code)
    refuse_if_blinded(trial)
    rows = queue(session, trial)
    return render_template("progression_queue.html", trial=trial, rows=rows)


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
    from web.grid import build_grid
    from web.services import build_case

    session = request_session()
    subject = get_subject(session, trial_code, subject_code)
    refuse_if_blinded(subject.trial)
    case = build_case(subject)
    grid = build_grid(case, subject.result_json) if case["timepoints"] else None
    return (
        render_template(
            "progression.html",
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


# ----------------------------------------------------------------------------- plots


@bp.route("/trials/<trial_code>/plots/<kind>.svg")
@requires("view")
def plot_svg(trial_code: str, kind: str) -> Any:
    from web.services.plots import trial_plot

    trial = get_trial(request_session(), trial_code)
    refuse_if_blinded(trial)
    plot = trial_plot(request_session(), trial, kind)
    headers = {}
    if request.args.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="{trial_code}_{kind}.svg"'
    return Response(plot.svg, mimetype="image/svg+xml", headers=headers)


@bp.route("/trials/<trial_code>/plots/<kind>.csv")
@requires("view")
def plot_csv(trial_code: str, kind: str) -> Any:
    from web.services.plots import points_csv, trial_plot

    trial = get_trial(request_session(), trial_code)
    refuse_if_blinded(trial)
    plot = trial_plot(request_session(), trial, kind)
    return Response(
        points_csv(plot),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{trial_code}_{kind}.csv"'},
    )


# ----------------------------------------------------------------------------- central review


@bp.route("/trials/<trial_code>/central-review/setting", methods=["POST"])
@requires("manage_trials")
def central_setting(trial_code: str) -> Any:
    from web.services.central import set_central_review

    on = request.form.get("central_review") == "on"
    set_central_review(request_session(), actor(), trial_code, on=on)
    flash("Independent central review " + ("on." if on else "off."))
    return redirect(url_for("views.trial", trial_code=trial_code))


@bp.route("/trials/<trial_code>/central-review")
@requires("view_audit")
def central_review(trial_code: str) -> Any:
    from web.services.central import metrics, overview

    session = request_session()
    trial = get_trial(session, trial_code)
    rows = overview(session, trial)
    return render_template("central_review.html", trial=trial, rows=rows, metrics=metrics(rows))


@bp.route("/trials/<trial_code>/central-review/<domain>.csv")
@requires("view_audit")
def central_export(trial_code: str, domain: str) -> Any:
    from web.services.central import export_csv

    trial = get_trial(request_session(), trial_code)
    return Response(
        export_csv(request_session(), trial, domain),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{trial.code}_central_{domain}.csv"'
        },
    )


@bp.route("/trials/<trial_code>/central-reads")
@requires("central_read")
def central_reads(trial_code: str) -> Any:
    from web.services.central import overview

    session = request_session()
    trial = get_trial(session, trial_code)
    me = actor().username
    # Only what a blinded reader may know: the subject id and whether *they* read it.
    todo = [
        (row.subject.code, next((r for r in row.reads if r.reader == me), None))
        for row in overview(session, trial)
    ]
    return render_template("central_reads.html", trial=trial, todo=todo)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/central-read", methods=["GET", "POST"])
@requires("central_read")
def central_read(trial_code: str, subject_code: str) -> Any:
    """A blinded reader's read of one subject: the RECIST worksheet (:mod:`web.read_sheet`)
    or, under "advanced", the read as JSON. ``action`` is ``sign`` (assess, sign with the
    password: "read complete"), ``check`` (assess only, nothing stored), ``add_columns`` or
    ``add_rows`` (the worksheet again, larger: the page works without JavaScript)."""
    from web.services.central import reads_of, submit_read

    session = request_session()
    error: ServiceError | None = None
    outcome = None
    form = request.form
    action = form.get("action", "sign")
    as_json = "read" in form  # the advanced form posts the read as JSON text
    text = form.get("read", "")
    sheet = Sheet.from_form(form).padded() if request.method == "POST" and not as_json else None
    if request.method == "POST":
        try:
            if sheet is not None and action == "add_columns":
                sheet = sheet.with_more_columns()
            elif sheet is not None and action == "add_rows":
                sheet = sheet.with_more_rows()
            else:
                read = sheet.to_read() if sheet is not None else _json_read(text)
                if action == "check":
                    outcome = _check_read(session, trial_code, subject_code, read)
                else:
                    submit_read(
                        session,
                        actor(),
                        trial_code,
                        subject_code,
                        read=read,
                        password=form.get("password", ""),
                    )
                    flash(f"Your read of {subject_code} is signed and submitted.")
                    return redirect(
                        url_for(
                            "review.central_read", trial_code=trial_code, subject_code=subject_code
                        )
                    )
        except ServiceError as failed:
            error = failed
        if action == "check" and request.accept_mimetypes.best == "application/json":
            # The worksheet's script checks the read as the reader types (nothing stored).
            return jsonify(
                {
                    "outcome": outcome,
                    "error": None if error is None else error.message,
                    "field": _bad_field(sheet or Sheet.blank(), error),
                }
            )
    subject = get_subject(session, trial_code, subject_code)
    mine = next((r for r in reads_of(session, subject) if r.reader == actor().username), None)
    if mine is not None:
        shown = Sheet.from_read(mine.case_json).padded()
    else:
        shown = sheet or Sheet.blank()
    return (
        render_template(
            "central_read.html",
            trial=subject.trial,
            subject=subject,
            mine=mine,
            text=text,
            error=error,
            sheet=shown,
            ids=shown.auto_ids(),
            bad_field=_bad_field(shown, error),
            outcome=outcome,
            sites=SITES,
            as_json=as_json,
        ),
        error.status if error is not None else 200,
    )


def _json_read(text: str) -> Any:
    """The advanced form's read: JSON text, refused with its line and column (and within
    the limits of every JSON reader: depth, number length, no NaN, no duplicate key)."""
    from recist.safejson import INVALID_JSON, JsonInputError, loads

    try:
        return loads(text)
    except JsonInputError as bad:
        place = "" if bad.column is None else f" (line {bad.line}, column {bad.column})"
        raise InvalidInput(
            f"the read is not valid JSON{place}: {bad.reason}"
            if bad.code == INVALID_JSON
            else f"the read is refused: {bad.detail}",
            field="read",
        ) from None


def _check_read(session: Any, trial_code: str, subject_code: str, read: Any) -> dict[str, Any]:
    """The engine's result for a read, stateless (nothing stored, nothing signed): what the
    reader would sign. The case is the blinded one that :func:`web.services.central.submit_read`
    assesses (the reader's lesions and timepoints, the trial's settings)."""
    from web.services import engine_assess
    from web.services.central import blinded_case, check_read_shape

    subject = get_subject(session, trial_code, subject_code)
    return engine_assess(blinded_case(subject, check_read_shape(read)))


def _bad_field(sheet: Sheet, error: ServiceError | None) -> str | None:
    """The worksheet field to mark for an error: the one the worksheet named, else the
    cell an engine refusal points at."""
    if error is None:
        return None
    if isinstance(error, SheetError):
        return error.field
    return sheet.field_at(error.pointer)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/adjudication", methods=["GET", "POST"])
@requires("adjudicate")
def adjudication(trial_code: str, subject_code: str) -> Any:
    from web.services.central import adjudicate, overview

    session = request_session()
    error = None
    if request.method == "POST":
        slot = request.form.get("accepted", "")
        try:
            adjudicate(
                session,
                actor(),
                trial_code,
                subject_code,
                accepted_slot=int(slot) if slot.isdigit() else None,
                rationale=request.form.get("rationale", ""),
                password=request.form.get("password", ""),
            )
        except ServiceError as failed:
            error = failed
        else:
            flash(f"Subject {subject_code} adjudicated: read {slot} accepted.")
            return redirect(
                url_for("review.adjudication", trial_code=trial_code, subject_code=subject_code)
            )
    trial = get_trial(session, trial_code)
    subject = get_subject(session, trial_code, subject_code)
    row = next(r for r in overview(session, trial) if r.subject.id == subject.id)
    return (
        render_template("adjudication.html", trial=trial, subject=subject, row=row, error=error),
        error.status if error is not None else 200,
    )
