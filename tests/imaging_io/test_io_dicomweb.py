"""``recist pull`` / ``recist push`` and imaging_io.dicomweb against a real PACS.

The PACS is a throwaway Orthanc with its DICOMweb plugin (tests/imaging_io/orthanc.py)
holding sample_dicom's three studies of DEMO-001, stored through STOW-RS. Faults come from
small local servers: nothing listening, an HTTP 500, an answer that never comes, and a
proxy in front of Orthanc that breaks one series' transfer off half-way. Retries wait
through an injected sleep, so they are counted, not waited for.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from imaging_io.cli_dicomweb import run
from imaging_io.dicomweb import (
    MANIFEST,
    MEASUREMENT,
    DicomWebError,
    Pacs,
    RetryPolicy,
    StudyRef,
    VisitSchedule,
    timepoint_id,
)
from imaging_io.errors import ImagingInputError
from imaging_io.study import measure_study_folder
from recist import cli
from tests.imaging_io.orthanc import (
    SAMPLE,
    VISITS,
    Orthanc,
    find_orthanc,
    free_port,
    running_orthanc,
    store_sample_studies,
)

# One worker holds the Orthanc under `make test` (pytest -n 2 --dist loadgroup).
pytestmark = pytest.mark.xdist_group("orthanc")

SCHEDULE = ["BL=2024-01-08", "W8=2024-03-01", "W16=2024-04-29"]  # W8 was scanned 3 days late
DATES = {"BL": date(2024, 1, 8), "W8": date(2024, 3, 4), "W16": date(2024, 4, 29)}


def require_orthanc() -> None:
    """Skip without Orthanc, but fail under CI=true (.ci/run installs it)."""
    found = find_orthanc()
    if isinstance(found, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {found}")
        pytest.skip(found)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orthanc, dict[str, str]]]:
    """Orthanc with sample_dicom's BL, W8 and W16 stored (visit -> StudyInstanceUID)."""
    require_orthanc()
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        started = time.monotonic()
        uids = store_sample_studies(server.dicomweb)
        print(f"\nOrthanc {server.version} ({server.plugin}) answered in "
              f"{server.started_in_s:.2f} s; STOW-RS of 3 studies took "
              f"{time.monotonic() - started:.2f} s")
        yield server, uids


