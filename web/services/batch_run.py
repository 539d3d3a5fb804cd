"""Running a web batch (:mod:`web.services.batch`) in the background.

**Where it runs.** :func:`launch` starts one daemon thread in the web process per batch;
the thread calls :func:`imaging_io.batch.run_batch`, the code of ``recist batch``. By
default the studies are measured in that thread, one after the other (``workers=0``): a
Dask ``LocalCluster`` would fork worker processes out of a threaded web server (and out of
every web worker of a multi-process server), which is fragile and competes with the
requests for the cores. With ``RECIST_BATCH_SCHEDULER=tcp://host:8786`` the studies are
measured on that Dask cluster instead (its workers must see the batch root at the same
path and have this package installed); the thread then only collects results. The
results folder of each job (``<instance>/batches/<trial>/<job>/``) is the one ``recist
batch`` writes (journal, measurements, cases, results, summary).

**What lands.** Each study measured (:func:`measure_for_trial`: the upload's measurement
of :func:`web.services.uploads.measure_files`, so the study is kept de-identified in the
study store and its key images can be drawn) becomes a :class:`~web.models.PacsStudy` of
its subject with ``source`` ``batch``, in its own transaction as soon as it is measured,
audited as recorded by the trial manager who started the batch. A study already waiting
or already kept for the subject (same StudyInstanceUID; for a NIfTI image with a label map,
the same image content: :mod:`web.services.batch_labelmap`) is not recorded twice, so
running the same batch again adds nothing. A study of another patient than the subject's images
is refused. Nothing is saved as a timepoint and nothing is signed.

**Interrupted and resumed.** The job's owner (this process) and heartbeat are kept by
:mod:`web.services.batch_owner`; a job whose process stopped mid-batch shows as
``interrupted`` and :func:`resume` runs it again over the studies it kept (``plan``) into
the same results folder: ``run_batch`` skips the studies its journal holds, a study in
the journal whose landing was cut off by the stop is landed now (:func:`reconcile`), and a
study measured again (its journal line was lost) replaces its outcome instead of adding
one, so a resumed job ends with one outcome per study and no study recorded twice.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import InvalidInput
from web.models import BatchJob, PacsStudy, Subject
from web.services.batch import outcome
from web.services.batch_owner import HEARTBEAT_SECONDS, Heartbeat
from web.services.common import Actor, Audit

# Running jobs of this process (tests and the page join them).
THREADS: dict[int, threading.Thread] = {}


def measure_for_trial(task: dict[str, str], *, store: str) -> dict[str, Any]:
    """Measure one study of a batch as an upload is measured, keeping it in the store.

    A Dask task like :func:`imaging_io.batch.measure_row` (same record): ``ok`` with the
    measurement, or ``refused`` with the reason naming the subject, timepoint and file.
    """
    import warnings

    from web.services.batch_labelmap import is_label_map_study, measure_label_map_study
    from web.services.uploads import measure_files

    started = time.perf_counter()
    image, seg = Path(task["image"]), Path(task["seg"])
    where = f"subject {task['subject_id']} {task['timepoint']}"
    try:
        for path, what in ((image, "image"), (seg, "seg")):
            if not path.exists():
                raise InvalidInput(f"{where}: {what} {path} does not exist")
        files = sorted(p for p in image.rglob("*") if p.is_file()) if image.is_dir() else [image]
        with (
            tempfile.TemporaryDirectory(prefix="recist-batch-") as scratch,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            if is_label_map_study(image):  # NIfTI/NRRD/MetaImage image + label map
                measured = measure_label_map_study(
                    image, seg, store=Path(store), what=f"{where} ({image}, {seg})"
                )
            else:
                measured = measure_files(
                    [*files, seg],
                    Path(scratch),
                    store=Path(store),
                    what=f"{where} ({image}, {seg})",
                    label_maps=True,
                )
    except InvalidInput as error:
        reason = error.message if where in error.message else f"{where}: {error.message}"
        return {
            **task,
            "status": "refused",
            "reason": reason,
            "seconds": round(time.perf_counter() - started, 4),
        }
    return {
        **task,
        "status": "ok",
        "study_date": measured["image"].get("study_date"),
        "measurement": measured,
        "seconds": round(time.perf_counter() - started, 4),
    }


class OwnershipLost(Exception):
    """Another process resumed the job (this one looked stopped): this run ends quietly."""


def _key(item: dict[str, Any]) -> tuple[str, str, str, str]:
    return (item["subject"], item["timepoint"], item["image"], item["seg"])


def merge(job: BatchJob, new: dict[str, Any]) -> None:
    """Add a study's outcome to the job, replacing an earlier one of the same study (a
    resumed run measured it again), and count the outcomes again. A study landed by an
    earlier run and found recorded again keeps its first outcome."""
    kept: list[dict[str, Any]] = []
    for old in job.outcomes:
        if _key(old) != _key(new):
            kept.append(old)
        elif old["status"] == new["status"] == "ok" and old.get("awaiting_id") == new.get(
            "awaiting_id"
        ):
            new = old
    job.outcomes = [*kept, new]
    job.done = sum(o["status"] == "ok" for o in job.outcomes)
    job.refused = sum(o["status"] == "refused" for o in job.outcomes)
    job.failed = sum(o["status"] == "failed" for o in job.outcomes)
    job.landed = sum(o.get("note") == "awaiting a reader" for o in job.outcomes)


class JobProgress:
    """The :class:`imaging_io.batch.Progress` of a web batch: every finished study updates
    the job's counts and outcomes (and its heartbeat), and a measured study lands for its
    subject. Raises :class:`OwnershipLost` when another process owns the job now."""

    def __init__(
        self, sessions: Callable[[], Session], job_id: int, actor: Actor, owner: str | None
    ) -> None:
        self.sessions, self.job_id, self.actor, self.owner = sessions, job_id, actor, owner

    def _job(self, session: Session) -> BatchJob:
        job = session.get(BatchJob, self.job_id, with_for_update=True)
        assert job is not None
        if job.owner != self.owner:
            raise OwnershipLost(f"batch {self.job_id} is run by {job.owner} now")
        return job

    def start(self, total: int, done_before: int) -> None:
        with self.sessions() as session, write_transaction(session):
            job = self._job(session)
            job.status = "running"
            job.updated_at = datetime.now(UTC)

    def update(self, row: Any, record: dict[str, Any]) -> None:
        with self.sessions() as session, write_transaction(session):
            job = self._job(session)
            status, reason, extra = record["status"], record.get("reason"), {}
            if status == "ok":
                landed, note = land(session, self.actor, job, row, record["measurement"])
                if landed is None:
                    status, reason = "refused", note
                else:
                    extra = {
                        "awaiting_id": landed,
                        "note": note,
                        "lesions": len(record["measurement"]["lesions"]),
                        "input": record["measurement"].get("input") or "DICOM",
                    }
            merge(job, outcome(row, status, reason, measured=True, **extra))
            job.updated_at = datetime.now(UTC)

    def close(self) -> None:
        pass


def reconcile(progress: JobProgress, rows: list[Any], results: Path) -> int:
    """Land the studies the journal of ``results`` holds but the job has no outcome for
    (the process stopped between the journal line and the landing); how many."""
    from imaging_io.batch import JOURNAL, Journal

    records = Journal(results / JOURNAL).load()
    with progress.sessions() as session:
        job = session.get(BatchJob, progress.job_id)
        seen = {_key(o) for o in job.outcomes} if job is not None else set()
    missing = [r for r in rows if r.key in records and r.key not in seen]
    for row in missing:
        progress.update(row, records[row.key])
    return len(missing)


def land(
    session: Session, actor: Actor, job: BatchJob, row: Any, measured: dict[str, Any]
) -> tuple[int | None, str]:
    """Record a measured study as awaiting a reader; (row id, what happened), or (None,
    the reason) when refused. Runs inside the caller's write transaction."""
    from web.services.studies import StudyOfAnotherPatient, check_binding

    subject = session.scalar(
        select(Subject).where(Subject.trial_id == job.trial_id, Subject.code == row.subject)
    )
    where = f"subject {row.subject} {row.timepoint} ({row.image})"
    if subject is None:
        return None, f"{where}: the subject is not enrolled in the trial"
    image = measured.get("image") or {}
    try:
        check_binding(session, subject, image)
    except StudyOfAnotherPatient as error:
        return None, f"{where}: {error.message}"
    # A DICOM study by its StudyInstanceUID, a label-map study by its image's content
    # (web.services.batch_labelmap, "Its key").
    uid = (
        image.get("study_instance_uid")
        or image.get("content_key")
        or (measured.get("study") or {}).get("id")
    )
    if not uid:
        return None, f"{where}: the study has no StudyInstanceUID to record it by"
    uid = str(uid)[:128]
    existing = session.scalar(
        select(PacsStudy).where(PacsStudy.subject_id == subject.id, PacsStudy.study_uid == uid)
    )
    if existing is not None:
        return existing.id, f"already recorded ({existing.source})"
    day = getattr(row, "date", None) or image.get("study_date")  # the manifest's wins
    study = PacsStudy(
        subject_id=subject.id,
        study_uid=uid,
        timepoint=row.timepoint,
        study_date=date.fromisoformat(day) if day else None,
        measured=measured,
        pulled_by=actor.username,
        source="batch",
    )
    session.add(study)
    session.flush()
    Audit(session, actor, None).log(
        "measure",
        "pacs_study",
        f"{job.trial.code}/{row.subject}/{uid}",
        "timepoint",
        None,
        f"{row.timepoint} (batch {job.id})",
    )
    return study.id, "awaiting a reader"


