"""`recist batch` (issue 13): many studies measured in Dask tasks, cases built as `recist
ingest` builds them and assessed, outputs that survive a killed client or worker.

The studies: sample_dicom's DEMO-001 (BL, W8, W16: PR then PD) and SYN-001, two small
phantom studies (a 24 mm liver target shrinking to 16 mm, and a bone non-target). The
in-process run (``workers=0``) is the reference every other run is compared with. Dask
clusters here have 2 worker processes of 1 thread each (the machine has two cores).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from imaging_io.batch import (
    CASES,
    JOURNAL,
    MEASUREMENTS,
    RESULTS,
    SUMMARY,
    Progress,
    StudyRow,
    _lock,
    discover,
    lesions_from_baseline,
    measure_row,
    read_manifest,
    read_start_cases,
    run_batch,
)
from imaging_io.errors import ImagingInputError
from imaging_io.measure import measure_study
from imaging_io.phantoms import (
    AxialGrid,
    Ellipsoid,
    SegmentSpec,
    ellipsoid_mask,
    write_ct_series,
    write_seg,
)
from recist import cli
from recist.jsonio import assess_json

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_dicom"
DEMO = json.loads((SAMPLE / "demo_case.json").read_text())
HERE = Path(__file__).resolve().parent


# --- hooks run by the workers (importable: the workers share this process's sys.path) ---


def slow_measure(task: dict[str, str]) -> dict[str, Any]:
    """A study that takes half a second longer: time enough to kill the client mid-batch."""
    time.sleep(0.5)
    return measure_row(task)


def kill_worker_once(marker: str, task: dict[str, str]) -> dict[str, Any]:
    """The first task to run kills its own worker process (as the OOM killer would)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return measure_row(task)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


# --- the studies -------------------------------------------------------------------------


