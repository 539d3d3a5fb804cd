"""The demo seed shows the review features, writes them through the services (so the audit
chain holds them and verifies) and creates nothing on a second run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.demo import (
    DEMO_CASE_ARM,
    DEMO_CASE_FILE,
    DEMO_CENTRAL_TRIAL,
    DEMO_SECOND_READER,
    DEMO_TRIAL,
    DEMO_USERS,
    seed_demo,
    seed_users,
)
from web.models import AuditRecord, Subject, Timepoint
from web.services import SYSTEM, get_subject, get_trial, update_subject
from web.services.audit import verify_chain
from web.services.central import metrics, overview
from web.services.plots import trial_plot
from web.services.progression import open_queries, queue
from web.testing import login


@pytest.fixture
def passwords(session: Session) -> dict[str, str]:
    """The demo users, created now: user name → password."""
    return {name: password for name, (_, password) in seed_users(session).items()}


@pytest.fixture
def seeded(session: Session, passwords: dict[str, str]) -> dict[str, list[str]]:
    created = seed_demo(session, subjects=6, passwords=passwords)
    session.expunge_all()
    session.rollback()
    return created


def _audit(session: Session, **where: Any) -> list[AuditRecord]:
    query = select(AuditRecord).order_by(AuditRecord.seq)
    for name, value in where.items():
        query = query.where(getattr(AuditRecord, name) == value)
    return list(session.scalars(query))


def test_the_demo_trial_has_an_agreed_a_queried_and_an_overridden_progression_call(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    trial = get_trial(session, DEMO_TRIAL)
    rows = {row.state: row for row in queue(session, trial)}
    assert {"agreed", "queried", "overridden"} <= set(rows)
    agreed, queried, overridden = rows["agreed"], rows["queried"], rows["overridden"]
    assert agreed.latest is not None and agreed.latest.username == DEMO_USERS["reviewer"]
    assert queried.latest is not None
    assert (queried.latest.comment or "").startswith("please check the ")
    assert [r.subject.code for r in open_queries(session, trial)] == [queried.subject.code]
    used = overridden.used
    assert (used["source"], used["by"]) == ("override", DEMO_USERS["adjudicator"])
    assert used["why"] and used["engine"]["timepoint"] == overridden.call.timepoint
    assert (used["timepoint"], used["date"]) != (
        overridden.call.timepoint,
        overridden.call.date.isoformat(),
    )
    # The reads behind the agreed and overridden calls are signed by the reader who read them.
    for row in (agreed, overridden):
        assert (row.reader, row.signed_by) == (DEMO_USERS["reader"], DEMO_USERS["reader"])
    assert queried.signed_by is None
    # The plots use the override for that subject and say so.
    km = trial_plot(session, trial, "km-pfs")
    sources = {p["USUBJID"]: p["source"] for p in km.points}
    assert sources[overridden.subject.code] == "override"
    assert sources[agreed.subject.code] == "engine"


def test_the_demo_reviews_are_in_the_audit_trail_and_the_chain_verifies(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    signed = session.scalar(select(func.count()).select_from(Timepoint).where(Timepoint.locked))
    assert signed == 3
    assert [r.action for r in _audit(session, entity="timepoint", field="signature")] == [
        "sign"
    ] * 3
    progression = _audit(session, entity="progression")
    assert [(r.action, r.field) for r in progression] == [
        ("review", "agreed"),
        ("review", "queried"),
        ("override", "overridden"),
    ]
    assert [r.username for r in progression] == [
        DEMO_USERS["reviewer"],
        DEMO_USERS["reviewer"],
        DEMO_USERS["adjudicator"],
    ]
    assert progression[2].reason  # the override's reason
    assert (
        _audit(session, entity="adjudication", action="adjudicate")[0].username
        == (DEMO_USERS["adjudicator"])
    )
    report = verify_chain(session.connection())
    assert report.intact, report.problem
    assert report.records == len(_audit(session))


def test_the_central_review_demo_has_agreeing_adjudicated_and_waiting_subjects(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    trial = get_trial(session, DEMO_CENTRAL_TRIAL)
    assert trial.central_review
    rows = overview(session, trial)
    assert [r.state for r in rows] == ["agreed", "adjudicated", "1 of 2 reads"]
    adjudicated = rows[1]
    assert adjudicated.disagreement is not None and "progression" in adjudicated.disagreement
    assert adjudicated.adjudication is not None
    accepted = [r for r in adjudicated.reads if r.accepted]
    assert [r.reader for r in accepted] == [DEMO_SECOND_READER]
    assert metrics(rows)["readers"][DEMO_SECOND_READER]["won"] == 1
    km = trial_plot(session, trial, "km-pfs")
    assert [(p["USUBJID"], p["source"]) for p in km.points] == [
        (rows[0].subject.code, "central"),
        (rows[1].subject.code, "central"),
    ]


def test_a_second_seed_creates_nothing(session: Session, seeded: dict[str, list[str]]) -> None:
    assert set(seeded) == {DEMO_TRIAL, DEMO_CENTRAL_TRIAL}
    records = len(_audit(session))
    subjects = session.scalar(select(func.count()).select_from(Subject))
    assert seed_users(session) == {}
    assert seed_demo(session, subjects=6) == {}
    session.expunge_all()
    session.rollback()
    assert len(_audit(session)) == records
    assert session.scalar(select(func.count()).select_from(Subject)) == subjects


def test_without_the_users_passwords_the_demo_has_reviews_but_no_signatures_or_central_trial(
    session: Session,
) -> None:
    seed_users(session)  # created earlier: their passwords are gone
    created = seed_demo(session, subjects=6)
    assert list(created) == [DEMO_TRIAL]
    session.expunge_all()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Timepoint).where(Timepoint.locked)) == 0
    states = {row.state for row in queue(session, get_trial(session, DEMO_TRIAL))}
    assert {"agreed", "queried", "overridden"} <= states


def test_the_imaging_demo_case_is_randomised_to_an_arm_and_drawn_in_its_curve(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    """DEMO-001's file names the arm "demo", which the trial does not have: the seed puts it
    in an arm, randomised on the file's date, so the by-arm plots leave no one out."""
    assert "DEMO-001" in seeded[DEMO_TRIAL]
    subject = get_subject(session, DEMO_TRIAL, "DEMO-001")
    assert subject.arm is not None and subject.arm.code == DEMO_CASE_ARM
    assert subject.randomized_on is not None and subject.randomized_on.isoformat() == "2024-01-05"
    trial = get_trial(session, DEMO_TRIAL)
    for kind in ("km-pfs", "km-os"):
        plot = trial_plot(session, trial, kind)
        assert plot.excluded == []
        assert "(no arm)" not in {row["arm"] for row in plot.summary}
        demo = next(p for p in plot.points if p["USUBJID"] == "DEMO-001")
        # Randomised 2024-01-05; PD at W16 on 2024-04-29 (sample_dicom/README.md): day 116.
        assert (demo["ARM"], demo["STARTDT"]) == (DEMO_CASE_ARM, "2024-01-05")
        assert "without an arm" not in (plot.note or "")
    pfs = trial_plot(session, trial, "km-pfs").points
    demo = next(p for p in pfs if p["USUBJID"] == "DEMO-001")
    assert (demo["AVAL"], demo["CNSR"]) == (116, 0)


