"""The trial page's plots: drawn from the stored results and the endpoint analyses,
checked by their data points and labels, viewable and downloadable."""

from __future__ import annotations

import csv
import io
import random
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from recist.jsonio import assess_json
from tests.recist.conftest import case, fu
from web.demo import TRAJECTORIES, synthetic_case
from web.services import (
    SYSTEM,
    Actor,
    NotFound,
    create_subject,
    create_user,
    get_subject,
    get_trial,
    save_baseline,
    save_timepoint,
)
from web.services.central import adjudicate, set_central_review, submit_read
from web.services.plots import trial_plot
from web.services.progression import override_call, review_call, subject_row, with_progression
from web.testing import PASSWORD, baseline_lesions, login

READER = Actor("reader", "reader")
ADJUDICATOR = Actor("adjudicator", "adjudicator")
SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")]


def _tp(code: str, day: str, t1: float, t2: float) -> dict[str, Any]:
    return {
        "id": code,
        "date": day,
        "targets": {"T01": t1, "T02": t2},
        "non_targets": {"NT01": "present"},
    }


@pytest.fixture
def trial_with_results(session: Session, trial: str, users: dict[str, str]) -> str:
    """S-1 (arm A) responds (−40 %); S-2 (arm B) progresses at W16; S-3 (arm B) has only
    a baseline. Randomised on the baseline date."""
    plan = {
        "S-1": ("A", [_tp("W8", "2021-03-01", 18.0, 12.0)]),
        "S-2": ("B", [_tp("W8", "2021-03-01", 28.0, 19.0), _tp("W16", "2021-04-26", 40.0, 19.0)]),
        "S-3": ("B", []),
    }
    for code, (arm, follow_ups) in plan.items():
        create_subject(session, SYSTEM, trial, code=code, arm=arm, randomized_on="2021-01-04")
        save_baseline(
            session,
            READER,
            trial,
            code,
            date_value="2021-01-04",
            lesions=baseline_lesions(),
        )
        for tp in follow_ups:
            save_timepoint(session, READER, trial, code, tp)
    session.expunge_all()
    session.rollback()
    return trial


def test_the_waterfall_of_a_trial_draws_each_subjects_best_change_coloured_by_bor(
    session: Session, trial_with_results: str
) -> None:
    plot = trial_plot(session, get_trial(session, trial_with_results), "waterfall")
    # S-2: best change before its PD is W8 (47 mm vs 50 mm: −6 %).
    assert [(p["subject_id"], p["best_change_pct"], p["bor"]) for p in plot.points] == [
        ("S-2", -6.0, "SD"),
        ("S-1", -40.0, "PR"),
    ]
    assert plot.excluded == [{"subject_id": "S-3", "why": "no complete target sum after baseline"}]
    assert "TRIAL-1: Best change in target sum" in _texts(plot.svg)


def test_kaplan_meier_plots_use_the_endpoint_derivations_per_arm(
    session: Session, trial_with_results: str
) -> None:
    plot = trial_plot(session, get_trial(session, trial_with_results), "km-pfs")
    by_arm = {p["arm"]: p for p in plot.summary}
    assert (by_arm["A"]["n"], by_arm["A"]["events"]) == (1, 0)
    # S-2 progresses (an event); S-3 is censored at its baseline.
    assert (by_arm["B"]["n"], by_arm["B"]["events"]) == (2, 1)
    assert _km(plot) == {
        "S-1": (57, 1, "engine"),
        "S-2": (113, 0, "engine"),
        "S-3": (1, 1, "engine"),
    }
    labels = _texts(plot.svg)
    assert "At risk" in labels and {"A", "B"} <= set(labels)
    assert "Progression call used: engine's call 3" in labels
    os_plot = trial_plot(session, get_trial(session, trial_with_results), "km-os")
    assert sum(p["events"] for p in os_plot.summary) == 0  # nobody died


def test_each_kaplan_meier_plot_names_its_endpoint_on_the_y_axis(
    session: Session, trial_with_results: str
) -> None:
    trial = get_trial(session, trial_with_results)
    pfs, os_ = (_texts(trial_plot(session, trial, kind).svg) for kind in ("km-pfs", "km-os"))
    assert "Progression-free survival probability" in pfs
    assert "Overall survival probability" in os_
    assert not {"probability event-free", "Overall survival probability"} & set(pfs)
    assert not {"probability event-free", "Progression-free survival probability"} & set(os_)


