"""The plots' cache (web.services.plot_cache): a plot is drawn once per state of what it
draws, per trial and role; the routes serve SVG inline; one subject's plots; an
adjudicator's override carried into the waterfall (R-BOR-USED)."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from web.services import (
    SYSTEM,
    Actor,
    create_subject,
    create_trial,
    get_subject,
    save_baseline,
    save_timepoint,
)
from web.services.plot_cache import DRAWS
from web.services.progression import override_call, subject_row
from web.services.trials import update_settings
from web.testing import baseline_lesions, login

READER = Actor("reader", "reader")
ADJUDICATOR = Actor("adjudicator", "adjudicator")
SVG = "{http://www.w3.org/2000/svg}"


def _tp(code: str, day: str, t1: float, t2: float) -> dict[str, Any]:
    return {"id": code, "date": day, "targets": {"T01": t1, "T02": t2},
            "non_targets": {"NT01": "present"}}  # fmt: skip


# Baseline sum 50 mm. S-1 responds; S-4 shrinks to −30 % (PR) at W16 and progresses at W24
# (60 mm, +71 % over the nadir of 35 mm, R-TGT-PD); S-3 has only a baseline.
PLAN = {
    "S-1": ("A", [_tp("W8", "2021-03-01", 18.0, 12.0)]),
    "S-4": (
        "B",
        [
            _tp("W8", "2021-03-01", 27.0, 18.0),
            _tp("W16", "2021-04-26", 21.0, 14.0),
            _tp("W24", "2021-06-21", 40.0, 20.0),
        ],
    ),
    "S-3": ("B", []),
}


def _seed(session: Session, trial: str) -> str:
    for code, (arm, follow_ups) in PLAN.items():
        create_subject(session, SYSTEM, trial, code=code, arm=arm, randomized_on="2021-01-04")
        save_baseline(session, READER, trial, code, date_value="2021-01-04",
                      lesions=baseline_lesions())  # fmt: skip
        for tp in follow_ups:
            save_timepoint(session, READER, trial, code, tp)
    session.expunge_all()
    session.rollback()
    return trial


@pytest.fixture
def seeded(app: Flask, session: Session, trial: str, users: dict[str, str], tmp_path: Path) -> str:
    app.config["PLOT_CACHE"] = str(tmp_path / "plot-cache")
    return _seed(session, trial)


def _drawn(kind: str) -> int:
    return DRAWS[kind]


def _points(client: FlaskClient, url: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(client.get(url).data.decode())))


def _titles(svg: bytes) -> dict[str, str]:
    root = ET.fromstring(svg)
    return {
        g.get("id") or "": "".join(t.itertext())
        for g in root.iter(f"{SVG}g")
        if (t := g.find(f"{SVG}title")) is not None
    }


def test_a_second_view_draws_nothing_and_a_new_timepoint_draws_again(
    client: FlaskClient, session: Session, seeded: str
) -> None:
    login(client, "reviewer")
    url = f"/trials/{seeded}/plots/spider.svg"
    before = _drawn("spider")
    first = client.get(url)
    assert first.status_code == 200 and _drawn("spider") == before + 1
    second = client.get(url)
    assert _drawn("spider") == before + 1  # served from the cache: not drawn again
    assert second.data == first.data and second.headers["ETag"] == first.headers["ETag"]
    # A browser holding the plot is told it is still current.
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and _drawn("spider") == before + 1
    # A new follow-up of S-1 changes the spider: drawn again, with the new point.
    save_timepoint(session, READER, seeded, "S-1", _tp("W16", "2021-04-26", 15.0, 10.0))
    session.expunge_all()
    session.rollback()
    third = client.get(url)
    assert _drawn("spider") == before + 2
    assert third.headers["ETag"] != first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 200
    days = [r["day"] for r in _points(client, f"/trials/{seeded}/plots/spider.csv")
            if r["subject_id"] == "S-1"]  # fmt: skip
    assert days == ["56", "112"]
    assert _drawn("spider") == before + 2  # the CSV of the same state: the same entry


def test_a_settings_change_draws_the_plots_again(
    client: FlaskClient, session: Session, seeded: str
) -> None:
    login(client, "reviewer")
    url = f"/trials/{seeded}/plots/waterfall.svg"
    client.get(url)
    before = _drawn("waterfall")
    client.get(url)
    assert _drawn("waterfall") == before
    update_settings(session, SYSTEM, seeded, {"sd_min_days": 60}, reason="SAP v2")
    session.expunge_all()
    session.rollback()
    client.get(url)
    assert _drawn("waterfall") == before + 1


def test_an_override_draws_again_and_the_waterfall_follows_the_call_used(
    client: FlaskClient, session: Session, seeded: str
) -> None:
    """S-4: the engine calls PD at W24 after a PR at W16 (−30 %). The adjudicator moves
    the progression to W8: the analysis stops there (R-BOR-CUT, R-BOR-USED), so the best
    overall response used is PD and the best change −10 %; the engine's PR and −30 % stay
    beside them, labelled."""
    login(client, "reviewer")
    url = f"/trials/{seeded}/plots/waterfall"
    engine = {r["subject_id"]: r for r in _points(client, f"{url}.csv")}
    assert (engine["S-4"]["bor"], engine["S-4"]["best_change_pct"]) == ("PR", "-30.0")
    assert engine["S-4"]["overridden"] == "False"
    before = _drawn("waterfall")
    row = subject_row(session, get_subject(session, seeded, "S-4"))
    assert row is not None
    override_call(session, ADJUDICATOR, seeded, "S-4", timepoint="W8",
                  reason="new liver lesion visible at W8 on review",
                  seen_call=f"{row.call.timepoint}/{row.call.date.isoformat()}")  # fmt: skip
    session.expunge_all()
    session.rollback()
    svg = client.get(f"{url}.svg")
    assert _drawn("waterfall") == before + 1
    used = {r["subject_id"]: r for r in _points(client, f"{url}.csv")}["S-4"]
    assert (used["bor"], used["best_change_pct"], used["source"]) == ("PD", "-10.0", "override")
    assert (used["engine_bor"], used["engine_best_change_pct"]) == ("PR", "-30.0")
    texts = ["".join(t.itertext()) for t in ET.fromstring(svg.data).iter(f"{SVG}text")]
    assert {"S-4 *", "* override used", "engine's own call"} <= set(texts)
    bar = next(k for k, v in _titles(svg.data).items() if v.startswith("S-4:"))
    assert _titles(svg.data)[bar] == (
        "S-4: -10.0 %, BOR PD (adjudicator's override; engine: -30.0 %, BOR PR)"
    )
    # The spider ends S-4's solid line at the call used (W8) and marks it there.
    spider = _titles(client.get(f"/trials/{seeded}/plots/spider.svg").data)
    assert spider["line-S-4"] == "S-4: BOR PD, PD at day 56 (adjudicator's override)"
    # … and keeps the engine's own call at W24 beside it, hollow and labelled.
    assert spider["engine-pd-S-4"] == "S-4: engine's PD at W24 (overridden)"
    mine = _titles(client.get(f"/trials/{seeded}/subjects/S-4/plots/spider.svg").data)
    assert mine["engine-pd-S-4"] == spider["engine-pd-S-4"]
    legend = client.get(f"/trials/{seeded}/plots/spider.svg").data.decode()
    assert "engine's PD (overridden)" in legend


def test_an_svg_opens_in_the_browser_and_downloads_only_on_request(
    client: FlaskClient, seeded: str
) -> None:
    login(client, "reviewer")
    for url in (f"/trials/{seeded}/plots/km-os.svg",
                f"/trials/{seeded}/subjects/S-4/plots/sums.svg"):  # fmt: skip
        inline = client.get(url)
        assert inline.status_code == 200 and inline.mimetype == "image/svg+xml"
        assert "Content-Disposition" not in inline.headers
        # matplotlib styles the SVG inline: allowed, and nothing else (no script).
        policy = inline.headers["Content-Security-Policy"]
        assert policy.startswith("default-src 'none'") and "style-src 'unsafe-inline'" in policy
        assert "script-src" not in policy
        assert inline.headers["Cache-Control"] == "private, no-cache"
        download = client.get(url + "?download=1")
        assert download.headers["Content-Disposition"].startswith("attachment; filename=")


def test_a_subject_has_its_own_spider_line_and_sums_over_time(
    client: FlaskClient, seeded: str
) -> None:
    login(client, "reviewer")
    base = f"/trials/{seeded}/subjects/S-4/plots"
    spider = client.get(f"{base}/spider.svg")
    groups = {g.get("id") for g in ET.fromstring(spider.data).iter(f"{SVG}g")}
    assert {"line-S-4", "pd-S-4"} <= groups and "line-S-1" not in groups
    sums = _points(client, f"{base}/sums.csv")
    assert [(r["timepoint"], r["sum_mm"], r["progression"]) for r in sums] == [
        ("BL", "50.0", "False"),
        ("W8", "45.0", "False"),
        ("W16", "35.0", "False"),
        ("W24", "60.0", "True"),
    ]
    # R-TGT-PD: at W24 the nadir is 35 mm; progression from 42 mm (+20 %, and ≥ 5 mm).
    assert (sums[3]["nadir_mm"], sums[3]["pd_threshold_mm"]) == ("35.0", "42.0")
    page = client.get(f"/trials/{seeded}/subjects/S-4").data.decode()
    assert f'src="{base}/spider.svg"' in page and f'src="{base}/sums.svg"' in page
    # A subject with only a baseline has nothing to plot: no plots on its page, a 404 here.
    assert 'id="subject-plots"' not in client.get(f"/trials/{seeded}/subjects/S-3").data.decode()
    missing = client.get(f"/trials/{seeded}/subjects/S-3/plots/spider.svg")
    assert missing.status_code == 404 and b"S-3 has no assessed follow-up" in missing.data
    unknown = client.get(f"{base}/waterfall.svg")
    assert unknown.status_code == 404 and b"known: spider, sums" in unknown.data


def test_the_cache_keeps_trials_and_roles_apart_and_non_members_get_403(
    app: Flask, client: FlaskClient, session: Session, seeded: str
) -> None:
    """OTHER-1 holds the same reads as TRIAL-1; no one but the admin is its member."""
    create_trial(session, SYSTEM, code="OTHER-1", title="Other", arms=[("A", "a"), ("B", "b")],
                 settings={"visit_interval_days": 56})  # fmt: skip
    _seed(session, "OTHER-1")
    login(client, "admin")
    mine = client.get(f"/trials/{seeded}/plots/swimmer.svg")
    other = client.get("/trials/OTHER-1/plots/swimmer.svg")
    assert b"TRIAL-1: Time on study" in mine.data and b"OTHER-1: Time on study" in other.data
    assert mine.headers["ETag"] != other.headers["ETag"]
    folder = Path(app.config["PLOT_CACHE"])
    assert len([p for p in folder.iterdir() if p.name.startswith("trial-")]) == 2
    # Another role draws its own entry, even for the same data.
    before = _drawn("swimmer")
    client.post("/logout")
    login(client, "reviewer")
    assert client.get(f"/trials/{seeded}/plots/swimmer.svg").status_code == 200
    assert _drawn("swimmer") == before + 1
    for url in ("/trials/OTHER-1/plots/swimmer.svg", "/trials/OTHER-1/plots/swimmer.csv",
                "/trials/OTHER-1/subjects/S-4/plots/spider.svg"):  # fmt: skip
        refused = client.get(url)
        assert refused.status_code == 403 and b"not a member of trial OTHER-1" in refused.data
    assert _drawn("swimmer") == before + 1


def test_an_unreadable_cache_entry_is_drawn_again(
    app: Flask, client: FlaskClient, seeded: str
) -> None:
    login(client, "reviewer")
    url = f"/trials/{seeded}/plots/km-pfs.svg"
    first = client.get(url)
    for entry in Path(app.config["PLOT_CACHE"]).rglob("km-pfs-*.json"):
        entry.write_text("{not json", encoding="utf-8")
    before = _drawn("km-pfs")
    again = client.get(url)
    assert again.status_code == 200 and again.data == first.data
    assert _drawn("km-pfs") == before + 1
