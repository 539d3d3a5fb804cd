"""Study uploads: a zip of one DICOM series + SEG/RTSTRUCT, checked, unpacked, measured.

A zip from the internet is hostile until proven otherwise. Before anything is written to
disk every entry is checked: no absolute paths or ``..`` (path traversal), no symbolic
links, no encrypted entries, a bounded number of entries, a bounded total size and a
bounded compression ratio (zip bombs). Entries are then copied with the byte count
enforced while reading, since the sizes in a zip's directory can lie. The request size
itself is capped by ``MAX_CONTENT_LENGTH`` (HTTP 413).
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from web.services import InvalidInput

MAX_ENTRIES = 4000
MAX_TOTAL_BYTES = 2 * 1024**3  # 2 GiB unpacked: a large CT series with its SEG
MAX_RATIO = 200  # DICOM compresses ~2–10×; 200× is a bomb, not a scan
_CHUNK = 1024 * 1024


class UnsafeZip(InvalidInput):
    """The upload is not a zip we are willing to unpack."""

    code = "unsafe_zip"


def check_zip(
    archive: zipfile.ZipFile,
    *,
    max_entries: int = MAX_ENTRIES,
    max_total: int = MAX_TOTAL_BYTES,
    max_ratio: int = MAX_RATIO,
) -> list[zipfile.ZipInfo]:
    """The regular-file entries of ``archive``, or :class:`UnsafeZip` naming the problem."""
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise UnsafeZip(
            f"the zip holds {len(infos)} entries; at most {max_entries} are accepted", field="study"
        )
    files = []
    total = 0
    for info in infos:
        name = info.filename
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or (name[1:2] == ":"):
            raise UnsafeZip(
                f"zip entry {name!r} points outside the archive (path traversal)", field="study"
            )
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeZip(f"zip entry {name!r} is a symbolic link", field="study")
        if info.flag_bits & 0x1:
            raise UnsafeZip(f"zip entry {name!r} is encrypted", field="study")
        if info.is_dir():
            continue
        total += info.file_size
        if total > max_total:
            raise UnsafeZip(
                f"the zip unpacks to more than {max_total // 1024**2} MB", field="study"
            )
        if info.file_size > 1024 * 1024 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise UnsafeZip(
                f"zip entry {name!r} expands {info.file_size // max(info.compress_size, 1)}× "
                f"(more than {max_ratio}×): refused as a zip bomb",
                field="study",
            )
        files.append(info)
    if not files:
        raise UnsafeZip("the zip holds no files", field="study")
    return files


def safe_extract(archive: zipfile.ZipFile, target: Path, **limits: int) -> list[Path]:
    """Unpack the checked entries under ``target``, enforcing each declared size."""
    out = []
    root = target.resolve()
    for info in check_zip(archive, **limits):
        dest = (root / PurePosixPath(info.filename.replace("\\", "/"))).resolve()
        if root not in dest.parents:
            raise UnsafeZip(
                f"zip entry {info.filename!r} points outside the archive", field="study"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with archive.open(info) as src, open(dest, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > info.file_size:
                        raise UnsafeZip(
                            f"zip entry {info.filename!r} is larger than it declares",
                            field="study",
                        )
                    dst.write(chunk)
        except zipfile.BadZipFile as error:
            # zipfile stops at the declared size and then finds the CRC wrong.
            raise UnsafeZip(
                f"zip entry {info.filename!r} is corrupt ({error})", field="study"
            ) from None
        out.append(dest)
    return out


def _classify(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Split DICOM files into image instances and segmentations (SEG / RTSTRUCT)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    images, segs = [], []
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except (InvalidDicomError, OSError, ValueError, AttributeError):
            continue
        modality = str(getattr(ds, "Modality", "") or "")
        if modality in ("SEG", "RTSTRUCT"):
            segs.append(path)
        elif "PixelData" in ds or hasattr(ds, "Rows"):
            images.append(path)
    return images, segs


def measure_upload(stream: IO[bytes]) -> dict[str, Any]:
    """Check, unpack and measure an uploaded study; returns the ``recist measure`` JSON.

    Raises
    ------
    InvalidInput
        Not a zip, an unsafe zip, no series or segmentation inside, or imaging_io's
        refusal (one line naming the file).
    """
    try:
        from imaging_io import ImagingInputError, measure_study
    except ImportError:  # pragma: no cover - imaging_io is part of this repository
        raise InvalidInput(
            "measuring uploads needs the imaging_io package", field="study"
        ) from None
    workdir = Path(tempfile.mkdtemp(prefix="recist-upload-"))
    try:
        try:
            with zipfile.ZipFile(stream) as archive:
                files = safe_extract(archive, workdir / "unpacked")
        except zipfile.BadZipFile:
            raise UnsafeZip("the upload is not a readable .zip file", field="study") from None
        images, segs = _classify(files)
        if not segs:
            raise InvalidInput("the zip holds no DICOM SEG or RTSTRUCT to measure", field="study")
        if not images:
            raise InvalidInput("the zip holds no image series", field="study")
        # The series goes into a folder of its own: readers of a series folder must not
        # meet the segmentation among its slices.
        series_dir = workdir / "series"
        series_dir.mkdir()
        for index, path in enumerate(images):
            shutil.copyfile(path, series_dir / f"{index:05d}.dcm")
        lesions: list[dict[str, Any]] = []
        image_info: dict[str, Any] = {}
        for seg in segs:
            try:
                result = measure_study(series_dir, seg)
            except ImagingInputError as error:
                raise InvalidInput(f"{seg.name}: {error}", field="study") from None
            data = result.to_dict()
            # The study date is one of the few identifiers kept (de-identification keeps
            # what the assessment needs): it pre-fills the visit's scan date.
            image_info = {**data["image"], "study_date": result.info.study_date}
            lesions.extend(data["lesions"])
        return {"image": image_info, "lesions": lesions}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
