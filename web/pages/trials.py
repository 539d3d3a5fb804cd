"""Trial pages: the trial list and creation (with protocol settings), a trial's subjects."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from web.auth import actor, allowed, blinded, request_user, request_user_role, requires
from web.pages import views as bp
from web.pages.eligibility import (
    eligibility_fields,
    eligibility_findings,
    eligibility_from_form,
    eligibility_summary,
    typed_fields,
)
from web.pages.grid import subject_summary
from web.services import (
    InvalidInput,
    ServiceError,
    build_case,
    create_trial,
    get_trial,
    list_subjects,
    list_trials,
    request_session,
    subject_counts,
)
from web.services.membership import visible_trials
from web.services.plots import PLOTS


@bp.route("/")
@requires("view")
def trials() -> Any:
    return _trials_page()


def _trials_page(error: ServiceError | None = None, form: Any = None) -> Any:
    from recist.settings import Settings

    return (
        render_template(
            "views/trials.html",
            trials=visible_trials(
                request_session(), request_user(), list_trials(request_session())
            ),
            counts=subject_counts(request_session()),
            defaults={
                **Settings().to_dict(),
                "elig": typed_fields(form) if form is not None else eligibility_fields(None),
            },
            error=error,
            form=form or {},
        ),
        error.status if error is not None else 200,
    )


# Protocol settings on the trial form: (name, kind); kinds mirror recist.settings.Settings.
# "choice" and "days_or_default" left blank (or not posted) keep the setting's default.
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
    ("criteria", "choice"),  # docs/rules.md §10: "recist1.1" or "irecist"
    ("irecist_confirm_min_days", "days_or_default"),  # I-CPD-WINDOW
    ("irecist_confirm_max_days", "days_or_default"),
    ("reappearance_min_mm", "mm"),  # R-REAPPEAR
    ("baseline_window_days", "days_or_default"),  # R-PLAUS-BLWINDOW
)


def _settings_from_form(form: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name, kind in SETTING_FIELDS:
        raw = form.get(f"s_{name}", "").strip()
        if kind == "flag":
            settings[name] = raw == "on"
        elif kind == "choice":
            if raw:  # the engine's model checks the value (recist.jsonio.SettingsIn)
                settings[name] = raw
        elif raw == "" and kind == "days_or_off":
            settings[name] = None
        elif raw == "" and kind in ("days_or_default", "mm"):
            continue
        elif kind == "mm":
            try:
                settings[name] = float(raw)
            except ValueError:
                raise InvalidInput(
                    f"setting {name}: {raw!r} is not a number of millimetres",
                    field=f"settings.{name}",
                ) from None
        else:
            if not raw.isdigit():
                raise InvalidInput(
                    f"setting {name}: {raw!r} is not a whole number of days",
                    field=f"settings.{name}",
                )
            settings[name] = int(raw)
    # R-ELIG-COUNT, R-ELIG-SIZE, R-ELIG-VOLUME, R-ELIG-SITE: all blank is no rules.
    settings["eligibility"] = eligibility_from_form(form)
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
    return trial_page(trial_code)


def trial_page(trial_code: str, error: ServiceError | None = None, form: Any = None) -> Any:
    session = request_session()
    trial_row = get_trial(session, trial_code)
    if blinded(request_user_role(), trial_row):
        # Independent central review: a reader's view of the trial is their reading list.
        return redirect(url_for("review.central_reads", trial_code=trial_code))
    from web.services.progression import open_queries, overrides

    overridden = overrides(session, trial_row)
    rows = [
        (s, summary_as_used(s, s.result_json, overridden.get(s.id)))
        for s in list_subjects(session, trial_row)
    ]
    any_rows = bool(rows)  # before the eligibility filter: the exports are of every subject
    # R-ELIG-*: the breaches the stored result reports (no recomputation here).
    breaching = sum(1 for _s, sm in rows if sm["eligibility"])
    only_breaches = request.args.get("eligibility") == "breaches"
    if only_breaches:
        rows = [(s, sm) for s, sm in rows if sm["eligibility"]]

    # Queries on progression calls go back to the readers: list them where they look.
    queries = (
        open_queries(session, trial_row) if allowed(request_user_role(), "answer_queries") else []
    )
    # What holds the analysis export back, shown before anyone clicks into a refusal.
    blockers: list[str] = []
    if any_rows and allowed(request_user_role(), "view_audit"):
        from web.services.exports import export_blockers

        blockers = export_blockers(session, trial_row)
    status = error.status if error is not None else 200
    # The settings editor shows what was typed after a refusal, else the stored values.
    settings_form = dict(trial_row.settings or {})
    settings_form["elig"] = eligibility_fields(settings_form.get("eligibility"))
    if form is not None and form.get("settings_edit"):
        for name, kind in SETTING_FIELDS:
            typed = form.get(f"s_{name}")
            settings_form[name] = (typed == "on") if kind == "flag" else (typed or "")
        settings_form["elig"] = typed_fields(form)
    return (
        render_template(
            "views/trial.html",
            trial=trial_row,
            rows=rows,
            plots=PLOTS,
            queries=queries,
            export_blockers=blockers,
            error=error,
            form=form or {},
            settings_form=settings_form,
            eligibility_text=eligibility_summary((trial_row.settings or {}).get("eligibility")),
            breaching=breaching,
            only_breaches=only_breaches,
        ),
        status,
    )


@bp.route("/trials/<trial_code>/settings", methods=["POST"])
@requires("manage_trials")
def trial_settings(trial_code: str) -> Any:
    """Change protocol settings with a reason; every subject is re-assessed."""
    from web.services.trials import update_settings

    form = request.form
    try:
        _trial, changed = update_settings(
            request_session(),
            actor(),
            trial_code,
            _settings_from_form(form),
            reason=form.get("reason") or None,
        )
    except ServiceError as error:
        return trial_page(trial_code, error, form)
    flash(f"Protocol settings saved; {changed} subject(s) re-assessed with a changed result.")
    return redirect(url_for("views.trial", trial_code=trial_code))


def summary_as_used(
    subject: Any, result: dict[str, Any] | None, used: dict[str, Any] | None
) -> dict[str, Any]:
    """A subject's summary with the progression call analyses use.

    Without an override this is the engine's result. With one, progression, PFS, the last
    response and the BOR follow the override (:func:`web.services.as_used.used_result`) and
    the engine's stay beside them as ``engine_progression``, ``engine_pfs``, ``engine_bor``
    and ``engine_last``, so that no screen shows one call without saying the other exists.
    """
    summary = {**subject_summary(result), "eligibility": eligibility_findings(result)}
    if used is None or not result:
        return summary
    from web.services.as_used import used_result

    as_used = subject_summary(used_result(build_case(subject), result, used))
    return {
        **as_used,
        "engine_progression": summary["progression"],
        "engine_pfs": summary["pfs"],
        "engine_bor": summary["bor"],
        "engine_last": summary["last"],
        "override": used,
        "eligibility": summary["eligibility"],
    }
