"""Trial and subject plots as SVG and their data as CSV, drawn once per state of their data
(:mod:`web.services.plot_cache`).

An SVG opens in the browser (served inline as ``image/svg+xml``, with the content security
policy of a plot: ``web.SVG_CONTENT_SECURITY_POLICY``); ``?download=1`` asks for it as a
file. Each answer carries the plot's cache key as its ETag, so a browser that has
the plot already gets a 304.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request

from web.auth import refuse_if_blinded, request_user_role, requires
from web.pages import review as bp
from web.services import get_trial, request_session
from web.services.plots import SUBJECT_PLOTS


@bp.app_context_processor
def _subject_plots() -> dict[str, Any]:
    """The subject page's plots (views/_subject_plots.html): kind → title."""
    return {"subject_plots": SUBJECT_PLOTS}


def _plot(trial_code: str, kind: str, subject_code: str | None) -> tuple[Any, str]:
    from web.services.plots import cached_subject_plot, cached_trial_plot

    session = request_session()
    trial = get_trial(session, trial_code)
    refuse_if_blinded(trial)
    where = {"role": request_user_role(), "folder": current_app.config["PLOT_CACHE"]}
    if subject_code is None:
        return cached_trial_plot(session, trial, kind, **where)
    return cached_subject_plot(session, trial, subject_code, kind, **where)


def _answer(body: str, mimetype: str, key: str, filename: str, attach: bool) -> Any:
    response = Response(body, mimetype=mimetype)
    response.set_etag(key)
    # Private (a member's data), and checked with the server on every use: a change to
    # the trial shows at once, an unchanged plot costs a 304.
    response.headers["Cache-Control"] = "private, no-cache"
    if attach:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response.make_conditional(request)


@bp.route("/trials/<trial_code>/plots/<kind>.svg")
@requires("view")
def plot_svg(trial_code: str, kind: str) -> Any:
    plot, key = _plot(trial_code, kind, None)
    attach = bool(request.args.get("download"))
    return _answer(plot.svg, "image/svg+xml", key, f"{trial_code}_{kind}.svg", attach)


@bp.route("/trials/<trial_code>/plots/<kind>.csv")
@requires("view")
def plot_csv(trial_code: str, kind: str) -> Any:
    from web.services.plots import points_csv

    plot, key = _plot(trial_code, kind, None)
    return _answer(points_csv(plot), "text/csv", key, f"{trial_code}_{kind}.csv", True)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/plots/<kind>.svg")
@requires("view")
def subject_plot_svg(trial_code: str, subject_code: str, kind: str) -> Any:
    plot, key = _plot(trial_code, kind, subject_code)
    attach = bool(request.args.get("download"))
    name = f"{trial_code}_{subject_code}_{kind}.svg"
    return _answer(plot.svg, "image/svg+xml", key, name, attach)


@bp.route("/trials/<trial_code>/subjects/<subject_code>/plots/<kind>.csv")
@requires("view")
def subject_plot_csv(trial_code: str, subject_code: str, kind: str) -> Any:
    from web.services.plots import points_csv

    plot, key = _plot(trial_code, kind, subject_code)
    name = f"{trial_code}_{subject_code}_{kind}.csv"
    return _answer(points_csv(plot), "text/csv", key, name, True)
