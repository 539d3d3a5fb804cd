"""Read an image series: a DICOM folder, one (multi-frame) DICOM file, or NIfTI/NRRD/MHA.

Strict where it builds (the grid is refused when it cannot be measured honestly, see
:mod:`imaging_io.grid`), tolerant where it reads (files without a preamble, extra files
in the folder that are not DICOM, frames in any order).

Only the header is read unless ``pixels=True``: measuring lesions needs the geometry, not
the CT values, and skipping pixel decoding makes ``recist measure`` faster than reading
the series with SimpleITK. With ``pixels=True`` the stored values go through the modality
rescale (RescaleSlope/Intercept, per frame for enhanced multi-frame images).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging_io.deid import pseudonym
from imaging_io.errors import ImagingInputError, refusing
from imaging_io.grid import Grid, PlaneGeometry, check_axial, grid_from_planes

SITK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
# DICOM objects that hold no image to measure on.
NON_IMAGE_MODALITIES = frozenset({"SEG", "RTSTRUCT", "SR", "KO", "PR", "REG", "RWV", "RTPLAN"})


@dataclass(frozen=True)
class SeriesInfo:
    """What the assessment needs from an image series, and nothing that names a person.

    Attributes
    ----------
    modality
        DICOM Modality (``CT``, ``MR``…), ``None`` for non-DICOM files.
    study_date
        ISO date of the study (``YYYY-MM-DD``) or ``None``.
    study_instance_uid, series_instance_uid
        DICOM UIDs, ``None`` for non-DICOM files.
    sop_instance_uids
        Per grid slice (classic series) the SOP Instance UID of its file; for a
        multi-frame file the same UID for every slice.
    subject_key
        Pseudonymous key of the patient (see :func:`imaging_io.deid.pseudonym`).
    """

    modality: str | None = None
    study_date: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uids: tuple[str, ...] = ()
    subject_key: str | None = None


@dataclass(frozen=True, eq=False)
class ImageSeries:
    """An image series on a checked grid.

    Attributes
    ----------
    path
        The folder or file it was read from.
    grid
        Its voxel grid (``[slice, row, column]``).
    slice_thickness_mm
        SliceThickness from the header; for files that do not state it, the slice spacing
        (contiguous slices) — the value R-MEAS-1 is applied with.
    info
        De-identified series information.
    array
        Rescaled pixel values ``[slice, row, column]`` when read with ``pixels=True``.
    """

    path: str
    grid: Grid
    slice_thickness_mm: float | None
    info: SeriesInfo = field(default_factory=SeriesInfo)
    array: NDArray[np.float32] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``image`` object of the ``recist measure`` contract (docs/contracts.md)."""
        slices, rows, cols = self.grid.shape
        ds, dr, dc = self.grid.spacing
        return {
            "size": [cols, rows, slices],
            "spacing_mm": [round(dc, 4), round(dr, 4), round(ds, 4)],
            "slice_thickness_mm": (
                None if self.slice_thickness_mm is None else round(self.slice_thickness_mm, 3)
            ),
            "modality": self.info.modality,
        }


def is_sitk_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in SITK_SUFFIXES)


def read_dicom_header(path: Path) -> Any | None:
    """Read a file's DICOM header, or ``None`` if it is not DICOM.

    Files without the 128-byte preamble and file meta (old RTSTRUCTs) are read with
    ``force`` and kept only if they carry a SOP Class UID. A DICOM file whose pixel data
    is shorter than its header declares (a truncated copy) or whose Rows/Columns disagree
    with the length of its pixel data is refused here, naming it: measuring only needs the
    header, so nothing later would notice.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    with refusing(path, "is not a readable DICOM file"):
        try:
            with open(path, "rb") as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
                _check_pixel_data_length(path, ds, fp)
            return ds
        except InvalidDicomError:
            pass
        except ImagingInputError:
            raise
        except (OSError, ValueError, EOFError) as exc:  # truncated or garbled file
            raise ImagingInputError(path, f"is not a readable DICOM file ({exc})") from exc
        try:
            with open(path, "rb") as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                if "SOPClassUID" in ds:
                    _check_pixel_data_length(path, ds, fp)
                    return ds
        except ImagingInputError:
            raise
        except Exception:  # noqa: BLE001, S110 - not DICOM at all (a database, a text file…)
            pass
        with open(path, "rb") as fp:
            prefix = fp.read(132)[128:]
        if prefix == b"DICM":  # says it is DICOM, yet no header can be read from it
            raise ImagingInputError(path, "is a damaged or truncated DICOM file (its header "
                                    "cannot be read)")
        return None
    return None  # pragma: no cover - refusing() re-raises


_PIXEL_DATA_TAG = 0x7FE00010
_DEFLATED_SYNTAXES = ("1.2.840.10008.1.2.1.99",)
_LONG_VRS = (b"OB", b"OW", b"OD", b"OF", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT")


def expected_pixel_bytes(ds: Any) -> int | None:
    """Bytes of native (uncompressed) pixel data that Rows, Columns, SamplesPerPixel,
    BitsAllocated and NumberOfFrames declare, or ``None`` if they are not all stated."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    total_bits = rows * cols * samples * frames * bits
    return (total_bits + 7) // 8


