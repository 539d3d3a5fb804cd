"""Series reading: sorting by position, rescale, and the refusals of issue 4 (non-uniform
spacing, gantry tilt, non-orthogonal axes, missing PixelSpacing, mixed series)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from imaging_io.errors import ImagingInputError
from imaging_io.series import read_image


def _copy(src: Path, dst: Path) -> list[Path]:
    shutil.copytree(src, dst)
    return sorted(dst.glob("*.dcm"))


def _edit(path: Path, **attrs: object) -> None:
    ds = pydicom.dcmread(path)
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)


def test_slices_are_sorted_by_position_not_instance_number(phantom_study, tmp_path) -> None:
    # The phantom's InstanceNumber runs against z; the grid must still go up in z.
    series = read_image(phantom_study.ct)
    z = [series.grid.affine[2, 3] + k * series.grid.affine[2, 0] for k in range(16)]
    assert np.all(np.diff(z) > 0)
    assert series.grid.affine[2, 3] == pytest.approx(phantom_study.grid.z_of(0))
    first_uid = series.info.sop_instance_uids[0]
    lowest = min(phantom_study.datasets, key=lambda d: d.ImagePositionPatient[2])
    assert first_uid == lowest.SOPInstanceUID


def test_header_only_read_reports_contract_image_fields(phantom_study) -> None:
    series = read_image(phantom_study.ct)
    assert series.array is None
    assert series.to_dict() == {"size": [96, 96, 16], "spacing_mm": [0.78, 0.78, 2.5],
                                "slice_thickness_mm": 2.5, "modality": "CT"}
    assert series.info.study_date == "2024-01-15"
    assert series.info.subject_key is not None and "PHANTOM" not in series.info.subject_key


def test_pixels_are_rescaled_to_hounsfield_units(phantom_study) -> None:
    series = read_image(phantom_study.ct, pixels=True)
    assert series.array is not None
    liver = phantom_study.masks["liver lesion"]
    assert np.all(series.array[liver] == 90.0)
    assert np.all(series.array[~liver & ~phantom_study.masks["lymph node"]] == 40.0)


def test_missing_slice_is_refused_as_non_uniform_spacing(phantom_study, tmp_path) -> None:
    files = _copy(phantom_study.ct, tmp_path / "ct")
    files[7].unlink()
    with pytest.raises(ImagingInputError, match=r"slice spacing is not uniform: gaps .* 2\.50 "
                       r"to 5\.00 mm"):
        read_image(tmp_path / "ct")


def test_missing_pixel_spacing_is_refused(phantom_study, tmp_path) -> None:
    files = _copy(phantom_study.ct, tmp_path / "ct")
    _edit(files[3], PixelSpacing=None)
    with pytest.raises(ImagingInputError, match=r"CT0003\.dcm has no PixelSpacing"):
        read_image(tmp_path / "ct")


def test_gantry_tilt_is_refused(phantom_study, tmp_path) -> None:
    files = _copy(phantom_study.ct, tmp_path / "ct")
    for k, file in enumerate(files):
        ds = pydicom.dcmread(file)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        _edit(file, ImagePositionPatient=[x, y + 0.4 * k, z])
    with pytest.raises(ImagingInputError, match=r"not stacked along their normal .* gantry "
                       r"tilt about 9\.\d°"):
        read_image(tmp_path / "ct")


def test_non_orthogonal_orientation_is_refused(phantom_study, tmp_path) -> None:
    files = _copy(phantom_study.ct, tmp_path / "ct")
    for file in files:
        _edit(file, ImageOrientationPatient=[1, 0, 0, 0.1, 0.995, 0])
    with pytest.raises(ImagingInputError, match="row and column directions are not orthogonal"):
        read_image(tmp_path / "ct")


def test_sagittal_series_is_refused_as_not_axial(phantom_study, tmp_path) -> None:
    files = _copy(phantom_study.ct, tmp_path / "ct")
    for k, file in enumerate(files):
        _edit(file, ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
              ImagePositionPatient=[2.5 * k, 0, 0])
    with pytest.raises(ImagingInputError, match=r"90° from the head-feet axis: not an axial"):
        read_image(tmp_path / "ct")


def test_two_series_in_one_folder_are_refused(phantom_study, tmp_path) -> None:
    files = _copy(phantom_study.ct, tmp_path / "ct")
    _edit(files[0], SeriesInstanceUID=generate_uid())
    with pytest.raises(ImagingInputError, match=r"holds 2 image series: .*\(15 files\)"):
        read_image(tmp_path / "ct")


def test_duplicate_slice_positions_are_refused(phantom_study, tmp_path) -> None:
    files = _copy(phantom_study.ct, tmp_path / "ct")
    ds = pydicom.dcmread(files[4])
    _edit(files[5], ImagePositionPatient=list(ds.ImagePositionPatient))
    with pytest.raises(ImagingInputError, match="lie at the same position"):
        read_image(tmp_path / "ct")


def test_folder_without_dicom_images_is_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(ImagingInputError, match="holds no DICOM image files"):
        read_image(tmp_path)


def test_series_reader_agrees_with_simpleitk_on_geometry(phantom_study) -> None:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(phantom_study.ct)))
    image = reader.Execute()
    series = read_image(phantom_study.ct)
    assert series.grid.affine[:3, 3] == pytest.approx(image.GetOrigin())
    assert series.grid.spacing[::-1] == pytest.approx(image.GetSpacing())


def test_sagittal_nifti_is_refused_as_not_axial(tmp_path) -> None:
    import SimpleITK as sitk

    image = sitk.Image(8, 8, 4, sitk.sitkInt16)
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))  # x->y, y->z, z->x: sagittal planes
    sitk.WriteImage(image, str(tmp_path / "sagittal.nii.gz"))
    with pytest.raises(ImagingInputError, match=r"sagittal\.nii\.gz: slice normal is 90° from "
                       "the head-feet axis"):
        read_image(tmp_path / "sagittal.nii.gz")


def test_undecodable_pixel_data_is_refused_naming_the_transfer_syntax(phantom_study,
                                                                      tmp_path) -> None:
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    files = _copy(phantom_study.ct, tmp_path / "ct")
    ds = pydicom.dcmread(files[0])
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([b"\x00" * 64])  # not an RLE frame
    ds["PixelData"].VR = "OB"
    ds.save_as(files[0])
    assert read_image(tmp_path / "ct").grid.shape == (16, 96, 96)  # headers suffice to measure
    with pytest.raises(ImagingInputError, match=r"CT0000\.dcm: pixel data in transfer syntax "
                       r"RLE Lossless \(1\.2\.840\.10008\.1\.2\.5\) cannot be decoded"):
        read_image(tmp_path / "ct", pixels=True)