class Sleeps(list[float]):
    """The injected sleep: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def recist(argv: list[str], sleep: Callable[[float], None] | None = None) -> int:
    """Run a `recist` command as the console script parses it, with an injected sleep."""
    args = cli.build_parser(argv[0]).parse_args(argv)
    return run(args, sleep=sleep)


def measured(folder: Path) -> dict[str, Any]:
    return measure_study_folder(folder).to_dict()


def sizes(measurement: dict[str, Any]) -> list[tuple[str, float, float]]:
    return [(lesion["tracking_id"], lesion["longest_diameter_mm"], lesion["short_axis_mm"])
            for lesion in measurement["lesions"]]


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --- timepoints (no PACS needed) --------------------------------------------------------


def test_timepoint_is_the_clinical_trial_time_point_id_when_given():
    study = StudyRef("1.2.3", "P1", date(2024, 3, 4), trial_time_point_id="W8")
    schedule = VisitSchedule.from_mapping({"W9": date(2024, 3, 4)})
    assert timepoint_id(study, schedule) == "W8"


def test_timepoint_is_the_visit_whose_window_holds_the_study_date():
    schedule = VisitSchedule.from_mapping({"BL": date(2024, 1, 8), "W8": date(2024, 3, 1)}, 7)
    assert timepoint_id(StudyRef("1.2.3", "P1", date(2024, 3, 8)), schedule) == "W8"
    assert timepoint_id(StudyRef("1.2.3", "P1", date(2024, 3, 9)), schedule) == "2024-03-09"


def test_timepoint_falls_back_to_the_study_date_then_the_study_uid():
    assert timepoint_id(StudyRef("1.2.3", "P1", date(2024, 3, 4))) == "2024-03-04"
    assert timepoint_id(StudyRef("1.2.3", "P1", None)) == "1.2.3"
    assert timepoint_id(StudyRef("1.2.3", "P1", None), header_time_point="W8") == "W8"


def test_a_schedule_whose_windows_overlap_is_refused():
    with pytest.raises(ValueError, match=r"visits BL \(2024-01-08\) and W1 \(2024-01-20\) "
                                         r"are 12 days apart: their ±7-day windows overlap"):
        VisitSchedule.from_mapping({"BL": date(2024, 1, 8), "W1": date(2024, 1, 20)}, 7)


def test_retry_waits_grow_exponentially_and_are_bounded():
    assert RetryPolicy(attempts=6, first_delay_s=0.5, max_delay_s=4).delays() == (
        0.5, 1.0, 2.0, 4.0, 4.0)
    with pytest.raises(ValueError, match="retry attempts 0 is not between 1 and 10"):
        RetryPolicy(attempts=0)


def test_a_url_that_is_not_http_is_refused_in_one_line(tmp_path, capsys):
    status = cli.main(["pull", "--dicomweb", "ftp://pacs/dicom-web", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err == ("recist pull: ftp://pacs/dicom-web: is not an http:// or https:// URL of "
                   "a DICOMweb service\n")


def test_bad_pull_options_exit_2_naming_the_option(tmp_path, capsys):
    url = "http://127.0.0.1:9/dicom-web"
    assert recist(["pull", "--dicomweb", url, "--out", str(tmp_path), "--since", "2024-13-01"]) == 2
    assert "--since '2024-13-01' is not a date YYYY-MM-DD" in capsys.readouterr().err
    assert recist(["pull", "--dicomweb", url, "--out", str(tmp_path), "--visit", "W8"]) == 2
    assert "--visit 'W8' is not ID=YYYY-MM-DD" in capsys.readouterr().err


# --- QIDO-RS, WADO-RS and pull against Orthanc ----------------------------------------


def test_qido_finds_the_three_studies_of_demo_001(orthanc):
    server, uids = orthanc
    studies = Pacs(server.dicomweb).find_studies(["DEMO-001"])
    assert [(s.study_uid, s.study_date, s.subject) for s in studies] == [
        (uids[v], DATES[v], "DEMO-001") for v in VISITS]
    assert all(set(s.modalities) == {"CT", "SEG"} for s in studies)
    assert Pacs(server.dicomweb).find_studies(["DEMO-00*"]) == []  # a key is never a pattern


def test_qido_since_a_date_finds_the_later_studies(orthanc):
    server, uids = orthanc
    studies = Pacs(server.dicomweb).find_studies(["DEMO-001"], since=date(2024, 3, 4))
    assert [s.study_uid for s in studies] == [uids["W8"], uids["W16"]]


def test_a_retrieved_study_is_laid_out_like_sample_dicom(orthanc, tmp_path):
    server, uids = orthanc
    dest = Pacs(server.dicomweb).retrieve_study(uids["W8"], tmp_path / "W8")
    assert listing(dest) == listing(SAMPLE / "W8")
    assert measured(dest) == measured(SAMPLE / "W8")
    assert [p.name for p in tmp_path.iterdir()] == ["W8"]  # no temporary folder left
    with pytest.raises(ImagingInputError, match="W8: already exists; a study is never "
                                                 "retrieved over another folder"):
        Pacs(server.dicomweb).retrieve_study(uids["W8"], dest)


@pytest.fixture(scope="module")
def first_pull(orthanc, tmp_path_factory) -> tuple[Path, int, str]:
    server, _ = orthanc
    out = tmp_path_factory.mktemp("pull") / "studies"
    capture = _Capture()
    with capture:
        status = recist(["pull", "--dicomweb", server.dicomweb, "--out", str(out),
                         "--subject", "DEMO-001", "--visit", *SCHEDULE])
    return out, status, capture.text


class _Capture:
    """stdout of a module-scoped fixture (capsys is function-scoped)."""

    def __enter__(self) -> None:
        import contextlib
        import io

        self._buffer = io.StringIO()
        self._redirect = contextlib.redirect_stdout(self._buffer)
        self._redirect.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._redirect.__exit__(*exc)
        self.text = self._buffer.getvalue()


def test_pull_writes_three_study_folders_measured_as_sample_dicom(orthanc, first_pull):
    server, uids = orthanc
    out, status, stdout = first_pull
    assert status == 0
    assert stdout == (f"recist pull: pulled 3, skipped 0, failed 0 "
                      f"({server.dicomweb} -> {out})\n")
    assert sorted(p.name for p in out.iterdir()) == [".pull.lock", "DEMO-001", MANIFEST]
    for visit in VISITS:
        folder = out / "DEMO-001" / visit
        assert listing(folder) == sorted([*listing(SAMPLE / visit), MEASUREMENT])
        written = json.loads((folder / MEASUREMENT).read_text())
        direct = measured(SAMPLE / visit)
        assert sizes(written) == sizes(direct)
        assert written == direct
    manifest = json.loads((out / MANIFEST).read_text())["studies"]
    assert {uid: (m["subject"], m["timepoint"], m["folder"], m["study_date"])
            for uid, m in manifest.items()} == {
        uids[v]: ("DEMO-001", v, f"DEMO-001/{v}", DATES[v].isoformat()) for v in VISITS}


def test_a_second_pull_skips_every_study_already_pulled(orthanc, first_pull, capsys):
    server, _ = orthanc
    out, _, _ = first_pull
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != ".pull.lock"}
    status = recist(["pull", "--dicomweb", server.dicomweb, "--out", str(out),
                     "--subject", "DEMO-001", "--visit", *SCHEDULE])
    assert status == 0
    assert "pulled 0, skipped 3, failed 0" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != ".pull.lock"} == before


def test_pull_since_a_date_retrieves_only_the_later_studies(orthanc, tmp_path, capsys):
    server, _ = orthanc
    status = recist(["pull", "--dicomweb", server.dicomweb, "--out", str(tmp_path),
                     "--subject", "DEMO-001", "--since", "2024-03-01"])
    assert status == 0
    assert "pulled 2, skipped 0, failed 0" in capsys.readouterr().out
    # without a schedule, a study is named after its date
    assert sorted(p.name for p in (tmp_path / "DEMO-001").iterdir()) == ["2024-03-04",
                                                                         "2024-04-29"]


# --- STOW-RS -----------------------------------------------------------------------------


def test_a_pushed_file_is_then_found_by_qido_with_its_trial_ids(orthanc, tmp_path, capsys):
    """A reviewed copy of W8's SEG under a trial subject and time point of its own."""
    server, _ = orthanc
    ds = pydicom.dcmread(SAMPLE / "W8" / "SEG.dcm")
    ds.PatientID = "PUSH-001"
    ds.ClinicalTrialSubjectID = "0101-777"
    ds.ClinicalTrialTimePointID = "W24"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "SEG.dcm")

    status = cli.main(["push", "--dicomweb", server.dicomweb, str(tmp_path / "SEG.dcm")])
    out = capsys.readouterr().out
    assert status == 0
    assert out == (f"stored {tmp_path / 'SEG.dcm'}: SEG Segmentation Storage "
                   f"{ds.SOPInstanceUID} (study {ds.StudyInstanceUID})\n"
                   f"recist push: stored 1 instance(s) on {server.dicomweb}\n")
    found = Pacs(server.dicomweb).find_studies(["0101-777"])
    assert [(s.study_uid, s.patient_id, s.subject, s.trial_time_point_id) for s in found] == [
        (ds.StudyInstanceUID, "PUSH-001", "0101-777", "W24")]
    assert timepoint_id(found[0]) == "W24"

    # a SEG alone is not a study to measure: the pull says so and writes nothing of it
    pulled = tmp_path / "pulled"
    assert recist(["pull", "--dicomweb", server.dicomweb, "--out", str(pulled),
                   "--subject", "0101-777"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"recist pull: {server.dicomweb}: study {ds.StudyInstanceUID}: "
                            "has no CT or MR series to measure on (SEG)\n")
    assert "pulled 0, skipped 0, failed 1" in captured.out
    assert sorted(p.name for p in pulled.iterdir()) == [".pull.lock"]


def test_an_exported_sr_pushed_into_its_study_comes_back_with_the_next_pull(tmp_path, capsys):
    """recist export-sr's report of W8, stored into W8's study, is retrieved as W8/SR.dcm
    and read back with its lesions. A PACS of its own: the shared one keeps sample_dicom's
    studies as they are, whatever order the tests run in."""
    from imaging_io.sr import read_measurement_report
    from imaging_io.sr_export import export_measurement_report

    require_orthanc()
    (tmp_path / "pacs").mkdir()
    with running_orthanc(tmp_path / "pacs") as server:
        uids = store_sample_studies(server.dicomweb, ("W8",))
        report = tmp_path / "W8-SR.dcm"
        export_measurement_report(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm", report,
                                  timepoint="W8")
        assert cli.main(["push", "--dicomweb", server.dicomweb, str(report)]) == 0
        assert f"(study {uids['W8']})" in capsys.readouterr().out
        [w8] = Pacs(server.dicomweb).find_studies(["DEMO-001"])
        assert (w8.study_uid, set(w8.modalities)) == (uids["W8"], {"CT", "SEG", "SR"})

        out = tmp_path / "studies"
        assert recist(["pull", "--dicomweb", server.dicomweb, "--out", str(out),
                       "--subject", "DEMO-001", "--visit", *SCHEDULE]) == 0
    folder = out / "DEMO-001" / "W8"
    assert listing(folder) == sorted([*listing(SAMPLE / "W8"), MEASUREMENT, "SR.dcm"])
    assert json.loads((folder / MEASUREMENT).read_text()) == measured(SAMPLE / "W8")
    assert {(m.tracking_identifier, m.kind) for m in read_measurement_report(
        folder / "SR.dcm")} == {(m.tracking_identifier, m.kind) for m in read_measurement_report(
        report)} != set()


def test_a_study_not_segmented_yet_is_reported_and_not_retrieved(orthanc, tmp_path, capsys):
    """A CT pushed as a folder, under a subject of its own, without its SEG."""
    server, _ = orthanc
    study, series = generate_uid(), generate_uid()
    (tmp_path / "CT").mkdir()
    for path in sorted((SAMPLE / "BL" / "CT").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CTONLY-001", study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(tmp_path / "CT" / path.name)
    assert cli.main(["push", "--dicomweb", server.dicomweb, str(tmp_path / "CT")]) == 0
    assert capsys.readouterr().out.endswith(f"stored 14 instance(s) on {server.dicomweb}\n")

    out = tmp_path / "pulled"
    assert recist(["pull", "--dicomweb", server.dicomweb, "--out", str(out),
                   "--subject", "CTONLY-001"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"recist pull: {server.dicomweb}: study {study}: has no SEG or "
                            "RTSTRUCT series to measure yet (CT)\n")
    assert captured.out.startswith("recist pull: pulled 0, skipped 0, failed 1 (")
    assert sorted(p.name for p in out.iterdir()) == [".pull.lock"]


def test_pushing_a_file_that_is_not_dicom_sends_nothing(orthanc, tmp_path, capsys):
    server, _ = orthanc
    ds = pydicom.dcmread(SAMPLE / "BL" / "SEG.dcm")
    ds.PatientID, ds.StudyInstanceUID = "NOTSENT-001", generate_uid()
    ds.save_as(tmp_path / "SEG.dcm")
    (tmp_path / "notes.txt").write_text("not DICOM")
    assert cli.main(["push", "--dicomweb", server.dicomweb, str(tmp_path / "SEG.dcm"),
                     str(tmp_path / "notes.txt")]) == 2
    notes = tmp_path / "notes.txt"
    assert capsys.readouterr().err == f"recist push: {notes}: is not a DICOM file\n"
    assert Pacs(server.dicomweb).find_studies(["NOTSENT-001"]) == []


# --- faults --------------------------------------------------------------------------------


def test_a_pacs_with_nothing_listening_exits_2_naming_the_url_after_retries(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    sleeps = Sleeps()
    status = recist(["pull", "--dicomweb", url, "--out", str(tmp_path / "out")], sleep=sleeps)
    err = capsys.readouterr().err
    assert status == 2
    assert err == (f"recist pull: {url}: QIDO-RS search for studies: cannot connect "
                   "(connection refused: is the PACS running?) after 4 attempts\n")
    assert sleeps == [0.5, 1.0, 2.0]
    assert not (tmp_path / "out").exists()


class _Stub(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        import traceback

        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):  # a client hanging up is expected
            traceback.print_exc(file=sys.__stderr__)  # not into capsys: the test reads it


@pytest.fixture
def stub() -> Iterator[Callable[[Callable[[http.server.BaseHTTPRequestHandler], None]], str]]:
    """A local HTTP server in a thread whose GET handler the test gives; yields its URL."""
    servers: list[_Stub] = []

    def start(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                answer(self)

            def log_message(self, *args: object) -> None:
                pass

        server = _Stub(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/dicom-web"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_an_http_500_is_retried_then_reported(stub, tmp_path, capsys):
    def fail(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_error(500)

    url = stub(fail)
    sleeps = Sleeps()
    status = recist(["pull", "--dicomweb", url, "--out", str(tmp_path)], sleep=sleeps)
    assert status == 2
    assert capsys.readouterr().err == (f"recist pull: {url}: QIDO-RS search for studies: "
                                       "HTTP 500 Internal Server Error after 4 attempts\n")
    assert sleeps == [0.5, 1.0, 2.0]


def test_an_http_404_is_not_retried(stub, tmp_path, capsys):
    def missing(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_error(404)

    url = stub(missing)
    sleeps = Sleeps()
    assert recist(["pull", "--dicomweb", url, "--out", str(tmp_path)], sleep=sleeps) == 2
    assert capsys.readouterr().err == (f"recist pull: {url}: QIDO-RS search for studies: "
                                       "HTTP 404 Not Found\n")
    assert sleeps == []


def test_a_pacs_that_does_not_answer_in_time_is_retried_then_reported(stub, tmp_path, capsys):
    def slow(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(1.0)
        handler.send_error(503)

    url = stub(slow)
    sleeps = Sleeps()
    status = recist(["pull", "--dicomweb", url, "--out", str(tmp_path), "--timeout", "0.2",
                     "--retries", "1"], sleep=sleeps)
    assert status == 2
    assert capsys.readouterr().err == (f"recist pull: {url}: QIDO-RS search for studies: "
                                       "no answer within 0.2 s (timeout) after 2 attempts\n")
    assert sleeps == [0.5]


@pytest.mark.parametrize(("fault", "reported"), [
    ("broken off", "the response broke off before its end (partial transfer: "),
    ("cut short", "invalid or partial multipart response ("),
    ("HTTP 500", "HTTP 500 Internal Server Error"),
])
def test_a_failed_retrieval_leaves_nothing_half_written(orthanc, stub, tmp_path, capsys, fault,
                                                       reported):
    """A proxy in front of Orthanc spoils every transfer of W8's CT series: half of it then
    the connection closed ("broken off"), half of it as if whole ("cut short": the
    multipart answer ends inside an instance), or an HTTP 500. W8 fails after the retries,
    BL and W16 are pulled, and nothing of W8 is left behind; the next pull (PACS mended)
    retrieves W8 alone."""
    server, uids = orthanc
    w8_ct = pydicom.dcmread(SAMPLE / "W8" / "CT" / "CT0000.dcm").SeriesInstanceUID
    origin = server.url.removeprefix("http://")

    def proxy(handler: http.server.BaseHTTPRequestHandler) -> None:
        spoiled = handler.path.endswith(f"/series/{w8_ct}")
        if spoiled and fault == "HTTP 500":
            handler.send_error(500)
            return
        connection = http.client.HTTPConnection(origin, timeout=10)
        try:
            connection.request("GET", handler.path, headers={
                **{k: v for k, v in handler.headers.items() if k.lower() != "host"},
                "Connection": "close"})
            answer = connection.getresponse()
            body = answer.read()
        finally:
            connection.close()
        sent = body[: len(body) // 2] if spoiled else body
        handler.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                   "keep-alive"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body if fault == "broken off" else sent)))
        handler.send_header("Connection", "close")  # so that the client never reuses it
        handler.end_headers()
        handler.wfile.write(sent)
        handler.close_connection = True

    url = stub(proxy)
    out = tmp_path / "studies"
    sleeps = Sleeps()
    status = recist(["pull", "--dicomweb", url, "--out", str(out), "--subject", "DEMO-001",
                     "--visit", *SCHEDULE], sleep=sleeps)
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == f"recist pull: pulled 2, skipped 0, failed 1 ({url} -> {out})\n"
    assert captured.err.startswith(
        f"recist pull: {url}: study {uids['W8']}: WADO-RS retrieve of series {w8_ct}: {reported}")
    assert captured.err.endswith(" after 4 attempts\n") and captured.err.count("\n") == 1
    assert sleeps == [0.5, 1.0, 2.0]
    assert sorted(p.name for p in out.iterdir()) == [".pull.lock", "DEMO-001", MANIFEST]
    assert sorted(p.name for p in (out / "DEMO-001").iterdir()) == ["BL", "W16"]
    manifest = json.loads((out / MANIFEST).read_text())["studies"]
    assert set(manifest) == {uids["BL"], uids["W16"]}

    assert recist(["pull", "--dicomweb", server.dicomweb, "--out", str(out),
                   "--subject", "DEMO-001", "--visit", *SCHEDULE]) == 0
    assert "pulled 1, skipped 2, failed 0" in capsys.readouterr().out
    assert json.loads((out / "DEMO-001" / "W8" / MEASUREMENT).read_text()) == measured(
        SAMPLE / "W8")


def test_dicomweb_error_names_the_url_and_the_study():
    error = DicomWebError("http://pacs/dicom-web", "HTTP 503 Service Unavailable after 4 "
                          "attempts", study_uid="1.2.3", transient=True, attempts=4)
    assert isinstance(error, ImagingInputError)
    assert str(error) == ("http://pacs/dicom-web: study 1.2.3: HTTP 503 Service Unavailable "
                          "after 4 attempts")
