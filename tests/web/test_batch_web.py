"""Batches from the web (issue 13): a trial manager starts ``recist batch`` on a folder
under the server's batch root or on an uploaded manifest; the job's progress and outcome
are kept; each measured study of an enrolled subject waits for a reader on the subject's
page exactly like a study pulled from the PACS (never saved or signed by the machine), and
a reader confirms it into a timepoint.

The studies are sample_dicom's DEMO-001 follow-ups (W8, W16), whose baseline is imported
as the subject's; the refusals are a subject the trial does not have, an unreadable
segmentation, and paths outside the batch root (``..``, an absolute path, a symbolic link
leading out)."""

from __future__ import annotations

import html
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import form_fields
from web.models import AuditRecord, BatchJob, PacsStudy, Timepoint
from web.services import SYSTEM, create_trial, import_case
from web.services.batch_run import wait
from web.testing import bearer

SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"
DEMO = json.loads((SAMPLE / "demo_case.json").read_text())
# What imaging_io measures on the sample follow-ups (sample_dicom/README.md): W8, W16.
MEASURED = {tp["id"]: tp["targets"] for tp in DEMO["timepoints"][1:]}
LABELS = {"T1": "liver lesion", "T2": "lung lesion", "T3": "lymph node"}


@pytest.fixture
def demo_subject(session: Session, trial: str, users: dict[str, str]) -> str:
    case = json.loads(json.dumps(DEMO))
    case["timepoints"] = case["timepoints"][:1]  # the baseline; follow-ups come from batches
    case.pop("arm", None)
    import_case(session, SYSTEM, trial, case)
    session.rollback()
    return str(case["subject_id"])


@pytest.fixture
def root(app: Flask, tmp_path: Path) -> Path:
    """The batch root: studies/<subject>/<timepoint>/ with DEMO-001's W8 and W16, a
    subject the trial does not have, and a W24 whose SEG.dcm is not DICOM; beside the
    root (outside it) a copy of W8."""
    folder = tmp_path / "root"
    studies = folder / "studies"
    for visit in ("W8", "W16"):
        shutil.copytree(SAMPLE / visit, studies / "DEMO-001" / visit)
    shutil.copytree(SAMPLE / "W8", studies / "NOBODY-9" / "W8")
    broken = studies / "DEMO-001" / "W24"
    shutil.copytree(SAMPLE / "W8" / "CT", broken / "CT")
    (broken / "SEG.dcm").write_bytes(b"not a DICOM file\n")
    shutil.copytree(SAMPLE / "W8", tmp_path / "outside" / "W8")
    app.config["BATCH_ROOT"] = str(folder)
    app.config["STUDY_STORE"] = str(tmp_path / "instance" / "studies")
    return folder


def _job_url(trial: str, job_id: int) -> str:
    return f"/api/v1/trials/{trial}/batches/{job_id}"


def _finished(client: FlaskClient, token: str, url: str) -> dict[str, Any]:
    """The job at ``url`` once its thread has ended (joined, then read through the API)."""
    job_id = int(url.rstrip("/").rsplit("/", 1)[1])
    wait(job_id, timeout=600)
    body = client.get(url, headers=bearer(token)).get_json()
    assert body["status"] in ("done", "failed"), body
    return body


def _by_visit(outcomes: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["subject"], o["timepoint"]): o for o in outcomes}


def _web_batch(
    manager: FlaskClient, trial: str, token: str, **post: Any
) -> tuple[str, dict[str, Any]]:
    """A batch started from the trial's batches page (``post``: the form), once ended:
    the batch page's URL and the job as the API reports it."""
    started = manager.post(f"/trials/{trial}/batches", **post)
    assert started.status_code == 302, html.unescape(started.data.decode())[-800:]
    page_url = started.headers["Location"]
    job_id = int(page_url.rsplit("/", 1)[1])
    job = _finished(manager, token, _job_url(trial, job_id))
    assert job["id"] == job_id
    return page_url, job


