"""`recist export-sr`: the lesions `recist measure` measures, written as a DICOM SR TID 1500
measurement report, read back by highdicom and by `recist ingest`, checked by dciodvfy.

Studies: sample_dicom/ (DEMO-001, BL/W8/W16) and the session's phantom study (conftest).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from imaging_io.errors import ImagingInputError
from imaging_io.ingest import ingest_study
from imaging_io.measure import MeasureResult
from imaging_io.phantoms import SegmentSpec, write_ct_series, write_seg
from imaging_io.sr_export import export_measurement_report, tracking_uid, write_atomically
from recist import cli

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"
VISITS = ("BL", "W8", "W16")
# dciodvfy "Error" lines accepted on the written files: none (it reports no error on what
# highdicom writes here; add an entry only for an error that highdicom itself causes).
DCIODVFY_ALLOWED_ERRORS: tuple[str, ...] = ()
TIME_POINT = hd.sr.CodedConcept("C2348792", "UMLS", "Time Point")
# The command as setup.cfg declares it (`export-sr = imaging_io.sr_export [imaging]`).
EXPORT_SR = EntryPoint(name="export-sr", value="imaging_io.sr_export [imaging]",
                       group=cli.GROUP)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, MeasureResult]]:
    """Each sample study exported once: visit -> (SR file, what measure_study measured)."""
    folder = tmp_path_factory.mktemp("sr")
    out = {}
    for visit in VISITS:
        path = folder / f"{visit}.dcm"
        result = export_measurement_report(SAMPLE / visit / "CT", SAMPLE / visit / "SEG.dcm",
                                           path, timepoint=visit, observer="Doe^Jane")
        out[visit] = (path, result)
    return out


@pytest.fixture
def recist(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`recist` with export-sr among its commands, registered or not in this environment."""
    found = cli.discover()
    if "export-sr" not in found:
        monkeypatch.setattr(cli, "discover", lambda: {**found, "export-sr": EXPORT_SR})
    return cli.main


def _report(path: Path) -> hd.sr.MeasurementReport:
    content = hd.sr.srread(path).content
    assert isinstance(content, hd.sr.MeasurementReport)
    return content


def _groups(path: Path) -> dict[str, Any]:
    return {str(g.tracking_identifier): g
            for g in _report(path).get_image_measurement_groups()}


def _measurement(group: Any, name: Any) -> Any:
    (found,) = group.get_measurements(name=name)
    return found


def _items(group: Any, name: Any) -> list[Any]:
    """The content items of a measurement group named ``name``."""
    return [item for item in group[0].ContentSequence
            if item.ConceptNameCodeSequence[0].CodeValue == name.value
            and item.ConceptNameCodeSequence[0].CodingSchemeDesignator == name.scheme_designator]


def _lesions(result: MeasureResult) -> dict[str, Any]:
    return {le.tracking_id or le.label: le for le in result.lesions}


def _patient_point(ct: Any, column: float, row: float) -> np.ndarray:
    """SCOORD (column, row) -> LPS, by the image's own geometry (pixel centres at +0.5)."""
    origin = np.array([float(v) for v in ct.ImagePositionPatient])
    orientation = [float(v) for v in ct.ImageOrientationPatient]
    dr, dc = (float(v) for v in ct.PixelSpacing)
    return (origin + np.array(orientation[:3]) * dc * (column - 0.5)
            + np.array(orientation[3:]) * dr * (row - 0.5))


def _ct_by_uid(visit: str) -> dict[str, Any]:
    headers = (pydicom.dcmread(f, stop_before_pixels=True)
               for f in sorted((SAMPLE / visit / "CT").iterdir()))
    return {str(ds.SOPInstanceUID): ds for ds in headers}


# --- 1. read back with highdicom ---------------------------------------------------------


@pytest.mark.parametrize("visit", VISITS)
def test_report_reads_back_with_the_lesion_ids_and_axes_measure_gives(exported, visit) -> None:
    path, result = exported[visit]
    groups = _groups(path)
    lesions = _lesions(result)
    assert list(groups) == list(lesions) == ["T1", "T2", "T3", "NT1"]
    for key, lesion in lesions.items():
        printed = lesion.to_dict()  # what `recist measure` prints
        long_axis = _measurement(groups[key], codes.SCT.LongAxis)
        short_axis = _measurement(groups[key], codes.SCT.ShortAxis)
        assert float(long_axis.value) == printed["longest_diameter_mm"]
        assert float(short_axis.value) == printed["short_axis_mm"]
        assert long_axis.unit == codes.UCUM.Millimeter == short_axis.unit


