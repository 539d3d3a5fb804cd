"""Web batches of NIfTI images with label maps (issue 13): what ``recist batch`` reads from
segmentation tools' exports, read by its own code (``discover``, ``read_manifest``,
``measure_study``), lands for a reader exactly as a DICOM study does.

The studies are small synthetic CT-like volumes made here with SimpleITK (air with
spheres of soft tissue) and their label maps (value 1 and 2: two lesions); the sizes the
web lands are compared with what the command ``recist batch`` writes for the same files.
The refusals are a label map off its image's grid, a subject the trial does not have and
paths outside the batch root."""

from __future__ import annotations

import gzip
import html
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging_io import measure_study
from imaging_io.batch import MEASUREMENTS, SUMMARY
from recist.cli import main as recist_main
from web.models import AuditRecord, PacsStudy, Timepoint
from web.services import SYSTEM, create_subject, import_case
from web.services.batch_labelmap import KEY_PREFIX
from web.services.batch_run import wait
from web.services.studies import annotated_series, study_folder
from web.testing import bearer, login

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"
DEMO = json.loads((SAMPLE / "demo_case.json").read_text())
SPACING = (0.8, 0.8, 2.0)  # x, y, z in mm
NOTE = "Doe^Jane 1970-01-01 site 12"  # header text a de-identified copy must not keep


def write_study(folder: Path, radii: tuple[float, float], *, seg_name: str = "labels.nii.gz",
                label_spacing: tuple[float, float, float] | None = None) -> None:
    """``folder/image.nii.gz`` (24 × 64 × 64 voxels, air at -1000 HU) with two spheres of
    40 HU, and ``folder/<seg_name>``: label 1 and 2 on those spheres; ``label_spacing``
    gives the label map another geometry than its image."""
    folder.mkdir(parents=True, exist_ok=True)
    z, y, x = np.mgrid[0:24, 0:64, 0:64]
    image = np.full((24, 64, 64), -1000, np.int16)
    labels = np.zeros((24, 64, 64), np.uint8)
    for value, (cz, cy, cx), radius in ((1, (12, 20, 20), radii[0]), (2, (12, 44, 44), radii[1])):
        inside = np.sqrt(((x - cx) * SPACING[0]) ** 2 + ((y - cy) * SPACING[1]) ** 2
                         + ((z - cz) * SPACING[2]) ** 2) <= radius
        labels[inside] = value
        image[inside] = 40
    ct = sitk.GetImageFromArray(image)
    ct.SetSpacing(SPACING)
    ct.SetOrigin((-25.0, -25.0, 10.0))
    ct.SetMetaData("ITK_FileNotes", NOTE)
    label_map = sitk.GetImageFromArray(labels)
    label_map.CopyInformation(ct)
    if label_spacing is not None:
        label_map.SetSpacing(label_spacing)
    sitk.WriteImage(ct, str(folder / "image.nii.gz"))
    sitk.WriteImage(label_map, str(folder / seg_name))


