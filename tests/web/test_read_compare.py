"""Adjudication shows which non-targets and which new lesions differ between the two reads,
and warns for each visit whose two reads describe different scan dates."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from tests.recist.conftest import case, fu
from web.services import SYSTEM, Actor, create_subject, create_user
from web.services.central import set_central_review, submit_read
from web.services.read_compare import (
    compare_new_lesions,
    compare_non_targets,
    scan_date_warnings,
)
from web.testing import PASSWORD, assign_everyone, login


def _read(*follow_ups: dict[str, Any]) -> dict[str, Any]:
    whole = case({"T1": 30.0}, *follow_ups, non_targets=("NT1",))
    return {"lesions": whole["lesions"], "timepoints": whole["timepoints"]}


def test_non_targets_are_compared_visit_by_visit() -> None:
    one = _read(fu(targets={"T1": 28.0}), fu(targets={"T1": 28.0}, non_targets={"NT1": "absent"}))
    two = _read(fu(targets={"T1": 28.0}), fu(targets={"T1": 28.0}))
    rows = compare_non_targets([one, two])
    assert [(r["timepoint"], r["lesion"], r["reads"], r["differ"]) for r in rows] == [
        ("BL", "NT1", ["present", "present"], False),
        ("FU1", "NT1", ["present", "present"], False),
        ("FU2", "NT1", ["absent", "present"], True),
    ]
    assert compare_non_targets([one]) == []


def test_new_lesions_in_one_read_only_or_first_seen_at_other_visits_differ() -> None:
    one = _read(
        fu(targets={"T1": 28.0}, new_lesions=[{"id": "NL01", "site": "liver"}]),
        fu(
            targets={"T1": 28.0},
            new_lesions=[
                {"id": "NL01", "site": "liver"},
                {"id": "NL02", "site": "lung", "equivocal": True},
            ],
        ),
        fu(targets={"T1": 28.0}, new_lesions=[{"id": "NL03", "site": "bone"}]),
    )
    two = _read(
        fu(targets={"T1": 28.0}),
        fu(
            targets={"T1": 28.0},
            new_lesions=[
                {"id": "NL01", "site": "liver"},
                {"id": "NL02", "site": "lung", "equivocal": True},
            ],
        ),
        fu(targets={"T1": 28.0}, new_lesions=[{"id": "NL03", "site": "brain"}]),
    )
    rows = {r["lesion"]: r for r in compare_new_lesions([one, two])}
    assert rows["NL01"]["differ"]
    assert rows["NL01"]["difference"] == "first seen at FU1 in read 1, at FU2 in read 2"
    assert not rows["NL02"]["differ"] and rows["NL02"]["reads"][1]["equivocal"]
    assert rows["NL03"]["difference"] == "site bone in read 1, brain in read 2"
    only = compare_new_lesions([two, _read(fu(targets={"T1": 28.0}))])
    assert [(r["lesion"], r["difference"]) for r in only] == [
        ("NL01", "only in read 1"),
        ("NL02", "only in read 1"),
        ("NL03", "only in read 1"),
    ]
    assert compare_new_lesions([_read(fu(targets={"T1": 28.0})), two])[0]["difference"] == (
        "only in read 2"
    )


def test_an_equivocal_lesion_confirmed_at_different_visits_differs() -> None:
    equivocal = {"id": "NL01", "site": "lung", "equivocal": True}
    certain = {"id": "NL01", "site": "lung"}
    one = _read(
        fu(targets={"T1": 28.0}, new_lesions=[equivocal]),
        fu(targets={"T1": 28.0}, new_lesions=[certain]),
    )
    two = _read(
        fu(targets={"T1": 28.0}, new_lesions=[equivocal]),
        fu(targets={"T1": 28.0}, new_lesions=[equivocal]),
    )
    (row,) = compare_new_lesions([one, two])
    assert row["difference"] == "unequivocal at FU2 in read 1, at no visit in read 2 (R-NEW-2)"


def test_a_visit_whose_reads_give_different_scan_dates_is_warned_about() -> None:
    one = _read(fu(targets={"T1": 28.0}), fu(targets={"T1": 28.0}))
    two = _read(fu(targets={"T1": 28.0}), fu(targets={"T1": 28.0}))
    assert scan_date_warnings([one, two]) == []
    two["timepoints"][1]["date"] = "2021-03-05"
    two["timepoints"][2]["scan_dates"] = {"NT1": "2021-04-20"}
    warnings = scan_date_warnings([one, two])
    assert [w["timepoint"] for w in warnings] == ["FU1", "FU2"]
    assert warnings[0]["dates"] == [one["timepoints"][1]["date"], "2021-03-05"]
    assert "read 1 dates it" in warnings[0]["message"]
    assert warnings[1]["lesions"] == [
        {"lesion": "NT1", "dates": [one["timepoints"][2]["date"], "2021-04-20"]}
    ]
    assert "NT1 scanned" in warnings[1]["message"]
    # A visit only one read has is not a date conflict (the target table shows it).
    two["timepoints"].pop()
    assert [w["timepoint"] for w in scan_date_warnings([one, two])] == ["FU1"]


def test_the_adjudication_page_shows_the_differences_and_the_date_warning(
    app: Flask, session: Session, trial: str, users: dict[str, str]
) -> None:
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    assign_everyone(session)
    set_central_review(session, Actor("trial_manager", "trial_manager"), trial, on=True)
    create_subject(session, SYSTEM, trial, code="S-1", arm="A", randomized_on="2021-01-04")
    one = _read(
        fu(targets={"T1": 28.0}),
        fu(targets={"T1": 28.0}, new_lesions=[{"id": "NL01", "site": "liver"}]),
    )
    two = _read(fu(targets={"T1": 28.0}), fu(targets={"T1": 28.0}, non_targets={"NT1": "absent"}))
    two["timepoints"][1]["date"] = "2021-03-03"
    submit_read(session, Actor("reader", "reader"), trial, "S-1", read=one, password=PASSWORD)
    submit_read(session, Actor("reader2", "reader"), trial, "S-1", read=two, password=PASSWORD)
    client = app.test_client()
    login(client, "adjudicator")
    page = client.get(f"/trials/{trial}/subjects/S-1/adjudication").data.decode()
    assert 'id="scan-date-warnings"' in page and "FU1: the reads describe different" in page
    assert '<tr data-tp="FU2" data-lesion="NT1" class="differs">' in page
    assert '<tr data-tp="FU1" data-lesion="NT1" class="">' in page
    assert '<tr data-lesion="NL01" class="differs">' in page and "only in read 1" in page
    assert 'maxlength="2000"' in page