@pytest.mark.parametrize("visit", VISITS)
def test_each_axis_polyline_spans_its_diameter_on_the_measured_slice(exported, visit) -> None:
    path, result = exported[visit]
    groups = _groups(path)
    cts = _ct_by_uid(visit)
    for key, lesion in _lesions(result).items():
        slice_uid = result.info.sop_instance_uids[lesion.slice_index]
        ct = cts[slice_uid]
        dr, dc = (float(v) for v in ct.PixelSpacing)
        for name, exact, printed, ends in (
            (codes.SCT.LongAxis, lesion.longest_diameter_mm,
             lesion.to_dict()["longest_diameter_mm"], lesion.long_axis),
            (codes.SCT.ShortAxis, lesion.short_axis_mm,
             lesion.to_dict()["short_axis_mm"], lesion.short_axis),
        ):
            (scoord,) = _measurement(groups[key], name).referenced_coordinates
            assert scoord.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
            image = scoord.ContentSequence[0].ReferencedSOPSequence[0]
            assert image.ReferencedSOPInstanceUID == slice_uid
            (c1, r1), (c2, r2) = np.asarray(scoord.value, dtype=float)
            length = math.hypot((c2 - c1) * dc, (r2 - r1) * dr)
            assert length == pytest.approx(printed, abs=0.05 + 1e-4), (key, name.meaning)
            assert length == pytest.approx(exact, abs=1e-3), (key, name.meaning)
            # the points are the LPS end points of `recist measure`, on that image
            for (column, row), point in zip(((c1, r1), (c2, r2)), ends, strict=True):
                np.testing.assert_allclose(_patient_point(ct, column, row), point, atol=1e-3)


def test_report_carries_tracking_uid_time_point_observers_procedure_and_segment(
    exported,
) -> None:
    path, result = exported["W8"]
    report = _report(path)
    groups = _groups(path)
    seg = pydicom.dcmread(SAMPLE / "W8" / "SEG.dcm", stop_before_pixels=True)
    for number, key in enumerate(("T1", "T2", "T3", "NT1"), start=1):
        group = groups[key]
        assert group.tracking_uid == tracking_uid(f"study {result.info.study_instance_uid}",
                                                  key)
        segments = [s for s in group.source_images
                    if s.referenced_sop_instance_uid == seg.SOPInstanceUID]
        assert [int(s.ReferencedSOPSequence[0].ReferencedSegmentNumber)
                for s in segments] == [number]
        (time_point,) = _items(group, TIME_POINT)  # TID 1502
        assert time_point.TextValue == "W8"
    assert groups["T3"].finding_type == hd.sr.CodedConcept("59441001", "SCT", "Lymph node")
    person, device = report.get_observer_contexts()
    assert person.observer_type == codes.DCM.Person
    assert str(person.observer_identifying_attributes.name) == "Doe^Jane"
    assert device.observer_type == codes.DCM.Device
    assert device.observer_identifying_attributes.name == "recist measure"
    ds = pydicom.dcmread(path)
    (procedure,) = [item for item in ds.ContentSequence
                    if item.ConceptNameCodeSequence[0].CodeValue == "121058"]
    assert procedure.ConceptCodeSequence[0].CodeValue == "25045-6"  # CT unspecified region
    ct = next(iter(_ct_by_uid("W8").values()))
    assert (ds.StudyInstanceUID, ds.PatientID) == (ct.StudyInstanceUID, ct.PatientID)
    assert ds.SeriesInstanceUID != ct.SeriesInstanceUID


def test_tracking_uids_are_the_same_at_every_export_and_follow_the_subject_when_given(
    exported, tmp_path,
) -> None:
    again = tmp_path / "again.dcm"
    export_measurement_report(SAMPLE / "BL" / "CT", SAMPLE / "BL" / "SEG.dcm", again,
                              timepoint="BL", observer="Doe^Jane")
    first, second = _groups(exported["BL"][0]), _groups(again)
    assert {k: g.tracking_uid for k, g in first.items()} == \
        {k: g.tracking_uid for k, g in second.items()}
    uids = {pydicom.dcmread(path).SOPInstanceUID for path in (again, exported["BL"][0])}
    assert len(uids) == 2  # two documents, two instances
    per_study = {visit: _groups(exported[visit][0])["T1"].tracking_uid for visit in VISITS}
    assert len(set(per_study.values())) == 3
    per_subject = []
    for visit in ("BL", "W8"):
        path = tmp_path / f"{visit}-subject.dcm"
        export_measurement_report(SAMPLE / visit / "CT", SAMPLE / visit / "SEG.dcm", path,
                                  subject="DEMO-001")
        per_subject.append(_groups(path)["T1"].tracking_uid)
    assert per_subject[0] == per_subject[1] == tracking_uid("subject DEMO-001", "T1")


