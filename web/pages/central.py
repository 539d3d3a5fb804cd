"""Independent central review: the setting, the overview and exports, the blinded
reader's worksheet and adjudication."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from web.auth import actor, requires
from web.models import SITES
from web.pages import review as bp
from web.pages.grid import key_image_links
from web.pages.read_sheet import Sheet
from web.pages.sheet_check import bad_field, check_answer, with_pending
from web.services import InvalidInput, ServiceError, get_subject, get_trial, request_session


@bp.route("/trials/<trial_code>/central-review/setting", methods=["GET", "POST"])
@requires("manage_trials")
def central_setting(trial_code: str) -> Any:
    """Switch independent central review on, or off (unblinding: a reason, an explicit
    confirmation and, while signed blinded reads exist, an adjudicator's or admin's
    password signature). The trial page's checkbox posts here; switching off without
    what it needs answers this page, with the form to complete."""
    from web.services.central import UNBLIND_CONFIRMATION, blinded_reads, set_central_review

    session = request_session()
    form = request.form
    error: ServiceError | None = None
    if request.method == "POST":
        on = form.get("central_review") == "on"
        try:
            set_central_review(
                session,
                actor(),
                trial_code,
                on=on,
                reason=form.get("reason") or None,
                confirmed=form.get("confirm") == "yes",
                signer=form.get("signer") or None,
                password=form.get("password") or None,
            )
        except ServiceError as failed:
            error = failed
        else:
            flash("Independent central review " + ("on." if on else "off: the trial is unblinded."))
            return redirect(url_for("views.trial", trial_code=trial_code))
    trial = get_trial(session, trial_code)
    return (
        render_template(
            "review/central_setting.html",
            trial=trial,
            reads=blinded_reads(session, trial),
            confirmation=UNBLIND_CONFIRMATION,
            form=form,
            error=error,
        ),
        error.status if error is not None else 200,
    )


@bp.route("/trials/<trial_code>/central-review")
@requires("view_audit")
def central_review(trial_code: str) -> Any:
    from web.services.central import metrics, overview

    session = request_session()
    trial = get_trial(session, trial_code)
    rows = overview(session, trial)
    return render_template(
        "review/central_review.html", trial=trial, rows=rows, metrics=metrics(rows)
    )


@bp.route("/trials/<trial_code>/central-review/<domain>.csv")
@requires("view_audit")
def central_export(trial_code: str, domain: str) -> Any:
    from web.services.central_export import export_csv

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
    return render_template("review/central_reads.html", trial=trial, todo=todo)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/central-read", methods=["GET", "POST"])
@requires("central_read")
def central_read(trial_code: str, subject_code: str) -> Any:
    """A blinded reader's read of one subject: the RECIST worksheet (:mod:`web.pages.read_sheet`)
    or, under "advanced", the read as JSON. ``action`` is ``sign`` (assess, sign with the
    password: "read complete"), ``check`` (assess only, nothing stored), ``add_columns`` or
    ``add_rows`` (the worksheet again, larger: the page works without JavaScript)."""
    from web.services.central import reads_of, submit_read

    session = request_session()
    error: ServiceError | None = None
    outcome = None
    pending: list[str] = []
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
                if sheet is not None and action == "check":
                    # Cells still blank in a visit being typed count as NE in a check.
                    checked, pending = with_pending(sheet)
                    read = checked.to_read()
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
            return jsonify(check_answer(sheet or Sheet.blank(), outcome, error, pending))
    subject = get_subject(session, trial_code, subject_code)
    mine = next((r for r in reads_of(session, subject) if r.reader == actor().username), None)
    if mine is not None:
        shown = Sheet.from_read(mine.case_json).padded()
    else:
        shown = sheet or Sheet.blank()
    return (
        render_template(
            "review/central_read.html",
            trial=subject.trial,
            subject=subject,
            mine=mine,
            text=text,
            error=error,
            sheet=shown,
            ids=shown.auto_ids(),
            bad_field=bad_field(shown, error),
            outcome=outcome,
            pending=pending,
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


def compare_reads(
    cases: list[dict[str, Any]], images: dict[tuple[str, str], str]
) -> list[dict[str, Any]]:
    """Per timepoint and target of two reads: both values, whether they differ, and the
    key image of the site's kept study for that timepoint and lesion (if any)."""
    if len(cases) != 2:
        return []
    by_tp = [{tp["id"]: tp for tp in case.get("timepoints", [])} for case in cases]
    lesions: list[str] = []
    for case in cases:
        lesions += [
            le["id"]
            for le in case.get("lesions", [])
            if le.get("kind") == "target" and le["id"] not in lesions
        ]
    codes: list[str] = []
    for case in cases:
        codes += [tp["id"] for tp in case.get("timepoints", []) if tp["id"] not in codes]
    rows = []
    for code in codes:
        for lesion in lesions:
            values = [(side.get(code) or {}).get("targets", {}).get(lesion) for side in by_tp]
            rows.append(
                {
                    "timepoint": code,
                    "lesion": lesion,
                    "reads": ["—" if v is None else v for v in values],
                    "differ": values[0] != values[1],
                    "image": images.get((code, lesion), ""),
                }
            )
    return rows


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
    from web.services.read_compare import (
        compare_new_lesions,
        compare_non_targets,
        scan_date_warnings,
    )

    cases = [rd.case_json for rd in row.reads]
    compared = compare_reads(cases, key_image_links(subject))
    return (
        render_template(
            "review/adjudication.html",
            trial=trial,
            subject=subject,
            row=row,
            error=error,
            compared=compared,
            compared_non_targets=compare_non_targets(cases),
            compared_new=compare_new_lesions(cases),
            date_warnings=scan_date_warnings(cases),
        ),
        error.status if error is not None else 200,
    )