def write_label_map_over_series(series: Path, target: Path) -> None:
    """A label map on a DICOM series' grid: one sphere (label 1) of radius 9 mm at the
    middle of the volume."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    ct = reader.Execute()
    shape = sitk.GetArrayViewFromImage(ct).shape  # z, y, x
    z, y, x = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]]
    sx, sy, sz = ct.GetSpacing()
    distance = np.sqrt(((x - shape[2] // 2) * sx) ** 2 + ((y - shape[1] // 2) * sy) ** 2
                       + ((z - shape[0] // 2) * sz) ** 2)
    labels = sitk.GetImageFromArray((distance <= 9.0).astype(np.uint8))
    labels.CopyInformation(ct)
    sitk.WriteImage(labels, str(target))


@pytest.fixture
def subjects(session: Session, trial: str, users: dict[str, str]) -> list[str]:
    """LM-001 and LM-002 (no lesions yet) and DEMO-001 with its baseline."""
    for code in ("LM-001", "LM-002"):
        create_subject(session, SYSTEM, trial, code=code)
    case = json.loads(json.dumps(DEMO))
    case["timepoints"] = case["timepoints"][:1]
    case.pop("arm", None)
    import_case(session, SYSTEM, trial, case)
    session.rollback()
    return ["LM-001", "LM-002", "DEMO-001"]


@pytest.fixture
def root(app: Flask, tmp_path: Path) -> Path:
    """The batch root: studies/<subject>/<timepoint>/ mixing NIfTI studies (LM-001 BL and
    W8, the W8 label map named ``CT_seg``; LM-002 BL whose label map is off its image's
    grid; NOBODY-9 BL, a subject the trial does not have), a DICOM one (DEMO-001 W8,
    sample_dicom's) and a DICOM series with a label map (DEMO-001 W16); beside the root
    (outside it) another NIfTI study."""
    folder = tmp_path / "root"
    studies = folder / "studies"
    write_study(studies / "LM-001" / "BL", (12.0, 8.0))
    write_study(studies / "LM-001" / "W8", (9.0, 6.5), seg_name="CT_seg.nii.gz")
    write_study(studies / "LM-002" / "BL", (12.0, 8.0), label_spacing=(1.2, 1.2, 2.0))
    write_study(studies / "NOBODY-9" / "BL", (12.0, 8.0))
    shutil.copytree(SAMPLE / "W8", studies / "DEMO-001" / "W8")
    shutil.copytree(SAMPLE / "W16" / "CT", studies / "DEMO-001" / "W16" / "CT")
    write_label_map_over_series(SAMPLE / "W16" / "CT",
                                studies / "DEMO-001" / "W16" / "labels.nii.gz")
    write_study(tmp_path / "outside" / "BL", (12.0, 8.0))
    app.config["BATCH_ROOT"] = str(folder)
    app.config["STUDY_STORE"] = str(tmp_path / "instance" / "studies")
    return folder


def _manager(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "trial_manager")
    return client


def _run(client: FlaskClient, trial: str, token: str, **body: Any) -> dict[str, Any]:
    """Start a batch through the API and return it once its thread has ended."""
    started = client.post(f"/api/v1/trials/{trial}/batches", json=body, headers=bearer(token))
    assert started.status_code == 202, started.get_json()
    url = started.get_json()["url"]
    wait(int(url.rstrip("/").rsplit("/", 1)[1]), timeout=600)
    job = client.get(url, headers=bearer(token)).get_json()
    assert job["status"] == "done" and job["error"] is None, job
    return job


def _by_visit(outcomes: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["subject"], o["timepoint"]): o for o in outcomes}


def _cli_batch(root: Path, out: Path) -> tuple[dict[tuple[str, str], list[dict[str, Any]]],
                                                 dict[str, Any]]:
    """``recist batch --discover root/studies`` (in this process): the lesions it measured
    by (subject, timepoint), and its summary."""
    status = recist_main(["batch", "--discover", str(root / "studies"), "--out", str(out),
                          "--workers", "0", "--quiet"])
    assert status == 2  # a study refused (LM-002's label map): exit 2, the rest measured
    lines = [json.loads(line) for line in (out / MEASUREMENTS).read_text().splitlines()]
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in lines:
        found.setdefault((line["subject_id"], line["timepoint"]), []).append(line)
    return found, json.loads((out / SUMMARY).read_text())


SIZES = ("label", "longest_diameter_mm", "short_axis_mm", "volume_ml", "voxel_count",
         "slice_index", "measurable")


def test_a_mixed_folder_lands_label_map_studies_with_the_sizes_of_recist_batch(
    app: Flask, session: Session, trial: str, users: dict[str, str], subjects: list[str],
    root: Path, tmp_path: Path,
) -> None:
    manager = _manager(app)
    started = manager.post(f"/trials/{trial}/batches", data={"folder": "studies"})
    assert started.status_code == 302, html.unescape(started.data.decode())[-800:]
    page_url = started.headers["Location"]
    job_id = int(page_url.rsplit("/", 1)[1])
    wait(job_id, timeout=600)
    job = manager.get(f"/api/v1/trials/{trial}/batches/{job_id}",
                      headers=bearer(users["trial_manager"])).get_json()
    assert job["status"] == "done", job
    assert (job["total"], job["done"], job["refused"], job["failed"], job["landed"]) == (
        6, 4, 2, 0, 4)  # fmt: skip
    outcomes = _by_visit(job["outcomes"])
    assert {k: o["input"] for k, o in outcomes.items() if o["status"] == "ok"} == {
        ("LM-001", "BL"): "label map", ("LM-001", "W8"): "label map",
        ("DEMO-001", "W8"): "DICOM", ("DEMO-001", "W16"): "label map"}  # fmt: skip
    assert outcomes[("LM-001", "W8")]["seg"] == str(
        root / "studies" / "LM-001" / "W8" / "CT_seg.nii.gz")

    # The label map off its image's grid: refused naming the file and why (imaging_io's
    # input refusal; no response rule is involved), the batch going on.
    off = outcomes[("LM-002", "BL")]
    assert off["status"] == "refused"
    assert str(root / "studies" / "LM-002" / "BL" / "labels.nii.gz") in off["reason"]
    assert "is not on the image grid" in off["reason"]
    assert off["reason"].startswith("subject LM-002 BL")
    assert "the web batch does not resample" in off["reason"] and "--resample" not in off["reason"]
    unknown = outcomes[("NOBODY-9", "BL")]
    assert "subject NOBODY-9 is not enrolled in trial TRIAL-1" in unknown["reason"]
    assert str(root / "studies" / "NOBODY-9" / "BL" / "image.nii.gz") in unknown["reason"]

    # The command line on the same files: the same refusal, the same sizes, lesion by lesion.
    cli, summary = _cli_batch(root, tmp_path / "cli-out")
    [cli_refusal] = [r for r in summary["refusals"] if r["subject_id"] == "LM-002"]
    assert "is not on the image grid" in cli_refusal["reason"]
    session.rollback()
    waiting = {
        (s.subject.code, s.timepoint): s for s in session.scalars(select(PacsStudy)).all()
    }
    assert set(waiting) == {("LM-001", "BL"), ("LM-001", "W8"), ("DEMO-001", "W8"),
                            ("DEMO-001", "W16")}
    for key in waiting:
        landed = [{k: le[k] for k in SIZES} for le in waiting[key].measured["lesions"]]
        assert landed == [{k: le[k] for k in SIZES} for le in cli[key]], key
    bl = {le["label"]: le for le in waiting[("LM-001", "BL")].measured["lesions"]}
    w8 = {le["label"]: le for le in waiting[("LM-001", "W8")].measured["lesions"]}
    assert set(bl) == set(w8) == {"label 1", "label 2"}
    assert bl["label 1"]["longest_diameter_mm"] > w8["label 1"]["longest_diameter_mm"] > 10

    # Machine-measured, awaiting a reader, keyed by the image's content; nothing saved.
    for key in (("LM-001", "BL"), ("LM-001", "W8")):
        study = waiting[key]
        assert (study.source, study.pulled_by, study.study_date) == (
            "batch", "trial_manager", None)  # fmt: skip
        assert study.study_uid.startswith(KEY_PREFIX) and len(study.study_uid) == 13 + 64
        assert study.measured["input"] == "label map"
    dicom = measure_study(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm")
    assert waiting[("DEMO-001", "W8")].study_uid == dicom.info.study_instance_uid
    assert "input" not in waiting[("DEMO-001", "W8")].measured
    # A DICOM series with a label map: keyed by its StudyInstanceUID, bound to its patient.
    w16 = waiting[("DEMO-001", "W16")]
    uid16 = measure_study(SAMPLE / "W16" / "CT", SAMPLE / "W16" / "SEG.dcm").info
    assert (w16.study_uid, w16.measured["input"]) == (uid16.study_instance_uid, "label map")
    assert w16.measured["image"]["subject_key"] == uid16.subject_key
    assert [le["label"] for le in w16.measured["lesions"]] == ["label 1"]
    assert w16.measured["study"]["segmentations"] == ["00-labels.nii.gz"]
    assert session.scalars(select(Timepoint.code)).all() == ["BL"]  # DEMO-001's, imported
    audit = session.scalars(select(AuditRecord).where(AuditRecord.action == "measure")).all()
    assert sorted(r.entity_key.rsplit("/", 1)[0] for r in audit) == [
        f"{trial}/DEMO-001", f"{trial}/DEMO-001", f"{trial}/LM-001", f"{trial}/LM-001"]

    # The stored copy is de-identified (no header text) and measures the same.
    stored = waiting[("LM-001", "W8")].measured["study"]
    folder = study_folder(Path(app.config["STUDY_STORE"]), stored["id"])
    assert stored["segmentations"] == ["00-CT_seg.nii.gz"]
    assert NOTE.encode() in gzip.open(root / "studies/LM-001/W8/image.nii.gz").read()
    assert NOTE.encode() not in gzip.open(folder / "series" / "image.nii.gz").read()
    again = measure_study(folder / "series" / "image.nii.gz", folder / "seg" / "00-CT_seg.nii.gz")
    assert [le.to_dict()["longest_diameter_mm"] for le in again.lesions] == [
        le["longest_diameter_mm"] for le in waiting[("LM-001", "W8")].measured["lesions"]]

    # Key images are drawn from the kept copies: the NIfTI image, and a DICOM series with
    # its label map, each read again with its segments measured as landed.
    for key, seg_name in ((("LM-001", "W8"), "00-CT_seg.nii.gz"),
                          (("DEMO-001", "W16"), "00-labels.nii.gz")):
        measured = waiting[key].measured
        evidence = {"study": measured["study"],
                    "lesions": {"L1": {"seg": seg_name, "segment_number": 1}}}
        series, number = annotated_series(Path(app.config["STUDY_STORE"]), evidence, "L1")
        drawn = {m.label: m.longest_diameter_mm for m in series.measurements}
        assert round(drawn["label 1"], 1) == measured["lesions"][0]["longest_diameter_mm"], key
        assert number == 1

    # The pages say what each study was read from.
    page = html.unescape(manager.get(page_url).data.decode())
    assert page.count('data-input="label map"') == 3 and page.count('data-input="DICOM"') == 1
    assert "DICOM SEG/RTSTRUCT" in page and "is not on the image grid" in page
    reader = app.test_client()
    login(reader, "reader")
    base = f"/trials/{trial}/subjects/LM-001"
    subject_page = html.unescape(reader.get(base).data.decode())
    assert "Machine-measured studies awaiting a reader (2)" in subject_page
    assert subject_page.count("from a batch (label map)") == 2
    form = reader.get(f"{base}/pacs/{waiting[('LM-001', 'W8')].id}")
    assert form.status_code == 200
    assert "measured by a batch (visit W8; from a label map)" in html.unescape(form.data.decode())


def test_rerunning_or_moving_the_label_map_studies_adds_nothing(
    app: Flask, session: Session, trial: str, users: dict[str, str], subjects: list[str],
    root: Path, tmp_path: Path,
) -> None:
    client, token = app.test_client(), users["trial_manager"]
    first = _run(client, trial, token, folder="studies")
    assert first["landed"] == 4
    session.rollback()
    keys = sorted(s.study_uid for s in session.scalars(select(PacsStudy)).all())

    # The same folder again: every study measured again, none recorded again.
    rerun = _run(client, trial, token, folder="studies")
    assert (rerun["done"], rerun["refused"], rerun["landed"]) == (4, 2, 0)
    assert {o["note"] for o in rerun["outcomes"] if o["status"] == "ok"} == {
        "already recorded (batch)"}

    # The studies copied elsewhere in the root (new paths, new mtimes) and listed by a
    # manifest, with a corrected label map for W8: the same images, nothing new.
    moved = root / "export-2" / "LM-001"
    shutil.copytree(root / "studies" / "LM-001", moved)
    write_study(tmp_path / "relabelled", (9.0, 5.0))
    shutil.copyfile(tmp_path / "relabelled" / "labels.nii.gz", moved / "W8" / "CT_seg.nii.gz")
    manifest = ("subject,timepoint,image,seg\n"
                "LM-001,BL,export-2/LM-001/BL/image.nii.gz,export-2/LM-001/BL/labels.nii.gz\n"
                "LM-001,W8,export-2/LM-001/W8/image.nii.gz,export-2/LM-001/W8/CT_seg.nii.gz\n")
    third = _run(client, trial, token, manifest=manifest, manifest_name="moved.csv")
    assert (third["done"], third["landed"]) == (2, 0)
    session.rollback()
    assert sorted(s.study_uid for s in session.scalars(select(PacsStudy)).all()) == keys

    # Another image (a changed voxel) is another study.
    changed = sitk.ReadImage(str(moved / "W8" / "image.nii.gz"))
    changed[0, 0, 0] = -999
    sitk.WriteImage(changed, str(moved / "W8" / "image.nii.gz"))
    fourth = _run(client, trial, token, manifest=manifest, manifest_name="moved.csv")
    assert (fourth["done"], fourth["landed"]) == (2, 1)
    session.rollback()
    assert len(session.scalars(select(PacsStudy)).all()) == 5


def test_a_label_map_manifest_is_confined_to_the_root_and_lands_with_its_date(
    app: Flask, session: Session, trial: str, users: dict[str, str], subjects: list[str],
    root: Path, tmp_path: Path,
) -> None:
    (root / "studies" / "escape").symlink_to(tmp_path / "outside" / "BL")
    outside = tmp_path / "outside" / "BL"
    rows = [
        {"subject": "LM-001", "timepoint": "BL", "image": "studies/LM-001/BL/image.nii.gz",
         "seg": "studies/LM-001/BL/labels.nii.gz", "date": "2024-01-08"},
        {"subject": "LM-001", "timepoint": "W8", "image": "../outside/BL/image.nii.gz",
         "seg": "../outside/BL/labels.nii.gz"},
        {"subject": "LM-001", "timepoint": "W9", "image": str(outside / "image.nii.gz"),
         "seg": str(outside / "labels.nii.gz")},
        {"subject": "LM-001", "timepoint": "W10", "image": "studies/escape/image.nii.gz",
         "seg": "studies/escape/labels.nii.gz"},
        {"subject": "NOBODY-9", "timepoint": "BL", "image": "studies/NOBODY-9/BL/image.nii.gz",
         "seg": "studies/NOBODY-9/BL/labels.nii.gz"},
    ]  # fmt: skip
    job = _run(app.test_client(), trial, users["trial_manager"],
               manifest="\n".join(json.dumps(r) for r in rows), manifest_name="m.jsonl")
    outcomes = _by_visit(job["outcomes"])
    assert (job["total"], job["done"], job["refused"], job["landed"]) == (5, 1, 4, 1)
    assert outcomes[("LM-001", "BL")]["input"] == "label map"
    w8 = outcomes[("LM-001", "W8")]["reason"]
    assert f"image '{root}/../outside/BL/image.nii.gz' contains '..': refused" in w8
    for visit, given in (("W9", outside / "image.nii.gz"),
                         ("W10", root / "studies/escape/image.nii.gz")):
        reason = outcomes[("LM-001", visit)]["reason"]
        assert f"image '{given}' is outside the batch root" in reason, reason
    assert "not enrolled" in outcomes[("NOBODY-9", "BL")]["reason"]
    session.rollback()
    [study] = session.scalars(select(PacsStudy)).all()
    assert (study.subject.code, study.timepoint, str(study.study_date)) == (
        "LM-001", "BL", "2024-01-08")  # the manifest's date: a NIfTI file has none


def test_the_folder_of_a_batch_form_upload_reads_a_csv_of_label_maps(
    app: Flask, session: Session, trial: str, users: dict[str, str], subjects: list[str],
    root: Path,
) -> None:
    manager = _manager(app)
    manifest = ("subject,timepoint,image,seg\n"
                "LM-002,BL,studies/LM-002/BL/image.nii.gz,studies/LM-002/BL/labels.nii.gz\n")
    started = manager.post(
        f"/trials/{trial}/batches",
        data={"manifest": (io.BytesIO(manifest.encode()), "lm.csv")},
        content_type="multipart/form-data",
    )
    assert started.status_code == 302
    job_id = int(started.headers["Location"].rsplit("/", 1)[1])
    wait(job_id, timeout=600)
    page = html.unescape(manager.get(started.headers["Location"]).data.decode())
    assert "Refused (1)" in page
    assert f"{root}/studies/LM-002/BL/labels.nii.gz: is not on the image grid" in page
    session.rollback()
    assert session.scalars(select(PacsStudy)).all() == []