def run_job(
    sessions: Callable[[], Session],
    job_id: int,
    rows: list[Any],
    actor: Actor,
    *,
    store: Path,
    results: Path,
    scheduler: str | None = None,
    owner: str | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> None:
    """The body of a batch's thread: measure ``rows``, land them, close the job; the
    heartbeat beats meanwhile. A run that lost the job to another owner leaves it alone."""
    from imaging_io.batch import run_batch

    progress = JobProgress(sessions, job_id, actor, owner)
    status, error = "done", None
    try:
        with Heartbeat(sessions, job_id, owner or "", heartbeat):
            if rows:
                run_batch(
                    rows,
                    results,
                    workers=0,
                    scheduler=scheduler,
                    measure=functools.partial(measure_for_trial, store=str(store)),
                    unmatched="new",
                    progress=progress,  # type: ignore[arg-type]  # Progress's duck type
                )
                reconcile(progress, rows, results)
            else:
                progress.start(0, 0)
    except OwnershipLost:
        THREADS.pop(job_id, None)
        return
    except Exception as exc:  # noqa: BLE001 - the job records why it stopped
        status = "failed"
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        traceback.print_exc()
    try:
        with sessions() as session, write_transaction(session):
            job = session.get(BatchJob, job_id)
            if job is not None and job.owner == owner:
                job.status, job.error = status, error
                job.finished_at = job.updated_at = datetime.now(UTC)
    finally:
        THREADS.pop(job_id, None)


def launch(
    sessions: Callable[[], Session],
    job_id: int,
    rows: list[Any],
    actor: Actor,
    *,
    store: Path,
    results: Path,
    scheduler: str | None = None,
    owner: str | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> threading.Thread:
    """Start the batch's thread (daemon: a stopping server does not wait for it)."""
    thread = threading.Thread(
        target=run_job,
        args=(sessions, job_id, rows, actor),
        kwargs={
            "store": store,
            "results": results,
            "scheduler": scheduler,
            "owner": owner,
            "heartbeat": heartbeat,
        },
        name=f"recist-batch-{job_id}",
        daemon=True,
    )
    THREADS[job_id] = thread
    thread.start()
    return thread


def wait(job_id: int, timeout: float | None = None) -> None:
    """Wait for a batch of this process to finish (tests, the command line)."""
    thread = THREADS.get(job_id)
    if thread is not None:
        thread.join(timeout)


def begin(
    app: Any,
    session: Session,
    actor: Actor,
    trial_code: str,
    *,
    folder: Any = None,
    manifest: bytes | None = None,
    manifest_name: Any = None,
) -> BatchJob:
    """Start a batch of the trial from a folder under the batch root or an uploaded
    manifest (the pages' and the API's entry point); returns the queued job.

    Raises
    ------
    InvalidInput
        No batch root configured, a path outside it, a manifest or folder refused (the
        message names the line or the path), or neither a folder nor a manifest given.
    """
    import os

    from web.services.batch import (
        BATCH_ROOT_ENV,
        batch_root,
        plan_folder,
        plan_manifest,
        start_batch,
    )

    root = batch_root(app.config.get("BATCH_ROOT") or os.environ.get(BATCH_ROOT_ENV))
    if manifest is not None:
        plan = plan_manifest(root, manifest_name, manifest)
        source, name = "manifest", Path(str(manifest_name or "manifest.csv")).name
    else:
        plan = plan_folder(root, folder)
        source, name = "folder", str(folder).strip()
    job = start_batch(session, actor, trial_code, source=source, name=name, plan=plan)
    _launch(app, job, actor)
    return job


def _launch(app: Any, job: BatchJob, actor: Actor) -> None:
    from web.services.batch import runnable, scheduler_from_environment
    from web.services.batch_owner import stale_seconds

    results = Path(app.config["STUDY_STORE"]).parent / "batches" / job.trial.code / str(job.id)
    launch(
        app.extensions["recist_sessions"],
        job.id,
        runnable(job),
        actor,
        store=Path(app.config["STUDY_STORE"]),
        results=results,
        scheduler=app.config.get("BATCH_SCHEDULER") or scheduler_from_environment(),
        owner=job.owner,
        heartbeat=min(HEARTBEAT_SECONDS, stale_seconds(app.config) / 3),
    )


def resume(app: Any, session: Session, actor: Actor, trial_code: str, job_id: int) -> BatchJob:
    """Run an interrupted (or failed) batch again in this process, over the studies it
    kept and into its results folder; studies already done are skipped and none is
    recorded twice (module docstring).

    Raises
    ------
    NotFound
        The trial has no such batch.
    Conflict
        The batch is live in a web process, or done (:func:`web.services.batch_owner.claim`).
    """
    from web.services.batch import get_job
    from web.services.batch_owner import claim, stale_seconds

    job = claim(session, actor, get_job(session, trial_code, job_id), stale_seconds(app.config))
    _launch(app, job, actor)
    return job
