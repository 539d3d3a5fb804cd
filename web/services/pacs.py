"""A trial's PACS over DICOMweb: its URL, "check the PACS now", and the studies pulled
from it waiting for a reader.

* The URL is a trial setting (audited). Credentials never go into the database: a URL
  with a user name or password is refused; ``RECIST_PACS_USER`` / ``RECIST_PACS_PASSWORD``
  in the server's environment give HTTP basic authentication.
* Checking pulls, with :func:`imaging_io.dicomweb.pull`, every study of the trial's
  subjects (matched by Clinical Trial Subject ID, else PatientID, to the subject codes)
  not pulled yet into ``<pull folder>/<trial>/``; each is measured like an upload
  (:func:`web.services.uploads.measure_files`) and kept in the study store, and recorded
  as a :class:`~web.models.PacsStudy` of its subject: **machine-measured, awaiting a
  reader's confirmation**. Nothing is saved as a timepoint and nothing is signed by the
  machine: a reader opens the study, checks the pre-filled values and saves them.
* A study already recorded for the subject is skipped (idempotent); a study that fails
  leaves nothing (imaging_io's pull is atomic per study) and is reported.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import InvalidInput, NotFound
from web.models import PacsStudy, Subject, Trial
from web.services.common import Actor, Audit, clean_reason, get_trial

PACS_USER_ENV = "RECIST_PACS_USER"
PACS_PASSWORD_ENV = "RECIST_PACS_PASSWORD"  # noqa: S105 - the variable's name, not a secret


def clean_pacs_url(value: Any) -> str | None:
    """A DICOMweb base URL (http or https, no credentials), or ``None`` for none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise InvalidInput("the PACS URL is text of at most 500 characters", field="pacs_url")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"the PACS URL {url!r} is not an http:// or https:// URL of a DICOMweb service "
            "(e.g. http://pacs:8042/dicom-web)",
            field="pacs_url",
        )
    if parts.username or parts.password:
        raise InvalidInput(
            "the PACS URL holds a user name or password: credentials are kept out of the "
            f"database; set {PACS_USER_ENV} and {PACS_PASSWORD_ENV} on the server instead",
            field="pacs_url",
        )
    return url


def set_pacs_url(
    session: Session, actor: Actor, trial_code: str, url: Any, reason: Any = None
) -> Trial:
    """Set (or clear) a trial's PACS URL; audited (a change needs a reason)."""
    clean = clean_pacs_url(url)
    text = clean_reason(reason)
    with write_transaction(session):
        trial = get_trial(session, trial_code)
        if Audit(session, actor, text).change(
            "trial", trial.code, "pacs_url", trial.pacs_url, clean
        ):
            trial.pacs_url = clean
    return trial


@dataclass
class CheckReport:
    """What one check of the PACS did."""

    recorded: list[tuple[str, str]] = field(default_factory=list)  # (subject, timepoint)
    skipped: int = 0
    failed: list[str] = field(default_factory=list)  # one line each

    def summary(self) -> str:
        return (
            f"{len(self.recorded)} new stud{'y' if len(self.recorded) == 1 else 'ies'} "
            f"awaiting a reader, {self.skipped} already pulled, {len(self.failed)} failed"
        )


def _pacs(url: str) -> Any:
    from imaging_io.dicomweb import Pacs

    user, password = os.environ.get(PACS_USER_ENV), os.environ.get(PACS_PASSWORD_ENV)
    http = None
    if user:
        import requests

        http = requests.Session()
        http.auth = (user, password or "")
    return Pacs(url, session=http)


def check_pacs(
    session: Session,
    actor: Actor,
    trial_code: str,
    *,
    store: Path,
    pulls: Path,
    since: date | None = None,
    pacs: Any = None,
) -> CheckReport:
    """Pull and measure the trial's new studies; record each as awaiting a reader.

    Raises
    ------
    InvalidInput
        The trial has no PACS URL, or the PACS cannot be reached (after imaging_io's
        retries), naming the URL.
    """
    from imaging_io import ImagingInputError
    from imaging_io.dicomweb import MANIFEST, pull
    from web.services.uploads import measure_files

    trial = get_trial(session, trial_code)
    if not trial.pacs_url:
        raise InvalidInput(f"trial {trial.code} has no PACS URL set", field="pacs_url")
    subjects = {s.code: s.id for s in trial.subjects}
    rows = session.execute(
        select(PacsStudy.subject_id, PacsStudy.study_uid).where(
            PacsStudy.subject_id.in_(list(subjects.values()) or [-1])
        )
    )
    known = {(subject_id, uid) for subject_id, uid in rows}
    session.rollback()

    def measure(folder: Path) -> dict[str, Any]:
        files = [p for p in folder.rglob("*") if p.is_file()]
        with tempfile.TemporaryDirectory(prefix="recist-pacs-") as scratch:
            return measure_files(files, Path(scratch), store=store, what=str(folder.name))

    try:
        report = pull(
            pacs if pacs is not None else _pacs(trial.pacs_url),
            pulls / trial.code,
            subjects=list(subjects),
            since=since,
            measure=measure,
        )
    except ImagingInputError as error:
        raise InvalidInput(str(error), field="pacs_url") from None
    out = CheckReport()
    out.failed = [f"{f.study.study_uid}: {f.message}" for f in report.failed]
    # Pulled now, or pulled by an earlier check whose records this database lacks (a
    # restored database, an interrupted check): both are read from the pull folder.
    folder = pulls / trial.code
    listed = folder / MANIFEST
    manifest = json.loads(listed.read_text(encoding="utf-8"))["studies"] if listed.exists() else {}
    found = [(item.study, item.timepoint, item.measurement) for item in report.pulled]
    for study in report.skipped:
        entry = manifest.get(study.study_uid) or {}
        if entry.get("measurement"):
            found.append((study, str(entry["timepoint"]), folder / entry["measurement"]))
    with write_transaction(session):
        audit = Audit(session, actor, None)
        for study, timepoint, measurement in found:
            subject_id = subjects.get(study.subject)
            if subject_id is None or (subject_id, study.study_uid) in known:
                out.skipped += 1
                continue
            session.add(
                PacsStudy(
                    subject_id=subject_id,
                    study_uid=study.study_uid,
                    timepoint=timepoint,
                    study_date=study.study_date,
                    measured=json.loads(measurement.read_text(encoding="utf-8")),
                    pulled_by=actor.username,
                )
            )
            audit.log(
                "pull",
                "pacs_study",
                f"{trial.code}/{study.subject}/{study.study_uid}",
                "timepoint",
                None,
                timepoint,
            )
            out.recorded.append((study.subject, timepoint))
    return out


def awaiting(session: Session, subject: Subject) -> list[PacsStudy]:
    """The subject's pulled studies that no saved timepoint uses yet, by study date."""
    used = {((tp.imaging_json or {}).get("study") or {}).get("id") for tp in subject.timepoints}
    rows = session.scalars(
        select(PacsStudy).where(PacsStudy.subject_id == subject.id).order_by(PacsStudy.study_date)
    ).all()
    return [r for r in rows if ((r.measured or {}).get("study") or {}).get("id") not in used]


def pacs_study(session: Session, subject: Subject, study_id: int) -> PacsStudy:
    row = session.get(PacsStudy, study_id)
    if row is None or row.subject_id != subject.id:
        raise NotFound(f"subject {subject.code} has no pulled study {study_id}")
    return row