def _api_batch(
    app: Flask, trial: str, token: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A batch started through the API (``body``: the folder ``studies`` unless given),
    once ended."""
    client = app.test_client()
    started = client.post(
        f"/api/v1/trials/{trial}/batches",
        json={"folder": "studies"} if body is None else body,
        headers=bearer(token),
    )
    assert started.status_code == 202, started.get_json()
    return _finished(client, token, started.get_json()["url"])


def test_a_folder_batch_lands_measured_studies_awaiting_a_reader_and_reruns_add_nothing(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    demo_subject: str,
    root: Path,
    logged_in: Callable[[str], FlaskClient],
) -> None:
    manager = logged_in("trial_manager")
    token = users["trial_manager"]
    page_url, job = _web_batch(manager, trial, token, data={"folder": "studies"})
    job_id = job["id"]
    assert job["status"] == "done" and job["error"] is None
    assert (job["total"], job["done"], job["refused"], job["failed"], job["landed"]) == (
        4, 2, 2, 0, 2)  # fmt: skip
    assert job["started_by"] == "trial_manager" and job["source"] == "folder"
    outcomes = _by_visit(job["outcomes"])
    unknown = outcomes[("NOBODY-9", "W8")]
    assert unknown["status"] == "refused"
    assert "subject NOBODY-9 is not enrolled in trial TRIAL-1" in unknown["reason"]
    assert str(root / "studies" / "NOBODY-9" / "W8") in unknown["reason"]
    broken = outcomes[(demo_subject, "W24")]
    assert broken["status"] == "refused"
    assert "no DICOM SEG or RTSTRUCT" in broken["reason"] and "W24" in broken["reason"]
    assert job["progress"]["finished"] == 4 and job["progress"]["percent"] == 100

    # Machine-measured, awaiting a reader: the sizes imaging_io measured, nothing saved.
    session.rollback()
    waiting = session.scalars(select(PacsStudy).order_by(PacsStudy.timepoint)).all()
    assert [(w.timepoint, w.source, w.pulled_by) for w in waiting] == [
        ("W16", "batch", "trial_manager"),
        ("W8", "batch", "trial_manager"),
    ]
    for study in waiting:
        sizes = {le["label"]: le for le in study.measured["lesions"]}
        for lesion, mm in MEASURED[study.timepoint].items():
            axis = "short_axis_mm" if lesion == "T3" else "longest_diameter_mm"
            assert round(sizes[LABELS[lesion]][axis], 1) == mm, (study.timepoint, lesion)
        assert study.measured["study"]["id"]  # kept in the study store (key images)
    assert session.scalars(select(Timepoint.code)).all() == ["BL"]
    assert session.scalars(select(Timepoint).where(Timepoint.locked)).all() == []
    audit = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
    starts = [r for r in audit if r.action == "start" and r.entity == "batch_job"]
    assert [(r.username, r.new) for r in starts] == [("trial_manager", "folder studies")]
    landed = sorted(r.new for r in audit if r.action == "measure" and r.entity == "pacs_study")
    assert landed == [f"W16 (batch {job_id})", f"W8 (batch {job_id})"]

    # The page shows the summary: counts, rate, refusals with their reasons.
    page = html.unescape(manager.get(page_url).data.decode())
    assert 'data-status="done"' in page and "studies/s" in page
    assert "Refused (2)" in page and "subject NOBODY-9 is not enrolled" in page
    assert 'http-equiv="refresh"' not in page  # no reload once done

    # The same batch again: everything is measured again, nothing is recorded twice.
    _, rerun = _web_batch(manager, trial, token, data={"folder": "studies"})
    second = rerun["id"]
    assert (rerun["done"], rerun["refused"], rerun["landed"]) == (2, 2, 0)
    assert {o["note"] for o in rerun["outcomes"] if o["status"] == "ok"} == {
        "already recorded (batch)"
    }
    session.rollback()
    assert len(session.scalars(select(PacsStudy)).all()) == 2
    listing = html.unescape(manager.get(f"/trials/{trial}/batches").data.decode())
    assert f'data-job="{job_id}"' in listing and f'data-job="{second}"' in listing


def test_a_reader_confirms_a_batch_result_into_a_timepoint(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    demo_subject: str,
    root: Path,
    logged_in: Callable[[str], FlaskClient],
) -> None:
    study = "studies/DEMO-001/W8"
    manifest = f"subject,timepoint,image,seg\nDEMO-001,W8,{study}/CT,{study}/SEG.dcm\n"
    _, job = _web_batch(
        logged_in("trial_manager"),
        trial,
        users["trial_manager"],
        data={"manifest": (io.BytesIO(manifest.encode()), "w8.csv")},
        content_type="multipart/form-data",
    )
    assert (job["done"], job["landed"], job["source"], job["source_name"]) == (
        1, 1, "manifest", "w8.csv")  # fmt: skip

    reader = logged_in("reader")
    base = f"/trials/{trial}/subjects/{demo_subject}"
    subject_page = html.unescape(reader.get(base).data.decode())
    assert "Machine-measured studies awaiting a reader (1)" in subject_page
    assert 'data-source="batch"' in subject_page and "from a batch" in subject_page
    session.rollback()
    [study] = session.scalars(select(PacsStudy)).all()
    form = html.unescape(reader.get(f"{base}/pacs/{study.id}").data.decode())
    assert "measured by a batch (visit W8)" in form
    fields = form_fields(form, "timepoint-form")
    assert float(fields["t_T1_mm"]) == MEASURED["W8"]["T1"]
    assert float(fields["t_T3_mm"]) == MEASURED["W8"]["T3"]
    assert (fields["code"], fields["date"]) == ("W8", "2024-03-04")  # the manifest's visit
    saved = reader.post(f"{base}/timepoints/new", data=fields)
    assert saved.status_code == 302, html.unescape(saved.data.decode())[-1500:]
    session.rollback()
    w8 = session.scalars(select(Timepoint).where(Timepoint.code == "W8")).one()
    assert w8.updated_by == "reader" and not w8.locked  # confirmed by the reader, unsigned
    assert "awaiting a reader" not in html.unescape(reader.get(base).data.decode())


def test_paths_outside_the_batch_root_are_refused(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    demo_subject: str,
    root: Path,
    tmp_path: Path,
    logged_in: Callable[[str], FlaskClient],
) -> None:
    (root / "studies" / "escape").symlink_to(tmp_path / "outside" / "W8")
    outside = tmp_path / "outside" / "W8"
    rows = [
        {"subject": "DEMO-001", "timepoint": "W8", "image": "studies/DEMO-001/W8/CT",
         "seg": "studies/DEMO-001/W8/SEG.dcm"},
        {"subject": "DEMO-001", "timepoint": "W9", "image": "../outside/W8/CT",
         "seg": "../outside/W8/SEG.dcm"},
        {"subject": "DEMO-001", "timepoint": "W10", "image": str(outside / "CT"),
         "seg": str(outside / "SEG.dcm")},
        {"subject": "DEMO-001", "timepoint": "W11", "image": "studies/escape/CT",
         "seg": "studies/escape/SEG.dcm"},
    ]  # fmt: skip
    token = users["trial_manager"]
    manifest = "\n".join(json.dumps(r) for r in rows)
    job = _api_batch(app, trial, token, {"manifest": manifest, "manifest_name": "m.jsonl"})
    outcomes = _by_visit(job["outcomes"])
    assert outcomes[("DEMO-001", "W8")]["status"] == "ok"
    assert "contains '..': refused" in outcomes[("DEMO-001", "W9")]["reason"]
    for visit in ("W10", "W11"):
        assert outcomes[("DEMO-001", visit)]["status"] == "refused"
        assert "is outside the batch root" in outcomes[("DEMO-001", visit)]["reason"]
    assert (job["total"], job["done"], job["refused"], job["landed"]) == (4, 1, 3, 1)

    # A folder outside the root is refused before anything is recorded.
    client = app.test_client()
    for folder in ("../outside", str(tmp_path / "outside"), "studies/escape"):
        refused = client.post(
            f"/api/v1/trials/{trial}/batches", json={"folder": folder}, headers=bearer(token)
        )
        assert refused.status_code == 400, folder
        assert "refused" in refused.get_json()["error"]["message"], folder
    page = logged_in("trial_manager").post(
        f"/trials/{trial}/batches", data={"folder": "../outside"}
    )
    assert page.status_code == 400
    assert "contains '..': refused" in html.unescape(page.data.decode())
    session.rollback()
    assert len(session.scalars(select(BatchJob)).all()) == 1


def test_bad_requests_are_refused_naming_the_problem(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    root: Path,
    logged_in: Callable[[str], FlaskClient],
) -> None:
    client = app.test_client()
    headers = bearer(users["trial_manager"])
    path = f"/api/v1/trials/{trial}/batches"
    both = client.post(path, json={"folder": "studies", "manifest": "x"}, headers=headers)
    assert both.status_code == 400 and "either folder or manifest" in both.get_json()["error"][
        "message"]  # fmt: skip
    bad = client.post(path, json={"manifest": "subject,timepoint,image\nA,B,C\n"}, headers=headers)
    assert bad.status_code == 400 and "no seg column" in bad.get_json()["error"]["message"]
    missing = client.get(path + "/999", headers=headers)
    assert missing.status_code == 404
    app.config["BATCH_ROOT"] = None
    off = client.post(path, json={"folder": "studies"}, headers=headers)
    assert off.status_code == 400
    assert "set RECIST_BATCH_ROOT" in off.get_json()["error"]["message"]
    page = logged_in("trial_manager").get(f"/trials/{trial}/batches")
    assert 'id="no-root"' in page.data.decode()
    session.rollback()
    assert session.scalars(select(BatchJob)).all() == []


@pytest.mark.parametrize("role", ["reader", "adjudicator", "reviewer", "admin"])
def test_only_trial_managers_start_and_follow_batches(
    logged_in: Callable[[str], FlaskClient],
    trial: str,
    users: dict[str, str],
    root: Path,
    role: str,
) -> None:
    client = logged_in(role)
    assert client.post(f"/trials/{trial}/batches", data={"folder": "studies"}).status_code == 403
    assert client.get(f"/trials/{trial}/batches").status_code == 403
    api = client.post(
        f"/api/v1/trials/{trial}/batches", json={"folder": "studies"}, headers=bearer(users[role])
    )
    assert api.status_code == 403


def test_a_trial_manager_of_another_trial_cannot_start_a_batch_of_this_one(
    app: Flask, session: Session, trial: str, users: dict[str, str], root: Path
) -> None:
    create_trial(session, SYSTEM, code="OTHER-1", title="other", arms=[("A", "arm A")])
    session.rollback()
    client = app.test_client()
    refused = client.post(
        "/api/v1/trials/OTHER-1/batches",
        json={"folder": "studies"},
        headers=bearer(users["trial_manager"]),
    )
    assert refused.status_code == 403
    assert "not a member of trial OTHER-1" in refused.get_json()["error"]["message"]
    session.rollback()
    assert session.scalars(select(BatchJob)).all() == []


def test_a_batch_that_cannot_write_its_results_fails_naming_why_and_lands_nothing(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    demo_subject: str,
    root: Path,
) -> None:
    # The results of job N go to <study store>/../batches/<trial>/N: make that a file.
    batches = Path(app.config["STUDY_STORE"]).parent / "batches"
    batches.parent.mkdir(parents=True, exist_ok=True)
    batches.write_text("not a folder")
    job = _api_batch(app, trial, users["trial_manager"])
    assert job["status"] == "failed" and job["finished_at"] is not None
    assert "batches" in job["error"], job["error"]
    assert job["landed"] == 0
    session.rollback()
    assert session.scalars(select(PacsStudy)).all() == []


def test_the_rate_and_time_left_come_from_the_studies_measured_so_far() -> None:
    from datetime import UTC, datetime, timedelta

    from web.services.batch import job_figures

    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    outcomes = [{"status": "refused", "subject": "X", "timepoint": "W8"}]  # refused unmeasured
    outcomes += [{"status": "ok", "measured": True}] * 4
    job = BatchJob(total=13, done=4, refused=1, failed=0, status="running",
                   started_at=start, outcomes=outcomes)  # fmt: skip
    figures = job_figures(job, now=start + timedelta(seconds=8))
    # 4 studies measured in 8 s: 0.5 studies/s; 13 - 5 finished = 8 left: 16 s.
    assert figures == {"finished": 5, "percent": 38, "seconds": 8.0,
                       "studies_per_second": 0.5, "eta_seconds": 16}  # fmt: skip
    job.status, job.finished_at = "done", start + timedelta(seconds=8)
    assert job_figures(job)["eta_seconds"] is None
    # Interrupted: the time ends at the last heartbeat, and no time left is promised.
    job.status, job.finished_at, job.updated_at = "running", None, start + timedelta(seconds=6)
    stopped = job_figures(job, now=start + timedelta(hours=2), interrupted=True)
    assert (stopped["seconds"], stopped["eta_seconds"]) == (6.0, None)


# ------------------------------------------------------- interrupted, resumed (issue 13)


def test_an_interrupted_batch_is_resumed_without_recording_a_study_twice(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    demo_subject: str,
    root: Path,
    logged_in: Callable[[str], FlaskClient],
) -> None:
    """The state ``kill -9`` leaves: the job ``running`` with an old heartbeat from a
    process that is gone; W8's journal line written but its landing never committed;
    W16 landed but its journal line torn; W24 neither. Resume lands W8, measures W16 and
    W24 again, and ends with one outcome per study and one row per measured study."""
    from datetime import UTC, datetime, timedelta

    token = users["trial_manager"]
    first = _api_batch(app, trial, token)
    job_id = first["id"]
    assert first["owner"] and first["run"] == 1 and first["status"] == "done"
    results = Path(app.config["STUDY_STORE"]).parent / "batches" / trial / str(job_id)
    journal = {
        (r["subject_id"], r["timepoint"]): line
        for line in (results / "done.jsonl").read_text().splitlines()
        for r in [json.loads(line)]
    }
    assert set(journal) == {(demo_subject, v) for v in ("W8", "W16", "W24")}
    w16_line = journal[(demo_subject, "W16")]
    (results / "done.jsonl").write_text(
        journal[(demo_subject, "W8")] + "\n" + w16_line[: len(w16_line) // 2]
    )
    session.rollback()
    w8, w16 = (
        session.scalars(select(PacsStudy).where(PacsStudy.timepoint == v)).one()
        for v in ("W8", "W16")
    )
    kept_w16 = w16.id
    session.delete(w8)
    job = session.get(BatchJob, job_id)
    assert job is not None
    lost = {(demo_subject, "W8"), (demo_subject, "W24")}
    job.outcomes = [o for o in job.outcomes if (o["subject"], o["timepoint"]) not in lost]
    job.status, job.finished_at = "running", None
    job.owner = "gone-host.example:4242:feedface"  # another host: only the heartbeat tells
    job.updated_at = datetime.now(UTC)
    session.commit()

    # A fresh heartbeat from another web process: the batch is live, a resume is refused.
    client = app.test_client()
    live = client.get(_job_url(trial, job_id), headers=bearer(token)).get_json()
    assert (live["status"], live["recorded_status"]) == ("running", "running")
    assert live["interrupted_reason"] is None
    refused = client.post(_job_url(trial, job_id) + "/resume", headers=bearer(token))
    assert refused.status_code == 409, refused.get_json()
    assert "is running" in refused.get_json()["error"]["message"]
    assert "not run twice" in refused.get_json()["error"]["message"]
    manager = logged_in("trial_manager")
    page = manager.get(f"/trials/{trial}/batches/{job_id}")
    text = html.unescape(page.data.decode())
    assert 'id="batch-heartbeat"' in text and "gone-host.example:4242" in text
    assert 'id="resume-batch"' not in text
    posted = manager.post(f"/trials/{trial}/batches/{job_id}/resume")
    assert posted.status_code == 409
    refusal = html.unescape(posted.data.decode())
    assert "not run twice" in refusal
    # The refusal's page reloads the batch's page, not the resume (a POST).
    assert f'content="2; url=/trials/{trial}/batches/{job_id}"' in refusal

    # No heartbeat for an hour: interrupted, with the reason and the Resume button.
    session.rollback()
    job = session.get(BatchJob, job_id)
    assert job is not None
    job.updated_at = datetime.now(UTC) - timedelta(hours=1)
    session.commit()
    stale = client.get(_job_url(trial, job_id), headers=bearer(token)).get_json()
    assert (stale["status"], stale["recorded_status"]) == ("interrupted", "running")
    assert "no heartbeat for 3600 s (limit 60 s" in stale["interrupted_reason"]
    text = html.unescape(manager.get(f"/trials/{trial}/batches/{job_id}").data.decode())
    assert 'id="batch-interrupted"' in text and "no heartbeat for 3600 s" in text
    assert 'id="resume-batch"' in text and 'http-equiv="refresh"' not in text
    listing = html.unescape(manager.get(f"/trials/{trial}/batches").data.decode())
    assert "<td>interrupted</td>" in listing

    resumed = manager.post(f"/trials/{trial}/batches/{job_id}/resume")
    assert resumed.status_code == 302, html.unescape(resumed.data.decode())[-800:]
    done = _finished(client, token, _job_url(trial, job_id))
    assert done["status"] == "done" and done["run"] == 2 and done["error"] is None
    assert (done["total"], done["done"], done["refused"], done["failed"], done["landed"]) == (
        4, 2, 2, 0, 2)  # fmt: skip
    keys = [(o["subject"], o["timepoint"]) for o in done["outcomes"]]
    assert sorted(keys) == sorted({*keys}) and len(keys) == 4
    outcomes = _by_visit(done["outcomes"])
    assert outcomes[(demo_subject, "W24")]["status"] == "refused"
    session.rollback()
    rows = {s.timepoint: s for s in session.scalars(select(PacsStudy))}
    assert sorted(rows) == ["W16", "W8"]
    assert rows["W16"].id == kept_w16
    assert outcomes[(demo_subject, "W16")]["awaiting_id"] == kept_w16
    assert outcomes[(demo_subject, "W16")]["note"] == "awaiting a reader"
    assert outcomes[(demo_subject, "W8")]["awaiting_id"] == rows["W8"].id
    assert outcomes[(demo_subject, "W8")]["note"] == "awaiting a reader"
    # run_batch's own resume: W8 skipped (its journal line), W16 and W24 measured again.
    summary = json.loads((results / "summary.json").read_text())
    assert (summary["this_run"]["skipped_done"], summary["this_run"]["measured_now"]) == (1, 2)
    lines = [json.loads(x) for x in (results / "done.jsonl").read_text().splitlines()]
    assert sorted(r["timepoint"] for r in lines) == ["W16", "W24", "W8"]
    audit = session.scalars(select(AuditRecord).where(AuditRecord.action == "resume")).all()
    assert [(r.username, r.entity, r.entity_key) for r in audit] == [
        ("trial_manager", "batch_job", f"{trial}/{job_id}")
    ]
    assert "interrupted (owner gone-host.example:4242:feedface, run 1)" == audit[0].old

    # Done: a resume is refused, nothing is run again.
    again = client.post(_job_url(trial, job_id) + "/resume", headers=bearer(token))
    assert again.status_code == 409 and "is done" in again.get_json()["error"]["message"]


def test_a_batch_whose_process_is_gone_or_whose_thread_ended_is_interrupted() -> None:
    """liveness: the owner's process gone from this host, or this process's own thread
    ended, is interrupted at once; another host is judged by the heartbeat's age."""
    import socket
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    from web.services.batch_owner import liveness, process_owner

    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    job = BatchJob(id=987654, status="running", updated_at=now, run=1, outcomes=[])
    job.owner = f"{socket.gethostname()}:{ended.stdout.strip()}:abc"
    seen = liveness(job, 60, now + timedelta(seconds=1))
    assert seen["state"] == "interrupted" and "has stopped" in seen["interrupted_reason"]
    job.owner = process_owner()  # this process, but no thread runs job 987654
    assert liveness(job, 60, now + timedelta(seconds=1))["state"] == "running"  # starting
    seen = liveness(job, 60, now + timedelta(seconds=10))
    assert seen["state"] == "interrupted" and "thread" in seen["interrupted_reason"]
    job.owner = "elsewhere.example:1:abc"
    assert liveness(job, 60, now + timedelta(seconds=59))["state"] == "running"
    assert liveness(job, 60, now + timedelta(seconds=61))["state"] == "interrupted"
    assert liveness(job, 120, now + timedelta(seconds=61))["state"] == "running"
    job.status = "done"
    assert liveness(job, 60, now + timedelta(days=9))["state"] == "done"


def test_the_heartbeat_beats_only_for_the_live_job_its_process_owns(
    app: Flask, session: Session, trial: str, users: dict[str, str], root: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from web.services.batch_owner import beat

    job_id = _api_batch(app, trial, users["trial_manager"])["id"]
    sessions = app.extensions["recist_sessions"]
    old = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    session.rollback()
    job = session.get(BatchJob, job_id)
    assert job is not None
    owner = job.owner
    job.status, job.updated_at = "running", old
    session.commit()
    assert beat(sessions, job_id, "elsewhere.example:1:abc") is False
    session.rollback()  # a new read transaction: the rows as committed now
    session.refresh(job)
    assert job.updated_at.replace(tzinfo=UTC) == old
    assert beat(sessions, job_id, owner) is True
    session.rollback()
    session.refresh(job)
    assert job.updated_at.replace(tzinfo=UTC) > old + timedelta(days=300)
    job.status = "done"
    session.commit()
    assert beat(sessions, job_id, owner) is False


def test_a_batch_on_a_dask_cluster_lands_what_the_in_thread_batch_lands(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    demo_subject: str,
    root: Path,
) -> None:
    """RECIST_BATCH_SCHEDULER: the studies are measured by the worker processes of a
    real Dask cluster; the job ends as the in-thread one does, with the same sizes."""
    import logging

    from distributed import LocalCluster

    from imaging_io.batch import WORKER_ENV

    token = users["trial_manager"]
    in_thread = _api_batch(app, trial, token)
    session.rollback()
    sizes = {s.timepoint: s.measured["lesions"] for s in session.scalars(select(PacsStudy))}
    for study in session.scalars(select(PacsStudy)):
        session.delete(study)
    session.commit()

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR,
                           env=WORKER_ENV)  # fmt: skip
    try:
        app.config["BATCH_SCHEDULER"] = cluster.scheduler_address
        on_dask = _api_batch(app, trial, token)
    finally:
        cluster.close()
    results = Path(app.config["STUDY_STORE"]).parent / "batches" / trial / str(on_dask["id"])
    summary = json.loads((results / "summary.json").read_text())
    assert summary["this_run"]["executor"] == f"Dask scheduler {cluster.scheduler_address}"
    assert on_dask["status"] == "done" and on_dask["error"] is None
    figures = ("total", "done", "refused", "failed", "landed")
    assert [on_dask[f] for f in figures] == [in_thread[f] for f in figures] == [4, 2, 2, 0, 2]

    def seen(job: dict[str, Any]) -> dict[Any, Any]:
        return {k: (o["status"], o.get("reason"), o.get("note"), o.get("lesions"))
                for k, o in _by_visit(job["outcomes"]).items()}  # fmt: skip

    assert seen(on_dask) == seen(in_thread)
    session.rollback()
    landed = {s.timepoint: s for s in session.scalars(select(PacsStudy))}
    assert sorted(landed) == ["W16", "W8"]
    assert {v: s.measured["lesions"] for v, s in landed.items()} == sizes
    assert {s.source for s in landed.values()} == {"batch"}