def test_a_subject_without_an_arm_is_left_out_of_the_by_arm_curves_and_counted_in_the_note(
    session: Session, trial_with_results: str
) -> None:
    """S-4 has a read but no arm (nor a randomisation date): no "(no arm)" curve that would
    drop to 0 beside the real arms; the note says one subject is not shown."""
    trial = trial_with_results
    create_subject(session, SYSTEM, trial, code="S-4")
    save_baseline(
        session,
        READER,
        trial,
        "S-4",
        date_value="2021-01-04",
        lesions=baseline_lesions(),
    )
    save_timepoint(session, READER, trial, "S-4", _tp("W8", "2021-03-01", 40.0, 25.0))
    _reload(session)
    for kind in ("km-pfs", "km-os"):
        plot = trial_plot(session, get_trial(session, trial), kind)
        assert [row["arm"] for row in plot.summary] == ["A", "B"]
        assert "S-4" not in _km(plot)
        assert plot.excluded == [{"subject_id": "S-4", "why": "no arm"}]
        labels = _texts(plot.svg)
        assert "1 subject without an arm not shown" in labels
        # Overall survival does not depend on the progression call: its note says nothing
        # of it (nor does its legend name bands, without a death there are none).
        if kind == "km-pfs":
            assert "Progression call used: engine's call 4" in labels
        else:
            assert not [t for t in labels if t.startswith("Progression call used")]
            assert "95 % CI shaded" not in labels
        assert "(no arm)" not in labels
    # The plots that are not by arm still show S-4.
    waterfall = trial_plot(session, get_trial(session, trial), "waterfall")
    assert "S-4" in {p["subject_id"] for p in waterfall.points}


def _km(plot: Any) -> dict[str, tuple[int, int, str]]:
    """USUBJID → (AVAL, CNSR, source) of a Kaplan–Meier plot's points."""
    return {p["USUBJID"]: (p["AVAL"], p["CNSR"], p["source"]) for p in plot.points}


def _s2_call(session: Session, trial: str) -> str:
    row = subject_row(session, get_subject(session, trial, "S-2"))
    assert row is not None
    return f"{row.call.timepoint}/{row.call.date.isoformat()}"


def _reload(session: Session) -> None:
    session.expunge_all()
    session.rollback()


def test_an_override_that_moves_progression_earlier_moves_the_pfs_event_and_the_swimmer_cross(
    session: Session, trial_with_results: str
) -> None:
    trial = trial_with_results
    override_call(
        session,
        ADJUDICATOR,
        trial,
        "S-2",
        timepoint="W8",
        reason="new liver lesion already visible at W8 on review",
        seen_call=_s2_call(session, trial),
    )
    _reload(session)
    plot = trial_plot(session, get_trial(session, trial), "km-pfs")
    # Engine: PD at W16 (2021-04-26, day 113); the override: PD at W8 (2021-03-01, day 57).
    s2 = next(p for p in plot.points if p["USUBJID"] == "S-2")
    assert (s2["ADT"], s2["AVAL"], s2["CNSR"], s2["source"]) == ("2021-03-01", 57, 0, "override")
    assert _km(plot)["S-1"] == (57, 1, "engine")
    assert "Progression call used: engine's call 2 · adjudicator's override 1" in _texts(plot.svg)
    swim = {
        p["subject_id"]: p for p in trial_plot(session, get_trial(session, trial), "swimmer").points
    }
    assert (swim["S-2"]["progression_day"], swim["S-2"]["source"]) == (56, "override")
    # The engine's call is still stored and still the queue's call.
    stored = get_subject(session, trial, "S-2").result_json["progression"]
    assert (stored["timepoint"], stored["date"]) == ("W16", "2021-04-26")


def test_an_override_to_no_progression_censors_pfs_at_the_last_adequate_assessment(
    session: Session, trial_with_results: str, client: Any
) -> None:
    trial = trial_with_results
    override_call(
        session,
        ADJUDICATOR,
        trial,
        "S-2",
        timepoint=None,
        reason="the W16 growth is measurement error on a re-read",
        seen_call=_s2_call(session, trial),
    )
    _reload(session)
    plot = trial_plot(session, get_trial(session, trial), "km-pfs")
    s2 = next(p for p in plot.points if p["USUBJID"] == "S-2")
    assert (s2["AVAL"], s2["CNSR"], s2["EVNTDESC"], s2["source"]) == (
        113,
        1,
        "Last Tumor Assessment",
        "override",
    )
    assert sum(p["events"] for p in plot.summary) == 0
    swim = {
        p["subject_id"]: p for p in trial_plot(session, get_trial(session, trial), "swimmer").points
    }
    assert (swim["S-2"]["progression_day"], swim["S-2"]["ongoing"]) == (None, True)
    # The points CSV says which call each subject's row used.
    login(client, "reviewer")
    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/trials/{trial}/plots/km-pfs.csv").data.decode()))
    )
    assert {r["USUBJID"]: (r["AVAL"], r["CNSR"], r["source"]) for r in rows} == {
        "S-1": ("57", "1", "engine"),
        "S-2": ("113", "1", "override"),
        "S-3": ("1", "1", "engine"),
    }


def test_a_review_that_agrees_leaves_the_engines_call_in_the_plots(
    session: Session, trial_with_results: str
) -> None:
    review_call(
        session,
        Actor("reviewer", "reviewer"),
        trial_with_results,
        "S-2",
        decision="agreed",
        comment="",
        seen_call=_s2_call(session, trial_with_results),
    )
    _reload(session)
    plot = trial_plot(session, get_trial(session, trial_with_results), "km-pfs")
    assert _km(plot)["S-2"] == (113, 0, "engine")


