"""`recist ingest` and the study-folder API over sample_dicom/ (DEMO-001: PR then PD),
plus TID 1500 SR import with both SNOMED CT and the older SRT codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from imaging_io.errors import ImagingInputError
from imaging_io.ingest import ingest_study
from imaging_io.sr import read_measurement_report
from imaging_io.study import measure_study_folder, read_study
from recist.cli import main
from recist.jsonio import assess_json

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"
DEMO = json.loads((SAMPLE / "demo_case.json").read_text())


def _skeleton() -> dict:
    case = json.loads(json.dumps(DEMO))
    case["timepoints"] = []
    for lesion in case["lesions"]:
        lesion.pop("modality", None)
        lesion.pop("slice_thickness_mm", None)
    return case


def test_ingesting_the_sample_studies_rebuilds_the_committed_demo_case() -> None:
    case = _skeleton()
    for visit in ("BL", "W8", "W16"):
        case = ingest_study(case, SAMPLE / visit, timepoint_id=visit)
    assert case == DEMO


def test_demo_case_assesses_pr_then_pd_with_best_response_pr() -> None:
    result = assess_json(DEMO)
    assert [tp["overall_response"] for tp in result["timepoints"]] == [None, "PR", "PD"]
    assert result["best_overall_response"] == "PR"
    assert result["progression"]["timepoint"] == "W16"


def test_nodal_target_takes_its_short_axis_and_others_their_longest_diameter() -> None:
    measured = {le.tracking_id: le for le in measure_study_folder(SAMPLE / "BL").lesions}
    baseline = DEMO["timepoints"][0]["targets"]
    assert baseline["T1"] == round(measured["T1"].longest_diameter_mm, 1)
    assert baseline["T3"] == round(measured["T3"].short_axis_mm, 1)
    assert DEMO["timepoints"][0]["non_targets"] == {"NT1": "present"}


def test_study_folder_is_sorted_into_series_and_segmentation() -> None:
    study = read_study(SAMPLE / "W8")
    assert study.series.info.study_date == "2024-03-04"
    assert [p.name for p in study.segmentations] == ["SEG.dcm"]
    assert study.series.info.subject_key is not None
    assert "DEMO" not in study.series.info.subject_key


def test_segment_matching_no_lesion_is_refused_naming_it() -> None:
    case = _skeleton()
    case["lesions"] = [le for le in case["lesions"] if le["id"] != "NT1"]
    with pytest.raises(ImagingInputError, match=r"timepoint BL: 'bone lesion' \(tracking id "
                       r"'NT1'\) matches no lesion of the case"):
        ingest_study(case, SAMPLE / "BL", timepoint_id="BL")


def _swapped_w8(folder: Path) -> Path:
    """W8 with the tracking ids of its lung (T2) and node (T3) segments swapped."""
    shutil.copytree(SAMPLE / "W8" / "CT", folder / "CT")
    seg = pydicom.dcmread(SAMPLE / "W8" / "SEG.dcm")
    lung, node = (s for s in seg.SegmentSequence if s.TrackingID in ("T2", "T3"))
    assert (lung.SegmentLabel, node.SegmentLabel) == ("lung lesion", "lymph node")
    lung.TrackingID, node.TrackingID = "T3", "T2"
    seg.save_as(folder / "SEG.dcm")
    return folder


def test_segment_whose_anatomy_contradicts_its_lesion_is_refused_naming_both(
    tmp_path, capsys
) -> None:
    study = _swapped_w8(tmp_path / "W8")
    base = ingest_study(_skeleton(), SAMPLE / "BL", timepoint_id="BL")
    with pytest.raises(ImagingInputError, match=(
        r"W8/SEG\.dcm: timepoint W8: segment 'lung lesion' \(tracking id 'T3'\) names lesion "
        r"T3, but its label names lung while T3 \(lymph node\) is nodal \(R-MEAS-2\); "
        r"correct .* \(also in conflict: 'lymph node' on T2\)$"
    )):
        ingest_study(base, study, timepoint_id="W8")
    case = tmp_path / "case.json"
    case.write_text(json.dumps(base))
    status = main(["ingest", str(study), "--case", str(case), "--timepoint", "W8"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "segment 'lung lesion' (tracking id 'T3') names lesion T3" in err
    # Accepted explicitly (the Python API), each segment goes where its tracking id says.
    accepted = ingest_study(base, study, timepoint_id="W8", accept_conflicts=True)
    measured = {le.label: le for le in measure_study_folder(study).lesions}
    assert accepted["timepoints"][1]["targets"]["T3"] == round(
        measured["lung lesion"].short_axis_mm, 1)


def test_unmatched_segment_can_be_recorded_as_a_new_lesion() -> None:
    case = ingest_study(_skeleton(), SAMPLE / "BL", timepoint_id="BL")
    case["lesions"] = [le for le in case["lesions"] if le["id"] != "NT1"]
    case["timepoints"][0]["non_targets"] = {}
    case = ingest_study(case, SAMPLE / "W8", timepoint_id="W8", unmatched="new")
    assert case["timepoints"][1]["new_lesions"] == [
        {"id": "NT1", "site": "bone lesion", "equivocal": False}
    ]


def test_case_lesion_absent_from_the_study_is_not_evaluated() -> None:
    case = _skeleton()
    case["lesions"].append({"id": "T4", "site": "adrenal", "kind": "target", "nodal": False})
    with pytest.raises(ImagingInputError, match=r"not valid: .*T4"):
        # At baseline a target needs a size: the engine refuses it, and says which.
        ingest_study(case, SAMPLE / "BL", timepoint_id="BL")
    base = ingest_study(_skeleton(), SAMPLE / "BL", timepoint_id="BL")
    base["lesions"].append({"id": "NT2", "site": "liver", "kind": "non-target"})
    base["timepoints"][0]["non_targets"]["NT2"] = "present"
    follow = ingest_study(base, SAMPLE / "W8", timepoint_id="W8")
    assert follow["timepoints"][1]["non_targets"]["NT2"] == "not_evaluated"


def test_existing_timepoint_is_refused_unless_replaced() -> None:
    case = ingest_study(_skeleton(), SAMPLE / "BL", timepoint_id="BL")
    with pytest.raises(ImagingInputError, match="timepoint BL is already in the case"):
        ingest_study(case, SAMPLE / "BL", timepoint_id="BL")
    again = ingest_study(case, SAMPLE / "BL", timepoint_id="BL", replace=True)
    assert again == case


def test_cli_ingest_writes_the_case_and_refuses_bad_input_in_one_line(tmp_path, capsys) -> None:
    skeleton = tmp_path / "case.json"
    skeleton.write_text(json.dumps(_skeleton()))
    status = main(["ingest", str(SAMPLE / "BL"), "--case", str(skeleton), "--timepoint", "BL",
                   "--in-place"])
    assert status == 0
    assert json.loads(skeleton.read_text())["timepoints"][0]["targets"] == \
        DEMO["timepoints"][0]["targets"]
    status = main(["ingest", str(SAMPLE / "W8"), "--case", str(tmp_path / "missing.json"),
                   "--timepoint", "W8"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "missing.json: cannot read the case JSON" in err


@pytest.mark.parametrize("target", ["missing/x.json", ".", "/proc/x.json"])
def test_cli_ingest_refuses_an_unwritable_output_in_one_line(
    tmp_path, capsys, monkeypatch, target: str
) -> None:
    skeleton = tmp_path / "case.json"
    skeleton.write_text(json.dumps(_skeleton()))
    monkeypatch.chdir(tmp_path)
    status = main(["ingest", str(SAMPLE / "BL"), "--case", str(skeleton), "--timepoint", "BL",
                   "-o", target])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"recist ingest: {target}: cannot write the case (")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.mkdir(), "Is a directory"),
    (lambda p: p.write_text(""), "malformed JSON: Expecting value at line 1, column 1"),
])
def test_cli_ingest_refuses_a_folder_or_an_empty_file_as_the_case(
    tmp_path, capsys, make, message: str
) -> None:
    case = tmp_path / "c.json"
    make(case)
    status = main(["ingest", str(SAMPLE / "BL"), "--case", str(case), "--timepoint", "BL"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err and str(case) in err


def _write_sr(folder: Path, items: list[tuple[str, tuple[str, str, str], float, str]]) -> Path:
    ct = [pydicom.dcmread(f) for f in sorted((folder / "CT").glob("*.dcm"))]
    groups = [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=tid),
            measurements=[hd.sr.Measurement(name=hd.sr.CodedConcept(*code), value=value,
                                            unit=hd.sr.CodedConcept(unit, "UCUM", unit))],
        )
        for tid, code, value, unit in items
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=ct, content=report[0], series_number=5, series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="test",
    )
    path = folder / "SR.dcm"
    sr.save_as(path)
    return path


def test_sr_long_and_short_axes_are_read_in_srt_and_sct_codes(tmp_path) -> None:
    shutil.copytree(SAMPLE / "BL" / "CT", tmp_path / "CT")
    path = _write_sr(tmp_path, [
        ("T1", ("G-A185", "SRT", "Long Axis"), 41.0, "mm"),
        ("T2", ("410668003", "SCT", "Length"), 2.6, "cm"),
        ("T3", ("103340004", "SCT", "Short Axis"), 21.0, "mm"),
        ("T3", ("103339001", "SCT", "Long Axis"), 29.0, "mm"),
    ])
    found = read_measurement_report(path)
    assert [(m.tracking_identifier, m.kind, m.value_mm) for m in found] == [
        ("T1", "long axis", 41.0), ("T2", "length", 26.0), ("T3", "short axis", 21.0),
        ("T3", "long axis", 29.0),
    ]


def test_study_with_only_an_sr_is_ingested_from_its_measurements(tmp_path) -> None:
    shutil.copytree(SAMPLE / "BL" / "CT", tmp_path / "CT")
    _write_sr(tmp_path, [
        ("T1", ("G-A185", "SRT", "Long Axis"), 41.0, "mm"),
        ("T2", ("103339001", "SCT", "Long Axis"), 25.5, "mm"),
        ("T3", ("G-A186", "SRT", "Short Axis"), 21.0, "mm"),
    ])
    case = ingest_study(_skeleton(), tmp_path, timepoint_id="BL")
    assert case["timepoints"][0]["targets"] == {"T1": 41.0, "T2": 25.5, "T3": 21.0}
    assert case["timepoints"][0]["non_targets"] == {"NT1": "not_evaluated"}


def _sample_ct(visit: str) -> list:
    files = sorted((SAMPLE / visit / "CT").glob("*.dcm"))
    datasets = [pydicom.dcmread(f) for f in files]
    return sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))


def test_empty_target_segment_is_recorded_absent(tmp_path) -> None:
    import numpy as np

    from imaging_io.phantoms import SegmentSpec, write_seg

    shutil.copytree(SAMPLE / "W8" / "CT", tmp_path / "CT")
    datasets = _sample_ct("W8")
    shape = (len(datasets), datasets[0].Rows, datasets[0].Columns)
    spot = np.zeros(shape, dtype=bool)
    spot[7, 60:70, 100:110] = True
    specs = [SegmentSpec("liver lesion", "T1", np.zeros(shape, dtype=bool)),
             SegmentSpec("lung lesion", "T2", spot),
             SegmentSpec("lymph node", "T3", spot),
             SegmentSpec("bone lesion", "NT1", np.zeros(shape, dtype=bool))]
    write_seg(tmp_path / "SEG.dcm", datasets, specs)
    base = ingest_study(_skeleton(), SAMPLE / "BL", timepoint_id="BL")
    case = ingest_study(base, tmp_path, timepoint_id="W8")
    follow = case["timepoints"][1]
    assert follow["targets"]["T1"] == "absent"
    assert follow["non_targets"]["NT1"] == "absent"
    assert isinstance(follow["targets"]["T2"], float)


def test_folder_with_two_series_uses_the_one_the_seg_references(tmp_path) -> None:
    shutil.copytree(SAMPLE / "BL" / "CT", tmp_path / "CT")
    shutil.copytree(SAMPLE / "W8" / "CT", tmp_path / "CT_other")
    shutil.copy(SAMPLE / "BL" / "SEG.dcm", tmp_path / "SEG.dcm")
    study = read_study(tmp_path)
    assert study.series.info.study_date == "2024-01-08"
    (tmp_path / "SEG.dcm").unlink()
    with pytest.raises(ImagingInputError, match=r"holds 2 image series .* no segmentation "
                       "that references exactly one"):
        read_study(tmp_path)


def test_baseline_ingest_passes_each_segments_volume_to_its_lesion() -> None:
    measured = {le.tracking_id: le for le in measure_study_folder(SAMPLE / "BL").lesions}
    case = ingest_study(_skeleton(), SAMPLE / "BL", timepoint_id="BL")
    volumes = {le["id"]: le.get("volume_ml") for le in case["lesions"]}
    assert volumes == {key: round(measured[key].volume_ml, 2) for key in ("T1", "T2", "T3", "NT1")}
    assert volumes["T1"] > 0
    # A follow-up's segments do not change the baseline volumes, nor does a given volume
    # give way to the study's.
    later = ingest_study(case, SAMPLE / "W8", timepoint_id="W8")
    assert {le["id"]: le.get("volume_ml") for le in later["lesions"]} == volumes
    given = _skeleton()
    given["lesions"][0]["volume_ml"] = 12.5
    kept = ingest_study(given, SAMPLE / "BL", timepoint_id="BL")
    assert kept["lesions"][0]["volume_ml"] == 12.5


def test_ingest_reports_the_eligibility_findings_of_the_volumes_it_passes(tmp_path, capsys):
    skeleton = _skeleton()
    skeleton["settings"] = {"eligibility": {"protocol": "NCT02089100", "max_volume_ml": 10}}
    path = tmp_path / "case.json"
    path.write_text(json.dumps(skeleton))
    out = tmp_path / "out.json"
    status = main(["ingest", str(SAMPLE / "BL"), "--case", str(path), "--timepoint", "BL",
                   "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 0
    t1 = next(le for le in json.loads(out.read_text())["lesions"] if le["id"] == "T1")
    assert t1["volume_ml"] > 10
    assert (f"recist ingest: finding R-ELIG-VOLUME T1: target T1 (liver): baseline volume "
            f"{t1['volume_ml']:g} mL is above the limit of 10 mL") in err
    # The written case gives recist assess the same finding.
    result = assess_json(json.loads(out.read_text()))
    assert ("R-ELIG-VOLUME", "T1") in [(w["rule"], w["lesion"]) for w in result["warnings"]]
