"""Benchmark of `recist batch` (issue 13): studies/s in process and on a local Dask cluster.

Writes ``--distinct`` synthetic CT studies (``--size`` columns × rows × slices, 350 mm
field of view, 2.5 mm slices, a binary DICOM SEG of 3 ellipsoid lesions: two targets and a
bone non-target, their sizes varying from study to study) and a manifest of ``--studies``
rows that use them in turn, two timepoints (BL, W8) per subject. Rows share the distinct
studies so that 200 studies do not need 200 × 100 files on disk; every row is read and
measured all the same (from the page cache, as a warm-up pass reads every study first).

Timed, each into a fresh results folder, best of ``--repeat``:

- one study measured in this process (``imaging_io.batch.measure_row``, best of 3), and
  every row measured in a plain loop with nothing written: the reference;
- the batch in this process (``workers=0``): per-study overhead of the journal (one
  ``fsync`` per study), the outputs, building and assessing the cases;
- the batch on a local Dask cluster of 1 and of 2 worker processes (1 thread each, ITK and
  OpenMP held to one thread: ``imaging_io.batch.WORKER_ENV``; this process too). The
  cluster is started, and each worker measures one study to load the readers, before
  the clock: that start-up is printed apart (paid once per batch).

Then the scaling ratio (2 workers / 1 worker) and the per-study overhead: wall time per
study less the plain loop's time per study. Figures are printed, never asserted.

``--orthanc`` times instead where the studies come from: ``--studies`` distinct studies are
stored (STOW-RS, not timed) in a throwaway local Orthanc (Debian's ``orthanc`` +
``orthanc-dicomweb``, started as ``tests/imaging_io/orthanc.py`` starts it for the tests),
then, best of ``--repeat``: each study pulled to disk with
:meth:`imaging_io.dicomweb.Pacs.retrieve_study` (QIDO-RS for its series, WADO-RS for the
instances, written to a fresh folder: what ``recist pull`` and the web's "Check the PACS
now" do before measuring), against reading the same files from disk (every file parsed
with pydicom, pixels included, from the page cache), both in studies/s and MB/s.

    .venv/bin/python benchmarks/bench_batch.py                        # 24 studies 128×128×40
    .venv/bin/python benchmarks/bench_batch.py --studies 200 --size 256 256 100   # issue 13
    .venv/bin/python benchmarks/bench_batch.py --orthanc --studies 20 --size 256 256 100
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FOV_MM = 350.0
SPACING_MM = 2.5


def make_study(folder: Path, size: tuple[int, int, int], number: int) -> None:
    """One CT series (one file per slice) and its SEG of 3 lesions under ``folder``."""
    from imaging_io.phantoms import (
        AxialGrid,
        Ellipsoid,
        SegmentSpec,
        ellipsoid_mask,
        write_ct_series,
        write_seg,
    )

    cols, rows, slices = size
    pixel = FOV_MM / cols
    origin = (-(cols - 1) * pixel / 2, -(rows - 1) * pixel / 2, -(slices - 1) * SPACING_MM / 2)
    grid = AxialGrid(rows, cols, slices, pixel, SPACING_MM, origin)
    scale = 1.0 - 0.08 * (number % 5)  # lesions shrink and grow from study to study
    half = min(FOV_MM / 2, slices * SPACING_MM / 2)
    lesions = [
        ("liver lesion", "T1", Ellipsoid((-60.0, 30.0, 0.0), (22 * scale, 15 * scale, 12.0), 30)),
        ("lung lesion", "T2", Ellipsoid((70.0, -40.0, half / 3), (14 * scale, 10 * scale, 9.0))),
        ("bone lesion", "NT1", Ellipsoid((10.0, 90.0, -half / 3), (9.0, 7.0, 7.0))),
    ]
    masks = [(label, tracking, ellipsoid_mask(grid, e)) for label, tracking, e in lesions]
    hu = np.full((slices, rows, cols), -900.0, dtype=np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols]
    hu[:, ((xx - cols / 2) / (0.45 * cols)) ** 2 + ((yy - rows / 2) / (0.35 * rows)) ** 2 <= 1] = 40
    for _, _, mask in masks:
        hu[mask] = 90.0
    datasets = write_ct_series(folder / "CT", hu, grid, patient_id=f"BENCH-{number}",
                               uid_seed=f"bench-batch-{number}")
    write_seg(folder / "SEG.dcm", datasets,
              [SegmentSpec(label, tracking, mask) for label, tracking, mask in masks],
              uid_seed=f"bench-batch-seg-{number}")


def write_manifest(root: Path, studies: int, distinct: int) -> Path:
    """``studies`` rows over the distinct studies, subject S0001 … with BL and W8."""
    lines = ["subject,timepoint,image,seg,date"]
    for i in range(studies):
        subject, visit = f"S{i // 2 + 1:04d}", ("BL", "W8")[i % 2]
        day = ("2024-01-08", "2024-03-04")[i % 2]
        k = i % distinct
        lines.append(f"{subject},{visit},study{k}/CT,study{k}/SEG.dcm,{day}")
    path = root / "manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def one_study(root: Path, repeat: int) -> float:
    """Best time of measuring one study in this process (imports and cache warm)."""
    from imaging_io.batch import measure_row

    task = {"subject_id": "S", "timepoint": "BL", "image": str(root / "study0" / "CT"),
            "seg": str(root / "study0" / "SEG.dcm")}
    measure_row(task)
    best = float("inf")
    for _ in range(max(3, repeat)):
        start = time.perf_counter()
        record = measure_row(task)
        best = min(best, time.perf_counter() - start)
        assert record["status"] == "ok", record
    return best


def plain_loop(manifest: Path, repeat: int) -> float:
    """Best time of measuring every row in this process, one after the other, with nothing
    written or assessed: what the batch costs beyond measuring."""
    from imaging_io.batch import measure_row, read_manifest

    tasks = [row.task() for row in read_manifest(manifest)]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for task in tasks:
            assert measure_row(task)["status"] == "ok"
        best = min(best, time.perf_counter() - start)
    return best


def batch(root: Path, manifest: Path, workers: int, repeat: int) -> tuple[float, float]:
    """Best (cluster start-up, batch seconds) of ``repeat`` runs into fresh folders."""
    from imaging_io.batch import WORKER_ENV, measure_row, read_manifest, run_batch

    rows = read_manifest(manifest)
    best = (float("inf"), float("inf"))
    for attempt in range(repeat):
        out = root / f"out-{workers}-{attempt}"
        cluster = None
        start = time.perf_counter()
        if workers:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR,
                                   env=WORKER_ENV)
            with Client(cluster) as client:  # each worker imports the readers once
                client.run(measure_row, rows[0].task())
        started = time.perf_counter() - start
        try:
            start = time.perf_counter()
            summary = run_batch(rows, out, workers=0 if cluster is None else workers,
                                scheduler=None if cluster is None else cluster.scheduler_address)
            seconds = time.perf_counter() - start
        finally:
            if cluster is not None:
                cluster.close()
        assert summary["measured"] == len(rows), summary["refusals"] + summary["failures"]
        assert summary["assessed"] == summary["subjects"], summary["subjects_not_assessed"]
        shutil.rmtree(out)
        if seconds < best[1]:
            best = (started, seconds)
    return best


def _read_from_disk(folders: list[Path]) -> int:
    """Parse every file of the studies with pydicom (pixels included); returns bytes."""
    import pydicom

    total = 0
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            dataset = pydicom.dcmread(path)
            total += len(dataset.PixelData) if "PixelData" in dataset else 0
    return total


def pull_against_disk(root: Path, count: int, size: tuple[int, int, int], repeat: int) -> None:
    """Studies/s pulled from a throwaway local Orthanc against read from disk (printed)."""
    import pydicom
    from dicomweb_client.api import DICOMwebClient

    sys.path.insert(0, str(ROOT))  # tests/imaging_io/orthanc.py: the tests' Orthanc
    from imaging_io.dicomweb import Pacs
    from tests.imaging_io.orthanc import find_orthanc, running_orthanc

    found = find_orthanc()
    if isinstance(found, str):
        raise SystemExit(f"bench_batch --orthanc: {found}")
    folders = [root / f"study{k}" for k in range(count)]
    start = time.perf_counter()
    for k, folder in enumerate(folders):
        make_study(folder, size, k)
    files = [p for f in folders for p in f.rglob("*.dcm")]
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    print(f"{count} studies of {size[0]}×{size[1]}×{size[2]} + SEG ({len(files)} files, "
          f"{megabytes:.1f} MB) written in {time.perf_counter() - start:.1f} s")
    (root / "orthanc").mkdir()
    with running_orthanc(root / "orthanc") as server:
        client = DICOMwebClient(server.dicomweb)
        uids = []
        start = time.perf_counter()
        for folder in folders:
            datasets = [pydicom.dcmread(p) for p in sorted(folder.rglob("*.dcm"))]
            answer = client.store_instances(datasets)
            assert not answer.get("FailedSOPSequence"), answer
            uids.append(str(datasets[0].StudyInstanceUID))
        print(f"Orthanc {server.version} started in {server.started_in_s:.1f} s; studies "
              f"stored (STOW-RS) in {time.perf_counter() - start:.1f} s")
        pacs = Pacs(server.dicomweb)
        pacs.retrieve_study(uids[0], root / "warm-up")  # connection, imports
        _read_from_disk(folders[:1])
        pulled = disk = float("inf")
        for attempt in range(repeat):
            target = root / f"pulled-{attempt}"
            start = time.perf_counter()
            for k, uid in enumerate(uids):
                pacs.retrieve_study(uid, target / f"study{k}")
            pulled = min(pulled, time.perf_counter() - start)
            got = len(list(target.rglob("*.dcm")))
            assert got == len(files), (got, len(files))
            shutil.rmtree(target)
            start = time.perf_counter()
            _read_from_disk(folders)
            disk = min(disk, time.perf_counter() - start)
    print(f"{'':26} {'seconds':>8} {'studies/s':>10} {'MB/s':>8}")
    for name, seconds in (("pulled from Orthanc", pulled), ("read from disk (pydicom)", disk)):
        print(f"{name:26} {seconds:8.2f} {count / seconds:10.2f} {megabytes / seconds:8.1f}")
    print(f"pull / disk read time: {pulled / disk:.1f}× (best of {repeat}; loopback HTTP, "
          "Orthanc on the same cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=24, help="manifest rows (default 24)")
    parser.add_argument("--size", type=int, nargs=3, default=(128, 128, 40),
                        metavar=("COLS", "ROWS", "SLICES"), help="default 128 128 40")
    parser.add_argument("--distinct", type=int, default=6,
                        help="distinct studies written to disk (default 6)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (best)")
    parser.add_argument("--orthanc", action="store_true",
                        help="instead: pull --studies distinct studies from a throwaway local "
                             "Orthanc against reading them from disk")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.orthanc:
        with tempfile.TemporaryDirectory(prefix="bench_pull_") as tmp:
            pull_against_disk(Path(tmp), args.studies, tuple(args.size), args.repeat)
        return
    import SimpleITK as sitk

    # Like for like: the in-process contenders get the one core a worker gets
    # (imaging_io.batch.WORKER_ENV), not ITK's default of every core.
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    distinct = min(args.distinct, args.studies)
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        for k in range(distinct):
            make_study(root / f"study{k}", tuple(args.size), k)
        manifest = write_manifest(root, args.studies, distinct)
        print(f"{args.studies} studies ({distinct} distinct) of {args.size[0]}×{args.size[1]}"
              f"×{args.size[2]}, 3 lesions; written in {time.perf_counter() - start:.1f} s")
        batch(root, manifest, 0, 1)  # warm-up: every study read once (page cache, imports)
        single = one_study(root, args.repeat)
        loop = plain_loop(manifest, args.repeat) / args.studies
        rows = [("in process", 0), ("1 worker", 1), ("2 workers", 2)]
        timed = {name: batch(root, manifest, workers, args.repeat) for name, workers in rows}
    print(f"one study measured in process: {single * 1000:.0f} ms (best of "
          f"{max(3, args.repeat)}); every row in a plain loop: {loop * 1000:.0f} ms per study "
          f"({1 / loop:.2f} studies/s)")
    print(f"{'':12} {'start-up s':>10} {'batch s':>8} {'studies/s':>10} "
          f"{'per study ms':>13} {'overhead ms':>12}")
    rate = {}
    for name, _ in rows:
        started, seconds = timed[name]
        rate[name] = args.studies / seconds
        per = seconds / args.studies
        print(f"{name:12} {started:10.2f} {seconds:8.2f} {rate[name]:10.2f} "
              f"{per * 1000:13.0f} {(per - loop) * 1000:12.0f}")
    print(f"scaling 2 workers / 1 worker: {rate['2 workers'] / rate['1 worker']:.2f}× "
          f"(2.00 = linear); 1 worker / in process: "
          f"{rate['1 worker'] / rate['in process']:.2f}×")
    print("overhead = batch wall time per study − the plain loop's time per study")


if __name__ == "__main__":
    main()
