"""Conformance on real files written by other projects (/work/shared/testdata/dicom-real,
see its README for the upstream repositories and licences: QIICR/dcmqi BSD-3,
pydicom/pydicom and pydicom-data MIT, ImagingDataCommons/highdicom MIT, qurit/rt-utils
MIT, AIM-Harvard/pyradiomics BSD-3).

Every file there is either measured, with the result checked against an independent
computation in this module (the mask decoded by pydicom or SimpleITK directly, the
longest diameter by brute force over all pairs of outline points, the short axis as the
longest chord inside a contourpy outline — not the package's own marching squares), or
refused with a message naming the file and the problem. Nothing may raise anything else.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from imaging_io.errors import ImagingInputError
from imaging_io.measure import measure_study
from imaging_io.series import read_image
from imaging_io.sr import read_measurement_report

_BESIDE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dicom-real"
REAL = Path(
    os.environ.get(
        "RECIST_DICOM_REAL",
        _BESIDE if _BESIDE.is_dir() else "/work/shared/testdata/dicom-real",
    )
)
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is not available")

CT3 = "dcmqi/data/segmentations/ct-3slice"
CT2 = "highdicom_pydicom/ct2_series"
MOCK = "rt-utils/tests/mock_data"
# Files that hold no image, segmentation or report (documentation, licences, examples).
NOT_IMAGING_SUFFIXES = (".json", ".md", ".txt", "LICENSE", ".txt")


# --- the independent computation ---------------------------------------------------------

def brute_outline(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Edge midpoints between lesion pixels and outside 4-neighbours, in mm (loop form)."""
    points = []
    rows, cols = mask.shape
    for r, c in zip(*np.nonzero(mask), strict=True):
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            rr, cc = r + dr, c + dc
            if not (0 <= rr < rows and 0 <= cc < cols and mask[rr, cc]):
                points.append(((r + dr / 2) * spacing[0], (c + dc / 2) * spacing[1]))
    return np.array(points, dtype=float)


def brute_longest(points: np.ndarray) -> tuple[float, np.ndarray]:
    best, axis = -1.0, np.array([1.0, 0.0])
    for start in range(0, len(points), 512):
        block = points[start:start + 512]
        d = np.linalg.norm(block[:, None, :] - points[None, :, :], axis=-1)
        i, j = np.unravel_index(int(np.argmax(d)), d.shape)
        if d[i, j] > best:
            best = float(d[i, j])
            axis = (points[j] - block[i]) / best
    return best, axis


def brute_inside_chord(plane: np.ndarray, spacing: tuple[float, float],
                       axis: np.ndarray) -> float:
    """Longest chord inside the outline perpendicular to ``axis`` (issue 12): the outline
    traced by contourpy (not our marching squares; the level a hair above 0.5 keeps
    corner-touching pixels apart, as ours does), cut by lines 1e-7 mm either side of
    every vertex, crossings paired by the even-odd rule."""
    import contourpy

    generator = contourpy.contour_generator(z=np.pad(plane.astype(float), 1),
                                            line_type="Separate")
    loops = [(loop[:, ::-1] - 1.0) * np.array(spacing) for loop in generator.lines(0.5 + 1e-12)]
    edges = np.concatenate([np.stack([loop[:-1], loop[1:]], axis=1) for loop in loops])
    normal = np.array([-axis[1], axis[0]])
    t, s = edges @ axis, edges @ normal
    best = 0.0
    for vertex in np.unique(np.round(t, 9)):
        for line in (vertex - 1e-7, vertex + 1e-7):
            hit = (t[:, 0] - line) * (t[:, 1] - line) < 0
            cuts = np.sort(s[hit, 0] + (line - t[hit, 0]) / (t[hit, 1] - t[hit, 0])
                           * (s[hit, 1] - s[hit, 0]))
            if len(cuts):
                best = max(best, float(np.max(cuts[1::2] - cuts[0::2])))
    return best