def frames_held(ds: Any, length: int) -> int | None:
    """How many whole frames of Rows × Columns ``length`` bytes of native pixel data hold.

    ``None`` when the header does not state the frame size or the length is not a whole
    number of frames (allowing the pad byte to even length and, for 1-bit data, a pad to
    a byte boundary after each frame, as :func:`_check_pixel_data_length` does).
    """
    try:
        bits_per_frame = (int(ds.Rows) * int(ds.Columns)
                          * int(ds.get("SamplesPerPixel", 1) or 1) * int(ds.BitsAllocated))
    except (AttributeError, TypeError, ValueError):
        return None
    if bits_per_frame <= 0 or length <= 0:
        return None
    held = length * 8 // bits_per_frame
    need = (held * bits_per_frame + 7) // 8
    slack = 1 + (held if int(ds.BitsAllocated) == 1 else 0)
    return held if held >= 1 and need <= length <= need + slack else None


def frame_count_mismatch(ds: Any, length: int) -> str | None:
    """The refusal text when ``length`` bytes of native pixel data hold whole frames of
    Rows × Columns but not the NumberOfFrames the header states, or NumberOfFrames is 0
    (``None`` otherwise)."""
    stated = ds.get("NumberOfFrames")
    try:
        declared = int(stated) if stated is not None and str(stated).strip() else None
    except (TypeError, ValueError):
        return None
    held = frames_held(ds, length)
    if declared == 0 and not length:
        return "NumberOfFrames is 0 and its pixel data is empty: it holds no frame to read"
    if held is None or declared is None or held == declared:
        return None
    size = f"{held} frames of {int(ds.Rows)}×{int(ds.Columns)} pixels ({length} bytes"
    if declared == 0:
        return f"NumberOfFrames is 0 but its pixel data holds {size})"
    bits = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
            * int(ds.BitsAllocated))
    return (f"NumberOfFrames says {declared} but its pixel data holds {size}; "
            f"{declared} frames need {(max(declared, 0) * bits + 7) // 8}): NumberOfFrames "
            "(or Rows/Columns) disagrees with the pixel data")


