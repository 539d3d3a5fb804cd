"""Synthetic CT series and segmentations: ellipsoid and crescent phantoms with known
diameters.

Used by the tests, ``sample_dicom/generate.py`` and ``benchmarks/bench_measure.py``. The
files are written with pydicom (CT) and highdicom (SEG) as a scanner and a segmentation
tool would write them; no real patient data is involved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid lesion: centre (x, y, z) in patient mm, semi-axes in mm, and the
    in-plane rotation of its first axis from the patient x axis (degrees)."""

    center_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    angle_deg: float = 0.0

    def true_diameters_at(self, z_mm: float) -> tuple[float, float]:
        """Exact longest and perpendicular diameters of its section at height ``z_mm``."""
        a, b, c = self.semi_axes_mm
        dz = (z_mm - self.center_mm[2]) / c
        if abs(dz) >= 1:
            return 0.0, 0.0
        factor = float(np.sqrt(1 - dz * dz))
        return 2 * max(a, b) * factor, 2 * min(a, b) * factor


@dataclass(frozen=True)
class AxialGrid:
    """An axial CT grid: ``rows × columns`` pixels of ``pixel_mm``, ``slices`` slices of
    ``spacing_mm`` from ``origin_mm`` (centre of the first pixel of the lowest slice)."""

    rows: int
    columns: int
    slices: int
    pixel_mm: float
    spacing_mm: float
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def z_of(self, k: int) -> float:
        return self.origin_mm[2] + k * self.spacing_mm

    def patient_coordinates(self, k: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """x (columns) and y (rows) of the pixel centres of a slice."""
        x = self.origin_mm[0] + np.arange(self.columns) * self.pixel_mm
        y = self.origin_mm[1] + np.arange(self.rows) * self.pixel_mm
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return xx, yy


def ellipsoid_mask(grid: AxialGrid, lesion: Ellipsoid) -> NDArray[np.bool_]:
    """Voxels ``[slice, row, column]`` whose centres lie inside the ellipsoid."""
    a, b, c = lesion.semi_axes_mm
    theta = np.radians(lesion.angle_deg)
    out = np.zeros((grid.slices, grid.rows, grid.columns), dtype=bool)
    for k in range(grid.slices):
        dz = (grid.z_of(k) - lesion.center_mm[2]) / c
        if abs(dz) >= 1:
            continue
        xx, yy = grid.patient_coordinates(k)
        dx, dy = xx - lesion.center_mm[0], yy - lesion.center_mm[1]
        u = np.cos(theta) * dx + np.sin(theta) * dy
        v = -np.sin(theta) * dx + np.cos(theta) * dy
        out[k] = (u / a) ** 2 + (v / b) ** 2 <= 1 - dz * dz
    return out


@dataclass(frozen=True)
class Crescent:
    """A crescent lesion, the same section on every slice within ``half_height_mm`` of its
    centre: the disc of radius ``radius_mm`` about ``center_mm`` (x, y, z, patient mm) less
    a larger disc, of radius ``bite_radius_mm``, whose centre lies ``bite_offset_mm`` away
    in the direction ``angle_deg`` from the patient x axis.

    The bite takes more than half of the disc (``bite² > radius² + offset²``), so that the
    crescent's diameters are known exactly (see the methods): a concave lesion whose short
    axis inside the outline is much shorter than the width of its convex hull.
    """

    center_mm: tuple[float, float, float]
    radius_mm: float
    bite_radius_mm: float
    bite_offset_mm: float
    angle_deg: float = 0.0
    half_height_mm: float = 5.0

    def __post_init__(self) -> None:
        big, bite, offset = self.radius_mm, self.bite_radius_mm, self.bite_offset_mm
        if not (offset > 0 and bite**2 > big**2 + offset**2 and bite < big + offset):
            raise ValueError(
                f"crescent: a bite of radius {bite} mm at {offset} mm must take more than "
                f"half of the disc of radius {big} mm and leave something "
                "(offset > 0, bite² > radius² + offset², bite < radius + offset)"
            )

    @property
    def horn_offset_mm(self) -> float:
        """Where the horn tips (the two circles' crossings) lie along the bite's direction,
        from the centre: negative, behind the centre."""
        big, bite, offset = self.radius_mm, self.bite_radius_mm, self.bite_offset_mm
        return (big**2 - bite**2 + offset**2) / (2 * offset)

    def true_longest_diameter_mm(self) -> float:
        """Horn tip to horn tip: the crescent lies in the part of the disc behind the line
        through the tips, a segment smaller than a half disc, whose longest chord that is."""
        return 2 * float(np.sqrt(self.radius_mm**2 - self.horn_offset_mm**2))

    def true_short_axis_mm(self) -> float:
        """Longest chord inside the crescent perpendicular to the horn-to-horn axis.

        At height ``h`` across the symmetry axis the chord runs from the disc's edge to the
        bite's, of length ``offset + √(radius² − h²) − √(bite² − h²)``; with the bite the
        larger circle this shrinks as ``|h|`` grows, so it is longest on the symmetry axis.
        """
        return self.radius_mm + self.bite_offset_mm - self.bite_radius_mm

    def hull_chord_mm(self) -> float:
        """The same perpendicular chord taken on the convex hull (the disc's segment behind
        the horns): from the disc's edge to the line through the tips, across the bite."""
        return self.radius_mm + self.horn_offset_mm


def crescent_mask(grid: AxialGrid, lesion: Crescent) -> NDArray[np.bool_]:
    """Voxels ``[slice, row, column]`` whose centres lie inside the crescent."""
    theta = np.radians(lesion.angle_deg)
    cx, cy, cz = lesion.center_mm
    bx = cx + lesion.bite_offset_mm * np.cos(theta)
    by = cy + lesion.bite_offset_mm * np.sin(theta)
    out = np.zeros((grid.slices, grid.rows, grid.columns), dtype=bool)
    for k in range(grid.slices):
        if abs(grid.z_of(k) - cz) > lesion.half_height_mm:
            continue
        xx, yy = grid.patient_coordinates(k)
        in_disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= lesion.radius_mm**2
        out[k] = in_disc & ((xx - bx) ** 2 + (yy - by) ** 2 > lesion.bite_radius_mm**2)
    return out


def write_ct_series(
    folder: str | Path,
    hu: NDArray[Any],
    grid: AxialGrid,
    *,
    patient_id: str = "PHANTOM-001",
    study_date: dt.date = dt.date(2024, 1, 15),
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    slice_thickness_mm: float | None = None,
    instance_numbers_descending: bool = True,
    uid_seed: str | None = None,
) -> list[Any]:
    """Write one axial CT series (one file per slice) and return its datasets.

    ``hu`` is ``[slice, row, column]`` in Hounsfield units, stored as int16 with
    RescaleIntercept −1024. InstanceNumber runs against the slice position when
    ``instance_numbers_descending`` (as in many scanners' head-first series), so that a
    reader sorting by InstanceNumber would be caught out.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    def uid(*parts: str) -> str:
        return generate_uid(entropy_srcs=[uid_seed, *parts]) if uid_seed else generate_uid()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or uid("study")
    series_uid = series_uid or uid("series")
    frame_of_reference_uid = frame_of_reference_uid or uid("frame of reference")
    stored = np.clip(np.round(hu + 1024), 0, 4095).astype(np.uint16)
    datasets = []
    for k in range(grid.slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
        meta.MediaStorageSOPInstanceUID = UID(uid("instance", str(k)))
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = "Phantom^Synthetic"
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.StudyDate = study_date.strftime("%Y%m%d")
        ds.SeriesDate = ds.StudyDate
        ds.ContentDate = ds.StudyDate
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "090000"
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        ds.Manufacturer = "recist-service phantom"
        ds.Modality = "CT"
        ds.SeriesNumber = 2
        ds.InstanceNumber = grid.slices - k if instance_numbers_descending else k + 1
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        ds.KVP = "120"
        ds.ImagePositionPatient = [grid.origin_mm[0], grid.origin_mm[1], grid.z_of(k)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = grid.z_of(k)
        ds.PixelSpacing = [grid.pixel_mm, grid.pixel_mm]
        ds.SliceThickness = slice_thickness_mm or grid.spacing_mm
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = grid.rows, grid.columns
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.PixelData = stored[k].tobytes()
        ds.save_as(folder / f"CT{k:04d}.dcm", enforce_file_format=True)
        datasets.append(ds)
    return datasets


@dataclass(frozen=True)
class SegmentSpec:
    """One segment to write: label, tracking id, voxels on the source grid, and the
    segmented property type as a SNOMED CT (code, meaning) pair."""

    label: str
    tracking_id: str
    mask: NDArray[np.bool_]
    property_type: tuple[str, str] = ("108369006", "Neoplasm")


def write_seg(
    path: str | Path,
    source_images: Sequence[Any],
    segments: Sequence[SegmentSpec],
    *,
    fractional: bool = False,
    series_number: int = 300,
    uid_seed: str | None = None,
) -> Any:
    """Write a DICOM SEG (highdicom) of ``segments`` over ``source_images``.

    ``source_images`` are the CT datasets in slice order (``mask[k]`` is over
    ``source_images[k]``). Empty frames are omitted, as segmentation tools do. With
    ``uid_seed`` the SEG's own UIDs are derived from it.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    def uid(*parts: str) -> str:
        return generate_uid(entropy_srcs=[uid_seed, *parts]) if uid_seed else generate_uid()

    descriptions = []
    for number, spec in enumerate(segments, start=1):
        code_value, meaning = spec.property_type
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=spec.label,
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=hd.sr.CodedConcept(code_value, "SCT", meaning),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
                tracking_uid=uid("tracking", spec.tracking_id),
                tracking_id=spec.tracking_id,
            )
        )
    stack = np.stack([s.mask for s in segments], axis=-1)
    pixel_array = stack.astype(np.float32) if fractional else stack.astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=list(source_images),
        pixel_array=pixel_array,
        segmentation_type=(hd.seg.SegmentationTypeValues.FRACTIONAL if fractional
                           else hd.seg.SegmentationTypeValues.BINARY),
        segment_descriptions=descriptions,
        series_instance_uid=uid("seg series"),
        series_number=series_number,
        sop_instance_uid=uid("seg instance"),
        instance_number=1,
        manufacturer="recist-service phantom",
        manufacturer_model_name="phantoms.py",
        software_versions="0.1",
        device_serial_number="0",
        omit_empty_frames=True,
    )
    seg.save_as(Path(path))
    return seg