def test_the_demo_has_deaths_so_overall_survival_has_events(
    session: Session, seeded: dict[str, list[str]]
) -> None:
    """Synthetic subjects die after their last visit by chance (web.demo_deaths): OS is
    not two flat lines, and every death is after the subject's last assessment."""
    trial = get_trial(session, DEMO_TRIAL)
    dead = list(
        session.scalars(
            select(Subject).where(Subject.trial_id == trial.id, Subject.died_on.is_not(None))
        )
    )
    assert dead
    for subject in dead:
        assert subject.died_on is not None
        assert subject.died_on > max(tp.date for tp in subject.timepoints)
    os_plot = trial_plot(session, trial, "km-os")
    assert sum(row["events"] for row in os_plot.summary) == len(dead)


def _recorded(case: dict[str, Any], tp_code: str) -> dict[str, float]:
    return next(tp["targets"] for tp in case["timepoints"] if tp["id"] == tp_code)


def test_the_imaging_demo_case_shows_the_measurements_from_its_images_on_the_evidence_page(
    session: Session,
    seeded: dict[str, list[str]],
    passwords: dict[str, str],
    client: FlaskClient,
) -> None:
    case = json.loads(DEMO_CASE_FILE.read_text())
    subject = get_subject(session, DEMO_TRIAL, "DEMO-001")
    stored = {tp.code: tp.imaging_json for tp in subject.timepoints}
    # The baseline's study is attached as evidence (its values stay as entered).
    assert set(stored["BL"]["lesions"]) == {"T1", "T2", "T3"}
    for code in ("BL", "W8", "W16"):
        evidence = stored[code]
        assert evidence is not None
        assert evidence["image"]["modality"] == "CT"
        assert evidence["image"]["study_date"] == next(
            tp["date"] for tp in case["timepoints"] if tp["id"] == code
        )
        lesions = evidence["lesions"]
        # What imaging_io measured is what the case records (both come from the studies).
        assert {k: v["mm"] for k, v in lesions.items()} == _recorded(case, code)
        assert lesions["T3"]["axis"] == "short axis"  # the node, R-NODE
        assert {v["matched"] for v in lesions.values()} == {"by its id"}
        assert lesions["T1"]["segment"] == "liver lesion"
    login(client, DEMO_USERS["reviewer"], passwords[DEMO_USERS["reviewer"]])
    page = client.get(f"/trials/{DEMO_TRIAL}/subjects/DEMO-001/progression")
    assert page.status_code == 200
    html = page.data.decode()
    assert "Evidence: measurements from the images" in html
    for code in ("W8", "W16"):
        for lesion in ("T1", "T2", "T3"):
            assert f'data-tp="{code}" data-lesion="{lesion}"' in html
    assert "changed by the reader" not in html
    # The evidence went in through the services: the audit trail holds it.
    imaging = _audit(session, entity="timepoint", field="imaging")
    assert [r.entity_key for r in imaging] == [
        f"{DEMO_TRIAL}/DEMO-001/BL",
        f"{DEMO_TRIAL}/DEMO-001/W8",
        f"{DEMO_TRIAL}/DEMO-001/W16",
    ]