def _phantom_study(folder: Path, day: dt.date, liver_mm: float) -> None:
    grid = AxialGrid(rows=48, columns=48, slices=8, pixel_mm=1.0, spacing_mm=2.5,
                     origin_mm=(-23.5, -23.5, -8.75))
    lesions = {
        ("liver lesion", "T1"): Ellipsoid((-6.0, -4.0, 0.0), (liver_mm / 2, liver_mm / 3, 6.0)),
        ("bone lesion", "NT1"): Ellipsoid((12.0, 10.0, 0.0), (5.0, 4.0, 4.0)),
    }
    masks = {key: ellipsoid_mask(grid, e) for key, e in lesions.items()}
    hu = np.full((grid.slices, grid.rows, grid.columns), 40.0)
    for mask in masks.values():
        hu[mask] = 90.0
    datasets = write_ct_series(folder / "CT", hu, grid, patient_id="SYN-001", study_date=day)
    write_seg(folder / "SEG.dcm", datasets,
              [SegmentSpec(label, tracking, mask) for (label, tracking), mask in masks.items()])


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``studies/<subject>/<timepoint>/`` (CT/ + SEG.dcm), a CSV manifest of them with
    relative paths, and the starting case of DEMO-001 (its lesions, no timepoint)."""
    root = tmp_path_factory.mktemp("batch")
    studies = root / "studies"
    for visit in ("BL", "W8", "W16"):
        shutil.copytree(SAMPLE / visit, studies / "DEMO-001" / visit)
    _phantom_study(studies / "SYN-001" / "BL", dt.date(2024, 2, 1), 24.0)
    _phantom_study(studies / "SYN-001" / "W8", dt.date(2024, 3, 28), 16.0)
    lines = ["subject,timepoint,image,seg"]
    for subject, visits in (("DEMO-001", ("BL", "W8", "W16")), ("SYN-001", ("BL", "W8"))):
        lines += [f"{subject},{v},studies/{subject}/{v}/CT,studies/{subject}/{v}/SEG.dcm"
                  for v in visits]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    start = json.loads(json.dumps(DEMO))
    start["timepoints"] = []
    for lesion in start["lesions"]:
        lesion.pop("modality")
        lesion.pop("slice_thickness_mm")
    (root / "cases.jsonl").write_text(json.dumps(start) + "\n")
    return root


def _outputs(folder: Path) -> dict[str, Any]:
    """What a batch leaves, less the figures of the run itself (time, what it skipped)."""
    got: dict[str, Any] = {n: (folder / n).read_text() for n in (MEASUREMENTS, CASES, RESULTS)}
    summary = json.loads((folder / SUMMARY).read_text())
    summary.pop("this_run")
    got[SUMMARY] = summary
    return got


def _lines(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tree: Path) -> Path:
    """The in-process run: each study measured here, one after the other."""
    out = tree / "reference"
    summary = run_batch(read_manifest(tree / "manifest.csv"), out, workers=0,
                        start_cases=read_start_cases(tree / "cases.jsonl"))
    assert summary["this_run"]["executor"] == "in-process"
    return out


def _main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as exc:
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


# --- the manifest ------------------------------------------------------------------------


def test_a_json_lines_manifest_lists_the_studies_of_its_csv_twin(tree: Path) -> None:
    rows = read_manifest(tree / "manifest.csv")
    jsonl = tree / "manifest.jsonl"
    jsonl.write_text("\n".join(json.dumps({"subject": r.subject, "timepoint": r.timepoint,
                                           "image": r.image, "seg": r.seg}) for r in rows))
    assert read_manifest(jsonl) == rows
    assert [(r.subject, r.timepoint) for r in rows][:2] == [("DEMO-001", "BL"),
                                                          ("DEMO-001", "W8")]
    assert rows[0].image == str(tree / "studies/DEMO-001/BL/CT")  # from the manifest's folder


@pytest.mark.parametrize(("text", "message"), [
    ("subject,timepoint,image,segmentation\n", r"header: unknown column 'segmentation'"),
    ("subject,timepoint,image\n", r"header: no seg column"),
    ("subject,timepoint,image,seg\nS1,,a,b\n", r"line 2: timepoint is empty"),
    ("subject,timepoint,image,seg,date\nS1,BL,a,b,08/01/2024\n",
     r"line 2: date '08/01/2024' is not a date \(YYYY-MM-DD\)"),
    ("subject,timepoint,image,seg\nS1,BL,a,b\nS1,BL,c,d\n",
     r"line 3: subject S1, timepoint BL is already on line 2"),
    ("subject,timepoint,image,seg\n", r"the manifest lists no study"),
    ('{"subject": "S1", "timepoint": "BL", "image": "a", "seg": 3}\n',
     r"line 1: seg must be a string, not 3"),
])
def test_a_manifest_is_refused_naming_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ImagingInputError, match=message):
        read_manifest(path)


def test_discovery_takes_subject_then_timepoint_folders(tree: Path) -> None:
    rows = discover(tree / "studies")
    assert [(r.subject, r.timepoint) for r in rows] == [
        ("DEMO-001", "BL"), ("DEMO-001", "W16"), ("DEMO-001", "W8"),
        ("SYN-001", "BL"), ("SYN-001", "W8")]
    assert rows[1].image == str(tree / "studies/DEMO-001/W16/CT")
    assert rows[1].seg == str(tree / "studies/DEMO-001/W16/SEG.dcm")


def test_discovery_reads_the_folders_recist_pull_writes(tmp_path: Path) -> None:
    visit = tmp_path / "pulled" / "0101-004" / "2024-03-04"
    (visit / "CT").mkdir(parents=True)
    for name in ("RTSTRUCT.dcm", "SR.dcm", "measure.json"):
        (visit / name).write_text("")
    (tmp_path / "pulled" / "pull-manifest.json").write_text("{}")
    (tmp_path / "pulled" / ".pull-tmp").mkdir()
    (row,) = discover(tmp_path / "pulled")
    assert (row.subject, row.timepoint) == ("0101-004", "2024-03-04")
    assert (row.image, row.seg) == (str(visit / "CT"), str(visit / "RTSTRUCT.dcm"))


def test_discovery_pairs_an_image_file_with_its_label_map(tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    layouts = {
        ("S1", "BL"): ("image.nii.gz", "labels.nii.gz"),
        ("S1", "W8"): ("ct.nrrd", "CT_seg.nrrd"),
        ("S2", "BL"): ("scan.mha", "scan-Mask.mha"),
        ("S3", "BL"): ("a.nii.gz", "b.nii.gz"),  # no label-map name: not guessed
        ("S4", "BL"): ("image.nii.gz", "labels.nii.gz", "mask.nii.gz"),  # two label maps
    }
    for (subject, visit), names in layouts.items():
        (studies / subject / visit).mkdir(parents=True)
        for name in names:
            (studies / subject / visit / name).write_text("")
    (studies / "S5" / "BL" / "CT").mkdir(parents=True)  # a DICOM series with a label map
    (studies / "S5" / "BL" / "labels.nii.gz").write_text("")
    found = {(r.subject, r.timepoint): (Path(r.image).relative_to(studies).as_posix(),
                                        Path(r.seg).relative_to(studies).as_posix())
             for r in discover(studies)}
    assert found == {
        ("S1", "BL"): ("S1/BL/image.nii.gz", "S1/BL/labels.nii.gz"),
        ("S1", "W8"): ("S1/W8/ct.nrrd", "S1/W8/CT_seg.nrrd"),
        ("S2", "BL"): ("S2/BL/scan.mha", "S2/BL/scan-Mask.mha"),
        ("S3", "BL"): ("S3/BL/CT", "S3/BL/SEG.dcm"),  # measuring names what is missing
        ("S4", "BL"): ("S4/BL/CT", "S4/BL/SEG.dcm"),
        ("S5", "BL"): ("S5/BL/CT", "S5/BL/labels.nii.gz"),
    }


# --- what a batch gives ------------------------------------------------------------------


def test_the_batch_rebuilds_the_demo_case_recist_ingest_builds(reference: Path) -> None:
    cases = {c["subject_id"]: c for c in _lines(reference, CASES)}
    assert cases["DEMO-001"] == DEMO
    results = {r["subject_id"]: r for r in _lines(reference, RESULTS)}
    assert results["DEMO-001"] == assess_json(DEMO)
    assert [tp["overall_response"] for tp in results["DEMO-001"]["timepoints"]] == [
        None, "PR", "PD"]


def test_each_lesion_line_holds_the_numbers_of_recist_measure(reference: Path) -> None:
    lines = [m for m in _lines(reference, MEASUREMENTS)
             if (m["subject_id"], m["timepoint"]) == ("DEMO-001", "W8")]
    measured = measure_study(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm").to_dict()
    keep = ("subject_id", "timepoint", "date", "image", "seg")
    assert [{k: v for k, v in m.items() if k not in keep} for m in lines] == measured["lesions"]
    assert {m["date"] for m in lines} == {"2024-03-04"}
    order = [(m["subject_id"], m["timepoint"]) for m in _lines(reference, MEASUREMENTS)]
    assert list(dict.fromkeys(order)) == [("DEMO-001", "BL"), ("DEMO-001", "W8"),
                                          ("DEMO-001", "W16"), ("SYN-001", "BL"),
                                          ("SYN-001", "W8")]  # by subject, then date


def test_without_a_starting_case_the_first_timepoint_defines_the_lesions(
        reference: Path) -> None:
    cases = {c["subject_id"]: c for c in _lines(reference, CASES)}
    # The baseline's segment volumes go with the lesions (R-ELIG-VOLUME), as ingest does.
    volumes = {m["tracking_id"] or m["label"]: m["volume_ml"]
               for m in _lines(reference, MEASUREMENTS)
               if (m["subject_id"], m["timepoint"]) == ("SYN-001", "BL")}
    assert volumes["T1"] > 0
    assert cases["SYN-001"]["lesions"] == [
        {"id": "T1", "site": "liver lesion", "kind": "target", "nodal": False,
         "volume_ml": volumes["T1"], "modality": "CT", "slice_thickness_mm": 2.5},
        {"id": "NT1", "site": "bone lesion", "kind": "non-target", "nodal": False,
         "volume_ml": volumes["NT1"], "modality": "CT", "slice_thickness_mm": 2.5},
    ]
    result = {r["subject_id"]: r for r in _lines(reference, RESULTS)}["SYN-001"]
    assert [tp["overall_response"] for tp in result["timepoints"]] == [None, "PR"]
    first = json.loads((reference / JOURNAL).read_text().splitlines()[0])["measurement"]
    lesions = {le["id"]: le for le in lesions_from_baseline(first)}
    assert lesions["T3"] == {"id": "T3", "site": "lymph node", "kind": "target", "nodal": True}
    assert lesions["NT1"]["kind"] == "non-target"


def test_the_summary_lists_every_study_and_subject(reference: Path) -> None:
    summary = json.loads((reference / SUMMARY).read_text())
    assert (summary["studies"], summary["measured"], summary["refused"],
            summary["failed"]) == (5, 5, 0, 0)
    assert (summary["subjects"], summary["assessed"]) == (2, 2)
    assert summary["successes"][0]["date"] == "2024-01-08"
    assert summary["this_run"]["measured_now"] == 5


def test_a_local_cluster_of_two_workers_gives_the_in_process_results(
        tree: Path, reference: Path) -> None:
    out = tree / "cluster"
    status, stdout, err = _main(["batch", str(tree / "manifest.csv"), "--out", str(out),
                                 "--cases", str(tree / "cases.jsonl"), "--workers", "2",
                                 "--quiet"])
    assert (status, err) == (0, ""), err
    assert stdout == (f"recist batch: 5 studies: 5 measured, 0 refused, 0 failed; 2 of 2 "
                      f"subjects assessed; results in {out}\n")
    assert _outputs(out) == _outputs(reference)
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["this_run"]["executor"] == "LocalCluster of 2 worker processes"


# --- what goes wrong ---------------------------------------------------------------------


def test_a_truncated_study_is_refused_naming_it_and_the_others_complete(tree: Path,
                                                                       tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    shutil.copytree(tree / "studies", studies)
    seg = studies / "DEMO-001" / "W8" / "SEG.dcm"
    seg.write_bytes(seg.read_bytes()[:3000])
    out = tmp_path / "out"
    status, stdout, err = _main(["batch", "--discover", str(studies), "--out", str(out),
                                 "--workers", "0", "--quiet"])
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith(f"recist batch: refused DEMO-001 W8: {seg}: ")
    assert "4 measured, 1 refused, 0 failed; 1 of 2 subjects assessed" in stdout
    summary = json.loads((out / SUMMARY).read_text())
    (refusal,) = summary["refusals"]
    assert (refusal["subject_id"], refusal["timepoint"], refusal["seg"]) == (
        "DEMO-001", "W8", str(seg))
    assert refusal["reason"] == err.split(": ", 2)[2].strip()  # the reader's line, naming it
    assert summary["subjects_not_assessed"] == [{
        "subject_id": "DEMO-001",
        "reason": "subject DEMO-001: not assessed, study W8 refused (see refusals and "
                  "failures)"}]
    assert [r["subject_id"] for r in _lines(out, RESULTS)] == ["SYN-001"]


def test_a_rerun_skips_done_studies_and_rewrites_lost_outputs(tree: Path, reference: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / MEASUREMENTS).unlink()
    (out / RESULTS).write_text('{"subject_id": "DEMO-001", "tim')
    journal = (out / JOURNAL).read_text().splitlines(keepends=True)
    # the last study's record lost, and a record torn by a crash in the middle of a write
    (out / JOURNAL).write_text("".join(journal[:-1]) + journal[-1][:40])
    starts = read_start_cases(tree / "cases.jsonl")
    summary = run_batch(read_manifest(tree / "manifest.csv"), out, workers=0,
                        start_cases=starts)
    assert (summary["this_run"]["measured_now"], summary["this_run"]["skipped_done"]) == (1, 4)
    assert _outputs(out) == _outputs(reference)
    assert (out / JOURNAL).read_text().count("\n") == 5
    again = run_batch(read_manifest(tree / "manifest.csv"), out, workers=0,
                      start_cases=starts)
    assert again["this_run"]["measured_now"] == 0
    assert _outputs(out) == _outputs(reference)


_CLIENT = """
import sys
sys.path.insert(0, {here!r})
from test_io_batch import slow_measure
from imaging_io.batch import read_manifest, read_start_cases, run_batch
run_batch(read_manifest({manifest!r}), {out!r}, workers=2, measure=slow_measure,
          start_cases=read_start_cases({cases!r}))
