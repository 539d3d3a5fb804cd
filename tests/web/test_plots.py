"""The reviewers' plots: what they draw (data points, labels), not only that they exist."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from endpoints.analysis import Observation
from recist.jsonio import assess_json
from tests.recist.conftest import case, fu
from web.services.figures import BOR_COLOURS, spider, swimmer, waterfall
from web.services.figures_km import kaplan_meier

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


def _by_id(svg: str) -> dict[str, ET.Element]:
    return {g.get("id") or "": g for g in ET.fromstring(svg).iter(f"{SVG}g")}


def _text_at(group: ET.Element) -> tuple[str, float, float, str]:
    """(text, x, y, anchor) of the one text element in a group."""
    text = next(group.iter(f"{SVG}text"))
    anchor = next(
        part.split(":")[1].strip()
        for part in (text.get("style") or "").split(";")
        if part.strip().startswith("text-anchor")
    )
    return "".join(text.itertext()), float(text.get("x", 0)), float(text.get("y", 0)), anchor


def _width_pt(text: str, size_pt: float = 8) -> float:
    """A generous width of ``text`` in DejaVu Sans (no glyph is wider than 0.8 em here)."""
    return 0.8 * size_pt * len(text)


def _viewbox(svg: str) -> tuple[float, float]:
    _, _, width, height = (float(v) for v in ET.fromstring(svg).get("viewBox", "").split())
    return width, height


def _style(group: ET.Element) -> dict[str, str]:
    """The style of the first element of ``group`` drawn with one (a path, or a marker's use)."""
    element = next(e for e in group.iter() if e.get("style") and e.tag != f"{SVG}text")
    pairs = (part.split(":", 1) for part in (element.get("style") or "").split(";") if ":" in part)
    return {k.strip(): v.strip() for k, v in pairs}


def test_kaplan_meier_leaves_subjects_without_an_arm_out_of_the_curves_and_says_so():
    from endpoints.analysis import NO_ARM

    records = [
        {"USUBJID": "S-1", "ARM": "A", "AVAL": 100, "CNSR": 0},
        {"USUBJID": "DEMO-001", "ARM": NO_ARM, "AVAL": 116, "CNSR": 0},
        {"USUBJID": "S-2", "ARM": "A", "AVAL": 150, "CNSR": 1},
    ]
    observations = [Observation(r["ARM"], r["AVAL"], 1 - r["CNSR"]) for r in records]
    plot = kaplan_meier(observations, "PFS", records=records, note="Progression call used: x")
    assert [row["arm"] for row in plot.summary] == ["A"]
    assert [p["USUBJID"] for p in plot.points] == ["S-1", "S-2"]
    assert plot.excluded == [{"subject_id": "DEMO-001", "why": "no arm"}]
    assert plot.note == "Progression call used: x\n1 subject without an arm not shown"
    labels = texts(plot.svg)
    assert {"Progression call used: x", "1 subject without an arm not shown"} <= set(labels)
    assert NO_ARM not in labels and not gids(plot.svg, f"km-curve-{NO_ARM}")


@pytest.mark.parametrize("arm", ["ST", "SBRT-ST", "Stereotactic body radiotherapy + systemic"])
def test_numbers_at_risk_names_stand_in_their_own_column_clear_of_every_count(arm: str):
    """QA saw "ST 10" read as one token at day 0: the names end left of the leftmost count,
    with a gap, whatever the name's length and however wide the counts."""
    observations = [Observation(arm, day, day % 3 == 0) for day in range(1, 1201)]
    observations += [Observation("B", day, 1) for day in range(5, 50, 5)]
    plot = kaplan_meier(observations, "PFS")
    groups = _by_id(plot.svg)
    counts = [_text_at(g) for key, g in groups.items() if key.startswith("at-risk-count-")]
    first_row = 0 if arm < "B" else 1
    # Day 0: all 1200 of the long arm, all 9 of B, at risk.
    assert _text_at(groups[f"at-risk-count-{first_row}-0"])[0] == "1200"
    assert _text_at(groups[f"at-risk-count-{1 - first_row}-0"])[0] == "9"
    leftmost = min(x - _width_pt(text) / 2 for text, x, _, _ in counts)
    rows = [_text_at(groups[f"at-risk-row-{i}"]) for i in range(2)]
    header = _text_at(groups["at-risk-header"])
    assert [r[0] for r in rows] == sorted([arm, "B"]) and header[0] == "At risk"
    for name, x, _, anchor in [*rows, header]:
        assert anchor == "end"  # right-aligned: x is where the name ends
        assert x < leftmost - 2, f"{name!r} ends at {x}, the counts start at {leftmost}"
        # The figure widens for a long name: it starts inside the image (≥ 0.5 em a glyph).
        assert x - 0.5 * 8 * len(name) >= 0
    # Counts sit on the rows of their arm's name.
    assert {round(r[2]) for r in rows} == {round(c[2]) for c in counts}


def test_kaplan_meier_draws_light_bands_under_distinct_curves_with_censor_marks():
    observations = [
        Observation("SBRT", 100, 1),
        Observation("SBRT", 200, 0),
        Observation("SBRT", 300, 1),
        Observation("Standard", 150, 1),
        Observation("Standard", 160, 1),
        Observation("Standard", 400, 0),
    ]
    plot = kaplan_meier(observations, "PFS", ylabel="Progression-free survival probability")
    assert "Progression-free survival probability" in texts(plot.svg)
    assert "probability event-free" not in texts(plot.svg)
    order = [g.get("id") for g in ET.fromstring(plot.svg).iter(f"{SVG}g")]
    groups = _by_id(plot.svg)
    curves = {}
    for arm in ("SBRT", "Standard"):
        band = _style(groups[f"km-ci-{arm}"])
        assert float(band["fill-opacity"]) <= 0.2  # light enough to see through
        curves[arm] = _style(groups[f"km-curve-{arm}"])
        # Every band is drawn before (under) every curve.
        assert order.index(f"km-ci-{arm}") < min(
            order.index("km-curve-SBRT"), order.index("km-curve-Standard")
        )
        # One censor mark per censored subject (SBRT: day 200; Standard: day 400).
        assert len(list(groups[f"km-censor-{arm}"].iter(f"{SVG}use"))) == 1
    assert curves["SBRT"]["stroke"] != curves["Standard"]["stroke"]
    assert curves["SBRT"].get("stroke-dasharray") != curves["Standard"].get("stroke-dasharray")
    assert {"SBRT (n=3, 2 events)", "Standard (n=3, 2 events)"} <= set(texts(plot.svg))


def test_spider_has_a_legend_of_the_best_overall_responses_its_colours_encode():
    plot = spider(results())
    legend = _by_id(plot.svg)["legend_1"]
    entries = ["".join(t.itertext()) for t in legend.iter(f"{SVG}text")]
    # S-PR is PR; S-PD (best SD before its PD) and S-SD are SD; S-NT draws no line. S-PD's
    # progression is marked (R-TGT-PD); no line goes on after it.
    assert entries == ["Best overall response", "PR", "SD", "progression"]
    groups = _by_id(plot.svg)
    assert _style(groups["line-S-PR"])["stroke"] == BOR_COLOURS["PR"]
    assert _style(groups["line-S-SD"])["stroke"] == BOR_COLOURS["SD"]
    assert {"−30 % (PR)", "+20 % (PD)"} <= set(texts(plot.svg))


def test_waterfall_is_tight_under_its_labels_and_keeps_the_threshold_labels_and_note():
    plot = waterfall(results(), note="Progression call used: engine's call 4")
    width, height = _viewbox(plot.svg)
    groups = _by_id(plot.svg)
    note, note_x, note_y, _ = _text_at(groups["plot-note"])
    assert note == "Progression call used: engine's call 4"
    # The note is the last line: under it only the 0.1 in pad and the text's descent.
    assert 0 < height - note_y < 12
    assert note_x >= 0 and note_x + _width_pt(note, 7) * 0.8 <= width
    # Subject ids are rotated 90°: each starts (at its lowest point) at its translate().
    tick_bottoms = [
        float(re.findall(r"translate\(\S+ (\S+)\)", t.get("transform", ""))[0])
        for key, g in groups.items()
        if key.startswith("xtick_")
        for t in g.iter(f"{SVG}text")
    ]
    assert len(tick_bottoms) == 3
    assert 0 < note_y - max(tick_bottoms) < 20  # right under the ids: no empty band
    for gid, label in (("threshold-PR", "−30 % (PR)"), ("threshold-PD", "+20 % (PD)")):
        text, x, y, anchor = _text_at(groups[gid])
        assert (text, anchor) == (label, "start")
        assert 0 < y < height and x + _width_pt(text) * 0.75 <= width  # not clipped


def _continuing_progressor() -> dict:
    """Progression by the target sum (R-TGT-PD) at FU2, one more read after it."""
    return assess_json(
        case(
            {"T1": 30.0},
            fu(targets={"T1": 24.0}),
            fu(targets={"T1": 36.0}),
            fu(targets={"T1": 40.0}),
            subject_id="S-GO",
        )
    )


def test_spider_marks_the_progression_and_draws_the_line_after_it_dashed_and_light():
    plot = spider([_continuing_progressor(), *results()])
    rows = [
        (p["day"], p["change_pct"], p["progression"], p["after_progression"])
        for p in plot.points
        if p["subject_id"] == "S-GO"
    ]
    # Day 112 (FU2): +50 % from the nadir of 24 mm → PD, marked; FU3 comes after it.
    assert rows == [(56, -20.0, False, False), (112, 20.0, True, False), (168, 33.3, False, True)]
    groups = _by_id(plot.svg)
    # The solid line ends at the progression; the cross marks it in the PD colour.
    solid = [e for e in groups["line-S-GO"].iter(f"{SVG}path") if e.get("d")]
    assert len(re.findall(r"[ML]\s*[\d.]+", solid[0].get("d", ""))) == 3  # BL, FU1, FU2
    (cross,) = groups["pd-S-GO"].iter(f"{SVG}use")
    assert f"fill: {BOR_COLOURS['PD']}" in (cross.get("style") or "")
    after = _style(groups["after-S-GO"])
    assert after["stroke-dasharray"] and float(after["stroke-opacity"]) < 1
    # S-PD progresses at its last read: marked, nothing after it.
    assert "pd-S-PD" in groups and "after-S-PD" not in groups
    assert "pd-S-PR" not in groups and "pd-S-SD" not in groups
    legend = ["".join(t.itertext()) for t in groups["legend_1"].iter(f"{SVG}text")]
    assert legend[-2:] == ["progression", "after progression"]


def test_each_spider_line_names_its_subject_on_hover():
    root = ET.fromstring(spider([_continuing_progressor(), *results()]).svg)
    titles = {
        g.get("id"): "".join(g.find(f"{SVG}title").itertext())
        for g in root.iter(f"{SVG}g")
        if g.find(f"{SVG}title") is not None
    }
    assert titles["line-S-GO"] == "S-GO: BOR SD, PD at day 112"
    assert titles["line-S-PR"] == "S-PR: BOR PR, no progression"
    assert titles["pd-S-GO"] == "S-GO: progression at day 112"


def test_swimmer_groups_subjects_by_arm_and_names_the_arm():
    arms = {"S-PR": "B", "S-PD": "A", "S-SD": "B"}
    plot = swimmer(results(), arms=arms)
    assert [(p["subject_id"], p["arm"]) for p in plot.points] == [
        ("S-PD", "A"),
        ("S-SD", "B"),
        ("S-PR", "B"),
        ("S-NT", ""),
    ]
    assert {"S-PD · A", "S-SD · B", "S-PR · B", "S-NT · no arm"} <= set(texts(plot.svg))
    assert "death" not in texts(plot.svg)


def test_swimmer_marks_a_death_at_its_day():
    from datetime import date, timedelta

    rows = results()
    start = date.fromisoformat(rows[1]["timepoints"][0]["date"])
    died = (start + timedelta(days=150)).isoformat()
    plot = swimmer(rows, deaths={"S-PD": died, "S-PR": None})
    days = {p["subject_id"]: p["death_day"] for p in plot.points}
    assert days == {"S-PD": 150, "S-PR": None, "S-SD": None, "S-NT": None}
    assert {"death", "on study"} <= set(texts(plot.svg))


def test_overall_survival_without_any_death_has_no_band_legend():
    alive = [Observation("A", 100, 0), Observation("A", 200, 0), Observation("B", 150, 0)]
    plot = kaplan_meier(alive, "OS by arm")
    assert plot.title == "OS by arm" and "OS by arm" in texts(plot.svg)
    assert "95 % CI shaded" not in texts(plot.svg)
    died = [*alive, Observation("B", 120, 1), Observation("B", 90, 1)]
    assert "95 % CI shaded" in texts(kaplan_meier(died, "OS").svg)


def _responder_then_pd() -> tuple[dict, dict]:
    """PR at FU1 (−40 %) and FU2 (−34 %), PD at FU3 (+50 % over the nadir, R-TGT-PD)."""
    c = case(
        {"T1": 50.0},
        fu(targets={"T1": 30.0}),
        fu(targets={"T1": 33.0}),
        fu(targets={"T1": 45.0}),
        subject_id="S-X",
    )
    return c, assess_json(c)


@pytest.mark.parametrize(
    ("cut_at", "bor", "best"),
    [
        # PD moved to FU1: only FU1 counts, as PD (R-BOR-CUT, R-BOR-USED); its sum is
        # still the best change.
        ("FU1", "PD", -40.0),
        # PD moved to FU2: the PR at FU1 counts (R-BOR-1); FU3 does not.
        ("FU2", "PR", -40.0),
        # No progression: the engine's PD at FU3 counts as NE; best stays PR.
        (None, "PR", -40.0),
    ],
)
def test_an_override_sets_the_bor_and_best_change_analyses_use(
    cut_at: str | None, bor: str, best: float
):
    from web.services.as_used import responses_as_used
    from web.services.figures import best_change
    from web.services.plot_used import analysed

    c, engine = _responder_then_pd()
    assert (engine["best_overall_response"], engine["progression"]["timepoint"]) == ("PR", "FU3")
    assert responses_as_used(c, engine, cut_at)["best_overall_response"] == bor
    moved = {"timepoint": cut_at, "date": "2021-01-01"} if cut_at else None
    used = analysed(c, engine, {**engine, "progression": moved})
    assert used["best_overall_response"] == bor and best_change(used) == best
    assert used["override"]["engine_bor"] == "PR"
    assert used["override"]["engine_best_change_pct"] == -40.0


def test_an_override_to_an_early_pd_cuts_the_best_change_there():
    """SD at FU1 (−10 %), PR at FU2 (−40 %), PD at FU3: moved to FU1, the best change the
    analyses use is FU1's, and the BOR is PD (R-BOR-USED, R-BOR-CUT)."""
    from web.services.figures import best_change
    from web.services.plot_used import analysed

    c = case(
        {"T1": 50.0},
        fu(targets={"T1": 45.0}),
        fu(targets={"T1": 30.0}),
        fu(targets={"T1": 60.0}),
        subject_id="S-Y",
    )
    engine = assess_json(c)
    moved = {**engine, "progression": {"timepoint": "FU1", "date": "2021-01-01"}}
    used = analysed(c, engine, moved)
    assert (used["best_overall_response"], best_change(used)) == ("PD", -10.0)
    assert (best_change(engine), engine["best_overall_response"]) == (-40.0, "PR")
    plot = waterfall([used])
    assert plot.points[0] | {} == {
        "subject_id": "S-Y",
        "best_change_pct": -10.0,
        "bor": "PD",
        "overridden": True,
        "engine_bor": "PR",
        "engine_best_change_pct": -40.0,
    }
    assert "engine-0" in _by_id(plot.svg)


def test_with_confirmation_an_override_can_leave_a_response_unconfirmed():
    """With confirmation (R-BOR-CONF) FU2's PR confirms FU1's; the PD moved to FU2 leaves
    FU1's PR unconfirmed: it counts as SD (day 56 ≥ 42, R-BOR-SDMIN)."""
    from web.services.as_used import responses_as_used

    c, _ = _responder_then_pd()
    c = {**c, "settings": {**(c.get("settings") or {}), "confirmation": True}}
    engine = assess_json(c)
    assert engine["best_overall_response"] == "PR"
    assert responses_as_used(c, engine, "FU2")["best_overall_response"] == "SD"
    assert responses_as_used(c, engine, None)["best_overall_response"] == "PR"
