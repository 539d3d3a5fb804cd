"""DICOM series and lesion segmentations to RECIST lesion sizes (the imaging shell).

Public API (imported lazily so that ``recist --help`` does not load numpy or highdicom):

- :func:`measure_study` — image + SEG/RTSTRUCT/label map → :class:`MeasureResult`
  (``.to_dict()`` is the ``recist measure`` JSON);
- :func:`read_study` — a study folder (series + SEG/RTSTRUCT/SR found inside) →
  :class:`Study`, and :func:`measure_study_folder` to measure it;
- :func:`read_measurement_report` — linear measurements of a DICOM SR TID 1500;
- :func:`export_measurement_report` — measure, then write a DICOM SR TID 1500 of the
  lesions (``recist export-sr``);
- :func:`key_image` — a lesion's key image as PNG (measured slice, outline, callipers);
  :class:`AnnotatedSeries` reads a series and its segmentation once and renders any slice
  for a viewer; :func:`render_slice`, :data:`WINDOWS`, :func:`window_for_site`;
- :func:`match_to_lesions` — which case lesion each measured :class:`Segment` belongs to,
  and which names conflict with the anatomy (``recist ingest`` and the web upload);
- :class:`ImagingInputError` — every refusal, naming the file.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ImagingInputError": "imaging_io.errors",
    "measure_study": "imaging_io.measure",
    "MeasureResult": "imaging_io.measure",
    "LesionMeasurement": "imaging_io.measure",
    "read_image": "imaging_io.series",
    "read_segmentation": "imaging_io.segmentation",
    "read_study": "imaging_io.study",
    "measure_study_folder": "imaging_io.study",
    "Study": "imaging_io.study",
    "read_measurement_report": "imaging_io.sr",
    "export_measurement_report": "imaging_io.sr_export",
    "AnnotatedSeries": "imaging_io.keyimage",
    "key_image": "imaging_io.keyimage",
    "render_slice": "imaging_io.keyimage",
    "window_for_site": "imaging_io.keyimage",
    "WINDOWS": "imaging_io.keyimage",
    "Window": "imaging_io.keyimage",
    "PixelBox": "imaging_io.keyimage",
    "match_to_lesions": "imaging_io.matching",
    "Segment": "imaging_io.matching",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imaging_io' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
