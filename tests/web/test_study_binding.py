"""A study is bound to its subject (issue 12): the pseudonymous patient key of the first
study saved is kept; a study of another patient is refused, at upload and at save; a
trial manager may rebind with a reason (audited)."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging_io.deid import pseudonym
from tests.web.helpers import form_fields
from web.models import AuditRecord, Subject, Timepoint
from web.services import SYSTEM, import_case
from web.testing import bearer, login

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"


def _zip(folder: Path, patient_id: str | None = None) -> io.BytesIO:
    """sample_dicom/<folder> zipped, its PatientID replaced when ``patient_id`` is given."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(folder.rglob("*.dcm")):
            data = path.read_bytes()
            if patient_id is not None:
                dataset = pydicom.dcmread(io.BytesIO(data))
                dataset.PatientID = patient_id
                buffer = io.BytesIO()
                dataset.save_as(buffer, enforce_file_format=False)
                data = buffer.getvalue()
            archive.writestr(path.relative_to(folder).as_posix(), data)
    out.seek(0)
    return out


@pytest.fixture
def two_subjects(session: Session, trial: str, users: dict[str, str]) -> dict[str, Any]:
    case = json.loads((SAMPLE / "demo_case.json").read_text())
    w8 = case["timepoints"][1]
    case["timepoints"] = case["timepoints"][:1]
    case.pop("arm", None)
    for code in ("A-1", "B-2"):
        import_case(session, SYSTEM, trial, {**case, "subject_id": code})
    session.rollback()
    return {
        "w8": w8,
        "patient": str(pydicom.dcmread(next((SAMPLE / "W8" / "CT").iterdir())).PatientID),
    }


def _upload(client: FlaskClient, trial: str, subject: str, study: io.BytesIO) -> Any:
    return client.post(
        f"/trials/{trial}/subjects/{subject}/upload",
        data={"study": (study, "study.zip")},
        content_type="multipart/form-data",
    )


def _save(client: FlaskClient, trial: str, subject: str, page: str, w8: dict[str, Any]) -> Any:
    fields = form_fields(page, "timepoint-form")
    fields.update(code="W8", date=w8["date"])
    return client.post(f"/trials/{trial}/subjects/{subject}/timepoints/new", data=fields)


def test_the_first_saved_study_binds_the_subject_and_another_patient_is_refused(
    app: Flask, session: Session, trial: str, two_subjects: dict[str, Any]
) -> None:
    client = app.test_client()
    login(client, "reader")
    page = _upload(client, trial, "A-1", _zip(SAMPLE / "W8"))
    assert page.status_code == 200
    assert _save(client, trial, "A-1", page.data.decode(), two_subjects["w8"]).status_code == 302
    session.rollback()
    bound = session.scalars(select(Subject.imaging_key).where(Subject.code == "A-1")).one()
    assert bound == pseudonym(two_subjects["patient"])
    record = session.scalars(select(AuditRecord).where(AuditRecord.field == "imaging_key")).one()
    assert (record.entity_key, record.action, record.new) == (f"{trial}/A-1", "create", bound)

    # Another patient's study for A-1: refused at upload, before anything is pre-filled.
    other = _upload(client, trial, "A-1", _zip(SAMPLE / "W16", patient_id="SOMEONE-ELSE"))
    assert other.status_code == 409
    text = html.unescape(other.data.decode())
    assert "subject A-1: this study is of patient key" in text
    assert "a study of another patient is refused" in text
    assert 'id="timepoint-form"' not in text
    # A-1's patient's study for B-2 (not bound yet): refused too.
    stolen = _upload(client, trial, "B-2", _zip(SAMPLE / "W16"))
    assert stolen.status_code == 409
    assert "bound to subject A-1" in html.unescape(stolen.data.decode())
    session.rollback()
    assert session.scalars(select(Subject.imaging_key).where(Subject.code == "B-2")).one() is None


