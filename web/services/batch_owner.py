"""Who runs a web batch, and whether it still runs (issue 13: resumable, even after
``kill -9``).

Every job carries an **owner**, ``host:pid:token`` (the token is random per process, so a
new process with a recycled pid is not taken for the old one), and a **heartbeat**, its
``updated_at``: set on every finished study and every :data:`HEARTBEAT_SECONDS` by
:class:`Heartbeat` while the job's thread runs, even during one long study.

A job recorded ``queued`` or ``running`` is **interrupted** (:func:`liveness`) when

* its owner is this process and its thread is no longer alive (for a heartbeat's time);
* its owner ran on this host and that process is gone;
* or its heartbeat is older than the stale limit (``RECIST_BATCH_STALE_SECONDS``, default
  :data:`STALE_SECONDS`), whoever the owner (a web process on another host).

A trial manager resumes an interrupted (or failed) job: :func:`claim` makes this process
its owner, in one write transaction that re-checks the job first, so two resumes of the
same job, or a resume of a live job, are refused (409) and only one runs.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict
from web.models import BatchJob
from web.services.common import Actor, Audit

STALE_ENV = "RECIST_BATCH_STALE_SECONDS"
STALE_SECONDS = 60.0
HEARTBEAT_SECONDS = 5.0
LIVE = ("queued", "running")
RESUMABLE = ("interrupted", "failed")

_TOKEN: dict[int, str] = {}


def process_owner() -> str:
    """This process as a job's owner: ``host:pid:token`` (a new token after a fork)."""
    pid = os.getpid()
    if pid not in _TOKEN:
        _TOKEN.clear()
        _TOKEN[pid] = secrets.token_hex(8)
    return f"{socket.gethostname()}:{pid}:{_TOKEN[pid]}"


def stale_seconds(config: Any = None) -> float:
    """The heartbeat age after which a live job counts as interrupted: the app's
    ``BATCH_STALE_SECONDS``, else ``RECIST_BATCH_STALE_SECONDS``, else 60 s."""
    value = (config or {}).get("BATCH_STALE_SECONDS") or os.environ.get(STALE_ENV)
    try:
        seconds = float(value) if value else STALE_SECONDS
    except ValueError:
        seconds = STALE_SECONDS
    return seconds if seconds > 0 else STALE_SECONDS


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _process_gone(owner: str) -> bool:
    """The owner ran on this host and its process no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def liveness(job: BatchJob, stale: float, now: datetime | None = None) -> dict[str, Any]:
    """A job's state as shown: its status, or ``interrupted`` with the reason; the
    heartbeat's age in seconds and the owner."""
    from web.services.batch_run import THREADS

    now = now or datetime.now(UTC)
    age = max((now - _aware(job.updated_at)).total_seconds(), 0.0)
    state, reason = job.status, None
    if job.status in LIVE:
        owner = job.owner or ""
        thread = THREADS.get(job.id)
        if owner == process_owner():
            # The grace covers the moment between recording the job and starting its thread.
            if (thread is None or not thread.is_alive()) and age > HEARTBEAT_SECONDS:
                state, reason = "interrupted", "its thread in this web process ended early"
        elif owner and _process_gone(owner):
            state = "interrupted"
            reason = f"the web process that ran it ({owner.rsplit(':', 1)[0]}) has stopped"
        elif age > stale:
            state = "interrupted"
            reason = (
                f"no heartbeat for {round(age)} s (limit {round(stale)} s, {STALE_ENV}) "
                f"from its web process {owner.rsplit(':', 1)[0] or '(unknown)'}"
            )
    return {
        "state": state,
        "interrupted_reason": reason,
        "heartbeat_age_seconds": round(age, 1),
        "owner": job.owner,
        "run": job.run,
    }


def beat(sessions: Callable[[], Session], job_id: int, owner: str) -> bool:
    """One heartbeat of a live job this process owns; False when it is no longer ours."""
    with sessions() as session, write_transaction(session):
        moved = session.execute(
            update(BatchJob)
            .where(BatchJob.id == job_id, BatchJob.owner == owner, BatchJob.status.in_(LIVE))
            .values(updated_at=datetime.now(UTC))
        )
        return bool(getattr(moved, "rowcount", 0))


class Heartbeat:
    """A thread beating for a job every ``every`` seconds until :meth:`stop`."""

    def __init__(
        self, sessions: Callable[[], Session], job_id: int, owner: str, every: float
    ) -> None:
        self.sessions, self.job_id, self.owner, self.every = sessions, job_id, owner, every
        self.stopped = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"recist-batch-{job_id}-heartbeat", daemon=True
        )

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                mine = beat(self.sessions, self.job_id, self.owner)
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                mine = True
            if not mine:
                return

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(self.every + 5)


def claim(session: Session, actor: Actor, job: BatchJob, stale: float) -> BatchJob:
    """Make this process the owner of an interrupted or failed job, queued again for
    another run (audited: who resumed it, from which owner). The job is read again under a
    row lock inside the write transaction, so only one of two concurrent resumes wins.

    Raises
    ------
    Conflict
        The job is live (its owner's heartbeat is fresh), already done, or was started
        before batches recorded their studies.
    """
    label = f"batch {job.id} of trial {job.trial.code}"
    with write_transaction(session):
        session.refresh(job, with_for_update=True)
        seen = liveness(job, stale)
        if seen["state"] not in RESUMABLE:
            if seen["state"] in LIVE:
                raise Conflict(
                    f"{label} is {seen['state']} (heartbeat {seen['heartbeat_age_seconds']} s "
                    f"ago, owner {(job.owner or '?').rsplit(':', 1)[0]}): it is not run twice; "
                    "resume it once it is interrupted"
                )
            raise Conflict(f"{label} is {seen['state']}: start a new batch to measure again")
        if job.plan is None:
            raise Conflict(
                f"{label} was started before batches kept their list of studies: start a "
                "new batch of the same folder or manifest (studies already recorded are "
                "not recorded twice)"
            )
        before = f"{seen['state']} (owner {job.owner}, run {job.run})"
        job.owner = process_owner()
        job.run += 1
        job.status, job.error, job.finished_at = "queued", None, None
        job.updated_at = datetime.now(UTC)
        Audit(session, actor, None).log(
            "resume",
            "batch_job",
            f"{job.trial.code}/{job.id}",
            "status",
            before,
            f"queued (owner {job.owner}, run {job.run})",
        )
    return job
