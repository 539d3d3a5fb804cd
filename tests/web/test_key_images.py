"""Images beside the calls (issue 12): the measured study is kept de-identified and
content-addressed; the evidence page shows each lesion's key image per timepoint and
opens a slice viewer; the images are served as PNG only to those who may see the call."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy.orm import Session

from web.demo import DEMO_TRIAL, DEMO_USERS, _study_zip, seed_demo, seed_users
from web.services import get_subject, get_timepoint
from web.services.studies import study_folder
from web.services.uploads import measure_upload
from web.testing import login

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"
SUBJECT = f"/trials/{DEMO_TRIAL}/subjects/DEMO-001"


@pytest.fixture
def seeded(session: Session) -> dict[str, str]:
    passwords = {name: password for name, (_, password) in seed_users(session).items()}
    seed_demo(session, subjects=2, passwords=passwords)
    session.expunge_all()
    session.rollback()
    return passwords


def _png(response: Any) -> Image.Image:
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "image/png"
    return Image.open(io.BytesIO(response.data))


def test_the_demo_timepoints_name_the_kept_study_each_lesion_was_measured_on(
    app: Flask, session: Session, seeded: dict[str, str]
) -> None:
    subject = get_subject(session, DEMO_TRIAL, "DEMO-001")
    root = Path(app.config["STUDY_STORE"])
    for code in ("W8", "W16"):
        evidence = get_timepoint(subject, code).imaging_json
        study = evidence["study"]
        folder = study_folder(root, study["id"])
        assert len(list((folder / "series").iterdir())) == study["series_files"] == 14
        for lesion in evidence["lesions"].values():
            assert (folder / "seg" / lesion["seg"]).is_file()
            assert isinstance(lesion["segment_number"], int)
        # De-identified to what the assessment needs: no name, the id pseudonymous.
        kept = pydicom.dcmread(next((folder / "series").iterdir()))
        original = pydicom.dcmread(next((SAMPLE / code / "CT").iterdir()))
        assert (
            str(kept.PatientName) == f"{kept.PatientID}^" and kept.PatientID != original.PatientID
        )
        assert len(kept.PatientID) == 16 and kept.get("PatientBirthDate") == ""
        assert kept.StudyInstanceUID == original.StudyInstanceUID
        assert kept.StudyDate == original.StudyDate


def test_a_study_is_kept_once_whatever_the_number_of_uploads(tmp_path: Path) -> None:
    root = tmp_path / "studies"  # a store of its own: other workers write to the shared one
    first = measure_upload(_study_zip(SAMPLE / "W8"), store=root)["study"]["id"]
    again = measure_upload(_study_zip(SAMPLE / "W8"), store=root)["study"]["id"]
    other = measure_upload(_study_zip(SAMPLE / "W16"), store=root)["study"]["id"]
    assert first == again != other
    assert not [p for p in root.iterdir() if p.name.startswith(".incoming-")]


def test_the_evidence_page_shows_key_images_that_the_server_draws(
    client: FlaskClient, seeded: dict[str, str]
) -> None:
    reviewer = DEMO_USERS["reviewer"]
    login(client, reviewer, seeded[reviewer])
    page = client.get(SUBJECT + "/progression").data.decode()
    assert 'id="key-images"' in page and 'id="viewer"' in page
    for tp in ("W8", "W16"):
        for lesion in ("T1", "T2", "T3"):
            src = f"{SUBJECT}/timepoints/{tp}/key-images/{lesion}.png"
            assert src in page
            picture = _png(client.get(src))
            assert picture.size[0] >= 192 and picture.size[1] >= 192
    lung = _png(client.get(f"{SUBJECT}/timepoints/W16/key-images/T2.png?window=lung"))
    soft = _png(client.get(f"{SUBJECT}/timepoints/W16/key-images/T2.png?window=soft tissue"))
    assert lung.tobytes() != soft.tobytes()
    # The viewer's slices: every slice of the series, with the outline of one lesion.
    # (The synthetic body is the same on every slice: only the lesion's slices differ.)
    measured = int(html.unescape(page).split('data-lesion="T1" data-slice="')[1].split('"')[0])
    slices = [
        _png(client.get(f"{SUBJECT}/timepoints/W8/slices/{k}.png?lesion=T1")) for k in (0, measured)
    ]
    assert slices[0].tobytes() != slices[1].tobytes()


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/timepoints/W8/key-images/T9.png", 404, "lesion 'T9' was not measured"),
        ("/timepoints/W8/key-images/T1.png?window=mediastinum", 400, "window 'mediastinum'"),
        ("/timepoints/W8/slices/99.png?lesion=T1", 400, "has no slice 99"),
        ("/timepoints/W8/key-images/NT1.png", 404, "lesion 'NT1' was not measured"),
        ("/timepoints/W99/key-images/T1.png", 404, "W99"),
        (f"/trials/{DEMO_TRIAL}/subjects/0101-001/timepoints/W8/key-images/T01.png", 404,
         "there is no image to show"),
    ],
)
def test_image_requests_that_cannot_be_drawn_say_why(
    client: FlaskClient, seeded: dict[str, str], path: str, status: int, words: str
) -> None:
    reviewer = DEMO_USERS["reviewer"]
    login(client, reviewer, seeded[reviewer])
    response = client.get(path if path.startswith("/trials/") else SUBJECT + path)
    assert response.status_code == status
    assert words in html.unescape(response.data.decode())


def test_images_are_refused_to_anyone_not_on_the_trial(
    client: FlaskClient, session: Session, seeded: dict[str, str]
) -> None:
    from web.services import SYSTEM, create_user

    create_user(session, SYSTEM, username="outsider", password="outsider password", role="reader")
    login(client, "outsider", "outsider password")
    response = client.get(SUBJECT + "/timepoints/W8/key-images/T1.png")
    assert response.status_code == 403
    assert client.get(SUBJECT + "/timepoints/W8/slices/3.png?lesion=T1").status_code == 403


def test_the_evidence_page_offers_each_timepoint_as_a_dicom_sr_that_reads_back(
    client: FlaskClient, session: Session, seeded: dict[str, str], tmp_path: Path
) -> None:
    import highdicom as hd

    from imaging_io.sr import read_measurement_report

    reviewer = DEMO_USERS["reviewer"]
    login(client, reviewer, seeded[reviewer])
    page = client.get(SUBJECT + "/progression").data.decode()
    href = f"{SUBJECT}/timepoints/W16/measurement-report.dcm"
    assert href in page
    response = client.get(href)
    assert response.status_code == 200
    assert response.mimetype == "application/dicom"
    assert "DEMO-001_W16_SR.dcm" in response.headers["Content-Disposition"]
    report = hd.sr.srread(io.BytesIO(response.data))
    assert report.Modality == "SR"
    assert str(report.PatientName) == f"{report.PatientID}^"  # the pseudonymous key
    path = tmp_path / "w16.dcm"
    path.write_bytes(response.data)
    measured = read_measurement_report(path)
    evidence = get_timepoint(get_subject(session, DEMO_TRIAL, "DEMO-001"), "W16").imaging_json
    long_axes = {m.tracking_identifier: m.value_mm for m in measured if m.kind == "long axis"}
    short_axes = {m.tracking_identifier: m.value_mm for m in measured if m.kind == "short axis"}
    for lesion, source in evidence["lesions"].items():
        got = short_axes if source["axis"] == "short axis" else long_axes
        assert got[lesion] == pytest.approx(source["mm"], abs=0.05), lesion
    assert client.get(f"{SUBJECT}/timepoints/BL/measurement-report.dcm").status_code == 200
    by_hand = f"/trials/{DEMO_TRIAL}/subjects/0101-001/timepoints/W8"
    assert client.get(by_hand + "/measurement-report.dcm").status_code == 404


def test_the_grid_links_each_target_measured_on_a_kept_study_to_its_key_image(
    client: FlaskClient, seeded: dict[str, str]
) -> None:
    reader = DEMO_USERS["reader"]
    login(client, reader, seeded[reader])
    page = client.get(SUBJECT).data.decode()
    links = re.findall(r'<a class="key-image-link" href="([^"]+)"', page)
    assert sorted(links) == sorted(
        f"{SUBJECT}/timepoints/{tp}/key-images/{lesion}.png"
        for tp in ("BL", "W8", "W16")
        for lesion in ("T1", "T2", "T3")
    )
    assert all(client.get(link).status_code == 200 for link in links[:2])


def test_reads_are_compared_target_by_target_with_the_kept_key_image() -> None:
    from web.pages.central import compare_reads

    def read(w8: float) -> dict[str, Any]:
        return {
            "lesions": [
                {"id": "T1", "kind": "target", "site": "liver"},
                {"id": "NT1", "kind": "non-target", "site": "bone"},
            ],
            "timepoints": [
                {"id": "BL", "date": "2021-01-04", "targets": {"T1": 30.0}, "non_targets": {}},
                {"id": "W8", "date": "2021-03-01", "targets": {"T1": w8}, "non_targets": {}},
            ],
        }

    rows = compare_reads([read(21.0), read(36.0)], {("W8", "T1"): "/img/W8/T1.png"})
    assert [(r["timepoint"], r["lesion"], r["reads"], r["differ"], r["image"]) for r in rows] == [
        ("BL", "T1", [30.0, 30.0], False, ""),
        ("W8", "T1", [21.0, 36.0], True, "/img/W8/T1.png"),
    ]
    assert compare_reads([read(21.0)], {}) == []


def test_the_adjudication_page_highlights_the_targets_the_reads_disagree_on(
    client: FlaskClient, seeded: dict[str, str]
) -> None:
    from web.demo import DEMO_CENTRAL_TRIAL

    adjudicator = DEMO_USERS["adjudicator"]
    login(client, adjudicator, seeded[adjudicator])
    page = client.get(f"/trials/{DEMO_CENTRAL_TRIAL}/subjects/0201-002/adjudication")
    assert page.status_code == 200
    text = page.data.decode()
    assert 'id="read-comparison"' in text
    rows = re.findall(
        r'<tr data-tp="[^"]+" data-lesion="[^"]+" class="differs"><td>[^<]*</td><td>[^<]*</td>'
        r"<td>([^<]*)</td><td>([^<]*)</td>",
        text,
    )
    assert rows, "no differing target shown"
    for first, second in rows:  # both reads' values are shown, and they differ
        assert first != second and first.strip() and second.strip()


def test_the_evidence_page_labels_its_numbers_and_the_grid_its_nadir(
    client: FlaskClient, seeded: dict[str, str]
) -> None:
    """Issue 14: labelled values, not raw keys; the nadir is the one before the visit."""
    reviewer = DEMO_USERS["reviewer"]
    login(client, reviewer, seeded[reviewer])
    page = html.unescape(client.get(SUBJECT + "/progression").data.decode())
    numbers = page.split('id="numbers"', 1)[1].split("</dl>", 1)[0]
    labels = re.findall(r"<dt[^>]*>([^<]+)</dt>", numbers)
    assert labels[:4] == [
        "Sum of diameters (mm)",
        "Nadir before this visit (mm)",
        "Change from nadir (%)",
        "Change from baseline (%)",
    ]
    assert "sum_mm<" not in numbers
    assert "Nadir before the visit (mm)" in page  # the grid's row
