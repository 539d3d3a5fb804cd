"""Builders shared by the web tests: follow-up timepoints, subjects read by a reader, and
the two central reads (PD / SD) of the central-review tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tests.recist.conftest import case, fu
from web.services import (
    SYSTEM,
    Actor,
    create_subject,
    save_baseline,
    save_timepoint,
)
from web.testing import baseline_lesions

READER = Actor("reader", "reader")


def follow_up(
    code: str, day: str, t1: float, t2: float, new: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A follow-up of the standard baseline (T01, T02 targets; NT01 present)."""
    return {
        "id": code,
        "date": day,
        "targets": {"T01": t1, "T02": t2},
        "non_targets": {"NT01": "present"},
        "new_lesions": new or [],
    }


def read_subject(session: Session, trial: str, code: str, *timepoints: dict[str, Any]) -> int:
    """A subject in arm A with the standard baseline and ``timepoints``, all entered by
    ``reader``; returns the version of its last timepoint (0 without follow-ups)."""
    create_subject(session, SYSTEM, trial, code=code, arm="A")
    save_baseline(
        session,
        READER,
        trial,
        code,
        date_value="2021-01-04",
        lesions=baseline_lesions(),
    )
    version = 0
    for tp in timepoints:
        version = save_timepoint(session, READER, trial, code, tp)[1].version
    return version


def central_read(*follow_ups: dict[str, Any]) -> dict[str, Any]:
    """A blinded central read: one liver target of 30 mm at baseline, then ``follow_ups``."""
    whole = case({"T1": 30.0}, *follow_ups)
    return {"lesions": whole["lesions"], "timepoints": whole["timepoints"]}


# Read PD: 30 → 28 → 40 mm (R-TGT-PD at FU2). Read SD: 30 → 28 → 31 mm.
PD_READ = central_read(fu(targets={"T1": 28.0}), fu(targets={"T1": 40.0}))
SD_READ = central_read(fu(targets={"T1": 28.0}), fu(targets={"T1": 31.0}))
