"""The trial page's plots: drawn from the stored results and the endpoint analyses,
checked by their data points and labels, viewable and downloadable."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from web.services import (
    SYSTEM,
    Actor,
    NotFound,
    create_subject,
    get_trial,
    lesions_from_json,
    save_baseline,
    save_timepoint,
)
from web.testing import baseline_lesions, login
from web.trial_plots import trial_plot

READER = Actor("reader", "reader")
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
            lesions=lesions_from_json(baseline_lesions()),
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
    by_arm = {p["arm"]: p for p in plot.points}
    assert (by_arm["A"]["n"], by_arm["A"]["events"]) == (1, 0)
    # S-2 progresses (an event); S-3 is censored at its baseline.
    assert (by_arm["B"]["n"], by_arm["B"]["events"]) == (2, 1)
    labels = _texts(plot.svg)
    assert "At risk" in labels and {"A", "B"} <= set(labels)
    os_plot = trial_plot(session, get_trial(session, trial_with_results), "km-os")
    assert sum(p["events"] for p in os_plot.points) == 0  # nobody died


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
    assert {"S-1", "S-2", "S-3"} <= set(_texts(response.data.decode()))
    rows = list(
        csv.DictReader(
            io.StringIO(client.get(f"/trials/{trial_with_results}/plots/swimmer.csv").data.decode())
        )
    )
    s2 = next(r for r in rows if r["subject_id"] == "S-2")
    assert (s2["days_on_study"], s2["progression_day"], s2["ongoing"]) == ("112", "112", "False")
    response = client.get(f"/trials/{trial_with_results}/plots/pie.svg")
    assert response.status_code == 404 and b"there is no plot" in response.data