def test_a_demo_seeded_before_the_imaging_case_had_an_arm_is_completed_once(
    session: Session,
) -> None:
    """A database seeded by an earlier version: DEMO-001 without an arm, randomisation date
    or imaging evidence. The next seed adds them (through the services); the one after that
    writes nothing."""
    seed_users(session)
    seed_demo(session, subjects=2)
    update_subject(
        session,
        SYSTEM,
        DEMO_TRIAL,
        "DEMO-001",
        values={"arm": None, "randomized_on": None},
        expected_version=get_subject(session, DEMO_TRIAL, "DEMO-001").version,
        reason="as an earlier demo seed left it",
    )
    for tp in get_subject(session, DEMO_TRIAL, "DEMO-001").timepoints:
        tp.imaging_json = None  # as the earlier seed left it (no service clears evidence)
    session.commit()
    session.expunge_all()
    assert seed_demo(session, subjects=2) == {}
    session.expunge_all()
    session.rollback()
    subject = get_subject(session, DEMO_TRIAL, "DEMO-001")
    assert subject.arm is not None and subject.arm.code == DEMO_CASE_ARM
    assert subject.randomized_on is not None and subject.randomized_on.isoformat() == "2024-01-05"
    assert [tp.code for tp in subject.timepoints if tp.imaging_json] == ["BL", "W8", "W16"]
    records = len(_audit(session))
    assert seed_demo(session, subjects=2) == {}
    session.expunge_all()
    session.rollback()
    assert len(_audit(session)) == records