def test_a_trial_manager_rebinds_with_a_reason_and_a_reader_cannot(
    app: Flask, session: Session, trial: str, users: dict[str, str], two_subjects: dict[str, Any]
) -> None:
    client = app.test_client()
    path = f"/api/v1/trials/{trial}/subjects/A-1/imaging-binding"
    key = pseudonym("SOMEONE-ELSE")
    refused = client.put(
        path, json={"subject_key": key, "reason": "x"}, headers=bearer(users["reader"])
    )
    assert refused.status_code == 403
    manager = bearer(users["trial_manager"])
    missing = client.put(path, json={"subject_key": key}, headers=manager)
    assert missing.status_code == 400
    assert "needs a reason" in missing.get_json()["error"]["message"]
    bad = client.put(path, json={"subject_key": "Mallory", "reason": "x"}, headers=manager)
    assert bad.status_code == 400 and bad.get_json()["error"]["pointer"] == "/subject_key"
    done = client.put(
        path, json={"subject_key": key, "reason": "first study was B-2's"}, headers=manager
    )
    assert done.status_code == 200, done.get_json()
    assert client.get(path, headers=bearer(users["reviewer"])).get_json()["subject_key"] == key
    session.rollback()
    record = session.scalars(select(AuditRecord).where(AuditRecord.field == "imaging_key")).one()
    assert (record.username, record.new, record.reason) == (
        "trial_manager",
        key,
        "first study was B-2's",
    )
    # Now the study of SOMEONE-ELSE is A-1's, and the sample patient's is refused.
    login(client, "reader")
    assert (
        _upload(client, trial, "A-1", _zip(SAMPLE / "W8", patient_id="SOMEONE-ELSE")).status_code
        == 200
    )
    assert _upload(client, trial, "A-1", _zip(SAMPLE / "W8")).status_code == 409


def test_a_baseline_study_is_kept_as_evidence_without_changing_the_entered_values(
    app: Flask, session: Session, trial: str, users: dict[str, str], two_subjects: dict[str, Any]
) -> None:
    client = app.test_client()
    login(client, "reader")
    upload = client.post(
        f"/trials/{trial}/subjects/A-1/upload",
        data={"study": (_zip(SAMPLE / "BL"), "bl.zip"), "timepoint": "BL"},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 200
    page = html.unescape(upload.data.decode())
    assert 'id="baseline-evidence"' in page and "Attach to BL" in page
    token = re.search(r'name="imaging" value="([^"]+)"', page).group(1)
    before = client.get(f"/api/v1/trials/{trial}/subjects/A-1", headers=bearer(users["reviewer"]))
    attached = client.post(
        f"/trials/{trial}/subjects/A-1/baseline/evidence", data={"imaging": token}
    )
    assert attached.status_code == 302
    after = client.get(f"/api/v1/trials/{trial}/subjects/A-1", headers=bearer(users["reviewer"]))
    assert after.get_json()["case"]["lesions"] == before.get_json()["case"]["lesions"]
    session.rollback()
    evidence = session.scalars(
        select(Timepoint.imaging_json)
        .join(Subject, Subject.id == Timepoint.subject_id)
        .where(Timepoint.code == "BL", Subject.code == "A-1")
    ).one()
    assert evidence is not None
    assert set(evidence["lesions"]) == {"T1", "T2", "T3"} and evidence["study"]["id"]
    assert session.scalars(select(Subject.imaging_key).where(Subject.code == "A-1")).one()
    # The key image of the baseline is served.
    image = client.get(f"/trials/{trial}/subjects/A-1/timepoints/BL/key-images/T1.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    # A forged token is refused.
    forged = client.post(
        f"/trials/{trial}/subjects/A-1/baseline/evidence", data={"imaging": token[:-3] + "abc"}
    )
    assert forged.status_code == 400


def test_a_new_lesion_named_like_a_segment_has_its_key_image(
    app: Flask, session: Session, trial: str, two_subjects: dict[str, Any]
) -> None:
    """Issue 12: key images per new lesion too. The bone segment of W16 is named NL01 (no
    lesion of the case); the reader records NL01 as a new lesion; its key image is drawn
    from the kept study and the grid cell links to it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted((SAMPLE / "W16").rglob("*.dcm")):
            data = path.read_bytes()
            if path.name == "SEG.dcm":
                seg = pydicom.dcmread(io.BytesIO(data))
                for item in seg.SegmentSequence:
                    if str(item.get("TrackingID", "")) == "NT1":
                        item.TrackingID = "NL01"
                buffer = io.BytesIO()
                seg.save_as(buffer, enforce_file_format=False)
                data = buffer.getvalue()
            archive.writestr(path.relative_to(SAMPLE / "W16").as_posix(), data)
    out.seek(0)
    client = app.test_client()
    login(client, "reader")
    page = _upload(client, trial, "A-1", out)
    assert page.status_code == 200
    text = html.unescape(page.data.decode())
    assert "'bone lesion' matched no target" in text
    fields = form_fields(text, "timepoint-form")
    fields.update(code="W16", new_0_id="NL01", new_0_site="bone")
    saved = client.post(f"/trials/{trial}/subjects/A-1/timepoints/new", data=fields)
    assert saved.status_code == 302, html.unescape(saved.data.decode())[-1500:]
    base = f"/trials/{trial}/subjects/A-1"
    image = client.get(base + "/timepoints/W16/key-images/NL01.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert f'href="{base}/timepoints/W16/key-images/NL01.png"' in client.get(base).data.decode()
    evidence = client.get(base + "/progression").data.decode()
    assert f'src="{base}/timepoints/W16/key-images/NL01.png"' in evidence
