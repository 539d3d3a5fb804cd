"""The service layer: one transaction per write, engine-computed results, audit, versions."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.models import AuditRecord, LesionRecord, Subject, Timepoint
from web.services import (
    SYSTEM,
    Actor,
    ConcurrentEdit,
    Conflict,
    InvalidInput,
    ReasonRequired,
    build_case,
    create_subject,
    get_subject,
    import_case,
    save_baseline,
    save_timepoint,
    update_subject,
)
from web.testing import baseline_lesions, seed_subject_with_follow_up

READER = Actor("alice", "reader")


def _baseline(session: Session, trial: str, subject: str = "S-001") -> Subject:
    create_subject(session, SYSTEM, trial, code=subject, arm="A", randomized_on="2021-01-01")
    return save_baseline(
        session,
        READER,
        trial,
        subject,
        date_value="2021-01-04",
        lesions=baseline_lesions(),
    )


def _follow_up(
    code: str,
    day: str,
    t1: Any,
    t2: Any,
    nt: str = "present",
    new: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": code,
        "date": day,
        "targets": {"T01": t1, "T02": t2},
        "non_targets": {"NT01": nt},
        "new_lesions": new or [],
    }


def _audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditRecord)) or 0


def test_baseline_result_is_computed_by_the_engine_from_stored_rows(
    session: Session, trial: str
) -> None:
    subject = _baseline(session, trial)
    result = subject.result_json
    assert result is not None
    assert result["timepoints"][0]["sum_mm"] == 50.0
    assert result["timepoints"][0]["overall_response"] is None
    case = build_case(subject)
    assert case["timepoints"][0]["targets"] == {"T01": 30.0, "T02": 20.0}
    assert case["settings"]["visit_interval_days"] == 56


def test_follow_up_at_70_percent_is_pr_and_growth_to_120_percent_of_nadir_is_pd(
    session: Session, trial: str
) -> None:
    _baseline(session, trial)
    subject, _tp = save_timepoint(
        session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0)
    )
    w8 = subject.result_json["timepoints"][1]
    assert (w8["sum_mm"], w8["target_response"], w8["overall_response"]) == (35.0, "PR", "PR")
    # Nadir 35.0 mm: 42.0 mm is exactly 120 % and 7 mm above it (R-TGT-PD, inclusive).
    subject, _tp = save_timepoint(
        session, READER, trial, "S-001", _follow_up("W16", "2021-04-26", 27.0, 15.0)
    )
    w16 = subject.result_json["timepoints"][2]
    assert w16["target_response"] == "PD"
    assert any(r.startswith("R-TGT-PD") for r in w16["reasons"])
    assert subject.result_json["progression"]["timepoint"] == "W16"
    assert subject.result_json["pfs"]["event"] is True


def test_every_changed_field_is_audited_with_who_and_reason(session: Session, trial: str) -> None:
    _baseline(session, trial)
    _s, tp = save_timepoint(
        session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0)
    )
    before = _audit_count(session)
    save_timepoint(
        session,
        Actor("bob", "adjudicator"),
        trial,
        "S-001",
        _follow_up("W8", "2021-03-01", 22.5, 14.0),
        expected_version=tp.version,
        original_code="W8",
        reason="remeasured",
    )
    records = session.scalars(select(AuditRecord).where(AuditRecord.username == "bob")).all()
    changed = [
        (r.entity_key, r.field, r.old, r.new, r.reason)
        for r in records
        if r.entity == "measurement"
    ]
    assert changed == [(f"{trial}/S-001/W8/T01", "targets", "21.0", "22.5", "remeasured")]
    assert _audit_count(session) == before + len(records)
    assert all(r.at is not None for r in records)


def test_stale_version_is_refused_and_nothing_is_overwritten(session: Session, trial: str) -> None:
    _baseline(session, trial)
    _s, tp = save_timepoint(
        session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0)
    )
    opened = tp.version
    save_timepoint(
        session,
        Actor("bob", "reader"),
        trial,
        "S-001",
        _follow_up("W8", "2021-03-01", 25.0, 14.0),
        expected_version=opened,
        original_code="W8",
        reason="re-measured",
    )
    with pytest.raises(ConcurrentEdit, match=r"W8 changed after you opened it .*by bob .* reload"):
        save_timepoint(
            session,
            READER,
            trial,
            "S-001",
            _follow_up("W8", "2021-03-01", 19.0, 14.0),
            expected_version=opened,
            original_code="W8",
            reason="re-measured",
        )
    subject = get_subject(session, trial, "S-001")
    assert build_case(subject)["timepoints"][1]["targets"]["T01"] == 25.0


def test_two_sessions_editing_the_same_timepoint_second_is_refused(
    app: Any, trial: str, session: Session
) -> None:
    _baseline(session, trial)
    _s, tp = save_timepoint(
        session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0)
    )
    first = app.extensions["recist_sessions"]()
    second = app.extensions["recist_sessions"]()
    try:
        v1 = get_subject(first, trial, "S-001").timepoints[1].version
        v2 = get_subject(second, trial, "S-001").timepoints[1].version
        assert v1 == v2 == tp.version
        save_timepoint(
            first,
            READER,
            trial,
            "S-001",
            _follow_up("W8", "2021-03-01", 20.0, 14.0),
            expected_version=v1,
            original_code="W8",
            reason="re-measured",
        )
        with pytest.raises(ConcurrentEdit, match="after you opened it"):
            save_timepoint(
                second,
                READER,
                trial,
                "S-001",
                _follow_up("W8", "2021-03-01", 30.0, 14.0),
                expected_version=v2,
                original_code="W8",
                reason="re-measured",
            )
    finally:
        first.close()
        second.close()


def test_existing_timepoint_without_version_is_not_overwritten(
    session: Session, trial: str
) -> None:
    _baseline(session, trial)
    save_timepoint(session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0))
    with pytest.raises(
        ConcurrentEdit,
        match=r"already exists \(version \d+\); open it from the grid, or send its version",
    ):
        save_timepoint(session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 1.0, 1.0))


def test_engine_refusal_rolls_back_the_whole_transaction(session: Session, trial: str) -> None:
    _baseline(session, trial)
    before = _audit_count(session)
    rows = session.scalar(select(func.count()).select_from(LesionRecord))
    # A follow-up dated before the baseline would silently become the baseline: refused.
    with pytest.raises(
        InvalidInput, match=r"before the baseline BL .* must not go backwards"
    ) as caught:
        save_timepoint(session, READER, trial, "S-001", _follow_up("W8", "2020-12-01", 21.0, 14.0))
    assert caught.value.pointer == "/date"
    assert _audit_count(session) == before
    assert session.scalar(select(func.count()).select_from(LesionRecord)) == rows
    assert session.scalar(select(func.count()).select_from(Timepoint)) == 1


def test_unknown_lesion_in_a_follow_up_names_it_with_a_pointer(
    session: Session, trial: str
) -> None:
    _baseline(session, trial)
    data = _follow_up("W8", "2021-03-01", 21.0, 14.0)
    data["targets"]["T09"] = 4.0
    with pytest.raises(InvalidInput, match="'T09' is not a target lesion") as caught:
        save_timepoint(session, READER, trial, "S-001", data)
    assert caught.value.pointer == "/targets/T09"


def test_malformed_target_value_is_refused_with_the_contract_choices(
    session: Session, trial: str
) -> None:
    _baseline(session, trial)
    with pytest.raises(
        InvalidInput,
        match=r"timepoint W8, lesion T01, field targets.T01: 'big' is not a number of mm",
    ) as caught:
        save_timepoint(session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", "big", 14.0))
    assert caught.value.pointer == "/targets/T01"


def test_baseline_with_selection_findings_needs_a_reason(session: Session, trial: str) -> None:
    create_subject(session, SYSTEM, trial, code="S-002")
    lesions = [
        {"id": f"T0{i}", "kind": "target", "site": "liver", "size": 20.0 + i} for i in range(1, 4)
    ]
    with pytest.raises(ReasonRequired, match=r"R-SEL-1.*needs a reason") as caught:
        save_baseline(session, READER, trial, "S-002", date_value="2021-01-04", lesions=lesions)
    assert any(f["rule"] == "R-SEL-1" for f in caught.value.details)
    assert get_subject(session, trial, "S-002").timepoints == []
    subject = save_baseline(
        session,
        READER,
        trial,
        "S-002",
        date_value="2021-01-04",
        lesions=lesions,
        reason="protocol allows 3 liver targets",
    )
    assert [w["rule"] for w in subject.result_json["warnings"]].count("R-SEL-1") >= 1
    reasons = session.scalars(
        select(AuditRecord.reason).where(AuditRecord.entity == "lesion")
    ).all()
    assert "protocol allows 3 liver targets" in reasons


def test_site_outside_the_controlled_list_is_refused(session: Session, trial: str) -> None:
    create_subject(session, SYSTEM, trial, code="S-003")
    with pytest.raises(InvalidInput, match="site 'livr' is not in the controlled list"):
        save_baseline(
            session,
            READER,
            trial,
            "S-003",
            date_value="2021-01-04",
            lesions=[{"id": "T01", "kind": "target", "site": "livr", "size": 20.0}],
        )


def test_subject_dates_change_recomputes_pfs(session: Session, trial: str) -> None:
    _baseline(session, trial)
    save_timepoint(session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0))
    subject = update_subject(
        session,
        Actor("mgr", "trial_manager"),
        trial,
        "S-001",
        values={"died_on": "2021-04-01"},
        expected_version=get_subject(session, trial, "S-001").version,
        reason="death reported",
    )
    assert subject.result_json["pfs"]["reason"] == "DEATH"
    assert subject.result_json["pfs"]["date"] == "2021-04-01"


def test_duplicate_subject_is_a_conflict(session: Session, trial: str) -> None:
    create_subject(session, SYSTEM, trial, code="S-009")
    with pytest.raises(Conflict, match="subject 'S-009' already exists"):
        create_subject(session, SYSTEM, trial, code="S-009")


def test_import_case_stores_every_timepoint_and_refuses_invalid_cases(
    session: Session, trial: str
) -> None:
    case = {
        "subject_id": "S-100",
        "arm": "B",
        "randomized_on": "2021-01-01",
        "lesions": [{"id": "T1", "site": "lung", "kind": "target"}],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 40.0}},
            {"id": "W8", "date": "2021-03-01", "targets": {"T1": {"fragments": [10.0, 6.5]}}},
        ],
    }
    subject = import_case(session, SYSTEM, trial, case)
    assert subject.result_json["timepoints"][1]["sum_mm"] == 16.5
    assert build_case(subject)["timepoints"][1]["targets"]["T1"] == {"fragments": [10.0, 6.5]}
    bad = {
        **case,
        "subject_id": "S-101",
        "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": {"T1": -3}}],
    }
    with pytest.raises(InvalidInput, match="T1"):
        import_case(session, SYSTEM, trial, bad)
    assert session.scalar(select(func.count()).select_from(Subject)) == 1


def test_renaming_a_follow_up_onto_an_existing_visit_is_a_conflict(
    session: Session, trial: str
) -> None:
    _baseline(session, trial)
    save_timepoint(session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0))
    _s, w16 = save_timepoint(
        session, READER, trial, "S-001", _follow_up("W16", "2021-04-26", 21.0, 14.0)
    )
    with pytest.raises(Conflict, match="timepoint W8 already exists; choose another visit id"):
        save_timepoint(
            session,
            READER,
            trial,
            "S-001",
            _follow_up("W8", "2021-04-26", 21.0, 14.0),
            expected_version=w16.version,
            original_code="W16",
        )


def test_removing_a_lesion_from_the_baseline_removes_its_follow_up_records(
    session: Session, trial: str
) -> None:
    _baseline(session, trial)
    save_timepoint(session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0))
    subject = get_subject(session, trial, "S-001")
    lesions = [le for le in baseline_lesions() if le["id"] != "T02"]
    subject = save_baseline(
        session,
        READER,
        trial,
        "S-001",
        date_value="2021-01-04",
        lesions=lesions,
        expected_version=subject.timepoints[0].version,
        reason="T02 was a vessel, not a node",
    )
    case = build_case(subject)
    assert [le["id"] for le in case["lesions"]] == ["T01", "NT01"]
    assert case["timepoints"][1]["targets"] == {"T01": 21.0}
    assert subject.result_json["timepoints"][1]["sum_mm"] == 21.0
    assert session.scalar(select(func.count()).select_from(LesionRecord)) == 4


def test_audit_trail_of_a_subject_holds_its_own_records_and_no_other_subjects(
    session: Session, trial: str
) -> None:
    from web.services import audit_trail

    _baseline(session, trial, "S-1")
    _baseline(session, trial, "S-10")
    update_subject(
        session,
        Actor("mgr", "trial_manager"),
        trial,
        "S-1",
        values={"arm": "B"},
        expected_version=get_subject(session, trial, "S-1").version,
        reason="randomisation list corrected",
    )
    records = audit_trail(session, f"{trial}/S-1")
    keys = {r.entity_key for r in records}
    assert f"{trial}/S-1" in keys and f"{trial}/S-1/T01" in keys
    assert not any(k.startswith(f"{trial}/S-10") for k in keys)
    arm = next(r for r in records if r.field == "arm" and r.username == "mgr")
    assert (arm.old, arm.new, arm.reason) == ("A", "B", "randomisation list corrected")


def test_import_maps_site_spellings_to_the_controlled_list_and_refuses_unknown_sites(
    session: Session, trial: str
) -> None:
    def case(subject: str, site: str) -> dict[str, Any]:
        return {
            "subject_id": subject,
            "lesions": [{"id": "T1", "site": site, "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": {"T1": 30.0}}],
        }

    subject = import_case(session, SYSTEM, trial, case("S-200", "Left Lung"))
    assert build_case(subject)["lesions"][0]["site"] == "lung"
    with pytest.raises(
        InvalidInput, match=r"lesion T1: site 'elbow' is not in the controlled"
    ) as caught:
        import_case(session, SYSTEM, trial, case("S-201", "elbow"))
    assert caught.value.pointer == "/lesions/0/site"


def test_changing_or_deleting_clinical_data_after_first_entry_needs_a_reason(
    session: Session, trial: str
) -> None:
    from web.services import InvalidInput, ReasonRequired, delete_timepoint

    _baseline(session, trial)
    _s, tp = save_timepoint(
        session, READER, trial, "S-001", _follow_up("W8", "2021-03-01", 21.0, 14.0)
    )
    before = _audit_count(session)
    with pytest.raises(
        ReasonRequired,
        match=r"changing measurement TRIAL-1/S-001/W8/T01 \(targets\) after its first entry "
        r"needs a reason",
    ):
        save_timepoint(
            session,
            READER,
            trial,
            "S-001",
            _follow_up("W8", "2021-03-01", 25.0, 14.0),
            expected_version=tp.version,
        )
    with pytest.raises(InvalidInput, match=r"deleting a timepoint needs a reason"):
        delete_timepoint(
            session, READER, trial, "S-001", "W8", expected_version=tp.version, reason=""
        )
    assert _audit_count(session) == before
    subject = get_subject(session, trial, "S-001")
    assert build_case(subject)["timepoints"][1]["targets"]["T01"] == 21.0


def test_a_second_follow_up_on_the_same_date_is_refused(session: Session, trial: str) -> None:
    seed_subject_with_follow_up(session, trial)
    with pytest.raises(InvalidInput, match=r"timepoint W9: W8 is already dated 2021-03-01"):
        save_timepoint(
            session,
            Actor("reader", "reader"),
            trial,
            "S-001",
            {"id": "W9", "date": "2021-03-01", "targets": {"T01": 20.0, "T02": 14.0},
             "non_targets": {"NT01": "present"}},
        )  # fmt: skip


def test_deleting_a_follow_up_keeps_what_it_held_in_the_audit_trail(
    session: Session, trial: str
) -> None:
    from web.services import delete_timepoint

    seed_subject_with_follow_up(session, trial)
    w8 = session.scalars(select(Timepoint).where(Timepoint.code == "W8")).one()
    delete_timepoint(
        session, Actor("reader", "reader"), trial, "S-001", "W8",
        expected_version=w8.version, reason="entered for the wrong subject",
    )  # fmt: skip
    session.rollback()
    rows = session.scalars(
        select(AuditRecord).where(AuditRecord.action == "delete").order_by(AuditRecord.seq)
    ).all()
    deleted = {(r.entity, r.entity_key.rsplit("/", 1)[-1]): (r.field, r.old) for r in rows}
    assert deleted[("timepoint", "W8")] == (None, "2021-03-01")
    assert deleted[("measurement", "T01")][0] == "targets" and deleted[("measurement", "T01")][1]
    assert deleted[("measurement", "NT01")] == ("non_targets", "present")
    assert {r.reason for r in rows} == {"entered for the wrong subject"}
