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
from imaging_io.errors import ImagingInputError
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
    ``force`` and kept only if they carry a SOP Class UID.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        pass
    except (OSError, ValueError, EOFError) as exc:  # truncated or garbled file
        raise ImagingInputError(path, f"is not a readable DICOM file ({exc})") from exc
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        return None
    return ds if "SOPClassUID" in ds else None


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


def _plane_of_classic(ds: Any, source: str) -> PlaneGeometry:
    spacing = _decimal_strings(ds, _PIXEL_SPACING_TAG)
    return PlaneGeometry(
        source=source,
        position=_decimal_strings(ds, _POSITION_TAG),  # type: ignore[arg-type]
        orientation=_decimal_strings(ds, _ORIENTATION_TAG),
        pixel_spacing=None if spacing is None or len(spacing) != 2 else (spacing[0], spacing[1]),
        rows=int(ds.get("Rows", 0)),
        columns=int(ds.get("Columns", 0)),
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


def _planes_of_multiframe(ds: Any, name: str) -> list[PlaneGeometry]:
    planes = []
    for frame in range(int(ds.get("NumberOfFrames", 1) or 1)):
        spacing = _floats(functional_group_value(ds, frame, "PixelMeasuresSequence",
                                                 "PixelSpacing"))
        planes.append(
            PlaneGeometry(
                source=f"{name} frame {frame + 1}",
                position=_floats(  # type: ignore[arg-type]
                    functional_group_value(ds, frame, "PlanePositionSequence",
                                           "ImagePositionPatient")
                ),
                orientation=_floats(
                    functional_group_value(ds, frame, "PlaneOrientationSequence",
                                           "ImageOrientationPatient")
                ),
                pixel_spacing=None if spacing is None or len(spacing) != 2
                else (spacing[0], spacing[1]),
                rows=int(ds.get("Rows", 0)),
                columns=int(ds.get("Columns", 0)),
            )
        )
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
        planes = _planes_of_multiframe(ds, file.name)
        thickness = _thickness(ds, 0)
    else:
        if len(headers) > 1 and any(
            int(ds.get("NumberOfFrames", 1) or 1) > 1 for _, ds in headers
        ):
            raise ImagingInputError(
                path, "mixes multi-frame and single-frame image files; give one series"
            )
        planes = [_plane_of_classic(ds, file.name) for file, ds in headers]
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
        ds = pydicom.dcmread(file, force=True)
        try:
            raw = ds.pixel_array
        except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
            raise _decode_error(file, ds, exc) from exc
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


def _read_sitk_image(path: Path, *, pixels: bool) -> ImageSeries:
    import SimpleITK as sitk

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
