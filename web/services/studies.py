"""Uploaded studies, kept so that the evidence of a measurement can be shown again.

A study (the image series and its segmentations) is stored once, **content-addressed**:
its id is the SHA-256 of its de-identified files (names and bytes), and it lives in
``<STUDY_STORE>/<id[:2]>/<id>/`` (``series/`` and ``seg/``). Storing the same study twice
writes nothing new. A timepoint's imaging evidence names the study id and the
segmentation file each lesion was measured on, so the key images and the slice viewer
(:mod:`imaging_io.keyimage`) render from exactly the files that were measured.

De-identified to what the assessment needs: patient name, birth date, address, other
ids, institution and physician names, accession number and private tags are removed (the
Type 2 ones left present and empty); patient id and name become the pseudonymous key
(:func:`imaging_io.deid.pseudonym`); UIDs, geometry, pixel data, study date and segment
descriptions stay.

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
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, NotFound
from web.models import Subject
from web.services.common import Actor, Audit, clean_reason, get_subject

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


# Of those, the ones DICOM requires present (Type 2, maybe empty) in the modules we keep.
TYPE_2 = ("PatientBirthDate", "ReferringPhysicianName", "AccessionNumber")


def _deidentified(source: Path, target: Path) -> None:
    import pydicom

    from imaging_io.deid import pseudonym

    dataset = pydicom.dcmread(source)
    for keyword in IDENTIFYING:
        if keyword in dataset:
            delattr(dataset, keyword)
    dataset.remove_private_tags()
    key = pseudonym(str(dataset.get("PatientID", "")))
    dataset.PatientID = key
    # Type 2 attributes stay present (empty, or the key): a report built from the study
    # (DICOM SR, web.pages.images) copies them.
    dataset.PatientName = f"{key}^"  # one name component (DICOM PN)
    for keyword in TYPE_2:
        setattr(dataset, keyword, "")
    dataset.save_as(target, enforce_file_format=False)


def study_folder(root: Path, study_id: str) -> Path:
    if len(study_id) != 64 or any(c not in "0123456789abcdef" for c in study_id):
        raise NotFound(f"no stored study {study_id!r}", field="study")
    return root / study_id[:2] / study_id


def store_study(root: Path, series: Sequence[Path], segmentations: Sequence[Path]) -> str:
    """De-identify and keep a measured study; returns its id (SHA-256 of its files)."""
    named = [(f"series/{i:05d}.dcm", p) for i, p in enumerate(series)]
    named += [(f"seg/{p.name}", p) for p in segmentations]
    # A label map (.nii.gz) comes already stripped (web.services.batch_labelmap).
    writers = [
        (name, partial(shutil.copyfile if name.endswith(".nii.gz") else _deidentified, path))
        for name, path in named
    ]
    return store_files(root, writers)


def store_files(root: Path, named: Sequence[tuple[str, Callable[[Path], None]]]) -> str:
    """Keep a study whose files (``series/…`` and ``seg/…``) are written by their writers
    (each de-identifies what it writes); returns its id (SHA-256 of the files written)."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        (staging / "series").mkdir()
        (staging / "seg").mkdir()
        digest = hashlib.sha256()
        for name, write in named:
            write(staging / name)
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


class StudyOfAnotherPatient(Conflict):
    """A study whose patient is not the subject's (409 ``study_of_another_patient``)."""

    code = "study_of_another_patient"


def _short(key: str) -> str:
    return f"{key[:8]}…"


def check_binding(session: Session, subject: Subject, image: dict[str, Any]) -> str | None:
    """The patient key to bind ``subject`` to, after checking that a study belongs to it.

    A subject is bound to the pseudonymous patient key of its first saved study; a later
    study of another patient is refused, and so is a first study whose patient is already
    bound to another subject of the trial. ``None``: the study names no patient (NIfTI,
    NRRD), nothing to check or bind.

    Raises
    ------
    StudyOfAnotherPatient
        Naming the subject, both keys (shortened) and how to correct it.
    """
    key = image.get("subject_key")
    if not key:
        return None
    where = f"subject {subject.code}"
    if subject.imaging_key is not None:
        if subject.imaging_key != key:
            raise StudyOfAnotherPatient(
                f"{where}: this study is of patient key {_short(str(key))}, but the "
                f"subject's images are of patient key {_short(subject.imaging_key)}: a "
                "study of another patient is refused (a trial manager can rebind the "
                "subject, with a reason, if the first study was the wrong one)",
                field="study",
            )
        return str(key)
    other = session.scalar(
        select(Subject.code).where(
            Subject.trial_id == subject.trial_id,
            Subject.imaging_key == key,
            Subject.id != subject.id,
        )
    )
    if other is not None:
        raise StudyOfAnotherPatient(
            f"{where}: this study is of the patient whose images are bound to subject "
            f"{other} (patient key {_short(str(key))}): refused",
            field="study",
        )
    return str(key)


def rebind_imaging(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    subject_key: Any,
    reason: Any,
) -> Subject:
    """Bind a subject's images to another patient key (a trial manager correcting a wrong
    first study); needs a reason, audited. ``subject_key`` ``None`` unbinds."""
    text = clean_reason(reason)
    if not text:
        raise InvalidInput(
            "rebinding a subject's images needs a reason", field="reason", pointer="/reason"
        )
    if subject_key is not None and (
        not isinstance(subject_key, str)
        or len(subject_key) != 16
        or any(c not in "0123456789abcdef" for c in subject_key)
    ):
        raise InvalidInput(
            "subject_key is the 16-hex-digit pseudonymous key of a study's patient, or null",
            field="subject_key",
            pointer="/subject_key",
        )
    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        audit = Audit(session, actor, text)
        if audit.change(
            "subject",
            f"{trial_code}/{subject_code}",
            "imaging_key",
            subject.imaging_key,
            subject_key,
        ):
            subject.imaging_key = subject_key
    return subject