@pytest.fixture
def absent_study(phantom_study, tmp_path) -> tuple[Path, Path]:
    """The phantom CT with a SEG of the liver lesion (in the liver, SNOMED 10200004) and an
    empty segment T9 (a lesion that disappeared)."""
    empty = np.zeros_like(phantom_study.masks["liver lesion"])
    seg_path = tmp_path / "seg.dcm"
    write_seg(seg_path, phantom_study.datasets, [
        SegmentSpec("liver lesion", "T1", phantom_study.masks["liver lesion"]),
        SegmentSpec("gone lesion", "T9", empty),
    ])
    seg = pydicom.dcmread(seg_path)
    liver = Dataset()
    liver.CodeValue, liver.CodingSchemeDesignator, liver.CodeMeaning = "10200004", "SCT", "Liver"
    seg.SegmentSequence[0].AnatomicRegionSequence = [liver]
    seg.save_as(seg_path)
    return phantom_study.ct, seg_path


def test_an_absent_lesion_is_recorded_absent_without_measurements(absent_study, tmp_path) -> None:
    ct, seg = absent_study
    out = tmp_path / "sr.dcm"
    result = export_measurement_report(ct, seg, out, timepoint="W8")
    assert [le.voxel_count == 0 for le in result.lesions] == [False, True]
    groups = _groups(out)
    assert list(groups) == ["T1", "T9"]
    assert groups["T9"].get_measurements() == []
    (evaluation,) = _items(groups["T9"], codes.DCM.PresenceOfProperty)
    assert evaluation.ConceptCodeSequence[0].CodeValue == codes.SCT.Absent.value
    (site,) = groups["T1"].finding_sites
    assert site.value == codes.SCT.Liver
    assert groups["T9"].finding_sites == []


def test_a_label_map_is_exported_on_its_dicom_image_without_a_segment_reference(
    phantom_study, tmp_path,
) -> None:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(phantom_study.ct)))
    labels = sitk.GetImageFromArray(phantom_study.masks["lymph node"].astype(np.uint8))
    labels.CopyInformation(reader.Execute())
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    out = tmp_path / "sr.dcm"
    result = export_measurement_report(phantom_study.ct, tmp_path / "labels.nii.gz", out)
    group = _groups(out)["label 1"]
    assert float(_measurement(group, codes.SCT.ShortAxis).value) == \
        result.lesions[0].to_dict()["short_axis_mm"]
    assert [s.referenced_sop_instance_uid for s in group.source_images] == \
        [result.info.sop_instance_uids[result.lesions[0].slice_index]]


# --- 2. round trip through `recist ingest` ------------------------------------------------


def _skeleton() -> dict[str, Any]:
    case = json.loads((SAMPLE / "demo_case.json").read_text())
    case["timepoints"] = []
    for lesion in case["lesions"]:
        lesion.pop("modality", None)
        lesion.pop("slice_thickness_mm", None)
    return case


@pytest.mark.parametrize("visit", VISITS)
def test_ingesting_the_report_gives_the_sizes_ingesting_the_seg_gives(
    exported, visit, tmp_path,
) -> None:
    study = tmp_path / visit
    shutil.copytree(SAMPLE / visit / "CT", study / "CT")
    shutil.copy(exported[visit][0], study / "SR.dcm")
    from_seg = ingest_study(_skeleton(), SAMPLE / visit, timepoint_id=visit)
    from_sr = ingest_study(_skeleton(), study, timepoint_id=visit)
    assert from_sr == from_seg
    demo = {tp["id"]: tp for tp in json.loads((SAMPLE / "demo_case.json").read_text())
            ["timepoints"]}
    assert from_sr["timepoints"][0]["targets"] == demo[visit]["targets"]


# --- 3. dciodvfy ---------------------------------------------------------------------------


def _dciodvfy() -> str:
    found = shutil.which("dciodvfy")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but dciodvfy is missing (apt-get install dicom3tools)")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    return found


def test_dciodvfy_reports_no_error_on_the_written_reports(
    exported, absent_study, tmp_path,
) -> None:
    dciodvfy = _dciodvfy()
    absent = tmp_path / "absent.dcm"
    export_measurement_report(*absent_study, absent)  # no time point, no person observer
    for path in [exported[visit][0] for visit in VISITS] + [absent]:
        run = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True,
                             timeout=60, check=False)
        lines = (run.stdout + run.stderr).splitlines()
        assert lines and lines[0].strip() == "ComprehensiveSR", lines[:5]
        errors = [line for line in lines if line.startswith("Error")
                  and not any(allowed in line for allowed in DCIODVFY_ALLOWED_ERRORS)]
        assert errors == [], f"{path.name}: {errors}"


