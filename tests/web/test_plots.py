"""The reviewers' plots: what they draw (data points, labels), not only that they exist."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from endpoints.analysis import Observation
from recist.jsonio import assess_json
from tests.recist.conftest import case, fu
from web.plots import kaplan_meier, spider, swimmer, waterfall

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def gids(svg: str, prefix: str) -> list[str]:
    root = ET.fromstring(svg)
    return [g.get("id") for g in root.iter(f"{SVG}g") if (g.get("id") or "").startswith(prefix)]


def results():
    responder = case(
        {"T1": 40.0}, fu(targets={"T1": 20.0}), fu(targets={"T1": 18.0}), subject_id="S-PR"
    )
    progressor = case(
        {"T1": 30.0}, fu(targets={"T1": 28.0}), fu(targets={"T1": 40.0}), subject_id="S-PD"
    )
    stable = case({"T1": 30.0}, fu(targets={"T1": 33.0}), subject_id="S-SD")
    no_targets = case({}, fu(), non_targets=("NT1",), subject_id="S-NT")
    return [assess_json(c) for c in (responder, progressor, stable, no_targets)]


def test_waterfall_draws_the_best_change_per_subject_sorted_and_coloured_by_bor():
    plot = waterfall(results())
    assert [(p["subject_id"], p["best_change_pct"], p["bor"]) for p in plot.points] == [
        ("S-SD", 10.0, "SD"),
        ("S-PD", -6.7, "SD"),  # best change before the PD at FU2
        ("S-PR", -55.0, "PR"),
    ]
    assert plot.excluded == [{"subject_id": "S-NT", "why": "no complete target sum after baseline"}]
    assert len(gids(plot.svg, "bar-")) == 3
    labels = texts(plot.svg)
    assert "−30 % (PR)" in labels and "+20 % (PD)" in labels
    assert {"S-SD", "S-PD", "S-PR"} <= set(labels)


def test_spider_draws_one_line_per_subject_with_its_changes_over_time():
    plot = spider(results())
    by_subject = {}
    for p in plot.points:
        by_subject.setdefault(p["subject_id"], []).append((p["day"], p["change_pct"]))
    assert by_subject["S-PR"] == [(56, -50.0), (112, -55.0)]
    assert by_subject["S-PD"] == [(56, -6.7), (112, 33.3)]
    assert sorted(gids(plot.svg, "line-")) == ["line-S-PD", "line-S-PR", "line-S-SD"]
    assert "days since baseline" in texts(plot.svg)


def test_swimmer_marks_response_progression_and_ongoing_subjects():
    plot = swimmer(results())
    rows = {p["subject_id"]: p for p in plot.points}
    assert rows["S-PR"]["first_response_day"] == 56 and rows["S-PR"]["ongoing"] is True
    assert rows["S-PD"]["progression_day"] == 112 and rows["S-PD"]["ongoing"] is False
    assert rows["S-SD"]["first_response"] is None
    assert len(gids(plot.svg, "swim-")) == 4
    assert {"first CR/PR", "progression"} <= set(texts(plot.svg))


def test_kaplan_meier_shows_each_arm_its_median_and_numbers_at_risk():
    observations = [
        Observation("SBRT", 100, 1),
        Observation("SBRT", 200, 0),
        Observation("SBRT", 300, 1),
        Observation("Standard", 150, 1),
        Observation("Standard", 160, 1),
        Observation("Standard", 400, 0),
    ]
    plot = kaplan_meier(observations, "PFS by arm", note="Progression call used: engine's call 6")
    # By hand: SBRT S(100)=2/3, S(300)=0 -> median 300; Standard S(160)=1/3 -> median 160.
    assert plot.summary == [
        {"arm": "SBRT", "n": 3, "events": 2, "median_days": 300.0},
        {"arm": "Standard", "n": 3, "events": 2, "median_days": 160.0},
    ]
    labels = texts(plot.svg)
    assert "PFS by arm" in labels
    assert "At risk" in labels
    assert {"SBRT", "Standard"} <= set(labels)
    assert "Progression call used: engine's call 6" in labels
    # One point per observation, in ADTTE words (CNSR 1 = censored).
    assert plot.points[:2] == [
        {"ARM": "SBRT", "AVAL": 100, "CNSR": 0},
        {"ARM": "SBRT", "AVAL": 200, "CNSR": 1},
    ]


def test_kaplan_meier_points_are_the_subject_records_behind_the_curves():
    records = [
        {"USUBJID": "S-1", "ARM": "A", "AVAL": 100, "CNSR": 0, "source": "override"},
        {"USUBJID": "S-2", "ARM": "A", "AVAL": 150, "CNSR": 1, "source": "engine"},
    ]
    observations = [Observation("A", 100, 1), Observation("A", 150, 0)]
    plot = kaplan_meier(observations, "PFS", records=records)
    assert plot.points == records
    with pytest.raises(ValueError, match=r"kaplan_meier: 1 records for 2 observations"):
        kaplan_meier(observations, "PFS", records=records[:1])
