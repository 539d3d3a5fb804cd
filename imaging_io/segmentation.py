"""Lesion segmentations on an image grid: DICOM SEG, label maps, and (via
:mod:`imaging_io.rtstruct`) RTSTRUCT contours.

Every reader returns :class:`~imaging_io.masks.LesionMask` records already placed on the
image's grid (``[slice, row, column]``), cropped to their bounding box so that a 500 mL
lesion on a 512 × 512 × 300 series does not cost a full-size array per segment.

DICOM SEG (via highdicom)
    Frames are placed by their position (PlanePositionSequence), in whatever order they
    are stored; if the SEG has no usable positions, by the SOP Instance UIDs of the image
    slices they reference. Overlapping segments are kept apart (one mask each).
    Fractional SEGs are rescaled to 0–1 by highdicom and a pixel belongs to the lesion
    when its value is ≥ ``fractional_threshold`` (default 0.5, :data:`FRACTIONAL_THRESHOLD`):
    the 0.5 iso-surface is the usual partial-volume boundary.
    A SEG must be what it says before anything is measured (issue 12): NumberOfFrames
    is at least 1 and is the number of frames its pixel data and its per-frame functional
    groups hold; its SegmentSequence describes every segment a frame belongs to; and,
    given the image series, every image its frames or its ReferencedSeriesSequence
    reference is in that series. Otherwise it is refused naming the file (and the frame
    or segment): a SEG that says nothing must never read as "every lesion absent".
    1-bit (BINARY) frames in RLE Lossless are decoded here (:func:`decode_rle_1bit`),
    which pydicom 3.0 and its plugins do not do.
Label maps (NIfTI, NRRD, MetaImage via SimpleITK)
    Every non-zero value is one lesion. The map must sit on the image's grid (same voxel
    centres, any axis order); otherwise it is refused unless ``resample=True``, which
    resamples it onto the image grid with nearest-neighbour interpolation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from imaging_io.errors import ImagingInputError, refusing
from imaging_io.grid import Grid
from imaging_io.masks import LesionMask
from imaging_io.series import is_sitk_file, read_dicom_header
from recist.lesions import names_a_node

FRACTIONAL_THRESHOLD = 0.5
# A label map with more distinct values than this is an image given by mistake.
MAX_LABELS = 1000
# Index-space tolerance when deciding that a segmentation's voxels sit on image voxels.
_ON_GRID_TOL = 0.02
DEFLATED_IMAGE_FRAME_COMPRESSION = "1.2.840.10008.1.2.8.1"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
# Encapsulated transfer syntaxes that put each frame in exactly one fragment (PS3.5
# A.4.2 for RLE, 8.2.16 for deflated frames): their fragments are their frames.
_ONE_FRAGMENT_PER_FRAME = (RLE_LOSSLESS, DEFLATED_IMAGE_FRAME_COMPRESSION)
# The RLE header: the number of segments and 15 segment offsets, each a little endian
# 32-bit unsigned integer (PS3.5 G.5).
_RLE_HEADER_BYTES = 64



def read_segmentation(
    path: str | Path,
    grid: Grid,
    *,
    image_sop_uids: tuple[str, ...] = (),
    image_series_uid: str | None = None,
    resample: bool = False,
    fractional_threshold: float = FRACTIONAL_THRESHOLD,
) -> list[LesionMask]:
    """Read a DICOM SEG, RTSTRUCT or label map onto an image grid.

    Parameters
    ----------
    path
        The segmentation file.
    grid
        The image grid to place it on.
    image_sop_uids
        SOP Instance UID of each grid slice (to place SEG frames by reference).
    image_series_uid
        The image's Series Instance UID (an RTSTRUCT referencing it is trusted to be in
        its frame, see :func:`imaging_io.rtstruct.read_rtstruct`; a SEG referencing
        another series is refused).
    resample
        Label maps only: resample onto the grid (nearest neighbour) when they do not
        sit on it, instead of refusing.
    fractional_threshold
        Fractional SEG values ≥ this are lesion.

    Returns
    -------
    list of LesionMask
        One per segment / ROI / label value, in their stored order.

    Raises
    ------
    ImagingInputError
        Unreadable file, an undecodable transfer syntax (named), another frame of
        reference, a grid the segmentation does not sit on, or a SEG that is not what it
        says (frames, segments or referenced images; see the module docstring).
    """
    p = Path(path)
    if not p.is_file():
        raise ImagingInputError(p, "does not exist or is not a file")
    if is_sitk_file(p):
        return read_label_map(p, grid, resample=resample)
    header = read_dicom_header(p)
    if header is None:
        raise ImagingInputError(p, "is neither DICOM nor a NIfTI/NRRD/MetaImage label map")
    modality = str(header.get("Modality", ""))
    if modality == "SEG":
        return read_seg(p, grid, image_sop_uids=image_sop_uids,
                        image_series_uid=image_series_uid,
                        fractional_threshold=fractional_threshold)
    if modality == "RTSTRUCT":
        from imaging_io.rtstruct import read_rtstruct

        return read_rtstruct(p, grid, image_series_uid=image_series_uid)
    raise ImagingInputError(
        p, f"is a DICOM {modality or 'object'} file; expected a SEG, an RTSTRUCT or a label map"
    )


def transfer_syntax_of(ds: Any) -> tuple[str, str]:
    """``(uid, name)`` of a dataset's transfer syntax (``("?", "unknown")`` if none)."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        return "?", "unknown"
    name = uid.name if uid.is_transfer_syntax else "unknown to pydicom"
    return str(uid), name


