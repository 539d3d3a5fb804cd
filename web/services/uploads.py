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

from imaging_io.matching import Conflict, Segment, match_to_lesions
from web.errors import InvalidInput

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


def measure_upload(stream: IO[bytes], *, store: Path | None = None) -> dict[str, Any]:
    """Check, unpack and measure an uploaded study; returns the ``recist measure`` JSON.

    With ``store`` the measured study is kept there, de-identified and content-addressed
    (:func:`web.services.studies.store_study`): the result then names it (``"study":
    {"id", "series_files", "segmentations"}``) and each lesion its segmentation file
    (``"seg"``), so that its key images can be drawn later.

    Raises
    ------
    InvalidInput
        Not a zip, an unsafe zip, no series or segmentation inside, or imaging_io's
        refusal (one line naming the file).
    """
    workdir = Path(tempfile.mkdtemp(prefix="recist-upload-"))
    try:
        try:
            with zipfile.ZipFile(stream) as archive:
                files = safe_extract(archive, workdir / "unpacked")
        except zipfile.BadZipFile:
            raise UnsafeZip("the upload is not a readable .zip file", field="study") from None
        return measure_files(files, workdir, store=store, what="the zip")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure_files(
    files: list[Path],
    workdir: Path,
    *,
    store: Path | None = None,
    what: str = "the study",
    label_maps: bool = False,
) -> dict[str, Any]:
    """Measure a study given as its files (an image series and its SEG/RTSTRUCT), using
    ``workdir`` for scratch copies; see :func:`measure_upload` for the result and ``store``.
    With ``label_maps`` (a batch, as ``recist batch`` reads it) a NIfTI/NRRD/MetaImage file
    among them is a label map over the series too, kept as a de-identified NIfTI copy
    (:func:`web.services.batch_labelmap.stripped_copy`).
    """
    try:
        from imaging_io import ImagingInputError, measure_study
    except ImportError:  # pragma: no cover - imaging_io is part of this repository
        raise InvalidInput(
            "measuring studies needs the imaging_io package", field="study"
        ) from None
    from imaging_io.series import is_sitk_file

    images, segs = _classify(files)
    if label_maps:
        segs += [p for p in files if is_sitk_file(p)]
    if not segs:
        raise InvalidInput(f"{what} holds no DICOM SEG or RTSTRUCT to measure", field="study")
    if not images:
        raise InvalidInput(f"{what} holds no image series", field="study")
    # The series goes into a folder of its own: readers of a series folder must not
    # meet the segmentation among its slices.
    series_dir = workdir / "series"
    series_dir.mkdir()
    for index, path in enumerate(images):
        shutil.copyfile(path, series_dir / f"{index:05d}.dcm")
    lesions: list[dict[str, Any]] = []
    image_info: dict[str, Any] = {}
    seg_dir = workdir / "segmentations"
    seg_dir.mkdir()
    named = []
    for index, seg in enumerate(segs):
        # Two zip folders may hold files of the same name: number them.
        kept = seg_dir / f"{index:02d}-{seg.name}"
        if is_sitk_file(seg):  # a label map (label_maps): measured as given, kept stripped
            from web.services.batch_labelmap import stored_name, stripped_copy

            kept = seg_dir / stored_name(seg, index)
            stripped_copy(seg, kept)
        else:
            shutil.copyfile(seg, kept)
        named.append(kept)
        try:
            result = measure_study(series_dir, seg)
        except ImagingInputError as error:
            raise InvalidInput(f"{seg.name}: {error}", field="study") from None
        data = result.to_dict()
        # The study date is one of the few identifiers kept (de-identification keeps
        # what the assessment needs): it pre-fills the visit's scan date.
        image_info = {
            **data["image"],
            "study_date": result.info.study_date,
            # The pseudonymous patient key and the study's UID bind a study to one
            # subject (web.services.studies.check_binding).
            "subject_key": result.info.subject_key,
            "study_instance_uid": result.info.study_instance_uid,
        }
        lesions.extend({**item, "seg": kept.name} for item in data["lesions"])
    measured: dict[str, Any] = {"image": image_info, "lesions": lesions}
    if any(is_sitk_file(seg) for seg in segs):
        measured["input"] = "label map"  # what the pages say it was measured from
    if store is not None:
        from web.services.studies import store_study

        series_files = sorted(series_dir.iterdir())
        measured["study"] = {
            "id": store_study(store, series_files, named),
            "series_files": len(series_files),
            "segmentations": [p.name for p in named],
        }
    return measured


# ------------------------------------------------------- measured segments → the form


def _segments(measured: dict[str, Any]) -> list[Segment]:
    return [Segment.of(item) for item in measured["lesions"]]


def _conflict_note(segment: Segment, conflict: Conflict, target: bool) -> str:
    if target:
        left = "not filled: check the segment and enter"
    else:
        left = "not marked present: check the segment and record"
    return (
        f"conflict: segment {segment.describe()} names {conflict.lesion_id}, but "
        f"{conflict.reason}; {left} {conflict.lesion_id} yourself"
    )


