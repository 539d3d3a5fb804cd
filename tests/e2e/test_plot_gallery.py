"""In a real browser: the trial page's plots load on their own, a click enlarges one to the
window's width, Escape closes it; the subject page shows the subject's plots."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, Login
from web.demo import synthetic_case
from web.services import SYSTEM, create_trial, create_user, import_case

pytestmark = pytest.mark.e2e


def _seed(app: Any) -> None:
    """Six synthetic subjects, two of them dead, in two arms."""
    session = app.extensions["recist_sessions"]()
    try:
        create_trial(session, SYSTEM, code="PL", title="Plots", arms=[("A", "a"), ("B", "b")])
        create_user(
            session, SYSTEM, username="stat", password=PASSWORD, role="reviewer", trials=["PL"]
        )
        rng = random.Random(7)
        kinds = ("responder", "growth", "stable", "new_lesion", "complete", "growth")
        for n, kind in enumerate(kinds):
            case = synthetic_case(rng, f"P-{n + 1}", timepoints=4, kind=kind, arm="AB"[n % 2])
            if kind == "growth":
                case["died_on"] = "2023-12-01"
            import_case(session, SYSTEM, "PL", case)
    finally:
        session.close()


def _loaded(image: Any) -> None:
    """Wait until ``image`` (a locator) has loaded a picture (the plot was drawn)."""
    image.wait_for()
    for _ in range(600):  # up to a minute: drawing is slow on a busy machine
        if image.evaluate("img => img.complete && img.naturalWidth > 0"):
            return
        image.page.wait_for_timeout(100)
    raise AssertionError(f"{image} never loaded")


def test_a_click_enlarges_a_plot_and_the_subject_page_shows_its_plots(
    live_server: dict[str, Any], login: Login, screenshots: Path
) -> None:
    _seed(live_server["app"])
    base = live_server["url"]
    page = login("stat")
    page.goto(base + "/trials/PL")
    figure = page.locator("figure[data-plot=spider]")
    figure.scroll_into_view_if_needed()
    thumb = figure.locator("img")
    thumb.wait_for()
    _loaded(thumb)
    thumb_width = thumb.bounding_box()["width"]
    thumb.click()
    viewer = page.locator("dialog#plot-viewer[open]")
    viewer.wait_for()
    _loaded(viewer.locator("img"))
    enlarged = viewer.locator("img").bounding_box()
    assert enlarged["width"] > 1.5 * thumb_width
    assert viewer.locator("a").get_attribute("href") == "/trials/PL/plots/spider.svg"
    page.screenshot(path=str(screenshots / "plot_enlarged.png"))
    page.keyboard.press("Escape")
    assert page.locator("dialog#plot-viewer[open]").count() == 0
    page.goto(base + "/trials/PL/subjects/P-2")
    plots = page.locator("#subject-plots")
    plots.scroll_into_view_if_needed()
    for kind in ("spider", "sums"):
        _loaded(plots.locator(f"figure[data-plot={kind}] img"))
    plots.screenshot(path=str(screenshots / "subject_plots.png"))
