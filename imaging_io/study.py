"""Studies as folders: find the image series and its segmentations, de-identified.

Nothing downstream needs a patient's name: a study is reduced to what the assessment
needs (study date, series and frame-of-reference UIDs, modality, slice thickness, pixel
spacing) plus a pseudonymous subject key.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imaging_io.deid import PSEUDONYM_KEY_ENV, pseudonym
from imaging_io.errors import ImagingInputError

if TYPE_CHECKING:
    from imaging_io.measure import MeasureResult
    from imaging_io.series import ImageSeries

# pseudonym and PSEUDONYM_KEY_ENV live in imaging_io.deid; still importable from here.
__all__ = ["PSEUDONYM_KEY_ENV", "Study", "measure_study_folder", "pseudonym", "read_study"]


@dataclass(frozen=True)
class Study:
    """What a study folder holds, once sorted: one image series and its annotations.

    Attributes
    ----------
    folder
        The folder read.
    series
        The image series (header only) the segmentations are on.
    segmentations
        DICOM SEG and RTSTRUCT files over that series.
    reports
        DICOM SR files (TID 1500 measurement reports).
    """

    folder: str
    series: ImageSeries
    segmentations: tuple[Path, ...]
    reports: tuple[Path, ...]


def _referenced_series(ds: Any) -> set[str]:
    uids = {str(item.get("SeriesInstanceUID", ""))
            for item in ds.get("ReferencedSeriesSequence", [])}
    for ref in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in ref.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                uids.add(str(series.get("SeriesInstanceUID", "")))
    return uids - {""}


def read_study(folder: str | Path) -> Study:
    """Sort a study folder into its image series, segmentations and SR reports.

    Files are found recursively; non-DICOM files are ignored. When the folder holds
    several image series, the one the segmentations reference is chosen.

    Raises
    ------
    ImagingInputError
        No image series, or several and no segmentation that says which one to use.
    """
    from imaging_io.series import (
        image_from_datasets,
        is_image_dataset,
        iter_files,
        read_dicom_header,
    )

    root = Path(folder)
    if not root.is_dir():
        raise ImagingInputError(root, "is not a folder")
    images: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    segmentations: list[tuple[Path, Any]] = []
    reports: list[Path] = []
    for file in iter_files(root):
        ds = read_dicom_header(file)
        if ds is None:
            continue
        modality = str(ds.get("Modality", ""))
        if modality in ("SEG", "RTSTRUCT"):
            segmentations.append((file, ds))
        elif modality == "SR":
            reports.append(file)
        elif is_image_dataset(ds):
            images[str(ds.get("SeriesInstanceUID", "?"))].append((file, ds))
    if not images:
        raise ImagingInputError(root, "holds no DICOM image series")
    chosen = next(iter(images)) if len(images) == 1 else None
    if chosen is None:
        wanted = set().union(*(_referenced_series(ds) for _, ds in segmentations)) if \
            segmentations else set()
        candidates = [uid for uid in images if uid in wanted]
        if len(candidates) != 1:
            listing = ", ".join(f"{uid} ({len(v)} files)" for uid, v in images.items())
            raise ImagingInputError(
                root, f"holds {len(images)} image series ({listing}) and no segmentation "
                "that references exactly one of them",
            )
        chosen = candidates[0]
    series = image_from_datasets(root, images[chosen])
    segs = tuple(f for f, ds in segmentations
                 if not _referenced_series(ds) or chosen in _referenced_series(ds))
    return Study(str(root), series, segs, tuple(reports))


def measure_study_folder(folder: str | Path, *, components: bool = False,
                         fractional_threshold: float = 0.5) -> MeasureResult:
    """Measure every segmentation (SEG, RTSTRUCT) found in a study folder.

    Lesions of all segmentation files are listed in file order. This is what the web app
    calls for an uploaded study.

    Raises
    ------
    ImagingInputError
        As :func:`read_study`, or no segmentation in the folder.
    """
    from imaging_io.measure import measure_masks
    from imaging_io.segmentation import read_segmentation

    study = read_study(folder)
    if not study.segmentations:
        raise ImagingInputError(folder, "holds no DICOM SEG or RTSTRUCT to measure")
    masks = []
    for path in study.segmentations:
        masks.extend(read_segmentation(
            path, study.series.grid, image_sop_uids=study.series.info.sop_instance_uids,
            image_series_uid=study.series.info.series_instance_uid,
            fractional_threshold=fractional_threshold,
        ))
    return measure_masks(study.series, masks, components=components)
