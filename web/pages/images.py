"""Images beside the calls: a lesion's key image and the slices of the study it was
measured on, drawn server-side as PNG (:mod:`imaging_io.keyimage`) from the study kept at
upload (:mod:`web.services.studies`).

* ``…/timepoints/TP/key-images/T01.png[?window=lung]``: the slice of the long axis,
  cropped around the lesion, with its outline and both callipers labelled in mm.
* ``…/timepoints/TP/slices/K.png?lesion=T01[&window=…]``: slice ``K`` of the series with
  the lesion's outline (and its callipers on the measured slice), for the slice viewer.
* ``…/timepoints/TP/measurement-report.dcm``: the study's measurements as a DICOM SR
  TID 1500 (:mod:`imaging_io.sr_export`), the reader who saved the timepoint as observer,
  for a PACS or OHIF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, current_app, request

from web.auth import refuse_if_blinded, requires
from web.errors import InvalidInput, NotFound
from web.pages import review as bp
from web.services import get_subject, get_timepoint, request_session
from web.services.studies import annotated_series, study_folder

TP = "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>"


def _window() -> str | None:
    from imaging_io.keyimage import WINDOWS

    name = request.args.get("window") or None
    if name is not None and name not in WINDOWS:
        raise InvalidInput(f"window {name!r} is not one of {', '.join(WINDOWS)}", field="window")
    return name


def _timepoint(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """The timepoint whose images are asked for (403 for a blinded reader)."""
    subject = get_subject(request_session(), trial_code, subject_code)
    refuse_if_blinded(subject.trial)
    return get_timepoint(subject, tp_code)


def _source(trial_code: str, subject_code: str, tp_code: str, lesion: str) -> tuple[Any, int]:
    tp = _timepoint(trial_code, subject_code, tp_code)
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


@bp.route(TP + "/measurement-report.dcm")
@requires("view")
def measurement_report(trial_code: str, subject_code: str, tp_code: str) -> Any:
    import tempfile

    from imaging_io import ImagingInputError
    from imaging_io.sr_export import export_measurement_report

    tp = _timepoint(trial_code, subject_code, tp_code)
    study = (tp.imaging_json or {}).get("study") or {}
    if not study.get("id") or not study.get("segmentations"):
        raise NotFound(
            f"timepoint {tp_code} of subject {subject_code} has no kept study to report on"
        )
    folder = study_folder(Path(current_app.config["STUDY_STORE"]), str(study["id"]))
    with tempfile.TemporaryDirectory(prefix="recist-sr-") as scratch:
        out = Path(scratch) / "report.dcm"
        try:
            export_measurement_report(
                folder / "series",
                folder / "seg" / str(study["segmentations"][0]),
                out,
                timepoint=tp.code,
                # A one-component DICOM person name: the user name, then "^".
                observer=f"{tp.updated_by}^" if tp.updated_by else None,
                subject=f"{trial_code}/{subject_code}",
            )
        except ImagingInputError as error:
            raise InvalidInput(str(error), field="study") from None
        data = out.read_bytes()
    name = f"{trial_code}_{subject_code}_{tp_code}_SR.dcm"
    return Response(
        data,
        mimetype="application/dicom",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