"""


def test_a_client_killed_mid_batch_resumes_to_the_uninterrupted_results(
        tree: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = _CLIENT.format(here=str(HERE), manifest=str(tree / "manifest.csv"), out=str(out),
                          cases=str(tree / "cases.jsonl"))
    log = tmp_path / "client.log"  # the killed client's resource tracker reports there
    with log.open("w") as stderr:
        client = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=stderr)
    journal = out / JOURNAL
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.read_text().count("\n") >= 2):
        assert client.poll() is None, f"the batch ended first: {log.read_text()}"
        assert time.monotonic() < deadline, "no study finished within 60 s"
        time.sleep(0.05)
    children = psutil.Process(client.pid).children(recursive=True)
    client.send_signal(signal.SIGKILL)
    client.wait()
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"worker processes outlived their client: {alive}"
    done = journal.read_text().count("\n")
    assert 2 <= done < 5
    assert not (out / SUMMARY).exists()

    status, _, err = _main(["batch", str(tree / "manifest.csv"), "--out", str(out),
                            "--cases", str(tree / "cases.jsonl"), "--workers", "0"])
    assert status == 0, err
    assert err.startswith(f"recist batch: {done} of 5 studies done in an earlier run; skipped\n")
    assert json.loads((out / SUMMARY).read_text())["this_run"]["measured_now"] == 5 - done
    assert _outputs(out) == _outputs(reference)


def test_a_worker_killed_mid_batch_is_replaced_and_the_batch_completes(
        tree: Path, reference: Path, tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    out = tmp_path / "out"
    summary = run_batch(read_manifest(tree / "manifest.csv"), out, workers=2,
                        start_cases=read_start_cases(tree / "cases.jsonl"),
                        measure=functools.partial(kill_worker_once, str(marker)))
    assert marker.exists()  # a worker did die
    assert (summary["measured"], summary["failed"]) == (5, 0)
    assert _outputs(out) == _outputs(reference)


def test_a_task_that_raises_is_a_failure_reported_with_its_paths(tmp_path: Path) -> None:
    def broken(task: dict[str, str]) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    row = StudyRow("S1", "BL", "/nowhere/CT", "/nowhere/SEG.dcm")
    err = io.StringIO()
    summary = run_batch([row], tmp_path / "out", workers=0, measure=broken,
                        progress=Progress(err, "quiet"))
    assert summary["failures"] == [{"subject_id": "S1", "timepoint": "BL",
                                    "image": "/nowhere/CT", "seg": "/nowhere/SEG.dcm",
                                    "reason": "RuntimeError: disk on fire"}]
    assert err.getvalue() == ("recist batch: failed S1 BL (image /nowhere/CT, seg "
                              "/nowhere/SEG.dcm): RuntimeError: disk on fire\n")
    # a failed study is measured again by the next run
    again = run_batch([row], tmp_path / "out", workers=0, measure=broken)
    assert again["this_run"]["measured_now"] == 1


def test_a_results_folder_in_use_is_refused(tmp_path: Path) -> None:
    tmp_path.joinpath("out").mkdir()
    held = _lock(tmp_path / "out")
    try:
        with pytest.raises(ImagingInputError, match=r"out: is in use by another recist batch"):
            run_batch([StudyRow("S1", "BL", "a", "b")], tmp_path / "out", workers=0)
    finally:
        os.close(held)


def test_a_bad_manifest_exits_2_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("subject,visit,image,seg\n")
    status, stdout, err = _main(["batch", str(path), "--out", str(tmp_path / "o")])
    assert (status, stdout) == (2, "")
    assert err == (f"recist batch: {path}: header: unknown column 'visit'; the columns are "
                   "subject, timepoint, image, seg and optionally date\n")


# --- progress ----------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_shows_counts_rate_and_time_left() -> None:
    clock, stream = _Clock(), io.StringIO()
    bar = Progress(stream, "bar", clock=clock)
    bar.start(total=20, done_before=4)
    row = StudyRow("S1", "W8", "/a/CT", "/a/SEG.dcm")
    for _ in range(3):
        clock.now += 1.0
        bar.update(row, {"status": "ok"})
    clock.now += 1.0
    bar.update(row, {"status": "refused", "reason": "/a/SEG.dcm: is not a DICOM file"})
    assert bar.text() == (" 8/20 [##########--------------]  40 %  ok 3  refused 1  "
                          "failed 0  1.00 studies/s  ETA 12s")
    shown = stream.getvalue()
    assert "recist batch: 4 of 20 studies done in an earlier run; skipped\n" in shown
    assert "recist batch: refused S1 W8: /a/SEG.dcm: is not a DICOM file\n" in shown
    assert shown.endswith("\r\x1b[K" + bar.text())


def test_logs_get_one_line_per_study_and_quiet_only_the_problems() -> None:
    row = StudyRow("S1", "BL", "/a/CT", "/a/SEG.dcm")
    log, quiet = io.StringIO(), io.StringIO()
    for stream, mode in ((log, "log"), (quiet, "quiet")):
        progress = Progress(stream, mode)
        progress.start(total=2, done_before=0)
        progress.update(row, {"status": "ok"})
        progress.update(row, {"status": "refused", "reason": "/a/SEG.dcm: empty"})
        progress.close()
    assert log.getvalue() == ("recist batch: [1/2] ok S1 BL\n"
                              "recist batch: refused S1 BL: /a/SEG.dcm: empty\n")
    assert quiet.getvalue() == "recist batch: refused S1 BL: /a/SEG.dcm: empty\n"
