"""The demo trial: synthetic subjects (no patient data) and one user per role.

Trajectories are generated from a seeded random generator so that every run shows the
same mix of responses: partial responses, stable disease, progression by growth of the
targets (R-TGT-PD), by a new lesion (R-NEW-1), by an equivocal new lesion confirmed later
(R-NEW-2, back-dated progression) and complete responses with a nodal target < 10 mm
(R-TGT-CR). The benchmark uses the same generator for its 280 subjects × 10 timepoints.

The imaging demo case DEMO-001 (``sample_dicom/``) is randomised to an arm like the
others, and its follow-ups carry the measurements imaging_io took from its studies, stored
as an upload stores them, so the progression-call page shows them beside the reader's.

The demo also shows the review features, written through the same service functions as
the pages (so the audit trail records them), when the demo users are created in the same
run (signing needs their passwords, which are never stored in clear):

* in the demo trial, the reader signs a few reads; of the progression calls, a reviewer
  agrees with the first, queries the second with a comment, and the adjudicator overrides
  the third with a reason;
* a second, small trial uses independent central review: two readers agree on one subject,
  disagree on another (the adjudicator accepts one read with a rationale), and one subject
  waits for its second read.
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

from recist.settings import STEREO_SEIN_ELIGIBILITY
from web.models import ROLES, Trial, User
from web.services import SYSTEM, Actor, create_trial, create_user, import_case

DEMO_TRIAL = "STEREO-SEIN-DEMO"
DEMO_ARMS = [
    ("SBRT-ST", "SBRT to all metastases + systemic therapy"),
    ("ST", "systemic therapy alone"),
]
# The model trial's protocol, its eligibility too (NCT02089100: R-ELIG, rules.md §12).
DEMO_SETTINGS: dict[str, Any] = {
    "confirmation": False, "visit_interval_days": 56, "eligibility": STEREO_SEIN_ELIGIBILITY
}  # fmt: skip
DEMO_USERS = {
    "reader": "reader1",
    "adjudicator": "adjudicator1",
    "trial_manager": "manager1",
    "reviewer": "reviewer1",
    "admin": "admin",
}
# The second reader of the central-review demo (independent reads need two readers).
DEMO_SECOND_READER = "reader2"
DEMO_CENTRAL_TRIAL = "STEREO-SEIN-ICR-DEMO"
SAMPLE_DICOM = Path(__file__).resolve().parent.parent / "sample_dicom"
DEMO_CASE_FILE = SAMPLE_DICOM / "demo_case.json"
# The imaging demo case (DEMO-001) is a subject of the trial like any other: randomised to
# an arm (its file says "demo", which is no arm of the trial) three days before baseline.
DEMO_CASE_ARM = "SBRT-ST"
RANDOMISED_DAYS_BEFORE_BASELINE = 3

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
    """One synthetic subject in the case contract (docs/contracts.md)."""
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


def seed_demo(
    session: Session,
    *,
    subjects: int = 12,
    seed: int = 2089100,
    passwords: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Create the demo trials with their subjects and reviews (once).

    Parameters
    ----------
    subjects
        Synthetic subjects of the demo trial (besides the imaging demo case).
    seed
        The random generator's seed (the same subjects every run).
    passwords
        User name → password of the demo users created in this run. Signing (reads,
        central reads, adjudication) needs them: without the reader's, no read is signed;
        without both readers' and the adjudicator's, the central-review trial is not made.

    Returns
    -------
    dict
        Trial code → the subject ids created (an empty dict when everything exists).
    """
    passwords = passwords or {}
    created: dict[str, list[str]] = {}
    if session.scalar(select(Trial.id).where(Trial.code == DEMO_TRIAL)) is None:
        created[DEMO_TRIAL] = _seed_trial(session, subjects, seed)
        _seed_reviews(session, passwords)
    else:
        _complete_file_cases(session)
    central_users = (DEMO_USERS["reader"], DEMO_SECOND_READER, DEMO_USERS["adjudicator"])
    if (
        all(name in passwords for name in central_users)
        and session.scalar(select(Trial.id).where(Trial.code == DEMO_CENTRAL_TRIAL)) is None
    ):
        created[DEMO_CENTRAL_TRIAL] = _seed_central(session, passwords, seed)
    _assign_members(session)
    return created


def _assign_members(session: Session) -> None:
    """Every demo user but the admin joins every demo trial (only members reach a trial)."""
    from web.services.membership import assign_everyone

    assign_everyone(session, [*DEMO_USERS.values(), DEMO_SECOND_READER])


def _reader() -> Actor:
    return Actor(DEMO_USERS["reader"], "reader")


def _seed_trial(session: Session, subjects: int, seed: int) -> list[str]:
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
        case = _as_demo_subject(case)
        import_case(session, _reader(), DEMO_TRIAL, case)
        _store_imaging(session, case)
        created.append(case["subject_id"])
    for n in range(subjects):
        kind = TRAJECTORIES[n % len(TRAJECTORIES)]
        case = synthetic_case(rng, f"0101-{n + 1:03d}", timepoints=rng.randrange(3, 7), kind=kind)
        import_case(session, _reader(), DEMO_TRIAL, case)
        created.append(case["subject_id"])
    return created


