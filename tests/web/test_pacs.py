"""A trial's PACS from the web (issue 13), against a real Orthanc: the trial manager sets
the DICOMweb URL (never credentials) and checks the PACS; each new study of a subject is
pulled, measured, kept and waits on the subject's page; a reader opens it pre-filled and
saves it. Nothing is saved or signed by the machine."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.imaging_io.orthanc import find_orthanc, running_orthanc, store_sample_studies
from tests.web.helpers import form_fields
from web.models import AuditRecord, PacsStudy, Timepoint
from web.services import SYSTEM, import_case
from web.testing import login

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"
pytestmark = pytest.mark.xdist_group("orthanc-web")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    found = find_orthanc()
    if isinstance(found, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {found}")
        pytest.skip(found)
    with running_orthanc(tmp_path_factory.mktemp("orthanc-web")) as server:
        store_sample_studies(server.dicomweb)
        yield server.dicomweb


@pytest.fixture
def demo_subject(session: Session, trial: str, users: dict[str, str]) -> str:
    case = json.loads((SAMPLE / "demo_case.json").read_text())
    case["timepoints"] = case["timepoints"][:1]  # the baseline; follow-ups come from the PACS
    case.pop("arm", None)
    import_case(session, SYSTEM, trial, case)
    session.rollback()
    return str(case["subject_id"])


def _flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="flash"[^>]*>(.*?)</p>', page, re.S)]


def test_the_trial_manager_checks_the_pacs_and_a_reader_confirms_a_pulled_study(
    app: Flask,
    session: Session,
    trial: str,
    demo_subject: str,
    orthanc: str,
    tmp_path: Path,
) -> None:
    app.config["STUDY_STORE"] = str(tmp_path / "studies")
    manager = app.test_client()
    login(manager, "trial_manager")
    page = f"/trials/{trial}"
    refused = manager.post(page + "/pacs", data={"pacs_url": "http://u:secret@pacs/dicom-web"})
    assert refused.status_code == 400
    assert "credentials are kept out of the database" in html.unescape(refused.data.decode())
    saved = manager.post(page + "/pacs", data={"pacs_url": orthanc}, follow_redirects=True)
    assert "PACS URL saved." in _flashes(saved.data.decode())
    checked = manager.post(page + "/pacs", data={"action": "check"}, follow_redirects=True)
    assert _flashes(checked.data.decode()) == [
        "PACS checked: 3 new studies awaiting a reader, 0 already pulled, 0 failed."
    ]
    again = manager.post(page + "/pacs", data={"action": "check"}, follow_redirects=True)
    assert _flashes(again.data.decode()) == [
        "PACS checked: 0 new studies awaiting a reader, 3 already pulled, 0 failed."
    ]
    session.rollback()
    pulled = session.scalars(select(PacsStudy).order_by(PacsStudy.study_date)).all()
    assert [p.timepoint for p in pulled] == ["2024-01-08", "2024-03-04", "2024-04-29"]
    pulls = session.scalars(select(AuditRecord).where(AuditRecord.action == "pull")).all()
    assert len(pulls) == 3 and {r.username for r in pulls} == {"trial_manager"}
    # Machine-measured only: no timepoint was saved by the check.
    assert session.scalars(select(Timepoint.code)).all() == ["BL"]

    reader = app.test_client()
    login(reader, "reader")
    subject_page = reader.get(f"{page}/subjects/{demo_subject}").data.decode()
    assert "Machine-measured studies awaiting a reader (3)" in subject_page
    w8 = next(p for p in pulled if p.timepoint == "2024-03-04")
    form = reader.get(f"{page}/subjects/{demo_subject}/pacs/{w8.id}").data.decode()
    assert "pulled from the PACS" in html.unescape(form)
    fields = form_fields(form, "timepoint-form")
    demo = json.loads((SAMPLE / "demo_case.json").read_text())["timepoints"][1]
    assert float(fields["t_T1_mm"]) == demo["targets"]["T1"]
    fields.update(code="W8")
    saved_tp = reader.post(f"{page}/subjects/{demo_subject}/timepoints/new", data=fields)
    assert saved_tp.status_code == 302, html.unescape(saved_tp.data.decode())[-1500:]
    after = reader.get(f"{page}/subjects/{demo_subject}").data.decode()
    assert "Machine-measured studies awaiting a reader (2)" in after


def test_a_pacs_that_does_not_answer_is_named_and_nothing_is_recorded(
    app: Flask, session: Session, trial: str, demo_subject: str, tmp_path: Path
) -> None:
    from tests.imaging_io.orthanc import free_port

    app.config["STUDY_STORE"] = str(tmp_path / "studies")
    manager = app.test_client()
    login(manager, "trial_manager")
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    manager.post(f"/trials/{trial}/pacs", data={"pacs_url": url})
    down = manager.post(f"/trials/{trial}/pacs", data={"action": "check"})
    assert down.status_code == 400
    assert url in html.unescape(down.data.decode())
    session.rollback()
    assert session.scalars(select(PacsStudy)).all() == []
