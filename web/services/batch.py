"""Batches from the web (issue 13): a trial manager runs ``recist batch`` on a trial's
studies, and each measured study waits for a reader exactly like a study pulled from the
PACS.

* The studies come from a manifest uploaded with the request (CSV or JSON Lines, the
  columns ``recist batch`` reads) or from a folder laid out ``<subject>/<timepoint>/``
  (:func:`imaging_io.batch.discover`). Every path must lie under the server's **batch
  root** (``RECIST_BATCH_ROOT``): a relative path in a manifest is taken from the root,
  and a path with ``..``, or one that leads out of the root (through a symbolic link
  too), is refused. Without a root no batch can be started.
* :func:`start_batch` records a :class:`~web.models.BatchJob` (queued; audited: who started
  it, from what); :mod:`web.services.batch_run` measures the studies in a background
  thread with the code of ``recist batch`` (:func:`imaging_io.batch.run_batch`) and lands
  each measured study of an enrolled subject as a :class:`~web.models.PacsStudy` with
  ``source`` ``batch``: machine-measured, awaiting a reader's confirmation, never signed
  by the machine. A study of a subject the trial does not have, or outside the root, is a
  refusal naming the subject and the path.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import InvalidInput, NotFound
from web.models import BatchJob
from web.services.common import Actor, Audit, get_trial

BATCH_ROOT_ENV = "RECIST_BATCH_ROOT"
BATCH_SCHEDULER_ENV = "RECIST_BATCH_SCHEDULER"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_STUDIES = 100_000
STATUSES = ("queued", "running", "done", "failed")


def batch_root(configured: Any) -> Path:
    """The folder every batch path must lie in (``RECIST_BATCH_ROOT``), resolved.

    Raises
    ------
    InvalidInput
        No root is configured, or it is not a folder.
    """
    if not configured or not str(configured).strip():
        raise InvalidInput(
            f"batches are off on this server: set {BATCH_ROOT_ENV} to the folder that holds "
            "the trial's studies (every batch path must lie in it)",
            field="folder",
        )
    root = Path(str(configured)).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInput(
            f"the batch root {root} ({BATCH_ROOT_ENV}) is not a folder", field="folder"
        )
    return root


def confined(root: Path, path: str | Path, *, what: str = "path") -> Path:
    """``path`` (relative ones from ``root``) resolved, when it lies in ``root``.

    Raises
    ------
    InvalidInput
        A ``..`` in the path, or a path (through symbolic links too) outside the root;
        the message names the path.
    """
    given = Path(path)
    if ".." in given.parts:
        raise InvalidInput(f"{what} {str(path)!r} contains '..': refused", field="folder")
    resolved = (root / given).resolve()
    if resolved != root and root not in resolved.parents:
        raise InvalidInput(
            f"{what} {str(path)!r} is outside the batch root {root}: refused", field="folder"
        )
    return resolved


@dataclass
class Plan:
    """The studies of a batch: those to measure, and those refused before measuring."""

    rows: list[Any]  # imaging_io.batch.StudyRow
    refusals: list[dict[str, Any]]


def _confine_rows(root: Path, rows: list[Any]) -> Plan:
    from dataclasses import replace

    kept, refused = [], []
    for row in rows:
        try:
            image = confined(root, row.image, what=f"subject {row.subject} {row.timepoint}: image")
            seg = confined(root, row.seg, what=f"subject {row.subject} {row.timepoint}: seg")
        except InvalidInput as error:
            refused.append(outcome(row, "refused", error.message))
            continue
        kept.append(replace(row, image=str(image), seg=str(seg)))
    return Plan(kept, refused)


def plan_folder(root: Path, folder: Any) -> Plan:
    """The studies of a folder under the root (``<subject>/<timepoint>/``).

    Raises
    ------
    InvalidInput
        No folder named, or one outside the root, or one holding no study.
    """
    from imaging_io import ImagingInputError
    from imaging_io.batch import discover

    if not isinstance(folder, str) or not folder.strip():
        raise InvalidInput(
            "name a folder under the batch root, or upload a manifest", field="folder"
        )
    where = confined(root, folder.strip(), what="folder")
    if not where.is_dir():
        raise InvalidInput(
            f"folder {folder.strip()!r} is not a folder under {root}", field="folder"
        )
    try:
        rows = discover(where)
    except ImagingInputError as error:
        raise InvalidInput(str(error), field="folder") from None
    return _confine_rows(root, rows)


def plan_manifest(root: Path, name: Any, data: bytes) -> Plan:
    """The studies of an uploaded manifest; relative paths are taken from the root.

    Raises
    ------
    InvalidInput
        An empty or oversized upload, or the manifest's own refusal (naming the line).
    """
    from imaging_io import ImagingInputError
    from imaging_io.batch import read_manifest

    if not data:
        raise InvalidInput("the manifest is empty", field="manifest")
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidInput(
            f"the manifest is over {MAX_MANIFEST_BYTES // 1024**2} MB", field="manifest"
        )
    filename = Path(str(name or "manifest.csv")).name or "manifest.csv"
    suffix = Path(filename).suffix.lower() if Path(filename).suffix else ".csv"
    with tempfile.TemporaryDirectory(prefix="recist-manifest-") as scratch:
        base = Path(scratch).absolute()
        path = base / f"manifest{suffix}"
        path.write_bytes(data)
        try:
            rows = read_manifest(path)
        except ImagingInputError as error:
            raise InvalidInput(str(error).replace(str(path), filename), field="manifest") from None
    from dataclasses import replace

    def rebased(value: str) -> str:
        # read_manifest joined relative cells to the scratch folder: join them to the root.
        text = Path(value)
        return str(root / text.relative_to(base)) if text.is_relative_to(base) else value

    rows = [replace(r, image=rebased(r.image), seg=rebased(r.seg)) for r in rows]
    if len(rows) > MAX_STUDIES:
        raise InvalidInput(f"the manifest lists more than {MAX_STUDIES} studies", field="manifest")
    return _confine_rows(root, rows)


def outcome(row: Any, status: str, reason: str | None = None, **more: Any) -> dict[str, Any]:
    """One study's line in a job's outcomes."""
    item = {
        "subject": row.subject,
        "timepoint": row.timepoint,
        "image": row.image,
        "seg": row.seg,
        "status": status,
    }
    if reason is not None:
        item["reason"] = reason
    item.update(more)
    return item


def start_batch(
    session: Session, actor: Actor, trial_code: str, *, source: str, name: str, plan: Plan
) -> BatchJob:
    """Record a queued batch of the trial (audited: who, from what, how many studies).

    Studies of a subject the trial does not have are refused here, naming subject and path.
    """
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        enrolled = {s.code for s in trial.subjects}
        refusals = list(plan.refusals)
        for row in plan.rows:
            if row.subject not in enrolled:
                refusals.append(
                    outcome(
                        row,
                        "refused",
                        f"subject {row.subject} is not enrolled in trial "
                        f"{trial.code} (study {row.image}, {row.seg}): not measured",
                    )
                )
        job = BatchJob(
            trial_id=trial.id,
            started_by=actor.username,
            source=source,
            source_name=name[:1000],
            status="queued",
            total=len(plan.rows) + len(plan.refusals),
            refused=len(refusals),
            outcomes=refusals,
        )
        session.add(job)
        session.flush()
        Audit(session, actor, None).log(
            "start", "batch_job", f"{trial.code}/{job.id}", "source", None, f"{source} {name}"
        )
    return job


def runnable(job: BatchJob, plan: Plan) -> list[Any]:
    """The studies of ``plan`` the job measures: those not refused when it was started."""
    refused = {(o["subject"], o["timepoint"]) for o in job.outcomes}
    return [r for r in plan.rows if (r.subject, r.timepoint) not in refused]


def get_job(session: Session, trial_code: str, job_id: int) -> BatchJob:
    trial = get_trial(session, trial_code)
    job = session.get(BatchJob, job_id)
    if job is None or job.trial_id != trial.id:
        raise NotFound(f"trial {trial.code} has no batch {job_id}")
    return job


def list_jobs(session: Session, trial_code: str) -> list[BatchJob]:
    trial = get_trial(session, trial_code)
    return list(
        session.scalars(
            select(BatchJob).where(BatchJob.trial_id == trial.id).order_by(BatchJob.id.desc())
        )
    )


def job_figures(job: BatchJob, now: datetime | None = None) -> dict[str, Any]:
    """A job's progress: finished studies, rate (studies/s) and the seconds left (ETA)."""
    finished = job.done + job.refused + job.failed
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=UTC)
    end = job.finished_at or now or datetime.now(UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    seconds = max((end - started).total_seconds(), 0.0)
    measured = (
        job.done
        + job.failed
        + sum(1 for o in job.outcomes if o["status"] == "refused" and o.get("measured"))
    )
    rate = measured / seconds if seconds > 0 and measured else None
    left = job.total - finished
    eta = left / rate if rate and job.status in ("queued", "running") else None
    return {
        "finished": finished,
        "percent": round(100 * finished / job.total) if job.total else 100,
        "seconds": round(seconds, 1),
        "studies_per_second": round(rate, 3) if rate else None,
        "eta_seconds": round(eta) if eta is not None else None,
    }


def job_json(job: BatchJob) -> dict[str, Any]:
    """A job as the API and the page show it."""
    return {
        "id": job.id,
        "trial": job.trial.code,
        "started_by": job.started_by,
        "started_at": job.started_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "source": job.source,
        "source_name": job.source_name,
        "status": job.status,
        "total": job.total,
        "done": job.done,
        "refused": job.refused,
        "failed": job.failed,
        "landed": job.landed,
        "error": job.error,
        "progress": job_figures(job),
        "outcomes": job.outcomes,
    }


def scheduler_from_environment() -> str | None:
    """``RECIST_BATCH_SCHEDULER``: a Dask scheduler to measure on, else ``None``."""
    return os.environ.get(BATCH_SCHEDULER_ENV, "").strip() or None