def match_segments(
    case: dict[str, Any], measured: dict[str, Any]
) -> tuple[dict[str, float], list[str], dict[str, dict[str, Any]]]:
    """Match measured segments to targets, and say how each was matched.

    The matcher of ``recist ingest`` (:mod:`imaging_io.matching`): a segment whose
    tracking id or label names a lesion (T1 ≙ T01) goes to it, unless its anatomy says
    otherwise (a node on a non-nodal target, a ``lung lesion`` on a node or a liver
    target): such a conflict is listed for the reader to resolve and fills nothing.
    Otherwise a segment goes to a target only when the match is unambiguous by anatomy:
    its label names the target's organ (``liver lesion`` → the one liver target left) or
    it is a node for the one nodal target left. Nothing is matched by position: a segment
    that fits no target, or fits several, is listed with its sizes for the reader to
    enter, because a wrong pre-fill looks exactly like a right one. So is a target named
    by several segments (a split lesion, R-SPLIT: the reader enters the fragments).
    """
    items = measured["lesions"]
    segments = _segments(measured)
    matching = match_to_lesions(case["lesions"], segments, by_anatomy=True)
    conflicted = matching.conflicted()
    out: dict[str, float] = {}
    notes = []
    sources: dict[str, dict[str, Any]] = {}
    for conflict in matching.conflicts:
        target = any(le["id"] == conflict.lesion_id and le["kind"] == "target"
                     for le in case["lesions"])  # fmt: skip
        notes.append(_conflict_note(segments[conflict.segment], conflict, target))
    for le in (le for le in case["lesions"] if le["kind"] == "target"):
        axis = "short axis" if le.get("nodal") else "longest diameter"
        found = matching.lesions.get(le["id"], [])
        if le["id"] in conflicted:
            for index in found:
                notes.append(
                    f"{le['id']} ← segment {segments[index].describe()} (by its id): not "
                    "filled while another segment naming it is in conflict"
                )
            continue
        if not found:
            notes.append(f"{le['id']} ({le['site']}): no segment names it or its site; enter it")
            continue
        if len(found) > 1:
            pieces = "; ".join(f"{items[i].get('label')!r} {_sizes(items[i])}" for i in found)
            notes.append(
                f"{le['id']} is named by {len(found)} segments ({pieces}): if it split, enter "
                "each fragment's size (R-SPLIT)"
            )
            continue
        item, how = items[found[0]], matching.how[found[0]]
        mm = _size_of(le, item)
        if mm is None:
            notes.append(
                f"{le['id']} ← segment {item.get('label')!r} ({how}) has no {axis}; enter it"
            )
            continue
        out[le["id"]] = mm
        sources[le["id"]] = {
            "mm": mm,
            "axis": axis,
            "segment": item.get("label"),
            "matched": how,
            "slice_index": item.get("slice_index"),
            "volume_ml": item.get("volume_ml"),
            # Where it was measured: the stored study's file and segment (key images).
            "seg": item.get("seg"),
            "segment_number": item.get("label_value"),
        }
        notes.append(f"{le['id']} ← segment {item.get('label')!r} ({how}): {axis} {mm:.1f} mm")
    for index in matching.unmatched:
        notes.append(
            f"segment {items[index].get('label')!r} matched no target "
            f"({_sizes(items[index])}): enter it by hand if it is one, or add it as a new lesion"
        )
    return out, notes, sources


def _sizes(item: dict[str, Any]) -> str:
    sizes = ", ".join(
        f"{name} {item[key]:.1f} mm"
        for name, key in (("longest diameter", "longest_diameter_mm"),
                          ("short axis", "short_axis_mm"))
        if item.get(key) is not None
    )  # fmt: skip
    return sizes or "no size"


def non_targets_segmented(case: dict[str, Any], measured: dict[str, Any]) -> dict[str, str]:
    """Non-target lesion id → the label of the segment whose tracking id or label names it.

    A non-target some segment names in conflict (:func:`match_segments` lists it) is left
    out: the reader decides."""
    matching = match_to_lesions(case["lesions"], _segments(measured))
    conflicted = matching.conflicted()
    out: dict[str, str] = {}
    for le in case["lesions"]:
        found = matching.lesions.get(le["id"])
        if le["kind"] != "target" and found and le["id"] not in conflicted:
            out[le["id"]] = str(measured["lesions"][found[0]].get("label"))
    return out


def _size_of(lesion: dict[str, Any], measured: dict[str, Any]) -> float | None:
    # R-MEAS-2 / R-NODE: nodes are followed on the short axis, others on the longest
    # diameter. A size imaging_io could not give stays empty: 0 would read as "absent".
    key = "short_axis_mm" if lesion.get("nodal") else "longest_diameter_mm"
    value = measured.get(key)
    return None if value is None else float(value)


def other_segments(
    measured: dict[str, Any], sources: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The measured segments no target took, by tracking id (else label): kept in the
    evidence so that a new lesion named like one (``NL01``) has its key image too."""
    taken = {(s.get("seg"), s.get("segment_number")) for s in sources.values()}
    out: dict[str, dict[str, Any]] = {}
    for item in measured.get("lesions") or []:
        if (item.get("seg"), item.get("label_value")) in taken or not item.get("voxel_count"):
            continue
        name = str(item.get("tracking_id") or item.get("label") or "")
        if name and name not in out:
            out[name] = {
                "mm": item.get("longest_diameter_mm"),
                "axis": "longest diameter",
                "segment": item.get("label"),
                "slice_index": item.get("slice_index"),
                "seg": item.get("seg"),
                "segment_number": item.get("label_value"),
            }
    return out