def _check_pixel_data_length(path: Path, ds: Any, fp: Any) -> None:
    """Refuse pixel data shorter than the file or than Rows × Columns declare.

    ``fp`` stands where pydicom stopped before the pixel data (``stop_before_pixels``).
    Compressed (encapsulated) and deflated files are left to their decoders.
    """
    import os
    import struct

    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax in _DEFLATED_SYNTAXES:
        return
    start = fp.tell()
    size = os.fstat(fp.fileno()).st_size
    if start >= size:
        # No pixel data at all: a truncated copy of an image file ends in its header
        # (pydicom stops quietly at the end of the file). Objects without pixels (SR,
        # RTSTRUCT…) are not image storage classes.
        sops = [ds.get("SOPClassUID"),
                meta.get("MediaStorageSOPClassUID") if meta is not None else None]
        names = [str(getattr(sop, "name", "") or "") for sop in sops]
        name = next((n for n in names if n.endswith("Image Storage")), "")
        if name:
            raise ImagingInputError(path, f"is truncated: a {name} file that ends before "
                                    "its pixel data")
        return
    if "Rows" not in ds or "Columns" not in ds:
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return
    head = fp.read(12)
    if len(head) < 8:
        raise ImagingInputError(path, "is truncated: it ends inside its pixel data header")
    endian = "<" if little else ">"
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | element) != _PIXEL_DATA_TAG:
        return
    if implicit:
        (length,), offset = struct.unpack(endian + "I", head[4:8]), 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise ImagingInputError(path, "is truncated: it ends inside its pixel data header")
        (length,), offset = struct.unpack(endian + "I", head[8:12]), 12
    else:
        (length,), offset = struct.unpack(endian + "H", head[6:8]), 8
    if length == 0xFFFFFFFF:  # encapsulated (compressed) frames
        return
    present = size - (start + offset)
    if present < length:
        raise ImagingInputError(
            path,
            f"is truncated: its pixel data holds {max(present, 0)} of the {length} bytes "
            "its header declares",
        )
    expected = expected_pixel_bytes(ds)
    if expected is None:
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    slack = 1 + (frames if int(ds.get("BitsAllocated", 8) or 8) == 1 else 0)
    if not expected <= length <= expected + slack:
        # A multi-frame file (a SEG) whose pixel data holds whole frames, only not as many
        # as NumberOfFrames says: name that, not Rows/Columns.
        frames_text = frame_count_mismatch(ds, length)
        if frames_text:
            raise ImagingInputError(path, frames_text)
        columns = int(ds.Columns)
        per_pixel = int(ds.BitsAllocated) * int(ds.get("SamplesPerPixel", 1) or 1) * frames
        pixels = length * 8 // per_pixel if per_pixel > 0 else 0
        held = (f"{pixels // columns}×{columns} pixels" if columns and pixels % columns == 0
                else f"{pixels} pixels")
        raise ImagingInputError(
            path,
            f"header says {int(ds.Rows)}×{columns} pixels"
            f"{f' × {frames} frames' if frames > 1 else ''} ({expected} bytes) but its pixel "
            f"data holds {length} bytes ({held}): Rows/Columns disagree with the pixel data",
        )