def load_seg(path: Path) -> Any:
    """Parse a DICOM SEG with highdicom, refusing encodings it cannot decode (named) and
    a SEG whose frames or segments are not what it says (:func:`check_seg_structure`)."""
    import highdicom as hd
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True)
    except (OSError, ValueError, EOFError) as exc:
        raise ImagingInputError(path, f"is not a readable DICOM file ({exc})") from exc
    uid, name = transfer_syntax_of(ds)
    syntax = ds.file_meta.get("TransferSyntaxUID", None)
    check_seg_structure(path, ds)
    if str(syntax) == DEFLATED_IMAGE_FRAME_COMPRESSION:
        ds = _to_native(path, ds, _inflate_frames(path, ds))
        syntax = ds.file_meta.TransferSyntaxUID
    elif str(syntax) == RLE_LOSSLESS and int(ds.get("BitsAllocated", 0) or 0) == 1:
        ds = _to_native(path, ds, decode_rle_1bit(path, ds))
        syntax = ds.file_meta.TransferSyntaxUID
    if not syntax or not syntax.is_transfer_syntax:
        raise ImagingInputError(
            path, f"transfer syntax {uid} ({name}) is not supported by the installed pydicom"
        )
    if not syntax.is_little_endian:
        try:
            frames = ds.pixel_array
        except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
            raise ImagingInputError(path, f"cannot decode frames in transfer syntax {name} "
                                    f"({uid}) ({type(exc).__name__})") from exc
        ds = _to_native(path, ds, frames)
    try:
        return hd.seg.Segmentation.from_dataset(ds, copy=False)
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise ImagingInputError(path, f"is not a valid DICOM SEG ({exc})") from exc


def check_seg_structure(path: Path, ds: Any) -> None:
    """Refuse a SEG whose frames or segments are not what its header says.

    NumberOfFrames must be at least 1 (a SEG without frames says nothing about its
    segments, not even that they are empty) and equal to the frames its pixel data holds
    and to the items of its PerFrameFunctionalGroupsSequence (one per frame, PS3.3
    C.7.6.16); its SegmentSequence must describe every segment a frame belongs to.

    Raises
    ------
    ImagingInputError
        Naming the file, what disagrees and, for a segment, the first frame concerned.
    """
    frames = _stated_frames(path, ds)
    held, where = _frames_in_pixel_data(path, ds, frames)
    if frames == 0:
        found = f"but its pixel data holds {held} {where}" if held else \
            "and it holds no pixel data"
        raise ImagingInputError(
            path, f"NumberOfFrames is 0 {found}: a SEG without frames says nothing about its "
            "segments, not even that they are empty",
        )
    if held != frames:
        raise ImagingInputError(path, f"NumberOfFrames says {frames} but its pixel data "
                                f"holds {held} {where}")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        raise ImagingInputError(path, f"has {frames} frames but no "
                                "PerFrameFunctionalGroupsSequence to place them")
    if len(per_frame) != frames:
        raise ImagingInputError(path, f"NumberOfFrames says {frames} but its "
                                f"PerFrameFunctionalGroupsSequence describes {len(per_frame)} "
                                "frames (one item per frame)")
    _check_segments(path, ds, per_frame, frames)


def _stated_frames(path: Path, ds: Any) -> int:
    value = ds.get("NumberOfFrames")
    if value is None or not str(value).strip():
        raise ImagingInputError(path, "has no NumberOfFrames: a SEG must say how many "
                                "frames it holds")
    try:
        frames = int(value)
    except (TypeError, ValueError):
        raise ImagingInputError(path, f"NumberOfFrames {str(value)!r} is not a whole "
                                "number") from None
    if frames < 0:
        raise ImagingInputError(path, f"NumberOfFrames is {frames}, below 0")
    return frames