# --- 4. the command ------------------------------------------------------------------------


def test_export_sr_writes_the_report_and_exits_0(recist, tmp_path, capsys) -> None:
    out = tmp_path / "W8.dcm"
    status = recist(["export-sr", str(SAMPLE / "W8" / "CT"), "--seg",
                     str(SAMPLE / "W8" / "SEG.dcm"), "-o", str(out), "--timepoint", "W8",
                     "--observer", "Doe^Jane", "--subject", "DEMO-001"])
    assert status == 0, capsys.readouterr().err
    assert capsys.readouterr() == ("", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["W8.dcm"]
    assert list(_groups(out)) == ["T1", "T2", "T3", "NT1"]


def _refused(recist, capsys, tmp_path: Path, image: Path, seg: Path) -> str:
    out = tmp_path / "out" / "OUT.dcm"
    out.parent.mkdir()
    status = recist(["export-sr", str(image), "--seg", str(seg), "-o", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert list(out.parent.iterdir()) == []  # no OUT, no temporary file left
    return captured.err


def test_a_missing_seg_exits_2_naming_it_and_writes_nothing(recist, tmp_path, capsys) -> None:
    missing = tmp_path / "nope.dcm"
    err = _refused(recist, capsys, tmp_path, SAMPLE / "BL" / "CT", missing)
    assert err == f"recist export-sr: {missing}: does not exist or is not a file\n"


def test_a_seg_of_another_study_exits_2_naming_it(recist, tmp_path, capsys) -> None:
    seg = SAMPLE / "W8" / "SEG.dcm"
    err = _refused(recist, capsys, tmp_path, SAMPLE / "BL" / "CT", seg)
    assert err.startswith(f"recist export-sr: {seg}: is on frame of reference ")


def test_a_seg_of_another_series_on_the_same_frame_exits_2_naming_it(
    recist, phantom_study, tmp_path, capsys,
) -> None:
    first = phantom_study.datasets[0]
    hu = np.full((phantom_study.grid.slices, phantom_study.grid.rows,
                  phantom_study.grid.columns), 40.0)
    other = write_ct_series(tmp_path / "other", hu, phantom_study.grid,
                            study_uid=str(first.StudyInstanceUID),
                            frame_of_reference_uid=str(first.FrameOfReferenceUID))
    seg = tmp_path / "other-seg.dcm"
    write_seg(seg, other, [SegmentSpec("liver lesion", "T1",
                                       phantom_study.masks["liver lesion"])])
    err = _refused(recist, capsys, tmp_path, phantom_study.ct, seg)
    assert err.startswith(f"recist export-sr: {seg}: its ReferencedSeriesSequence names series ")
    assert "does not belong to it" in err


def test_a_refusal_leaves_an_existing_output_as_it_was(recist, tmp_path, capsys) -> None:
    out = tmp_path / "OUT.dcm"
    out.write_bytes(b"the previous report")
    status = recist(["export-sr", str(SAMPLE / "BL" / "CT"), "--seg",
                     str(tmp_path / "nope.dcm"), "-o", str(out)])
    assert status == 2
    assert out.read_bytes() == b"the previous report"
    assert "nope.dcm" in capsys.readouterr().err


def test_an_image_that_is_not_dicom_is_refused(phantom_study, tmp_path) -> None:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(phantom_study.ct)))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "ct.nii.gz"))
    labels = sitk.GetImageFromArray(phantom_study.masks["lymph node"].astype(np.uint8))
    labels.CopyInformation(sitk.ReadImage(str(tmp_path / "ct.nii.gz")))
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    with pytest.raises(ImagingInputError, match=r"ct\.nii\.gz: is not a DICOM image series"):
        export_measurement_report(tmp_path / "ct.nii.gz", tmp_path / "labels.nii.gz",
                                  tmp_path / "sr.dcm")
    assert not (tmp_path / "sr.dcm").exists()


class _FailingDocument:
    """A document whose writing fails half way, as a full disk would."""

    def save_as(self, path: Any, **_: Any) -> None:
        Path(path).write_bytes(b"half a report")
        raise OSError(28, "No space left on device")


def test_a_write_that_fails_half_way_leaves_no_file(tmp_path) -> None:
    with pytest.raises(OSError, match="No space left"):
        write_atomically(_FailingDocument(), tmp_path / "OUT.dcm")
    assert list(tmp_path.iterdir()) == []