def iter_files(folder: Path) -> Iterator[Path]:
    """Every regular file under ``folder``, in a stable order (hidden files skipped)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.parts[-1:]):
            yield path


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None


_POSITION_TAG = 0x00200032
_ORIENTATION_TAG = 0x00200037
_PIXEL_SPACING_TAG = 0x00280030
_RESCALE_INTERCEPT_TAG = 0x00281052
_RESCALE_SLOPE_TAG = 0x00281053


def _decimal_strings(ds: Any, tag: int) -> tuple[float, ...] | None:
    """A DS (decimal string) attribute as floats, parsed from its raw bytes.

    pydicom's DS conversion validates every value and dominates header reading of a
    300-slice series; the geometry needs plain floats, so raw values are split here.
    """
    try:
        element = ds.get_item(tag)
    except (KeyError, ValueError):
        return None
    if element is None:
        return None
    value = element.value
    if isinstance(value, bytes):
        try:
            return tuple(float(v) for v in value.decode("ascii").split("\\") if v.strip())
        except (UnicodeDecodeError, ValueError):
            return _floats(ds.get(tag).value if ds.get(tag) is not None else None)
    return _floats(value)


def _checked_plane(file: Path, source: str, position: tuple[float, ...] | None,
                   orientation: tuple[float, ...] | None, spacing: tuple[float, ...] | None,
                   ds: Any) -> PlaneGeometry:
    """A plane whose attributes have the right number of finite values, or a refusal
    naming the file (``source`` names the frame of a multi-frame file)."""
    where = "" if source == file.name else f"{source}: "
    for keyword, tag, values, count in (
        ("ImagePositionPatient", "(0020,0032)", position, 3),
        ("ImageOrientationPatient", "(0020,0037)", orientation, 6),
        ("PixelSpacing", "(0028,0030)", spacing, 2),
    ):
        if values is None:
            continue
        if len(values) != count:
            raise ImagingInputError(file, f"{where}{keyword} {tag} has {len(values)} values; "
                                    f"expected {count}")
        if not all(np.isfinite(values)):
            raise ImagingInputError(file, f"{where}{keyword} {tag} holds a non-finite value")
    if orientation is not None and (
        np.linalg.norm(orientation[:3]) < 1e-6 or np.linalg.norm(orientation[3:]) < 1e-6
    ):
        raise ImagingInputError(file, f"{where}ImageOrientationPatient (0020,0037) has a "
                                "zero direction vector")
    try:
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError) as exc:
        raise ImagingInputError(file, f"{where}Rows/Columns are not numbers") from exc
    if rows <= 0 or columns <= 0:
        raise ImagingInputError(file, f"{where}states {rows}×{columns} pixels (Rows×Columns)")
    return PlaneGeometry(
        source=source,
        position=position,  # type: ignore[arg-type]
        orientation=orientation,
        pixel_spacing=None if spacing is None else (spacing[0], spacing[1]),
        rows=rows,
        columns=columns,
    )


def _plane_of_classic(ds: Any, file: Path) -> PlaneGeometry:
    return _checked_plane(
        file, file.name, _decimal_strings(ds, _POSITION_TAG),
        _decimal_strings(ds, _ORIENTATION_TAG), _decimal_strings(ds, _PIXEL_SPACING_TAG), ds,
    )


def functional_group_value(ds: Any, frame: int, sequence: str, keyword: str) -> Any:
    """An attribute of one frame of an enhanced multi-frame image (PS3.3 C.7.6.16).

    The per-frame functional group wins over the shared one; classic top-level attributes
    are the last resort (some writers keep them too).
    """
    for groups in (ds.get("PerFrameFunctionalGroupsSequence"), None):
        if groups is not None and frame < len(groups):
            item = groups[frame].get(sequence)
            if item and keyword in item[0]:
                return item[0].get(keyword)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        item = shared[0].get(sequence)
        if item and keyword in item[0]:
            return item[0].get(keyword)
    return ds.get(keyword)


def _planes_of_multiframe(ds: Any, file: Path) -> list[PlaneGeometry]:
    planes = []
    for frame in range(int(ds.get("NumberOfFrames", 1) or 1)):
        planes.append(_checked_plane(
            file, f"{file.name} frame {frame + 1}",
            _floats(functional_group_value(ds, frame, "PlanePositionSequence",
                                           "ImagePositionPatient")),
            _floats(functional_group_value(ds, frame, "PlaneOrientationSequence",
                                           "ImageOrientationPatient")),
            _floats(functional_group_value(ds, frame, "PixelMeasuresSequence",
                                           "PixelSpacing")),
            ds,
        ))
    return planes


def _iso_date(value: Any) -> str | None:
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return None


def _thickness(ds: Any, frame: int | None = None) -> float | None:
    value = (
        functional_group_value(ds, frame, "PixelMeasuresSequence", "SliceThickness")
        if frame is not None
        else ds.get("SliceThickness")
    )
    try:
        thickness = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return thickness if thickness and thickness > 0 else None


def _series_info(ds: Any, uids: tuple[str, ...]) -> SeriesInfo:
    return SeriesInfo(
        modality=str(ds.get("Modality")) if ds.get("Modality") else None,
        study_date=_iso_date(ds.get("StudyDate")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")) or None,
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")) or None,
        sop_instance_uids=uids,
        subject_key=pseudonym(str(ds.get("PatientID", ""))) if ds.get("PatientID") else None,
    )


def is_image_dataset(ds: Any) -> bool:
    """A DICOM dataset with pixels to measure on (not a SEG, RTSTRUCT, SR…)."""
    return "Rows" in ds and str(ds.get("Modality", "")) not in NON_IMAGE_MODALITIES


def read_image(path: str | Path, *, pixels: bool = False) -> ImageSeries:
    """Read an image series and check its grid.

    Parameters
    ----------
    path
        A folder holding one DICOM series (other DICOM objects and non-DICOM files in it
        are ignored), one DICOM file (single- or multi-frame), or a NIfTI, NRRD or
        MetaImage file.
    pixels
        Also decode and rescale the pixel data.

    Returns
    -------
    ImageSeries

    Raises
    ------
    ImagingInputError
        Unreadable file, no image, mixed series, or a grid refused by
        :func:`imaging_io.grid.grid_from_planes`; with ``pixels``, an undecodable
        transfer syntax (named).
    """
    p = Path(path)
    if not p.exists():
        raise ImagingInputError(p, "does not exist")
    if p.is_file() and is_sitk_file(p):
        return _read_sitk_image(p, pixels=pixels)
    if p.is_file():
        ds = read_dicom_header(p)
        if ds is None:
            raise ImagingInputError(p, "is neither DICOM nor a NIfTI/NRRD/MetaImage file")
        if not is_image_dataset(ds):
            raise ImagingInputError(
                p, f"is a DICOM {ds.get('Modality', '?')} object, not an image series"
            )
        return image_from_datasets(p, [(p, ds)], pixels=pixels)
    headers = []
    for file in iter_files(p):
        if is_sitk_file(file):
            continue
        ds = read_dicom_header(file)
        if ds is not None and is_image_dataset(ds):
            headers.append((file, ds))
    if not headers:
        raise ImagingInputError(p, "holds no DICOM image files")
    return image_from_datasets(p, headers, pixels=pixels)


def image_from_datasets(
    path: Path, headers: list[tuple[Path, Any]], *, pixels: bool = False
) -> ImageSeries:
    """Build an :class:`ImageSeries` from DICOM headers already read (one series)."""
    by_series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for file, ds in headers:
        by_series[str(ds.get("SeriesInstanceUID", "?"))].append((file, ds))
    if len(by_series) > 1:
        counts = ", ".join(f"{uid} ({len(v)} files)" for uid, v in sorted(by_series.items()))
        raise ImagingInputError(
            path, f"holds {len(by_series)} image series: {counts}; give one series"
        )
    first_ds = headers[0][1]
    for_uid = str(first_ds.get("FrameOfReferenceUID", "")) or None
    multiframe = len(headers) == 1 and int(first_ds.get("NumberOfFrames", 1) or 1) > 1
    if multiframe:
        file, ds = headers[0]
        with refusing(file, "has a malformed multi-frame header"):
            planes = _planes_of_multiframe(ds, file)
        thickness = _thickness(ds, 0)
    else:
        if len(headers) > 1 and any(
            int(ds.get("NumberOfFrames", 1) or 1) > 1 for _, ds in headers
        ):
            raise ImagingInputError(
                path, "mixes multi-frame and single-frame image files; give one series"
            )
        planes = []
        for file, ds in headers:
            with refusing(file, "has a malformed image header"):
                planes.append(_plane_of_classic(ds, file))
        thickness = _thickness(first_ds)
    hint = thickness or _floats([first_ds.get("SpacingBetweenSlices", 0) or 0])[0]  # type: ignore[index]
    grid, order = grid_from_planes(path, planes, frame_of_reference_uid=for_uid,
                                   spacing_hint_mm=hint or None)
    if multiframe:
        uids = (str(first_ds.get("SOPInstanceUID", "")),) * len(order)
    else:
        uids = tuple(str(headers[i][1].get("SOPInstanceUID", "")) for i in order)
    if thickness is None and grid.shape[0] > 1:
        thickness = grid.spacing[0]
    array = None
    if pixels:
        array = (
            _multiframe_pixels(headers[0][0], order) if multiframe
            else _classic_pixels([headers[i][0] for i in order])
        )
    return ImageSeries(str(path), grid, thickness, _series_info(first_ds, uids), array)


def _decode_error(file: Path, ds: Any, exc: Exception) -> ImagingInputError:
    uid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    name = getattr(uid, "name", None) or "unknown"
    return ImagingInputError(
        file,
        f"pixel data in transfer syntax {name} ({uid}) cannot be decoded by the installed "
        f"pydicom plugins ({type(exc).__name__})",
    )


def _classic_pixels(files: list[Path]) -> NDArray[np.float32]:
    import pydicom
    from pydicom.pixels.processing import apply_modality_lut

    out: NDArray[np.float32] | None = None
    for k, file in enumerate(files):
        with refusing(file, "is not a readable DICOM file"):
            ds = pydicom.dcmread(file, force=True)
        try:
            raw = ds.pixel_array
        except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
            raise _decode_error(file, ds, exc) from exc
        if out is not None and raw.shape[-2:] != out.shape[-2:]:
            raise ImagingInputError(file, f"its pixels are {raw.shape[-2]}×{raw.shape[-1]} "
                                    f"but the series is {out.shape[-2]}×{out.shape[-1]}")
        if out is None:
            # Filled in place: stacking 300 slices afterwards would copy them all again.
            out = np.empty((len(files), *raw.shape[-2:]), dtype=np.float32)
        if "ModalityLUTSequence" in ds:
            out[k] = apply_modality_lut(raw, ds)
            continue
        slope = (_decimal_strings(ds, _RESCALE_SLOPE_TAG) or (1.0,))[0]
        intercept = (_decimal_strings(ds, _RESCALE_INTERCEPT_TAG) or (0.0,))[0]
        out[k] = raw
        if slope != 1.0:
            out[k] *= slope
        if intercept != 0.0:
            out[k] += intercept
    assert out is not None  # files is never empty: the grid has at least one slice
    return out


def _multiframe_pixels(file: Path, order: list[int]) -> NDArray[np.float32]:
    import pydicom

    with refusing(file, "is not a readable DICOM file"):
        ds = pydicom.dcmread(file, force=True)
    try:
        raw = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise _decode_error(file, ds, exc) from exc
    out = np.empty((len(order), *raw.shape[-2:]), dtype=np.float32)
    for k, frame in enumerate(order):
        slope = functional_group_value(ds, frame, "PixelValueTransformationSequence",
                                       "RescaleSlope")
        intercept = functional_group_value(ds, frame, "PixelValueTransformationSequence",
                                           "RescaleIntercept")
        out[k] = raw[frame] * float(slope if slope is not None else 1.0) + float(
            intercept if intercept is not None else 0.0
        )
    return out


def grid_from_sitk(image: Any, path: Path) -> Grid:
    """The grid of a SimpleITK image (indices ``[z, y, x]`` as its array view)."""
    if image.GetDimension() != 3:
        raise ImagingInputError(path, f"is a {image.GetDimension()}-D image; expected 3-D")
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    # SimpleITK's physical space is LPS, like DICOM's patient frame.
    affine = np.eye(4)
    affine[:3, 0] = direction[:, 2] * spacing[2]
    affine[:3, 1] = direction[:, 1] * spacing[1]
    affine[:3, 2] = direction[:, 0] * spacing[0]
    affine[:3, 3] = image.GetOrigin()
    size = image.GetSize()
    return Grid((int(size[2]), int(size[1]), int(size[0])), affine, None)


def quiet_sitk() -> Any:
    """SimpleITK with ITK's own warning output switched off.

    ITK prints ``WARNING: In …itkNiftiImageIO.cxx…`` lines straight to the process's
    stderr (not through Python) before our one-line refusal; what matters in them is
    either harmless or repeated in the exception we turn into that refusal.
    """
    import SimpleITK

    sitk: Any = SimpleITK  # SimpleITK ships no type hints
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    return sitk


def _read_sitk_image(path: Path, *, pixels: bool) -> ImageSeries:
    sitk = quiet_sitk()

    image: Any
    try:
        if pixels:
            image = sitk.ReadImage(str(path))
        else:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            image = _InfoOnly(reader)
    except RuntimeError as exc:
        raise ImagingInputError(path, f"SimpleITK cannot read it ({_first_line(exc)})") from exc
    grid = grid_from_sitk(image, path)
    d = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    if abs(float(np.dot(d[:, 0], d[:, 1]))) > 1e-3:
        raise ImagingInputError(path, "row and column directions are not orthogonal")
    check_axial(path, np.cross(d[:, 0], d[:, 1]))
    array = sitk.GetArrayFromImage(image).astype(np.float32) if pixels else None
    return ImageSeries(str(path), grid, grid.spacing[0], SeriesInfo(), array)


class _InfoOnly:
    """The geometry of an image file read without its voxels (SimpleITK reader view)."""

    def __init__(self, reader: Any) -> None:
        self._r = reader

    def GetDimension(self) -> int:
        return int(self._r.GetDimension())

    def GetDirection(self) -> tuple[float, ...]:
        return tuple(self._r.GetDirection())

    def GetSpacing(self) -> tuple[float, ...]:
        return tuple(self._r.GetSpacing())

    def GetOrigin(self) -> tuple[float, ...]:
        return tuple(self._r.GetOrigin())

    def GetSize(self) -> tuple[int, ...]:
        return tuple(self._r.GetSize())


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(exc).__name__
