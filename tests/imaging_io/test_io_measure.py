"""`recist measure` and measure_study: DICOM SEG (binary, fractional, overlapping),
label maps, RTSTRUCT rings, components, and one-line refusals (docs/contracts.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from imaging_io.errors import ImagingInputError
from imaging_io.measure import measure_study
from imaging_io.phantoms import SegmentSpec, write_seg
from recist.cli import main

TOLERANCE_MM = 1.2


def _by_label(result) -> dict:
    return {le.label: le for le in result.lesions}


def test_seg_lesions_are_measured_within_1_2_mm_of_the_true_diameters(phantom_study) -> None:
    result = measure_study(phantom_study.ct, phantom_study.seg)
    lesions = _by_label(result)
    for name, ellipsoid in phantom_study.lesions.items():
        found = lesions[name]
        true_ld, true_sa = ellipsoid.true_diameters_at(phantom_study.grid.z_of(found.slice_index))
        assert abs(found.longest_diameter_mm - true_ld) <= TOLERANCE_MM
        assert abs(found.short_axis_mm - true_sa) <= TOLERANCE_MM
        assert found.voxel_count == int(phantom_study.masks[name].sum())


def test_lymph_node_is_judged_on_its_short_axis(phantom_study) -> None:
    node = _by_label(measure_study(phantom_study.ct, phantom_study.seg))["lymph node"]
    assert node.nodal is True
    assert node.tracking_id == "T2"
    assert node.measurable is True
    assert node.reasons[0].startswith("R-MEAS-2: node short axis 16.")


def test_measure_json_has_exactly_the_contract_fields(phantom_study, capsys) -> None:
    status = main(["measure", str(phantom_study.ct), "--seg", str(phantom_study.seg)])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["image"] == {"size": [96, 96, 16], "spacing_mm": [0.78, 0.78, 2.5],
                            "slice_thickness_mm": 2.5, "modality": "CT"}
    liver = out["lesions"][0]
    for key in ("label", "label_value", "longest_diameter_mm", "short_axis_mm", "slice_index",
                "volume_ml", "measurable", "reasons"):
        assert key in liver
    assert liver["label"] == "liver lesion" and liver["label_value"] == 1
    assert liver["longest_diameter_mm"] == round(liver["longest_diameter_mm"], 1)
    assert liver["reasons"][0].startswith("R-MEAS-1: longest diameter")


def test_bad_input_exits_2_with_one_line_naming_the_file(tmp_path, capsys) -> None:
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom file at all")
    status = main(["measure", str(tmp_path), "--seg", str(tmp_path / "junk.dcm")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith(f"recist measure: {tmp_path}: holds no DICOM image files")


def test_seg_on_another_frame_of_reference_is_refused(phantom_study, tmp_path) -> None:
    seg = pydicom.dcmread(phantom_study.seg)
    seg.FrameOfReferenceUID = generate_uid()
    seg.save_as(tmp_path / "seg.dcm")
    with pytest.raises(ImagingInputError, match=r"is on frame of reference .* does not belong"):
        measure_study(phantom_study.ct, tmp_path / "seg.dcm")


def test_fractional_seg_is_thresholded_at_one_half(phantom_study, tmp_path) -> None:
    liver = phantom_study.masks["liver lesion"]
    fraction = liver.astype(np.float32) * 0.8
    # A rim of 0.4 around the lesion: below the default threshold, above 0.3.
    from scipy import ndimage

    rim = ndimage.binary_dilation(liver, iterations=2) & ~liver
    fraction[rim] = 0.4
    spec = SegmentSpec("liver lesion", "T1", fraction)  # type: ignore[arg-type]
    write_seg(tmp_path / "frac.dcm", phantom_study.datasets, [spec], fractional=True)
    default = measure_study(phantom_study.ct, tmp_path / "frac.dcm").lesions[0]
    loose = measure_study(phantom_study.ct, tmp_path / "frac.dcm",
                          fractional_threshold=0.3).lesions[0]
    assert default.voxel_count == int(liver.sum())
    assert loose.voxel_count == int((liver | rim).sum())
    assert loose.longest_diameter_mm > default.longest_diameter_mm + 2.0


def test_overlapping_segments_are_each_measured_whole(phantom_study, tmp_path) -> None:
    liver = phantom_study.masks["liver lesion"]
    core = np.zeros_like(liver)
    core[6:10] = liver[6:10]
    write_seg(tmp_path / "overlap.dcm", phantom_study.datasets,
              [SegmentSpec("lesion", "T1", liver), SegmentSpec("core", "T1c", core)])
    found = _by_label(measure_study(phantom_study.ct, tmp_path / "overlap.dcm"))
    assert found["lesion"].voxel_count == int(liver.sum())
    assert found["core"].voxel_count == int(core.sum())


def test_components_split_a_segment_into_its_connected_parts(phantom_study, tmp_path) -> None:
    both = phantom_study.masks["liver lesion"] | phantom_study.masks["lymph node"]
    write_seg(tmp_path / "two.dcm", phantom_study.datasets, [SegmentSpec("lesions", "X", both)])
    whole = measure_study(phantom_study.ct, tmp_path / "two.dcm").lesions
    parts = measure_study(phantom_study.ct, tmp_path / "two.dcm", components=True).lesions
    assert len(whole) == 1
    assert [p.label for p in parts] == ["lesions #1", "lesions #2"]
    assert parts[0].voxel_count == int(phantom_study.masks["liver lesion"].sum())
    assert parts[1].voxel_count == int(phantom_study.masks["lymph node"].sum())


def _label_map_like_series(phantom_study, labels: np.ndarray, path: Path,
                           spacing_scale: float = 1.0) -> None:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(phantom_study.ct)))
    ct = reader.Execute()
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.CopyInformation(ct)
    if spacing_scale != 1.0:
        image.SetSpacing(tuple(s * spacing_scale for s in ct.GetSpacing()))
    sitk.WriteImage(image, str(path))


def test_label_map_on_the_image_grid_measures_like_the_seg(phantom_study, tmp_path) -> None:
    labels = phantom_study.masks["liver lesion"] * 1 + phantom_study.masks["lymph node"] * 2
    _label_map_like_series(phantom_study, labels, tmp_path / "labels.nii.gz")
    from_map = measure_study(phantom_study.ct, tmp_path / "labels.nii.gz").lesions
    from_seg = measure_study(phantom_study.ct, phantom_study.seg).lesions
    assert [le.label for le in from_map] == ["label 1", "label 2"]
    for a, b in zip(from_map, from_seg, strict=True):
        assert a.longest_diameter_mm == pytest.approx(b.longest_diameter_mm)
        assert a.short_axis_mm == pytest.approx(b.short_axis_mm)
        assert a.slice_index == b.slice_index


def test_label_map_off_the_grid_is_refused_unless_resampling_is_asked(
    phantom_study, tmp_path, capsys
) -> None:
    labels = phantom_study.masks["liver lesion"].astype(np.uint8)
    _label_map_like_series(phantom_study, labels, tmp_path / "coarse.nrrd", spacing_scale=1.5)
    status = main(["measure", str(phantom_study.ct), "--seg", str(tmp_path / "coarse.nrrd")])
    assert status == 2
    assert "is not on the image grid" in capsys.readouterr().err
    resampled = measure_study(phantom_study.ct, tmp_path / "coarse.nrrd", resample=True)
    assert resampled.lesions[0].voxel_count > 0


def _rtstruct(phantom_study, path: Path, contours: list[np.ndarray], name: str) -> None:
    ct = phantom_study.datasets[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.StudyInstanceUID = ct.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    roi = Dataset()
    roi.ROINumber = 7
    roi.ROIName = name
    roi.ReferencedFrameOfReferenceUID = ct.FrameOfReferenceUID
    ds.StructureSetROISequence = Sequence([roi])
    items = []
    for points in contours:
        item = Dataset()
        item.ContourGeometricType = "CLOSED_PLANAR"
        item.NumberOfContourPoints = len(points)
        item.ContourData = [f"{v:.3f}" for v in points.ravel()]
        items.append(item)
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 7
    roi_contour.ContourSequence = Sequence(items)
    ds.ROIContourSequence = Sequence([roi_contour])
    ds.save_as(path, enforce_file_format=True)


def _square(center: tuple[float, float], half: float, z: float) -> np.ndarray:
    cx, cy = center
    return np.array([[cx - half, cy - half, z], [cx + half, cy - half, z],
                     [cx + half, cy + half, z], [cx - half, cy + half, z]])


def test_rtstruct_ring_keeps_its_hole_by_the_even_odd_rule(phantom_study, tmp_path) -> None:
    z = phantom_study.grid.z_of(5)
    outer = _square((0.0, 0.0), 10.0, z)
    inner = _square((0.0, 0.0), 5.0, z)[::-1]  # orientation must not matter for even-odd
    _rtstruct(phantom_study, tmp_path / "ring.dcm", [outer, inner], "ring node")
    lesion = measure_study(phantom_study.ct, tmp_path / "ring.dcm").lesions[0]
    px = phantom_study.grid.pixel_mm
    ring_area = 20.0**2 - 10.0**2
    assert lesion.label == "ring node" and lesion.label_value == 7 and lesion.nodal
    assert lesion.slice_index == 5
    assert lesion.voxel_count * px * px == pytest.approx(ring_area, rel=0.1)
    assert abs(lesion.longest_diameter_mm - 20.0 * np.sqrt(2)) <= TOLERANCE_MM


def test_rtstruct_contour_between_slices_is_refused(phantom_study, tmp_path) -> None:
    z = phantom_study.grid.z_of(5) + 1.25  # half-way to the next slice
    _rtstruct(phantom_study, tmp_path / "off.dcm", [_square((0, 0), 10, z)], "lesion")
    with pytest.raises(ImagingInputError, match="does not lie on an image slice"):
        measure_study(phantom_study.ct, tmp_path / "off.dcm")


def test_an_image_given_as_label_map_is_refused(tmp_path) -> None:
    ct = Path(__file__).resolve().parents[2] / "sample_dicom" / "BL" / "CT"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct)))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "ct.nrrd"))
    with pytest.raises(ImagingInputError, match=r"ct\.nrrd: holds negative values \(down to "
                       r"-1000\): not a label map"):
        measure_study(ct, tmp_path / "ct.nrrd")


def _strip_positions(seg_path: Path, out: Path) -> None:
    """A SEG whose frames carry no plane position: only their source-image references."""
    ds = pydicom.dcmread(seg_path)
    ds.DimensionIndexSequence = Sequence([ds.DimensionIndexSequence[0]])  # segment number
    for item in ds.PerFrameFunctionalGroupsSequence:
        del item.PlanePositionSequence
        content = item.FrameContentSequence[0]
        content.DimensionIndexValues = [content.DimensionIndexValues[0]]
    ds.save_as(out)


def test_seg_frames_without_positions_are_placed_by_referenced_instance(
    phantom_study, tmp_path
) -> None:
    _strip_positions(phantom_study.seg, tmp_path / "refs.dcm")
    by_reference = measure_study(phantom_study.ct, tmp_path / "refs.dcm").to_dict()
    by_position = measure_study(phantom_study.ct, phantom_study.seg).to_dict()
    assert by_reference == by_position


def test_seg_without_positions_over_other_instances_is_refused(phantom_study, tmp_path) -> None:
    _strip_positions(phantom_study.seg, tmp_path / "refs.dcm")
    other = tmp_path / "ct"
    shutil.copytree(phantom_study.ct, other)
    for file in other.glob("*.dcm"):
        ds = pydicom.dcmread(file)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(file)
    with pytest.raises(ImagingInputError, match=r"can be placed neither by position .* nor by "
                       r"reference to the image's instances"):
        measure_study(other, tmp_path / "refs.dcm")


def test_resampled_label_map_whose_label_falls_outside_the_image_is_refused_naming_it(
    phantom_study, tmp_path, capsys
) -> None:
    labels = phantom_study.masks["liver lesion"].astype(np.uint8)
    path = tmp_path / "away.nrrd"
    _label_map_like_series(phantom_study, labels, path, spacing_scale=1.5)
    image = sitk.ReadImage(str(path))
    x, y, z = image.GetOrigin()
    image.SetOrigin((x, y, z + 1000.0))  # the same map 1 m further along the patient
    sitk.WriteImage(image, str(path))
    status = main(["measure", str(phantom_study.ct), "--seg", str(path), "--resample"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"recist measure: {path}: label 1 has no voxel on the image grid "
                          "after resampling: it spans x ")
    assert "mm, the image x " in err