@lru_cache(maxsize=8)
def _annotated(folder: str, seg_name: str) -> Any:
    from imaging_io.keyimage import AnnotatedSeries

    series = Path(folder) / "series"
    # A label-map study keeps its image as one NIfTI file (web.services.batch_labelmap).
    volumes = sorted(series.glob("*.nii.gz"))
    image = volumes[0] if len(volumes) == 1 else series
    return AnnotatedSeries.read(image, Path(folder) / "seg" / seg_name)


def segment_named(evidence: dict[str, Any], lesion: str) -> dict[str, Any] | None:
    """The evidence's other segment whose tracking id or label names ``lesion`` (a new
    lesion: ``NL1`` ≙ ``NL01``), if any."""
    from imaging_io.matching import lesion_key

    wanted = lesion_key(lesion)
    segments = (evidence or {}).get("segments") or {}
    return next((s for name, s in segments.items() if lesion_key(name) == wanted), None)


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
            "this timepoint has no kept study (entered by hand, or measured before "
            "uploaded studies were kept): there is no image to show",
            field="lesion",
        )
    source = lesions.get(lesion) or segment_named(evidence, lesion)
    if source is None:
        raise NotFound(f"lesion {lesion!r} was not measured on this timepoint's images")
    folder = study_folder(root, str(study["id"]))
    seg_name = str(source.get("seg") or "")
    if not folder.is_dir() or not (folder / "seg" / seg_name).is_file():
        raise NotFound(f"the stored study {study['id'][:12]}… is missing from the study store")
    number = source.get("segment_number")
    if not isinstance(number, int):
        raise InvalidInput(f"lesion {lesion!r} names no segment", field="lesion")
    return _annotated(str(folder), seg_name), number


def attach_imaging(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    tp_code: str,
    imaging: dict[str, Any],
) -> None:
    """Keep a measured study as a timepoint's imaging evidence without changing what the
    reader entered (the baseline, whose values come from its own form): audited; a signed
    timepoint is refused; the study must be the subject's patient's (check_binding).

    At the baseline the study's volumes of the lesions it measured join the baseline
    ``volumes`` (those it did not measure are kept), and the subject is re-assessed: a
    protocol's volume limit reads them (R-ELIG-VOLUME)."""
    from web.services.cases import ordered_timepoints, recompute
    from web.services.common import check_unlocked, get_timepoint, touch

    with write_transaction(session):
        subject = get_subject(session, trial_code, subject_code, lock=True)
        tp = get_timepoint(subject, tp_code)
        check_unlocked(tp, subject_code)
        key = f"{trial_code}/{subject_code}"
        audit = Audit(session, actor, None)
        bound = check_binding(session, subject, imaging.get("image") or {})
        if bound is not None and audit.change(
            "subject", key, "imaging_key", subject.imaging_key, bound
        ):
            subject.imaging_key = bound
        old = dict(tp.imaging_json or {})
        volumes = old.pop("volumes", None)
        typed = old.pop("typed_volumes", None) or []
        new = {k: v for k, v in imaging.items() if k not in ("volumes", "typed_volumes")}
        # The evidence and the baseline volumes are audited apart: volumes an imported case
        # brought are no earlier evidence that this study would change.
        changed = audit.change("timepoint", f"{key}/{tp.code}", "imaging", old or None, new)
        if tp is ordered_timepoints(subject)[0]:
            merged = baseline_volumes_with(volumes, imaging)
            # A volume replaced (typed on the baseline entry, or an earlier study's) is
            # changed by the rule that imaging's latest volume wins: that is its reason.
            why = "the study's volume wins (R-ELIG-VOLUME)" if volumes else None
            replaces = Audit(session, actor, why)
            if replaces.change("timepoint", f"{key}/{tp.code}", "volumes", volumes, merged):
                changed, volumes = True, merged
        # Imaging wins over a volume typed on the baseline entry (R-ELIG-VOLUME): a lesion
        # this study measured is no longer a typed one.
        measured = set(baseline_volumes_with(None, imaging) or {})
        typed = [code for code in typed if code not in measured]
        if changed:
            tp.imaging_json = {**new, "volumes": volumes} if volumes else new
            if typed and volumes:
                tp.imaging_json = {**tp.imaging_json, "typed_volumes": typed}
            touch(tp, actor)
            recompute(subject, focus=tp.code)


def baseline_volumes_with(
    volumes: dict[str, Any] | None, imaging: dict[str, Any]
) -> dict[str, Any] | None:
    """The baseline ``volumes`` (lesion code → mL): the earlier ones, then the volume of
    every lesion the study ``imaging`` measured (its ``lesions``' ``volume_ml``), for a
    protocol's volume limit (R-ELIG-VOLUME); ``None`` when there is none."""
    out = dict(volumes or {})
    for code, source in (imaging.get("lesions") or {}).items():
        value = source.get("volume_ml") if isinstance(source, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(code)] = value
    return out or None
