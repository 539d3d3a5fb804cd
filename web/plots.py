"""The plots reviewers use, drawn server-side as SVG with matplotlib (no CDN, no browser
script): waterfall, spider, swimmer and Kaplan–Meier with numbers at risk.

Each function takes engine results (``recist.jsonio.assess_json`` dicts) or endpoint
observations and returns a :class:`Plot`: the SVG text and the data points drawn, so that
tests and downloads can check what a plot shows, not only that it exists. Text stays text
in the SVG (``svg.fonttype = none``), so labels are searchable and accessible. A ``note``
is written under the plot (where its data came from); ``sources`` (subject id → source)
adds a ``source`` to each subject's points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from io import StringIO
from typing import Any

PR_LINE_PCT = -30.0  # R-TGT-PR: a 30 % decrease from baseline
PD_LINE_PCT = 20.0  # R-TGT-PD: a 20 % increase (from the nadir; drawn against baseline)

BOR_COLOURS = {
    "CR": "#1b7837",
    "PR": "#5aae61",
    "SD": "#f1b640",
    "NON-CR/NON-PD": "#92c5de",
    "PD": "#c51b7d",
    "NE": "#9e9e9e",
}


@dataclass(frozen=True)
class Plot:
    """An SVG document, the data points it draws and, for Kaplan–Meier, the summary per
    arm (n, events, median)."""

    title: str
    svg: str
    points: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _note(fig: Any, note: str | None) -> None:
    """Write ``note`` under everything drawn (tick labels, the numbers at risk)."""
    if not note:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # a canvas that can measure text
    bottom = fig.get_tightbbox().y0 / fig.get_figheight()  # figure fraction
    fig.text(0.01, bottom - 0.02, note, fontsize=7, ha="left", va="top", gid="plot-note")


def _source(sources: Mapping[str, str] | None, subject_id: str) -> dict[str, str]:
    return {} if sources is None else {"source": sources.get(subject_id, "")}


def _svg(fig: Any) -> str:
    import matplotlib

    out = StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "recist"}):
        fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    return out.getvalue()


def best_change(result: dict[str, Any]) -> float | None:
    """The best (lowest) % change of the target sum from baseline at a complete follow-up,
    up to and including the first PD; ``None`` without one."""
    best: float | None = None
    for tp in result["timepoints"][1:]:
        change = tp.get("change_from_baseline_pct")
        if change is not None and (best is None or change < best):
            best = change
        if tp.get("overall_response") == "PD":
            break
    return best


def waterfall(
    results: Sequence[dict[str, Any]],
    title: str = "Best change in target sum",
    *,
    sources: Mapping[str, str] | None = None,
    note: str | None = None,
) -> Plot:
    """Waterfall of the best % change from baseline per subject, bars coloured by BOR,
    with the −30 % (R-TGT-PR) and +20 % (R-TGT-PD) lines."""
    points = []
    excluded = []
    for result in results:
        change = best_change(result)
        if change is None:
            excluded.append(
                {"subject_id": result["subject_id"], "why": "no complete target sum after baseline"}
            )
            continue
        points.append(
            {
                "subject_id": result["subject_id"],
                "best_change_pct": change,
                "bor": result["best_overall_response"],
                **_source(sources, result["subject_id"]),
            }
        )
    points.sort(key=lambda p: (-p["best_change_pct"], p["subject_id"]))
    fig = _figure(max(4.0, 0.35 * len(points) + 2), 4)
    ax = fig.add_subplot()
    for index, point in enumerate(points):
        bar = ax.bar(index, point["best_change_pct"], color=BOR_COLOURS[point["bor"]], width=0.8)
        bar.patches[0].set_gid(f"bar-{index}")
    ax.axhline(PR_LINE_PCT, color="#444", linestyle="--", linewidth=1)
    ax.axhline(PD_LINE_PCT, color="#444", linestyle=":", linewidth=1)
    ax.text(len(points) - 0.5, PR_LINE_PCT, "−30 % (PR)", va="bottom", ha="right", fontsize=8)
    ax.text(len(points) - 0.5, PD_LINE_PCT, "+20 % (PD)", va="bottom", ha="right", fontsize=8)
    ax.set_xticks(range(len(points)), [p["subject_id"] for p in points], rotation=90, fontsize=7)
    ax.set_ylabel("best change from baseline (%)")
    ax.set_title(title)
    from matplotlib.patches import Patch

    present = [b for b in BOR_COLOURS if any(p["bor"] == b for p in points)]
    if present:
        ax.legend(
            handles=[Patch(color=BOR_COLOURS[b], label=b) for b in present],
            title="BOR",
            fontsize=7,
            loc="lower left",
        )
    _note(fig, note)
    return Plot(title, _svg(fig), points, excluded, note=note)


def _days(result: dict[str, Any], iso: str) -> int:
    start = date.fromisoformat(result["timepoints"][0]["date"])
    return (date.fromisoformat(iso) - start).days


def spider(
    results: Sequence[dict[str, Any]],
    title: str = "Change in target sum over time",
    *,
    sources: Mapping[str, str] | None = None,
    note: str | None = None,
) -> Plot:
    """% change of the target sum from baseline over days since baseline, one line per
    subject (complete sums only)."""
    points = []
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    for result in results:
        xs = [0]
        ys = [0.0]
        for tp in result["timepoints"][1:]:
            change = tp.get("change_from_baseline_pct")
            if change is None:
                continue
            xs.append(_days(result, tp["date"]))
            ys.append(change)
            points.append(
                {
                    "subject_id": result["subject_id"],
                    "day": xs[-1],
                    "change_pct": change,
                    **_source(sources, result["subject_id"]),
                }
            )
        if len(xs) < 2:
            continue
        (line,) = ax.plot(
            xs,
            ys,
            marker="o",
            markersize=3,
            color=BOR_COLOURS[result["best_overall_response"]],
            label=result["subject_id"],
        )
        line.set_gid(f"line-{result['subject_id']}")
    ax.axhline(PR_LINE_PCT, color="#444", linestyle="--", linewidth=1)
    ax.axhline(PD_LINE_PCT, color="#444", linestyle=":", linewidth=1)
    ax.set_xlabel("days since baseline")
    ax.set_ylabel("change from baseline (%)")
    ax.set_title(title)
    _note(fig, note)
    return Plot(title, _svg(fig), points, note=note)


def swimmer(
    results: Sequence[dict[str, Any]],
    title: str = "Time on study",
    *,
    sources: Mapping[str, str] | None = None,
    note: str | None = None,
) -> Plot:
    """One bar per subject from baseline to the last assessment, with the first response
    (CR/PR, triangle) and progression (cross, at the result's ``progression``: the call
    used, when the caller passes results as analyses use them) marked; an arrow when
    still on study."""
    points = []
    for result in results:
        tps = result["timepoints"]
        end = _days(result, tps[-1]["date"])
        response = next((tp for tp in tps[1:] if tp.get("overall_response") in ("CR", "PR")), None)
        progression = result.get("progression")
        points.append(
            {
                "subject_id": result["subject_id"],
                "days_on_study": end,
                "first_response_day": _days(result, response["date"]) if response else None,
                "first_response": response["overall_response"] if response else None,
                "progression_day": _days(result, progression["date"]) if progression else None,
                "ongoing": progression is None and not result["pfs"]["event"],
                "bor": result["best_overall_response"],
                **_source(sources, result["subject_id"]),
            }
        )
    points.sort(key=lambda p: (p["days_on_study"], p["subject_id"]))
    fig = _figure(6, max(3.0, 0.3 * len(points) + 1.5))
    ax = fig.add_subplot()
    for row, point in enumerate(points):
        bar = ax.barh(row, point["days_on_study"], color=BOR_COLOURS[point["bor"]], height=0.6)
        bar.patches[0].set_gid(f"swim-{row}")
        if point["first_response_day"] is not None:
            ax.plot(point["first_response_day"], row, marker="^", color="black", markersize=6)
        if point["progression_day"] is not None:
            ax.plot(point["progression_day"], row, marker="X", color="#c51b7d", markersize=7)
        if point["ongoing"]:
            ax.annotate(
                "",
                xy=(point["days_on_study"] + 20, row),
                xytext=(point["days_on_study"], row),
                arrowprops={"arrowstyle": "->"},
            )
    ax.set_yticks(range(len(points)), [p["subject_id"] for p in points], fontsize=7)
    ax.set_xlabel("days since baseline")
    ax.set_title(title)
    from matplotlib.lines import Line2D

    ax.legend(
        handles=[
            Line2D([], [], marker="^", color="black", linestyle="", label="first CR/PR"),
            Line2D([], [], marker="X", color="#c51b7d", linestyle="", label="progression"),
        ],
        fontsize=7,
        loc="lower right",
    )
    _note(fig, note)
    return Plot(title, _svg(fig), points, note=note)


def kaplan_meier(
    observations: Sequence[Any],
    title: str,
    *,
    xlabel: str = "days since randomisation",
    records: Sequence[dict[str, Any]] | None = None,
    note: str | None = None,
) -> Plot:
    """Kaplan–Meier curves per arm (lifelines) with the numbers at risk under the axis.

    ``observations`` are :class:`endpoints.analysis.Observation` (arm, days, event with 1 =
    event); lifelines fits and draws, this function only arranges. The points are one per
    observation: ``records`` when given (the subject rows behind the observations, in the
    same order: ``USUBJID``, ``AVAL``, ``CNSR``…), else ``ARM``/``AVAL``/``CNSR``; the
    summary is one row per arm (n, events, median).

    Raises
    ------
    ValueError
        ``records`` and ``observations`` differ in length.
    """
    import numpy as np
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    if records is not None and len(records) != len(observations):
        raise ValueError(
            f"kaplan_meier: {len(records)} records for {len(observations)} observations"
        )
    points = (
        [dict(r) for r in records]
        if records is not None
        else [{"ARM": o.arm, "AVAL": o.days, "CNSR": int(o.event != 1)} for o in observations]
    )
    fig = _figure(6, 4.5)
    ax = fig.add_subplot()
    fitters = []
    summary = []
    for arm in sorted({o.arm for o in observations}):
        rows = [o for o in observations if o.arm == arm]
        kmf = KaplanMeierFitter().fit(
            np.array([o.days for o in rows], dtype=float),
            np.array([o.event == 1 for o in rows]),
            label=arm,
        )
        kmf.plot_survival_function(ax=ax, ci_show=True, show_censors=True)
        fitters.append(kmf)
        median = float(kmf.median_survival_time_)
        summary.append(
            {
                "arm": arm,
                "n": len(rows),
                "events": sum(o.event == 1 for o in rows),
                "median_days": median if np.isfinite(median) else None,
            }
        )
    if fitters:
        add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probability event-free")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    _note(fig, note)
    return Plot(title, _svg(fig), points, summary=summary, note=note)
