"""A differential test of §8 (PFS): hypothesis-generated cases against a small,
deliberately simple second implementation written here from docs/rules.md, not from the
engine's code (issue 15). Cases are targets only, every size measured (no NE), so that
the reference needs only the R-TGT-PD threshold (sum >= 120 % of the nadir and >= 5 mm
above it), death, and the censoring table with the missed-visit rule."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.recist.conftest import BASE_DATE, assess, case, fu

ORIGIN = BASE_DATE - timedelta(days=3)


def reference_pfs(
    baseline: list[int],
    visits: list[tuple[date, list[int]]],
    died_on: date | None,
    interval: int | None,
) -> tuple[bool, date, str]:
    """(event, date, reason) by §8, computed the plain way."""
    nadir = sum(baseline)
    progression: tuple[str, date] | None = None
    for index, (when, sizes) in enumerate(visits):
        total = sum(sizes)
        if total >= nadir * 1.2 and total - nadir >= 5:
            progression = (f"FU{index + 1}", when)
            break
        nadir = min(nadir, total)
    event: tuple[date, str, str | None] | None = None
    if progression is not None:
        event = (progression[1], "PD_TARGET", progression[0])
    if died_on is not None and (event is None or died_on < event[0]):
        event = (died_on, "DEATH", None)
    dates = [(f"FU{i + 1}", when) for i, (when, _) in enumerate(visits)]
    if event is None:
        last = dates[-1][1] if dates else ORIGIN
        return False, last, "CENSORED_LAST_ASSESSMENT"
    when, reason, shown_by = event
    if interval is not None:
        before = [d for name, d in dates if d <= when and name != shown_by]
        reference = before[-1] if before else ORIGIN
        if (when - reference).days > 2 * interval:
            return False, reference, "CENSORED_MISSED_VISITS"
    return True, when, reason


@st.composite
def cases(draw: Any) -> tuple[dict[str, Any], tuple[bool, date, str]]:
    baseline = draw(st.lists(st.integers(10, 60), min_size=1, max_size=3))
    count = draw(st.integers(1, 6))
    when, visits = BASE_DATE, []
    for _ in range(count):
        when = when + timedelta(days=draw(st.sampled_from([28, 42, 56, 84, 113, 130])))
        sizes = [draw(st.integers(5, 90)) for _ in baseline]
        visits.append((when, sizes))
    died_on = None
    if draw(st.booleans()):
        died_on = visits[-1][0] + timedelta(days=draw(st.sampled_from([0, 1, 30, 112, 113, 200])))
    interval = draw(st.sampled_from([None, 56]))
    ids = [f"T{i + 1}" for i in range(len(baseline))]
    extra: dict[str, Any] = {"randomized_on": ORIGIN.isoformat()}
    if died_on is not None:
        extra["died_on"] = died_on.isoformat()
    c = case(
        dict(zip(ids, map(float, baseline), strict=True)),
        *[
            fu(date=d.isoformat(), targets=dict(zip(ids, map(float, s), strict=True)))
            for d, s in visits
        ],
        settings={"visit_interval_days": interval} if interval else None,
        **extra,
    )
    return c, reference_pfs(baseline, visits, died_on, interval)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_engine_s_pfs_agrees_with_a_simple_reading_of_section_8(
    drawn: tuple[dict[str, Any], tuple[bool, date, str]],
) -> None:
    c, (event, when, reason) = drawn
    got = assess(c)["pfs"]
    assert (got["event"], got["date"], got["reason"]) == (event, when.isoformat(), reason)
    assert got["days"] == (when - ORIGIN).days + 1