def _frames_in_pixel_data(path: Path, ds: Any, stated: int) -> tuple[int, str]:
    """Frames the pixel data holds and how they were counted (refusing native pixel
    data that is not a whole number of frames)."""
    import io

    from pydicom.encaps import generate_fragmented_frames, parse_basic_offsets, parse_fragments

    from imaging_io.series import frames_held

    data = ds.get("PixelData")
    if not data:
        return 0, "frames"
    syntax = ds.file_meta.get("TransferSyntaxUID", None)
    encapsulated = str(syntax) in _ONE_FRAGMENT_PER_FRAME or (
        syntax is not None and syntax.is_transfer_syntax and syntax.is_encapsulated)
    if not encapsulated:
        size = f"{ds.get('Rows', '?')}×{ds.get('Columns', '?')}"
        held = frames_held(ds, len(data))
        if held is None:
            raise ImagingInputError(path, f"its pixel data ({len(data)} bytes) is not a whole "
                                    f"number of {size}-pixel frames")
        return held, f"frames of {size} pixels ({len(data)} bytes)"
    offsets = ds.get("ExtendedOffsetTable")
    if offsets:
        return len(offsets) // 8, "frames (counted by its Extended Offset Table)"
    buffer = io.BytesIO(data)
    basic = parse_basic_offsets(buffer)
    if basic:
        return len(basic), "frames (counted by its Basic Offset Table)"
    fragments, _ = parse_fragments(buffer)
    if str(syntax) in _ONE_FRAGMENT_PER_FRAME or fragments <= max(stated, 1):
        return fragments, "frames (one per encapsulated fragment)"
    # JPEG family without offset table: a frame may span fragments; pydicom finds the
    # frame boundaries by their end-of-image markers.
    try:
        count = sum(1 for _ in generate_fragmented_frames(data, number_of_frames=stated))
    except ValueError as exc:
        raise ImagingInputError(path, f"its {fragments} encapsulated fragments cannot be "
                                f"split into NumberOfFrames {stated} frames ({exc})") from exc
    return count, "encapsulated frames"


def _check_segments(path: Path, ds: Any, per_frame: Any, frames: int) -> None:
    """Every frame belongs to a segment the SegmentSequence describes (PS3.3 C.8.20.2)."""
    segments = ds.get("SegmentSequence")
    if not segments:
        state = "no" if segments is None else "an empty"
        raise ImagingInputError(path, f"has {frames} frames but {state} SegmentSequence: "
                                "its frames belong to no described segment")
    described = {int(item.SegmentNumber) for item in segments if "SegmentNumber" in item}
    if str(ds.get("SegmentationType", "")).upper() == "LABELMAP":
        return  # a label map's pixel values are its segment numbers
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared_ids = shared[0].get("SegmentIdentificationSequence") if shared else None
    listing = ", ".join(str(n) for n in sorted(described)) or "none"
    for index, item in enumerate(per_frame, start=1):
        ids = item.get("SegmentIdentificationSequence") or shared_ids
        number = ids[0].get("ReferencedSegmentNumber") if ids else None
        if number is None:
            raise ImagingInputError(path, f"frame {index} names no segment (no "
                                    "SegmentIdentificationSequence)")
        if int(number) not in described:
            raise ImagingInputError(
                path, f"frame {index} belongs to segment {int(number)}, which its "
                f"SegmentSequence does not describe (it describes segments {listing})",
            )


def check_seg_references(path: Path, seg: Any, image_sop_uids: tuple[str, ...],
                         image_series_uid: str | None) -> None:
    """Refuse a SEG that references images outside the series being measured.

    A frame's source images (DerivationImageSequence > SourceImageSequence, per frame or
    shared) and the ReferencedSeriesSequence must name the image series being measured
    and its instances only. Nothing is checked against what is not known (a label-map
    image has no UIDs).

    Raises
    ------
    ImagingInputError
        Naming the file, the frame (and its segment) or the reference, and the UID.
    """
    known = {uid for uid in image_sop_uids if uid}
    measured = f"series {image_series_uid}" if image_series_uid else "the image series"
    for item in seg.get("ReferencedSeriesSequence", None) or []:
        series = str(item.get("SeriesInstanceUID", "") or "")
        if image_series_uid and series and series != image_series_uid:
            raise ImagingInputError(
                path, f"its ReferencedSeriesSequence names series {series}, not the "
                f"series being measured ({image_series_uid}): it does not belong to it",
            )
        for ref in item.get("ReferencedInstanceSequence", None) or []:
            uid = str(ref.get("ReferencedSOPInstanceUID", "") or "")
            if known and uid and uid not in known:
                raise ImagingInputError(
                    path, f"its ReferencedSeriesSequence lists image {uid}, which is not in "
                    f"{measured} being measured ({len(known)} images)",
                )
    if not known:
        return
    shared = seg.get("SharedFunctionalGroupsSequence")
    shared_sources = _source_images(shared[0]) if shared else []
    for index, item in enumerate(seg.get("PerFrameFunctionalGroupsSequence", None) or [],
                                 start=1):
        for uid in _source_images(item) or shared_sources:
            if uid not in known:
                ids = item.get("SegmentIdentificationSequence")
                number = ids[0].get("ReferencedSegmentNumber") if ids else None
                segment = f" (segment {int(number)})" if number is not None else ""
                raise ImagingInputError(
                    path, f"frame {index}{segment} references image {uid} (its "
                    f"DerivationImageSequence), which is not in {measured} being measured "
                    f"({len(known)} images)",
                )


