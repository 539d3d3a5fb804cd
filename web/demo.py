"""The demo trial: synthetic subjects (no patient data) and one user per role.

Trajectories are generated from a seeded random generator so that every run shows the
same mix of responses: partial responses, stable disease, progression by growth of the
targets (R-TGT-PD), by a new lesion (R-NEW-1), by an equivocal new lesion confirmed later
(R-NEW-2, back-dated progression) and complete responses with a nodal target < 10 mm
(R-TGT-CR). The benchmark uses the same generator for its 280 subjects × 10 timepoints.
"""

from __future__ import annotations

import json
import random
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.models import ROLES, Trial, User
from web.services import SYSTEM, create_trial, create_user, import_case

DEMO_TRIAL = "STEREO-SEIN-DEMO"
DEMO_ARMS = [
    ("SBRT-ST", "SBRT to all metastases + systemic therapy"),
    ("ST", "systemic therapy alone"),
]
DEMO_SETTINGS: dict[str, Any] = {"confirmation": False, "visit_interval_days": 56}
DEMO_USERS = {
    "reader": "reader1",
    "adjudicator": "adjudicator1",
    "trial_manager": "manager1",
    "reviewer": "reviewer1",
    "admin": "admin",
}
DEMO_CASE_FILE = Path(__file__).resolve().parent.parent / "sample_dicom" / "demo_case.json"

TRAJECTORIES = ("responder", "stable", "growth", "new_lesion", "equivocal_confirmed", "complete")


def visit_code(index: int, interval_weeks: int = 8) -> str:
    return "BL" if index == 0 else f"W{index * interval_weeks}"


def synthetic_case(
    rng: random.Random,
    subject_id: str,
    *,
    timepoints: int = 5,
    kind: str | None = None,
    arm: str | None = None,
) -> dict[str, Any]:
    """One synthetic subject in the case contract (docs/interfaces.md)."""
    kind = kind or rng.choice(TRAJECTORIES)
    start = date(2021, 1, 4) + timedelta(days=rng.randrange(0, 600))
    lesions: list[dict[str, Any]] = [
        {"id": "T01", "site": "liver", "kind": "target", "nodal": False},
        {"id": "T02", "site": "lymph node", "kind": "target", "nodal": True},
        {"id": "NT01", "site": "bone", "kind": "non-target"},
    ]
    sizes = {"T01": float(rng.randrange(150, 450)) / 10, "T02": float(rng.randrange(150, 300)) / 10}
    if rng.random() < 0.5:
        lesions.insert(1, {"id": "T03", "site": "lung", "kind": "target", "nodal": False})
        sizes["T03"] = float(rng.randrange(110, 300)) / 10
    event_at = rng.randrange(2, max(3, timepoints)) if timepoints > 2 else 1
    tps = []
    for i in range(timepoints):
        when = start + timedelta(days=56 * i + rng.randrange(-3, 4) * (i > 0))
        factor = 1.0
        if i > 0:
            if kind == "responder":
                factor = max(0.45, 1 - 0.2 * i)
            elif kind == "stable":
                factor = 0.9 + 0.05 * ((i % 3) - 1)
            elif kind == "growth":
                factor = 0.85 if i < event_at else 0.85 * 1.35
            elif kind == "complete":
                factor = max(0.0, 1 - 0.35 * i)
            else:
                factor = 0.8
        targets: dict[str, Any] = {}
        for lesion in lesions:
            if lesion["kind"] != "target":
                continue
            size = round(sizes[lesion["id"]] * factor, 1)
            if lesion.get("nodal") and kind == "complete" and factor < 0.5:
                size = 6.0  # R-TGT-CR: a node < 10 mm short axis counts as normal
            targets[lesion["id"]] = size
        new: list[dict[str, Any]] = []
        if kind == "new_lesion" and i >= event_at:
            new = [{"id": "NL01", "site": "liver", "equivocal": False}]
        if kind == "equivocal_confirmed" and i >= event_at - 1 and i > 0:
            new = [{"id": "NL01", "site": "lung", "equivocal": i < event_at}]
        non_target = "absent" if kind == "complete" and factor == 0.0 else "present"
        tps.append(
            {
                "id": visit_code(i),
                "date": when.isoformat(),
                "targets": targets,
                "non_targets": {"NT01": "present" if i == 0 else non_target},
                "new_lesions": new,
            }
        )
    return {
        "subject_id": subject_id,
        "arm": arm or rng.choice([a for a, _ in DEMO_ARMS]),
        "randomized_on": (start - timedelta(days=3)).isoformat(),
        "lesions": lesions,
        "timepoints": tps,
    }


def _file_cases() -> list[dict[str, Any]]:
    if not DEMO_CASE_FILE.exists():
        return []
    data = json.loads(DEMO_CASE_FILE.read_text())
    return data if isinstance(data, list) else [data]


def seed_demo(session: Session, *, subjects: int = 12, seed: int = 2089100) -> list[str]:
    """Create the demo trial with its subjects (once); returns the subject ids created."""
    if session.scalar(select(Trial.id).where(Trial.code == DEMO_TRIAL)) is not None:
        return []
    create_trial(
        session,
        SYSTEM,
        code=DEMO_TRIAL,
        title="Demo: SBRT + systemic therapy vs systemic therapy alone (synthetic)",
        settings=DEMO_SETTINGS,
        arms=DEMO_ARMS,
    )
    rng = random.Random(seed)  # noqa: S311 - synthetic demo data, not secrets
    created = []
    for case in _file_cases():
        case = dict(case)
        if case.get("arm") not in {a for a, _ in DEMO_ARMS}:
            case["arm"] = None
        case.pop("settings", None)  # the trial's protocol settings apply
        import_case(session, SYSTEM, DEMO_TRIAL, case)
        created.append(case["subject_id"])
    for n in range(subjects):
        kind = TRAJECTORIES[n % len(TRAJECTORIES)]
        case = synthetic_case(rng, f"0101-{n + 1:03d}", timepoints=rng.randrange(3, 7), kind=kind)
        import_case(session, SYSTEM, DEMO_TRIAL, case)
        created.append(case["subject_id"])
    return created


def seed_users(session: Session) -> dict[str, tuple[str, str]]:
    """One demo user per role with a random password; returns {name: (role, password)}.

    Users that already exist are left alone (their passwords were printed when created).
    """
    out = {}
    for role in ROLES:
        name = DEMO_USERS[role]
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            continue
        password = secrets.token_urlsafe(12)
        create_user(session, SYSTEM, username=name, password=password, role=role)
        out[name] = (role, password)
    return out
