"""Uploaded studies, kept so that the evidence of a measurement can be shown again.

A study (the image series and its segmentations) is stored once, **content-addressed**:
its id is the SHA-256 of its de-identified files (names and bytes), and it lives in
``<STUDY_STORE>/<id[:2]>/<id>/`` (``series/`` and ``seg/``). Storing the same study twice
writes nothing new. A timepoint's imaging evidence names the study id and the
segmentation file each lesion was measured on, so the key images and the slice viewer
(:mod:`imaging_io.keyimage`) render from exactly the files that were measured.

De-identified to what the assessment needs: patient name, birth date, address, other
ids, institution and physician names and private tags are removed; the patient id is
replaced by the pseudonymous key (:func:`imaging_io.deid.pseudonym`); UIDs, geometry,
pixel data, study date and segment descriptions stay.

Retention: studies are kept as long as the instance; nothing deletes them (a record that
names one must be able to show it in an audit). They are not in ``recist db backup``:
back the store folder up beside the database. The upload size cap (``RECIST_MAX_UPLOAD_MB``)
and the zip limits of :mod:`web.services.uploads` bound what one upload can add.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from web.errors import InvalidInput, NotFound

# Attributes that identify a person or a site; removed from every stored file.
IDENTIFYING = (
    "PatientName",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientMotherBirthName",
    "MilitaryRank",
    "EthnicGroup",
    "PatientComments",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "AccessionNumber",
)


def _deidentified(source: Path, target: Path) -> None:
    import pydicom

    from imaging_io.deid import pseudonym

    dataset = pydicom.dcmread(source)
    for keyword in IDENTIFYING:
        if keyword in dataset:
            delattr(dataset, keyword)
    dataset.remove_private_tags()
    if "PatientID" in dataset:
        dataset.PatientID = pseudonym(str(dataset.PatientID))
    dataset.save_as(target, enforce_file_format=False)


def study_folder(root: Path, study_id: str) -> Path:
    if len(study_id) != 64 or any(c not in "0123456789abcdef" for c in study_id):
        raise NotFound(f"no stored study {study_id!r}", field="study")
    return root / study_id[:2] / study_id


def store_study(root: Path, series: Sequence[Path], segmentations: Sequence[Path]) -> str:
    """De-identify and keep a measured study; returns its id (SHA-256 of its files)."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        (staging / "series").mkdir()
        (staging / "seg").mkdir()
        digest = hashlib.sha256()
        named = [(f"series/{i:05d}.dcm", p) for i, p in enumerate(series)]
        named += [(f"seg/{p.name}", p) for p in segmentations]
        for name, path in named:
            _deidentified(path, staging / name)
            digest.update(name.encode() + b"\0")
            digest.update(hashlib.sha256((staging / name).read_bytes()).digest())
        study_id = digest.hexdigest()
        final = study_folder(root, study_id)
        if final.exists():
            return study_id  # content-addressed: already kept
        final.parent.mkdir(exist_ok=True)
        try:
            os.rename(staging, final)
        except OSError:
            if not final.exists():
                raise
        return study_id
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@lru_cache(maxsize=8)
def _annotated(folder: str, seg_name: str) -> Any:
    from imaging_io.keyimage import AnnotatedSeries

    return AnnotatedSeries.read(Path(folder) / "series", Path(folder) / "seg" / seg_name)


def annotated_series(root: Path, evidence: dict[str, Any], lesion: str) -> tuple[Any, int]:
    """The stored study of a timepoint's imaging evidence, read with its pixels and
    segments (cached), and the segment of ``lesion`` in it.

    Raises
    ------
    NotFound
        The evidence names no stored study (measured before studies were kept) or no
        such lesion.
    """
    study = (evidence or {}).get("study") or {}
    lesions = (evidence or {}).get("lesions") or {}
    if not study.get("id"):
        raise NotFound(
            "this timepoint's measurements were made before uploaded studies were kept: "
            "there is no image to show",
            field="lesion",
        )
    if lesion not in lesions:
        raise NotFound(f"lesion {lesion!r} was not measured on this timepoint's images")
    source = lesions[lesion]
    folder = study_folder(root, str(study["id"]))
    seg_name = str(source.get("seg") or "")
    if not folder.is_dir() or not (folder / "seg" / seg_name).is_file():
        raise NotFound(f"the stored study {study['id'][:12]}… is missing from the study store")
    number = source.get("segment_number")
    if not isinstance(number, int):
        raise InvalidInput(f"lesion {lesion!r} names no segment", field="lesion")
    return _annotated(str(folder), seg_name), number