def brute_measure(planes: list[np.ndarray], spacing: tuple[float, float]) -> tuple[float, float]:
    """(longest diameter, short axis) over 2-D planes, the longest plane winning."""
    best = (-1.0, 0.0)
    for plane in planes:
        if not plane.any():
            continue
        points = brute_outline(plane, spacing)
        longest, axis = brute_longest(points)
        if longest > best[0] + 1e-9:
            best = (longest, brute_inside_chord(plane, spacing, axis))
    return best


def seg_planes_by_pydicom(path: Path) -> tuple[dict[int, list[np.ndarray]], tuple[float, float]]:
    """Each segment's frames, decoded by pydicom alone (no highdicom, no placement)."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns).astype(float)
    if ds.SegmentationType == "FRACTIONAL":
        frames = frames / float(ds.MaximumFractionalValue)
        binary = frames >= 0.5
    else:
        binary = frames > 0
    shared = ds.SharedFunctionalGroupsSequence[0]
    spacing = tuple(float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    by_segment: dict[int, list[np.ndarray]] = {}
    for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        seq = item.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        by_segment.setdefault(int(seq[0].ReferencedSegmentNumber), []).append(binary[k])
    return by_segment, spacing  # type: ignore[return-value]


def check_against_brute_force(result, planes_by_value, spacing) -> None:
    assert len(result.lesions) == len(planes_by_value)
    for lesion in result.lesions:
        planes = planes_by_value[lesion.label_value]
        longest, short = brute_measure(planes, spacing)
        assert lesion.voxel_count == sum(int(p.sum()) for p in planes)
        assert lesion.longest_diameter_mm == pytest.approx(longest, abs=1e-6)
        assert lesion.short_axis_mm == pytest.approx(short, abs=1e-5)


# --- the files ---------------------------------------------------------------------------

SEG_ON_CT3 = ["dcmqi/data/segmentations/liver.dcm", "pydicom_data/liver.dcm",
              "pydicom_data/liver_expb.dcm", "pydicom_data/liver_j2k.dcm",
              "pydicom_data/liver_deflate.dcm",
              "pydicom_data/liver_nonbyte_aligned.dcm",
              # 1-bit RLE Lossless, decoded per PS3.5 Annex G (imaging_io.segmentation)
              "pydicom_data/liver_rle.dcm"]
SEG_ALONE = ["highdicom_pydicom/seg/seg_image_ct_binary.dcm",
             "highdicom_pydicom/seg/seg_image_ct_binary_overlap.dcm",
             "highdicom_pydicom/seg/seg_image_ct_binary_fractional.dcm",
             "highdicom_pydicom/seg/seg_image_ct_true_fractional.dcm",
             "dcmqi/data/sr-example/seg.dcm"]
LABELS_ON_IMAGE = {"dcmqi/data/segmentations/liver_seg.nrrd": CT3,
                   "dcmqi/data/segmentations/liver_spine_seg.nrrd": CT3,
                   "dcmqi/data/segmentations/spine_seg.nrrd": CT3,
                   "dcmqi/data/segmentations/heart_seg.nrrd": CT3,
                   "pyradiomics/lung1_label.nrrd": "pyradiomics/lung1_image.nrrd",
                   "pyradiomics/brain1_label.nrrd": "pyradiomics/brain1_image.nrrd",
                   "pyradiomics/breast1_label.nrrd": "pyradiomics/breast1_image.nrrd",
                   "pyradiomics/lung2_label.nrrd": "pyradiomics/lung2_label.nrrd"}
IMAGES_READ = [CT3, MOCK, "rt-utils/tests/oriented_data", "highdicom_pydicom/misc/CT_small.dcm",
               "highdicom_pydicom/misc/highdicom_ct_image.dcm", "pydicom_data/693_UNCR.dcm",
               "pydicom_data/693_J2KR.dcm", "pydicom_data/eCT_Supplemental.dcm",
               "pyradiomics/lung1_image.nrrd", "pyradiomics/brain1_image.nrrd",
               "pyradiomics/breast1_image.nrrd"]
IMAGES_REFUSED = {CT2: r"slice spacing is not uniform: gaps .* 1\.25 to 202\.50 mm",
                  "highdicom_pydicom/misc/JPEG2000.dcm": "has no ImagePositionPatient",
                  "dcmqi/data/sr-example/rwvm.dcm": "is a DICOM RWV object, not an image"}
REPORTS = {"highdicom_pydicom/sr/sr_document_with_multiple_groups.dcm":
           [("LungNodule0001", "diameter", 10.0), ("Aorta0001", "diameter", 20.0)],
           "highdicom_pydicom/sr/sr_document.dcm": [], "dcmqi/data/sr-example/sr.dcm": []}
RTSTRUCTS = {f"{MOCK}/rt.dcm": MOCK}
RTSTRUCT_REFUSED = {"highdicom_pydicom/misc/rtstruct.dcm": ("highdicom_pydicom/misc/CT_small.dcm",
                                                            "is on frame of reference")}
SEG_OVER_REFUSED_SERIES = {"highdicom_pydicom/seg/seg_image_ct_binary.dcm": CT2}
SEG_ON_IMAGE = {"highdicom_pydicom/seg/seg_image_ct_binary_single_frame.dcm":
                "highdicom_pydicom/misc/CT_small.dcm"}


def _covered() -> set[str]:
    covered = set(SEG_ON_CT3) | set(SEG_ALONE) | set(LABELS_ON_IMAGE)
    covered |= set(REPORTS) | set(RTSTRUCTS) | set(RTSTRUCT_REFUSED) | set(SEG_ON_IMAGE)
    for image in [*IMAGES_READ, *IMAGES_REFUSED]:
        path = REAL / image
        covered |= ({str(f.relative_to(REAL)) for f in path.iterdir()} if path.is_dir()
                    else {image})
    return covered


def test_every_real_file_is_covered_by_a_conformance_case() -> None:
    files = {str(f.relative_to(REAL)) for f in REAL.rglob("*") if f.is_file()}
    imaging = {f for f in files if not f.endswith(NOT_IMAGING_SUFFIXES)
               and "LICENSE" not in f and not f.endswith("info.txt")}
    missing = sorted(imaging - _covered())
    assert missing == []


@pytest.mark.parametrize("seg", SEG_ON_CT3)
def test_liver_seg_encodings_measure_like_the_brute_force(seg: str) -> None:
    result = measure_study(REAL / CT3, REAL / seg)
    planes, spacing = seg_planes_by_pydicom(REAL / "dcmqi/data/segmentations/liver.dcm")
    check_against_brute_force(result, planes, spacing)
    # Frames are stored in z order, not instance order, and lack the spatial-locations-
    # preserved flag: they are placed by position. Slice 0 of the grid is the lowest z.
    assert result.lesions[0].label == "Liver"
    assert result.image["slice_thickness_mm"] == 1.25


@pytest.mark.parametrize("seg", SEG_ALONE)
def test_seg_without_its_series_measures_on_its_own_grid_like_the_brute_force(seg: str) -> None:
    result = measure_study(None, REAL / seg)
    planes, spacing = seg_planes_by_pydicom(REAL / seg)
    check_against_brute_force(result, planes, spacing)


@pytest.mark.parametrize(("seg", "image"), sorted(SEG_ON_IMAGE.items()))
def test_single_frame_seg_measures_on_its_image(seg: str, image: str) -> None:
    result = measure_study(REAL / image, REAL / seg)
    planes, spacing = seg_planes_by_pydicom(REAL / seg)
    check_against_brute_force(result, planes, spacing)


@pytest.mark.parametrize(("seg", "image"), sorted(SEG_OVER_REFUSED_SERIES.items()))
def test_seg_over_a_non_uniform_series_is_refused(seg: str, image: str) -> None:
    with pytest.raises(ImagingInputError, match=r"ct2_series: slice spacing is not uniform"):
        measure_study(REAL / image, REAL / seg)


@pytest.mark.parametrize(("labels", "image"), sorted(LABELS_ON_IMAGE.items()))
def test_label_maps_measure_like_the_brute_force(labels: str, image: str) -> None:
    result = measure_study(REAL / image, REAL / labels)
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL / labels)))
    spacing = sitk.ReadImage(str(REAL / labels)).GetSpacing()
    planes = {int(v): list(array == v) for v in np.unique(array) if v != 0}
    check_against_brute_force(result, planes, (spacing[1], spacing[0]))


def test_label_map_on_another_grid_is_refused() -> None:
    with pytest.raises(ImagingInputError, match=r"lung2_label\.nrrd: is not on the image grid"):
        measure_study(REAL / "pyradiomics/lung1_image.nrrd", REAL / "pyradiomics/lung2_label.nrrd")


@pytest.mark.parametrize("image", IMAGES_READ)
def test_real_series_geometry_matches_the_headers(image: str) -> None:
    series = read_image(REAL / image, pixels=True)
    assert series.array is not None and series.array.shape == series.grid.shape
    if image.endswith(".nrrd"):
        ref = sitk.ReadImage(str(REAL / image))
        assert np.array_equal(series.array, sitk.GetArrayFromImage(ref).astype(np.float32))
        return
    path = REAL / image
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    datasets = [d for d in (pydicom.dcmread(f, force=True) for f in files)
                if d.get("Modality") == "CT"]
    if len(datasets) == 1 and "PerFrameFunctionalGroupsSequence" in datasets[0]:
        ds = datasets[0]
        positions = [np.array(f.PlanePositionSequence[0].ImagePositionPatient, float)
                     for f in ds.PerFrameFunctionalGroupsSequence]
        orientation = np.array(ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
                               .ImageOrientationPatient, float)
        transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
        pixels = [ds.pixel_array[k] * float(transform.RescaleSlope)
                  + float(transform.RescaleIntercept) for k in range(len(positions))]
    else:
        positions = [np.array(d.ImagePositionPatient, float) for d in datasets]
        orientation = np.array(datasets[0].ImageOrientationPatient, float)
        pixels = [d.pixel_array * float(d.get("RescaleSlope", 1))
                  + float(d.get("RescaleIntercept", 0)) for d in datasets]
    normal = np.cross(orientation[:3], orientation[3:])
    order = np.argsort([p @ normal for p in positions])
    # Sorted along the slice normal (never by InstanceNumber), rescale applied.
    assert series.grid.affine[:3, 3] == pytest.approx(positions[order[0]], abs=1e-4)
    for k, index in enumerate(order):
        assert np.allclose(series.array[k], pixels[index], atol=1e-3)


def test_jpeg2000_ct_decodes_to_the_same_values_as_its_uncompressed_twin() -> None:
    plain = read_image(REAL / "pydicom_data/693_UNCR.dcm", pixels=True).array
    j2k = read_image(REAL / "pydicom_data/693_J2KR.dcm", pixels=True).array
    assert plain is not None and j2k is not None
    assert np.array_equal(plain, j2k)


@pytest.mark.parametrize(("image", "message"), sorted(IMAGES_REFUSED.items()))
def test_real_files_that_cannot_be_measured_on_are_refused(image: str, message: str) -> None:
    with pytest.raises(ImagingInputError, match=message):
        read_image(REAL / image)


def _linear_items(items, found: list) -> None:
    for item in items:
        if item.get("ValueType") == "NUM":
            code = item.ConceptNameCodeSequence[0]
            if (code.CodingSchemeDesignator, code.CodeValue) in (("SCT", "81827009"),
                                                                  ("SCT", "103339001"),
                                                                  ("SCT", "103340004"),
                                                                  ("SCT", "410668003"),
                                                                  ("SRT", "G-A185"),
                                                                  ("SRT", "G-A186")):
                found.append(float(item.MeasuredValueSequence[0].NumericValue))
        _linear_items(item.get("ContentSequence", []), found)


@pytest.mark.parametrize(("report", "expected"), sorted(REPORTS.items()))
def test_sr_linear_measurements_match_a_walk_of_the_content_tree(report: str, expected) -> None:
    found = read_measurement_report(REAL / report)
    assert [(m.tracking_identifier, m.kind, m.value_mm) for m in found] == expected
    walked: list = []
    _linear_items(pydicom.dcmread(REAL / report).ContentSequence, walked)
    assert sorted(walked) == sorted(m.value_mm for m in found)


def test_rtstruct_ring_is_filled_even_odd_like_matplotlib_paths() -> None:
    from matplotlib.path import Path as MplPath

    result = measure_study(REAL / MOCK, REAL / f"{MOCK}/rt.dcm")
    series = read_image(REAL / MOCK)
    ds = pydicom.dcmread(REAL / f"{MOCK}/rt.dcm")
    inside = np.zeros(series.grid.shape, dtype=bool)
    rows, cols = np.mgrid[0:series.grid.shape[1], 0:series.grid.shape[2]]
    centres = np.c_[rows.ravel(), cols.ravel()]
    for contour in ds.ROIContourSequence[0].ContourSequence:
        xyz = np.array(contour.ContourData, float).reshape(-1, 3)
        index = series.grid.to_index(xyz)
        k = round(float(index[0, 0]))
        polygon = MplPath(index[:, 1:])
        inside[k] ^= polygon.contains_points(centres).reshape(rows.shape)
    planes = list(inside)
    spacing = (series.grid.spacing[1], series.grid.spacing[2])
    check_against_brute_force(result, {1: planes}, spacing)
    # The ring has a hole: fewer pixels than its outer square.
    assert result.lesions[0].voxel_count < (24.0 / spacing[0]) ** 2


@pytest.mark.parametrize(("rtstruct", "case"), sorted(RTSTRUCT_REFUSED.items()))
def test_rtstruct_of_another_frame_of_reference_is_refused(rtstruct: str, case) -> None:
    image, message = case
    with pytest.raises(ImagingInputError, match=message):
        measure_study(REAL / image, REAL / rtstruct)


def _all_imaging_files() -> list[str]:
    if not REAL.is_dir():
        return []
    return sorted(str(f.relative_to(REAL)) for f in REAL.rglob("*")
                  if f.is_file() and f.suffix in (".dcm", ".nrrd"))


@pytest.mark.parametrize("name", _all_imaging_files())
def test_recist_measure_never_crashes_on_any_real_file(name: str, capsys) -> None:
    from recist.cli import main

    for image, seg in ((REAL / CT3, REAL / name), (REAL / name, REAL / name)):
        status = main(["measure", str(image), "--seg", str(seg)])
        out, err = capsys.readouterr()
        assert status in (0, 2)
        if status == 2:
            assert err.count("\n") == 1 and err.startswith("recist measure: /")
            assert "Traceback" not in err
        else:
            assert '"lesions"' in out


def test_lung2_label_resampled_onto_lung1_image_is_refused_as_outside_it() -> None:
    # The two pyradiomics lungs are different patients: lung2's label lies in no voxel
    # of lung1's image, so --resample must not answer "no lesions".
    with pytest.raises(ImagingInputError, match=r"lung2_label\.nrrd: label 1 has no voxel on "
                       r"the image grid after resampling: it spans x .* mm, the image x "):
        measure_study(REAL / "pyradiomics/lung1_image.nrrd",
                      REAL / "pyradiomics/lung2_label.nrrd", resample=True)