def _source_images(item: Any) -> list[str]:
    """SOP Instance UIDs of a functional group item's source images."""
    uids = []
    for derivation in item.get("DerivationImageSequence", None) or []:
        for source in derivation.get("SourceImageSequence", None) or []:
            uid = str(source.get("ReferencedSOPInstanceUID", "") or "")
            if uid:
                uids.append(uid)
    return uids


def decode_rle_1bit(path: Path, ds: Any) -> NDArray[np.uint8]:
    """Decode the frames of a 1-bit (BINARY) SEG in RLE Lossless to ``[frame, row, col]``.

    Each frame is one fragment with its own RLE header (PS3.5 A.4.2, G.5), so a frame
    always starts on a byte, whatever the native packing would be. Its single RLE
    segment (one sample of one byte) is PackBits-decoded (G.3) to either

    - one byte per pixel, 0 or 1: the "Padded Composite Pixel Code" of G.2; or
    - 8 pixels per byte, least significant bit first, as in native 1-bit data: how
      DCMTK-based writers encode it (pydicom-data's ``liver_rle.dcm``).

    The decoded length tells the two apart (``rows × columns`` against a eighth of it);
    any other length is refused naming the frame. pydicom 3.0's RLE decoder and
    pylibjpeg-rle take 8, 16, 32 and 64 bits allocated only.
    """
    from pydicom.encaps import generate_frames

    count = _stated_frames(path, ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise ImagingInputError(path, "1-bit RLE frames with more than one sample per pixel "
                                "are not a SEG")
    frames = []
    for index, item in enumerate(generate_frames(ds.PixelData, number_of_frames=count),
                                 start=1):
        if index > count:
            break
        frames.append(_rle_1bit_frame(path, index, item, rows, cols))
    if len(frames) != count:
        raise ImagingInputError(path, f"NumberOfFrames says {count} but its pixel data "
                                f"holds {len(frames)} RLE frames")
    return np.stack(frames)


def _rle_1bit_frame(path: Path, index: int, item: bytes, rows: int,
                    cols: int) -> NDArray[np.uint8]:
    import struct

    from pydicom.pixels.utils import unpack_bits

    if len(item) < _RLE_HEADER_BYTES:
        raise ImagingInputError(path, f"frame {index}: its RLE data ({len(item)} bytes) is "
                                "shorter than the 64-byte RLE header")
    segments, *offsets = struct.unpack("<16L", item[:_RLE_HEADER_BYTES])
    if segments != 1:
        raise ImagingInputError(path, f"frame {index}: its RLE header declares {segments} "
                                "segments; a 1-bit frame has one")
    if offsets[0] != _RLE_HEADER_BYTES or any(offsets[1:]):
        raise ImagingInputError(path, f"frame {index}: its RLE segment starts at byte "
                                f"{offsets[0]}, not right after the 64-byte header")
    pixels = rows * cols
    packed = (pixels + 7) // 8
    data = _unpack_bits_rle(path, index, item[_RLE_HEADER_BYTES:], limit=pixels + 1)
    if pixels <= len(data) <= pixels + 1:
        plane = np.frombuffer(data, dtype=np.uint8, count=pixels)
        if int(plane.max()) > 1:
            raise ImagingInputError(path, f"frame {index}: holds pixel value "
                                    f"{int(plane.max())}; a 1-bit pixel is 0 or 1")
    elif packed <= len(data) <= packed + 1:
        plane = np.asarray(unpack_bits(data), dtype=np.uint8)[:pixels]
    else:
        raise ImagingInputError(
            path, f"frame {index}: its RLE segment decodes to {len(data)} bytes; a 1-bit "
            f"frame of {rows}×{cols} pixels needs {pixels} (a byte per pixel) or {packed} "
            "(8 pixels per byte)",
        )
    return np.asarray(plane, dtype=np.uint8).reshape(rows, cols)


def _unpack_bits_rle(path: Path, index: int, data: bytes, *, limit: int) -> bytes:
    """PackBits-decode one RLE segment (PS3.5 G.3), refusing truncated runs and output
    longer than ``limit`` bytes (a run-length bomb)."""
    out = bytearray()
    pos, end = 0, len(data)
    while pos < end:
        header = data[pos]
        pos += 1
        if header < 128:  # a literal run of header + 1 bytes
            count = header + 1
            if pos + count > end:
                if pos == end:
                    break  # the zero byte that pads the segment to an even length
                raise ImagingInputError(path, f"frame {index}: its RLE segment ends inside "
                                        f"a literal run ({end - pos} of {count} bytes)")
            out += data[pos:pos + count]
            pos += count
        elif header > 128:  # the next byte, 257 − header times
            if pos >= end:
                raise ImagingInputError(path, f"frame {index}: its RLE segment ends inside "
                                        "a replicate run")
            out += data[pos:pos + 1] * (257 - header)
            pos += 1
        # header 128 (−128) is no operation
        if len(out) > limit:
            raise ImagingInputError(path, f"frame {index}: its RLE segment decodes to more "
                                    f"than {limit} bytes")
    return bytes(out)


def _inflate_frames(path: Path, ds: Any) -> NDArray[Any]:
    """Decode Deflated Image Frame Compression (PS3.5 §8.2.16; pydicom 3.0 predates it).

    Each frame is one encapsulated item compressed with Deflate (RFC 1951); zlib (the
    standard library) inflates it to the native frame, 1-bit frames starting on a byte.
    """
    import zlib

    from pydicom.encaps import generate_frames
    from pydicom.pixels.utils import unpack_bits

    count = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
    dtype = {1: np.uint8, 8: np.uint8, 16: np.uint16, 32: np.uint32}.get(bits)
    if dtype is None or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ImagingInputError(path, f"deflated frames with {bits} bits allocated are not "
                                "supported")
    frames = []
    try:
        for item in generate_frames(ds.PixelData, number_of_frames=count):
            raw = zlib.decompress(item, -15)
            if bits == 1:
                frames.append(np.asarray(unpack_bits(raw), dtype=np.uint8)[: rows * cols]
                              .reshape(rows, cols))
            else:
                frames.append(np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
                              [: rows * cols].reshape(rows, cols))
    except (zlib.error, ValueError) as exc:
        raise ImagingInputError(path, f"cannot inflate its deflated frames ({exc})") from exc
    if len(frames) != count:
        raise ImagingInputError(path, f"holds {len(frames)} deflated frames, NumberOfFrames "
                                f"says {count}")
    return np.stack(frames)


def _to_native(path: Path, ds: Any, frames: NDArray[Any]) -> Any:
    """Re-encode a SEG's decoded frames as Explicit VR Little Endian, in memory.

    highdicom parses native little endian (or compressed) datasets only: a big endian SEG
    (decoded by pydicom) or a deflated one (decoded by :func:`_inflate_frames`) is written
    back once in the default syntax.
    """
    import io

    import pydicom
    from pydicom.filewriter import dcmwrite
    from pydicom.pixels.utils import pack_bits
    from pydicom.uid import ExplicitVRLittleEndian

    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if int(ds.BitsAllocated) == 1:
        ds.PixelData = pack_bits(frames)
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = frames.astype(frames.dtype.newbyteorder("<")).tobytes()
        ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def _decode_failure(path: Path, seg: Any, exc: Exception) -> ImagingInputError:
    uid, name = transfer_syntax_of(seg)
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    first = lines[-1][:160] if lines else type(exc).__name__
    return ImagingInputError(
        path, f"cannot decode frames in transfer syntax {name} ({uid}): {first}"
    )


def _check_frame_of_reference(path: Path, uid: str | None, grid: Grid) -> None:
    if uid and grid.frame_of_reference_uid and uid != grid.frame_of_reference_uid:
        raise ImagingInputError(
            path,
            f"is on frame of reference {uid} but the image is on "
            f"{grid.frame_of_reference_uid}: it does not belong to this series",
        )


def _index_map(path: Path, source_affine: NDArray[np.float64], grid: Grid,
               n_slices: int) -> tuple[list[int], int, int]:
    """Grid slice of each source slice, and the row/column offset of the source frame.

    Refuses unless the source's rows and columns are the grid's (same spacing and
    direction) shifted by whole pixels, and each source slice lies on a grid slice.
    """
    m = np.linalg.inv(grid.affine) @ source_affine
    in_plane = m[1:3, 1:3]
    if not np.allclose(in_plane, np.eye(2), atol=1e-3) or not np.allclose(m[1:3, 0], 0,
                                                                          atol=_ON_GRID_TOL):
        src_spacing = np.linalg.norm(source_affine[:3, 1:3], axis=0)
        raise ImagingInputError(
            path,
            "its pixel grid differs from the image's (pixel spacing "
            f"{np.round(src_spacing[::-1], 4).tolist()} mm vs "
            f"{[round(grid.spacing[2], 4), round(grid.spacing[1], 4)]} mm, or other "
            "orientation)",
        )
    shift = m[1:3, 3]
    if np.max(np.abs(shift - np.round(shift))) > _ON_GRID_TOL:
        raise ImagingInputError(path, "its frames are offset from the image pixels by a "
                                "fraction of a pixel: not on the image grid")
    slices = []
    for k in range(n_slices):
        target = m[0, 0] * k + m[0, 3]
        if abs(target - round(target)) > _ON_GRID_TOL * 5:
            raise ImagingInputError(
                path, f"its frame {k + 1} lies between image slices (index {target:.2f})"
            )
        slices.append(round(target))
    return slices, round(float(shift[0])), round(float(shift[1]))


def _place(path: Path, label: str, planes: NDArray[np.bool_], slices: list[int],
           row0: int, col0: int, grid: Grid, value: int, **extra: Any) -> LesionMask:
    """Put source planes ``[k, row, column]`` at grid slices ``slices`` shifted by
    ``(row0, col0)``; voxels outside the grid are refused when they hold lesion."""
    nz, nr, nc = grid.shape
    keep = [k for k in range(len(slices)) if planes[k].any()]
    if not keep:
        return LesionMask(label, value, np.zeros((0, 0, 0), dtype=bool), (0, 0, 0), **extra)
    ks = [slices[k] for k in keep]
    if min(ks) < 0 or max(ks) >= nz:
        raise ImagingInputError(path, f"segment {label!r} lies on slices outside the image")
    lo_k, hi_k = min(ks), max(ks) + 1
    sub = planes[keep]
    rows = np.flatnonzero(sub.any(axis=(0, 2)))
    cols = np.flatnonzero(sub.any(axis=(0, 1)))
    r_lo, r_hi = rows[0] + row0, rows[-1] + 1 + row0
    c_lo, c_hi = cols[0] + col0, cols[-1] + 1 + col0
    if r_lo < 0 or c_lo < 0 or r_hi > nr or c_hi > nc:
        raise ImagingInputError(path, f"segment {label!r} extends outside the image")
    out = np.zeros((hi_k - lo_k, r_hi - r_lo, c_hi - c_lo), dtype=bool)
    for k, plane in zip(ks, sub, strict=True):
        out[k - lo_k] |= plane[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return LesionMask(label, value, out, (lo_k, int(r_lo), int(c_lo)), **extra)


def seg_grid(path: Path, seg: Any) -> tuple[Grid, float | None]:
    """The SEG's own grid and slice thickness, to measure a SEG without its image."""
    try:
        volume = seg.get_volume(segment_numbers=[seg.get_segment_numbers()[0]])
    except (ValueError, RuntimeError) as exc:
        raise ImagingInputError(path, f"its frames do not form a regular volume ({exc})") from exc
    thickness = None
    shared = seg.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get("PixelMeasuresSequence"):
        value = shared[0].PixelMeasuresSequence[0].get("SliceThickness")
        thickness = float(value) if value else None
    for_uid = str(seg.get("FrameOfReferenceUID", "")) or None
    return Grid(tuple(int(v) for v in volume.spatial_shape), np.array(volume.affine, float),  # type: ignore[arg-type]
                for_uid), thickness


def read_seg(path: str | Path, grid: Grid, *, image_sop_uids: tuple[str, ...] = (),
             image_series_uid: str | None = None,
             fractional_threshold: float = FRACTIONAL_THRESHOLD) -> list[LesionMask]:
    """Read a DICOM SEG (binary or fractional) onto ``grid``; see the module docstring.
    Whatever the file holds, the answer is lesions or an :class:`ImagingInputError`.
    Given the image's SOP Instance UIDs and Series Instance UID, a SEG referencing
    other images is refused (:func:`check_seg_references`)."""
    with refusing(path, "is not a readable DICOM SEG"):
        return _read_seg(path, grid, image_sop_uids=image_sop_uids,
                         image_series_uid=image_series_uid,
                         fractional_threshold=fractional_threshold)


def _read_seg(path: str | Path, grid: Grid, *, image_sop_uids: tuple[str, ...],
              image_series_uid: str | None, fractional_threshold: float) -> list[LesionMask]:
    p = Path(path)
    seg = load_seg(p)
    _check_frame_of_reference(p, str(seg.get("FrameOfReferenceUID", "")) or None, grid)
    fractional = seg.segmentation_type.value == "FRACTIONAL"
    masks = []
    for number in seg.get_segment_numbers():
        description = seg.get_segment_description(number)
        label = str(description.segment_label)
        tracking = getattr(description, "tracking_id", None)
        prop = getattr(description, "segmented_property_type", None)
        extra = {
            "tracking_id": str(tracking) if tracking else None,
            "nodal": names_a_node(label, getattr(prop, "meaning", None)),
        }
        planes, slices, row0, col0 = _seg_planes(p, seg, number, grid, image_sop_uids)
        binary = planes >= fractional_threshold if fractional else planes > 0
        masks.append(_place(p, label, binary, slices, row0, col0, grid, int(number), **extra))
    # After placement, so that frames placed by reference keep their own refusal; frames
    # placed by position on the right grid may still be over another series' images.
    check_seg_references(p, seg, image_sop_uids, image_series_uid)
    return masks


def _seg_planes(path: Path, seg: Any, number: int, grid: Grid,
                image_sop_uids: tuple[str, ...]) -> tuple[NDArray[Any], list[int], int, int]:
    """Frames of one segment and the grid slice of each: by position, else by reference."""
    import sqlite3

    by_position_error: Exception | None = None
    try:
        volume = seg.get_volume(segment_numbers=[number], rescale_fractional=True,
                                skip_overlap_checks=True)
    # highdicom indexes frames in SQLite: a SEG without plane positions surfaces as an
    # sqlite3 error (no ImagePositionPatient column) rather than a ValueError.
    except (ValueError, RuntimeError, KeyError, AttributeError, sqlite3.Error) as exc:
        if "decode" in str(exc).lower() or "plugin" in str(exc).lower():
            raise _decode_failure(path, seg, exc) from exc
        by_position_error = exc
    else:
        array = np.asarray(volume.array)
        if array.ndim == 4:
            array = array[..., 0]
        slices, row0, col0 = _index_map(path, np.asarray(volume.affine, float), grid,
                                        array.shape[0])
        return array, slices, row0, col0
    # No usable plane positions: fall back to the referenced image instances.
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    wanted = [uid for uid in image_sop_uids if uid in referenced]
    if not wanted or len(set(image_sop_uids)) != len(image_sop_uids):
        raise ImagingInputError(
            path,
            "its frames can be placed neither by position "
            f"({by_position_error}) nor by reference to the image's instances",
        )
    try:
        array = seg.get_pixels_by_source_instance(
            wanted, segment_numbers=[number], ignore_spatial_locations=True,
            skip_overlap_checks=True, rescale_fractional=True,
        )[..., 0]
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ImagingInputError(path, f"its frames cannot be matched to the image ({exc})") from exc
    index = {uid: k for k, uid in enumerate(image_sop_uids)}
    if array.shape[1:] != grid.shape[1:]:
        raise ImagingInputError(path, f"its frames are {array.shape[1]}×{array.shape[2]} but "
                                f"the image is {grid.shape[1]}×{grid.shape[2]}")
    return array, [index[uid] for uid in wanted], 0, 0


def _reference_image(grid: Grid) -> Any:
    from imaging_io.series import quiet_sitk

    sitk = quiet_sitk()

    nz, nr, nc = grid.shape
    ds, dr, dc = grid.spacing
    ref = sitk.Image(nc, nr, nz, sitk.sitkUInt8)
    ref.SetSpacing((dc, dr, ds))
    ref.SetOrigin(tuple(float(v) for v in grid.affine[:3, 3]))
    unit = grid.affine[:3, :3] / np.array([ds, dr, dc])
    # SimpleITK axes are (x, y, z) = (column, row, slice); its direction holds them as
    # columns of a row-major 3 × 3 matrix.
    ref.SetDirection(tuple(np.c_[unit[:, 2], unit[:, 1], unit[:, 0]].ravel().tolist()))
    return ref


def read_label_map(path: str | Path, grid: Grid, *, resample: bool = False) -> list[LesionMask]:
    """Read a NIfTI/NRRD/MetaImage label map onto ``grid``; each non-zero value is a lesion.

    Raises
    ------
    ImagingInputError
        Unreadable, not integer-valued, or off the image grid without ``resample``.
    """
    from imaging_io.series import _first_line, grid_from_sitk, quiet_sitk

    sitk = quiet_sitk()

    p = Path(path)
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise ImagingInputError(p, f"SimpleITK cannot read it ({_first_line(exc)})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImagingInputError(p, "is a multi-component image, not a label map")
    own = grid_from_sitk(image, p)
    m = np.linalg.inv(grid.affine) @ own.affine
    signed_permutation = np.allclose(np.abs(np.round(m[:3, :3])), np.abs(m[:3, :3]),
                                     atol=1e-3) and np.allclose(
        np.abs(np.round(m[:3, :3])).sum(axis=0), 1
    )
    on_grid = signed_permutation and np.allclose(m[:3, 3], np.round(m[:3, 3]), atol=_ON_GRID_TOL)
    if on_grid:
        # Same voxel centres: reorder axes exactly (nearest neighbour hits every centre).
        corners = np.array([[0, 0, 0, 1.0], [*(np.array(own.shape) - 1), 1.0]]) @ m.T
        lo = np.round(corners[:, :3].min(axis=0)).astype(int)
        hi = np.round(corners[:, :3].max(axis=0)).astype(int)
        if np.any(lo < 0) or np.any(hi >= np.array(grid.shape)):
            raise ImagingInputError(p, "extends outside the image grid")
    elif not resample:
        raise ImagingInputError(
            p,
            f"is not on the image grid (size {list(own.shape[::-1])}, spacing "
            f"{[round(v, 4) for v in own.spacing[::-1]]} mm vs size {list(grid.shape[::-1])}, "
            f"spacing {[round(v, 4) for v in grid.spacing[::-1]]} mm); pass --resample "
            "to resample it (nearest neighbour)",
        )
    placed = sitk.Resample(image, _reference_image(grid), sitk.Transform(),
                           sitk.sitkNearestNeighbor, 0)
    array = sitk.GetArrayFromImage(placed)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ImagingInputError(p, "holds non-integer values: not a label map")
        array = array.astype(np.int64)
    values = np.unique(array)
    if values[0] < 0:
        raise ImagingInputError(p, f"holds negative values (down to {int(values[0])}): not a "
                                "label map (an image given as --seg?)")
    values = values[values != 0]
    if len(values) > MAX_LABELS:
        raise ImagingInputError(p, f"holds {len(values)} distinct values: not a label map of "
                                f"lesions (at most {MAX_LABELS}; an image given as --seg?)")
    from scipy import ndimage

    if not on_grid:
        _refuse_labels_lost_in_resampling(p, image, set(values.tolist()), grid)
    boxes = ndimage.find_objects(array.astype(np.int64, copy=False))
    masks = []
    for value in values:
        box = boxes[int(value) - 1]
        assert box is not None  # every listed value occurs somewhere
        offset = (box[0].start, box[1].start, box[2].start)
        masks.append(LesionMask.from_full(f"label {int(value)}", int(value),
                                          array[box] == value, offset))
    return masks


def _physical_extent(image: Any, lo: tuple[int, int, int], hi: tuple[int, int, int]) -> Any:
    """Min and max patient coordinates (mm) of the voxel centres in index box [lo, hi]."""
    corners = [image.TransformIndexToPhysicalPoint((x, y, z))
               for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    points = np.array(corners)
    return points.min(axis=0), points.max(axis=0)


def _extent_text(extent: Any) -> str:
    lo, hi = extent
    return ", ".join(f"{axis} {a:.1f}…{b:.1f}" for axis, a, b in zip("xyz", lo, hi, strict=True))


def _refuse_labels_lost_in_resampling(path: Path, image: Any, kept: set[int], grid: Grid) -> None:
    """Refuse a label map whose label has no voxel left after resampling onto ``grid``.

    Nearest-neighbour resampling drops a label that lies outside the image (or falls
    between its voxel centres); measuring the rest would silently report fewer lesions,
    as the SEG and on-grid paths refuse a segment on slices outside the image.
    """
    import SimpleITK as sitk
    from scipy import ndimage

    source = sitk.GetArrayFromImage(image)  # [z, y, x]
    if np.issubdtype(source.dtype, np.floating):
        if not np.all(np.equal(np.mod(source, 1), 0)):
            raise ImagingInputError(path, "holds non-integer values: not a label map")
    source = source.astype(np.int64, copy=False)
    labels = [int(v) for v in np.unique(source) if v > 0 and int(v) not in kept]
    if not labels:
        return
    label = labels[0]
    box = ndimage.find_objects((source == label).astype(np.int8))[0]
    assert box is not None
    lo = (box[2].start, box[1].start, box[0].start)
    hi = (box[2].stop - 1, box[1].stop - 1, box[0].stop - 1)
    reference = _reference_image(grid)
    size = reference.GetSize()
    whole = _physical_extent(reference, (0, 0, 0), (size[0] - 1, size[1] - 1, size[2] - 1))
    others = f" (and {len(labels) - 1} more)" if len(labels) > 1 else ""
    raise ImagingInputError(
        path,
        f"label {label}{others} has no voxel on the image grid after resampling: it spans "
        f"{_extent_text(_physical_extent(image, lo, hi))} mm, the image "
        f"{_extent_text(whole)} mm (lies outside the image, or between its voxel centres)",
    )