def _read(*follow_ups: dict[str, Any]) -> dict[str, Any]:
    whole = case({"T1": 30.0}, *follow_ups)
    return {"lesions": whole["lesions"], "timepoints": whole["timepoints"]}


def test_a_central_review_trial_plots_the_accepted_read_with_the_subjects_death(
    session: Session, trial: str, users: dict[str, str]
) -> None:
    """C-1: read 1 PD at FU2 (2021-04-26), read 2 SD; the adjudicator accepts read 2. The
    subject died on 2021-06-01, which a blinded read never carries: PFS is the death."""
    create_user(session, SYSTEM, username="reader2", password=PASSWORD, role="reader")
    set_central_review(session, Actor("trial_manager", "trial_manager"), trial, on=True)
    create_subject(
        session,
        SYSTEM,
        trial,
        code="C-1",
        arm="A",
        randomized_on="2021-01-04",
        died_on="2021-06-01",
    )
    pd_read = _read(fu(targets={"T1": 28.0}), fu(targets={"T1": 40.0}))
    sd_read = _read(fu(targets={"T1": 28.0}), fu(targets={"T1": 31.0}))
    submit_read(session, READER, trial, "C-1", read=pd_read, password=PASSWORD)
    submit_read(session, Actor("reader2", "reader"), trial, "C-1", read=sd_read, password=PASSWORD)
    _reload(session)
    assert trial_plot(session, get_trial(session, trial), "km-pfs").points == []  # no accepted read
    adjudicate(
        session,
        ADJUDICATOR,
        trial,
        "C-1",
        accepted_slot=2,
        rationale="FU2 growth is within measurement variability",
        password=PASSWORD,
    )
    _reload(session)
    plot = trial_plot(session, get_trial(session, trial), "km-pfs")
    c1 = plot.points[0]
    # 2021-01-04 → 2021-06-01 is 148 days: AVAL 149.
    assert (c1["USUBJID"], c1["AVAL"], c1["CNSR"], c1["EVNTDESC"], c1["source"]) == (
        "C-1",
        149,
        0,
        "Death",
        "central",
    )
    assert "Progression call used: accepted central read 1" in _texts(plot.svg)
    swim = trial_plot(session, get_trial(session, trial), "swimmer").points
    assert (swim[0]["progression_day"], swim[0]["bor"], swim[0]["source"]) == (
        None,
        "SD",
        "central",
    )


@pytest.mark.parametrize("kind", TRAJECTORIES)
@pytest.mark.parametrize("dates", [{}, {"died_on": "2022-12-01"}, {"new_therapy_on": "2021-09-01"}])
def test_the_engines_own_call_derives_again_to_the_engines_pfs(
    kind: str, dates: dict[str, str]
) -> None:
    case_ = synthetic_case(random.Random(kind), "S-1", timepoints=6, kind=kind) | dates
    if "new_therapy_on" in dates:
        # A new therapy mid-follow-up (never before randomisation: R-PLAUS-ORIGIN).
        case_["new_therapy_on"] = case_["timepoints"][3]["date"]
    case_["settings"] = {"visit_interval_days": 56}
    result = assess_json(case_)
    assert with_progression(case_, result, result["progression"])["pfs"] == result["pfs"]


def test_an_unknown_plot_is_a_404_naming_the_known_ones(
    session: Session, trial_with_results: str
) -> None:
    with pytest.raises(NotFound, match=r"there is no plot 'pie'; known: waterfall, spider"):
        trial_plot(session, get_trial(session, trial_with_results), "pie")


def test_the_trial_page_shows_every_plot_and_offers_svg_and_data_downloads(
    app: Flask, trial_with_results: str
) -> None:
    client = app.test_client()
    login(client, "reviewer")
    page = client.get(f"/trials/{trial_with_results}").data.decode()
    for kind in ("waterfall", "spider", "swimmer", "km-pfs", "km-os"):
        assert f'src="/trials/TRIAL-1/plots/{kind}.svg"' in page
        assert f'href="/trials/TRIAL-1/plots/{kind}.svg?download=1"' in page
    response = client.get(f"/trials/{trial_with_results}/plots/swimmer.svg?download=1")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert 'filename="TRIAL-1_swimmer.svg"' in response.headers["Content-Disposition"]
    # The swimmer names each subject's arm after its id.
    assert {"S-1 · A", "S-2 · B", "S-3 · B"} <= set(_texts(response.data.decode()))
    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"/trials/{trial_with_results}/plots/swimmer.csv").data.decode())
        )
    )
    s2 = next(r for r in rows if r["subject_id"] == "S-2")
    assert (s2["days_on_study"], s2["progression_day"], s2["ongoing"]) == ("112", "112", "False")
    response = client.get(f"/trials/{trial_with_results}/plots/pie.svg")
    assert response.status_code == 404 and b"there is no plot" in response.data
