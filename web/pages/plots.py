"""Trial plots as SVG and their data as CSV."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    request,
)

from web.auth import refuse_if_blinded, requires
from web.pages import review as bp
from web.services import get_trial, request_session


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
