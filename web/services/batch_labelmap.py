"""Label-map studies of a web batch: a NIfTI (or NRRD, MetaImage) image with its label map,
as ``recist batch`` takes them (imaging_io/README.md, "recist batch").

Such a study is measured by the reader of ``recist measure`` and ``recist batch``
(:func:`imaging_io.measure_study`): the label map must lie on the image's grid (a label
map whose geometry differs is refused, naming the file), each non-zero value is a lesion.

**Its key.** A DICOM study is recorded once per subject by its StudyInstanceUID; an image
file has none. A label-map study is keyed by the SHA-256 of its image's *content*: the
voxel type, size, spacing, origin, direction and voxel bytes as read
(:func:`content_key`, stored as ``image-sha256:<hex>`` in ``PacsStudy.study_uid``). Chosen
over the file's path, size and mtime because a re-run must add nothing even when the
batch root was copied, moved or restored from a backup (new paths, new mtimes), and over
the file's bytes because the same image re-compressed or re-exported with another header
text is the same image. Like a DICOM study, the label map is not part of the key: the same
image with a corrected label map is "already recorded", as a DICOM study with a new SEG.

**What is kept.** The study store keeps a de-identified copy, as for DICOM studies
(:mod:`web.services.studies`): the image and the label map are written again as NIfTI from
their voxels and geometry only, so the header's free text (description, auxiliary file,
intent name) and any extension are not kept. The key images are drawn from that copy.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path
from typing import Any

from web.errors import InvalidInput

KEY_PREFIX = "image-sha256:"
INPUT = "label map"  # what the pages say a label-map study was measured from
CLI_RESAMPLE_HINT = "pass --resample to resample it (nearest neighbour)"
WEB_RESAMPLE_HINT = (
    "the web batch does not resample: export the label map on its image's grid (or "
    "resample it, nearest neighbour) and run the batch again"
)


def is_label_map_study(image: Path) -> bool:
    """An image given as one NIfTI/NRRD/MetaImage file (a DICOM series is a folder or a
    DICOM file)."""
    from imaging_io.series import is_sitk_file

    return image.is_file() and is_sitk_file(image)


def content_key(image: Any) -> str:
    """``image-sha256:<hex>``: the SHA-256 of a SimpleITK image's voxel type, size,
    spacing, origin, direction and voxel bytes (the module's "Its key")."""
    import SimpleITK as sitk

    digest = hashlib.sha256()
    head = (
        image.GetPixelIDTypeAsString(),
        image.GetNumberOfComponentsPerPixel(),
        image.GetSize(),
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
    )
    digest.update(repr(head).encode())
    digest.update(sitk.GetArrayViewFromImage(image).tobytes())
    return KEY_PREFIX + digest.hexdigest()


def _stripped(path: Path) -> Any:
    """The image at ``path`` with its voxels and geometry only (no header text)."""
    import SimpleITK as sitk

    image: Any = sitk.ReadImage(str(path))  # SimpleITK carries no annotations
    for key in image.GetMetaDataKeys():
        image.EraseMetaData(key)
    return image


def _write(image: Any, target: Path) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(image, str(target), useCompression=True)


def stored_name(path: Path, index: int = 0) -> str:
    """The name a label map is kept under: ``<index>-<name>.nii.gz`` (always NIfTI)."""
    from imaging_io.series import SITK_SUFFIXES

    name = path.name
    suffix = next((s for s in SITK_SUFFIXES if name.lower().endswith(s)), "")
    return f"{index:02d}-{name[: len(name) - len(suffix)]}.nii.gz"


def stripped_copy(source: Path, target: Path) -> None:
    """Write ``source`` (a NIfTI/NRRD/MetaImage file) to ``target`` (``.nii.gz``) with its
    voxels and geometry only: the de-identified copy the study store keeps.

    Raises
    ------
    InvalidInput
        SimpleITK cannot read or write it (naming the file).
    """
    try:
        _write(_stripped(source), target)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "?"
        raise InvalidInput(f"{source}: cannot be copied into the study store ({first})") from None


def measure_label_map_study(
    image: Path, seg: Path, *, store: Path | None, what: str
) -> dict[str, Any]:
    """Measure an image file and its label map as ``recist measure`` does, keep the study
    (when ``store``) and return the measurement in the form of
    :func:`web.services.uploads.measure_files`, plus ``input`` (:data:`INPUT`) and the
    image's ``content_key``.

    Raises
    ------
    InvalidInput
        imaging_io's refusal (one line naming the file: off the image grid, not a label
        map, unreadable…), prefixed by ``what``.
    """
    from imaging_io import ImagingInputError, measure_study

    try:
        result = measure_study(image, seg)
        source = _stripped(image)
        labels = _stripped(seg)
    except ImagingInputError as error:
        # The command line's hint names an option the web batch does not have.
        text = str(error).replace(CLI_RESAMPLE_HINT, WEB_RESAMPLE_HINT)
        raise InvalidInput(f"{what}: {text}", field="study") from None
    except RuntimeError as error:  # SimpleITK's own read error, after imaging_io read it
        raise InvalidInput(f"{what}: {image} or {seg} cannot be read again ({error})") from None
    data = result.to_dict()
    seg_name = stored_name(seg)
    measured: dict[str, Any] = {
        "image": {
            **data["image"],
            "study_date": result.info.study_date,
            "subject_key": result.info.subject_key,
            "study_instance_uid": result.info.study_instance_uid,
            "content_key": content_key(source),
        },
        "lesions": [{**item, "seg": seg_name} for item in data["lesions"]],
        "input": INPUT,
    }
    if store is not None:
        from web.services.studies import store_files

        measured["study"] = {
            "id": store_files(
                store,
                [
                    ("series/image.nii.gz", partial(_write, source)),
                    (f"seg/{seg_name}", partial(_write, labels)),
                ],
            ),
            "series_files": 1,
            "segmentations": [seg_name],
        }
    return measured
