"""What the area modules of the API share: the resource paths, times as UTC text and the
JSON of a subject (its summary with the engine's headline results)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for

from web.services.audit import canonical_time

SUBJECT = "/trials/<trial_code>/subjects/<subject_code>"
TIMEPOINT = SUBJECT + "/timepoints/<tp_code>"


def utc(at: datetime | None) -> str | None:
    """A stored time as the audit trail writes it (ISO 8601, UTC), ``None`` for none."""
    return None if at is None else canonical_time(at)


def subject_summary(subject: Any) -> dict[str, Any]:
    """A subject: arm, dates, version, best overall response, progression, PFS, URL."""
    result = subject.result_json or {}
    return {
        "subject_id": subject.code,
        "arm": subject.arm.code if subject.arm else None,
        "randomized_on": subject.randomized_on.isoformat() if subject.randomized_on else None,
        "died_on": subject.died_on.isoformat() if subject.died_on else None,
        "new_therapy_on": subject.new_therapy_on.isoformat() if subject.new_therapy_on else None,
        "version": subject.version,
        "best_overall_response": result.get("best_overall_response"),
        "progression": result.get("progression"),
        "pfs": result.get("pfs"),
        "url": url_for("api.subject", trial_code=subject.trial.code, subject_code=subject.code),
    }
