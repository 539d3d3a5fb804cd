"""Images beside the calls: a lesion's key image and the slices of the study it was
measured on, drawn server-side as PNG (:mod:`imaging_io.keyimage`) from the study kept at
upload (:mod:`web.services.studies`).

* ``…/timepoints/TP/key-images/T01.png[?window=lung]``: the slice of the long axis,
  cropped around the lesion, with its outline and both callipers labelled in mm.
* ``…/timepoints/TP/slices/K.png?lesion=T01[&window=…]``: slice ``K`` of the series with
  the lesion's outline (and its callipers on the measured slice), for the slice viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, current_app, request

from web.auth import refuse_if_blinded, requires
from web.errors import InvalidInput
from web.pages import review as bp
from web.services import get_subject, get_timepoint, request_session
from web.services.studies import annotated_series

TP = "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>"


def _window() -> str | None:
    from imaging_io.keyimage import WINDOWS

    name = request.args.get("window") or None
    if name is not None and name not in WINDOWS:
        raise InvalidInput(
            f"window {name!r} is not one of {', '.join(WINDOWS)}", field="window"
        )
    return name


def _source(trial_code: str, subject_code: str, tp_code: str, lesion: str) -> tuple[Any, int]:
    session = request_session()
    subject = get_subject(session, trial_code, subject_code)
    refuse_if_blinded(subject.trial)
    tp = get_timepoint(subject, tp_code)
    root = Path(current_app.config["STUDY_STORE"])
    return annotated_series(root, tp.imaging_json or {}, lesion)


def _png(data: bytes) -> Response:
    response = Response(data, mimetype="image/png")
    # Pseudonymous images of one subject: the reader's browser may keep them a while.
    response.headers["Cache-Control"] = "private, max-age=600"
    return response


def _drawn(draw: Any) -> bytes:
    from imaging_io import ImagingInputError

    try:
        data: bytes = draw()
    except ImagingInputError as error:
        raise InvalidInput(str(error), field="lesion") from None
    return data


@bp.route(TP + "/key-images/<lesion>.png")
@requires("view")
def key_image(trial_code: str, subject_code: str, tp_code: str, lesion: str) -> Any:
    series, segment = _source(trial_code, subject_code, tp_code, lesion)
    window = _window()
    return _png(_drawn(lambda: series.key_image(segment, window=window)))


@bp.route(TP + "/slices/<int:k>.png")
@requires("view")
def slice_image(trial_code: str, subject_code: str, tp_code: str, k: int) -> Any:
    lesion = request.args.get("lesion") or ""
    series, segment = _source(trial_code, subject_code, tp_code, lesion)
    window = _window() or "soft tissue"
    return _png(_drawn(lambda: series.render(k, segment=segment, window=window)))