def _as_demo_subject(case: dict[str, Any]) -> dict[str, Any]:
    """A case of ``sample_dicom/`` as a subject of the demo trial: in an arm of the trial
    (:data:`DEMO_CASE_ARM` unless the file names one) and randomised (the file's date, else
    three days before baseline), so that it counts in the by-arm analyses."""
    case = dict(case)
    if case.get("arm") not in {a for a, _ in DEMO_ARMS}:
        case["arm"] = DEMO_CASE_ARM
    if not case.get("randomized_on") and case.get("timepoints"):
        baseline = date.fromisoformat(case["timepoints"][0]["date"])
        case["randomized_on"] = (
            baseline - timedelta(days=RANDOMISED_DAYS_BEFORE_BASELINE)
        ).isoformat()
    case.pop("settings", None)  # the trial's protocol settings apply
    return case


def _study_zip(folder: Path) -> Any:
    """The study in ``folder`` (its series and segmentation) as the zip a reader uploads."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(folder.rglob("*.dcm")):
            archive.write(path, path.relative_to(folder).as_posix())
    out.seek(0)
    return out


def _store_imaging(session: Session, case: dict[str, Any]) -> None:
    """Measure each study of ``sample_dicom/`` and keep it as its timepoint's imaging
    evidence as an upload does (``measure_upload``, the upload page's matching, then
    ``save_timepoint(imaging=…)``, or ``attach_imaging`` for the baseline, whose values
    stay as entered), so that the progression-call page shows the images.

    A timepoint without a study folder is left without evidence; one that is signed (or
    followed by a signed one) or already has evidence is left alone, so a later seed
    changes nothing.
    """
    from web.config import study_store
    from web.services import get_subject, get_timepoint, ordered_timepoints, save_timepoint
    from web.services.studies import attach_imaging
    from web.services.uploads import match_segments, measure_upload

    for index, item in enumerate(case.get("timepoints", [])):
        folder = SAMPLE_DICOM / item["id"]
        subject = get_subject(session, DEMO_TRIAL, case["subject_id"])
        tp = get_timepoint(subject, item["id"])
        timepoints = ordered_timepoints(subject)
        # Evidence means a kept study; an imported case's baseline volumes alone are not.
        if not folder.is_dir() or (tp.imaging_json or {}).get("study"):
            continue
        if any(t.locked for t in timepoints[timepoints.index(tp) :]):
            continue  # a signed read (or one signed after it) is not changed
        measured = measure_upload(_study_zip(folder), store=study_store())
        imaging = {"image": measured.get("image") or {}, "lesions": match_segments(
            case, measured)[2], "study": measured.get("study")}  # fmt: skip
        if index == 0:
            attach_imaging(session, _reader(), DEMO_TRIAL, case["subject_id"], tp.code, imaging)
        else:
            save_timepoint(session, _reader(), DEMO_TRIAL, case["subject_id"], item,
                           expected_version=tp.version, imaging=imaging)  # fmt: skip
        session.expunge_all()


def _complete_file_cases(session: Session) -> None:
    """Bring the ``sample_dicom/`` subjects of a demo trial seeded by an earlier version up
    to date: an arm and randomisation date where they have none, and the imaging evidence.
    Writes only what is missing (through the services), so a later run writes nothing."""
    from web.services import NotFound, get_subject, update_subject

    for case in _file_cases():
        case = _as_demo_subject(case)
        try:
            subject = get_subject(session, DEMO_TRIAL, case["subject_id"])
        except NotFound:
            continue
        values = {}
        if subject.arm is None:
            values["arm"] = case["arm"]
        if subject.randomized_on is None:
            values["randomized_on"] = case["randomized_on"]
        if values:
            update_subject(
                session,
                SYSTEM,
                DEMO_TRIAL,
                case["subject_id"],
                values=values,
                expected_version=subject.version,
                reason="demo seed: the imaging demo case is randomised to an arm",
            )
            session.expunge_all()
        _store_imaging(session, case)


def _sign(session: Session, password: str, subject_code: str, tp_code: str) -> None:
    from web.services import get_subject, get_timepoint
    from web.services.signing import sign_timepoint

    tp = get_timepoint(get_subject(session, DEMO_TRIAL, subject_code), tp_code)
    sign_timepoint(
        session,
        _reader(),
        DEMO_TRIAL,
        subject_code,
        tp_code,
        password=password,
        meaning="read complete",
        expected_version=tp.version,
    )


def _seed_reviews(session: Session, passwords: dict[str, str]) -> None:
    """Signed reads and the three progression-review outcomes in the demo trial: the
    first progression call agreed, the second queried, the third overridden."""
    from web.services import get_trial, ordered_timepoints
    from web.services.progression import override_call, queue, review_call

    rows = queue(session, get_trial(session, DEMO_TRIAL))
    reviewer = Actor(DEMO_USERS["reviewer"], "reviewer")
    adjudicator = Actor(DEMO_USERS["adjudicator"], "adjudicator")
    calls = [
        (row.subject.code, row.call, [t.code for t in ordered_timepoints(row.subject)])
        for row in rows[:3]
    ]
    password = passwords.get(DEMO_USERS["reader"])
    if password:
        # The reader signs the reads behind the first and third calls, and a baseline.
        for code, call, _ in calls[0:3:2]:
            _sign(session, password, code, call.timepoint)
        if calls:
            _sign(session, password, calls[0][0], calls[0][2][0])
    for index, (code, call, timepoints) in enumerate(calls):
        seen = f"{call.timepoint}/{call.date.isoformat()}"
        if index == 0:
            review_call(
                session, reviewer, DEMO_TRIAL, code, decision="agreed", comment="", seen_call=seen
            )
        elif index == 1:
            review_call(
                session,
                reviewer,
                DEMO_TRIAL,
                code,
                decision="queried",
                comment=(
                    f"please check the new lesion at {call.timepoint}: is it new, or was it "
                    "there at baseline on the slices not measured?"
                    if call.rule == "PD_NEW_LESION"
                    else f"please check the measurements at {call.timepoint} against the "
                    "previous timepoint: is the growth real or a different slice?"
                ),
                seen_call=seen,
            )
        else:
            later = timepoints[timepoints.index(call.timepoint) + 1 :]
            override_call(
                session,
                adjudicator,
                DEMO_TRIAL,
                code,
                timepoint=later[0] if later else None,
                reason=(
                    f"the change at {call.timepoint} is within measurement variability; "
                    f"progression is unequivocal at {later[0]}"
                    if later
                    else f"the finding at {call.timepoint} is post-radiotherapy change, "
                    "not progression"
                ),
                seen_call=seen,
            )
        session.expunge_all()


def _second_read(read: dict[str, Any]) -> dict[str, Any]:
    """Another reader's read of the same images: the same until the targets grow, then
    unchanged from the timepoint before (so the two reads disagree on progression)."""
    timepoints = [dict(tp) for tp in read["timepoints"]]
    for i in range(2, len(timepoints)):
        before, now = timepoints[i - 1]["targets"], timepoints[i]["targets"]
        if sum(now.values()) > sum(before.values()):
            timepoints[i]["targets"] = dict(before)
    return {"lesions": read["lesions"], "timepoints": timepoints}


def _seed_central(session: Session, passwords: dict[str, str], seed: int) -> list[str]:
    """A small independent-central-review trial: concordant reads, discordant reads
    adjudicated, and one subject waiting for its second read."""
    from web.services import create_subject
    from web.services.central import adjudicate, set_central_review, submit_read

    create_trial(
        session,
        SYSTEM,
        code=DEMO_CENTRAL_TRIAL,
        title="Demo: independent central review (synthetic)",
        settings=DEMO_SETTINGS,
        arms=DEMO_ARMS,
    )
    manager = Actor(DEMO_USERS["trial_manager"], "trial_manager")
    set_central_review(session, manager, DEMO_CENTRAL_TRIAL, on=True)
    first, second = _reader(), Actor(DEMO_SECOND_READER, "reader")
    rng = random.Random(seed + 1)  # noqa: S311 - synthetic demo data, not secrets
    plan = [("0201-001", "stable"), ("0201-002", "growth"), ("0201-003", "responder")]
    created = []
    for code, kind in plan:
        case = synthetic_case(rng, code, timepoints=5, kind=kind)
        create_subject(
            session,
            manager,
            DEMO_CENTRAL_TRIAL,
            code=code,
            arm=case["arm"],
            randomized_on=case["randomized_on"],
        )
        created.append(code)
        read = {"lesions": case["lesions"], "timepoints": case["timepoints"]}
        submit_read(
            session,
            first,
            DEMO_CENTRAL_TRIAL,
            code,
            read=read,
            password=passwords[first.username],
        )
        if kind == "responder":
            continue  # the second read is still to come
        other = _second_read(read) if kind == "growth" else read
        submit_read(
            session,
            second,
            DEMO_CENTRAL_TRIAL,
            code,
            read=other,
            password=passwords[second.username],
        )
        if kind == "growth":
            adjudicate(
                session,
                Actor(DEMO_USERS["adjudicator"], "adjudicator"),
                DEMO_CENTRAL_TRIAL,
                code,
                accepted_slot=2,
                rationale="the target growth in read 1 is a measurement across a different "
                "slice; read 2 measures the same plane at every timepoint",
                password=passwords[DEMO_USERS["adjudicator"]],
            )
        session.expunge_all()
    return created


def seed_users(session: Session) -> dict[str, tuple[str, str]]:
    """One demo user per role, and the second reader of the central-review demo, each with
    a random password; returns {name: (role, password)}.

    Users that already exist are left alone (their passwords were printed when created).
    """
    out = {}
    wanted = [(DEMO_USERS[role], role) for role in ROLES] + [(DEMO_SECOND_READER, "reader")]
    for name, role in wanted:
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            continue
        password = secrets.token_urlsafe(12)
        create_user(session, SYSTEM, username=name, password=password, role=role)
        out[name] = (role, password)
    return out
