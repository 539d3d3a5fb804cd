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

from recist.irecist import RECIST_CLASS

PR_LINE_PCT = -30.0  # R-TGT-PR: a 30 % decrease from baseline
PD_LINE_PCT = 20.0  # R-TGT-PD: a 20 % increase (from the nadir; drawn against baseline)

# Kaplan–Meier arms: Okabe–Ito colours (told apart with colour-blindness) and a line style
# each, so that curves differ in print and where their confidence bands overlap.
ARM_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
ARM_LINESTYLES = ("-", "--", "-.", ":")
CI_ALPHA = 0.12  # the 95 % bands stay light enough to see the curves through them
KM_YLABEL = "Survival probability"

BOR_COLOURS = {"CR": "#1b7837", "PR": "#5aae61", "SD": "#f1b640", "NON-CR/NON-PD": "#92c5de",
               "PD": "#c51b7d", "NE": "#9e9e9e"}  # fmt: skip
# iRECIST (docs/rules.md §10): its RECIST 1.1 class's colour; iUPD (unconfirmed) lighter.
BOR_COLOURS |= {i.value: BOR_COLOURS[c.value] for i, c in RECIST_CLASS.items() if i.value != "NE"}
BOR_COLOURS["iUPD"] = "#e9a3c9"
RESPONDING = ("CR", "PR", "iCR", "iPR")


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


def _figure(width: float, height: float, *, constrained: bool = False) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained" if constrained else None)


def _note(fig: Any, note: str | None) -> None:
    """Write ``note`` under everything drawn (tick labels, the numbers at risk)."""
    if not note:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # a canvas that can measure text
    fig.draw_without_rendering()  # run the layout first: measure where things end up
    engine = fig.get_layout_engine()
    if engine is not None:
        # Keep the axes where they are now: the layout must not make room for the note,
        # which goes under the tick labels (and is kept by the tight bounding box).
        fig.set_layout_engine("none")
    box = fig.get_tightbbox()
    text = fig.text(
        box.x0 / fig.get_figwidth(),
        (box.y0 - 0.06) / fig.get_figheight(),  # 0.06 in under the lowest label
        note,
        fontsize=7,
        ha="left",
        va="top",
        gid="plot-note",
    )
    text.set_in_layout(True)


def _threshold_lines(ax: Any) -> None:
    """The −30 % (R-TGT-PR) and +20 % (R-TGT-PD) lines, labelled just outside the right
    edge of the axes so that the labels never sit on a bar or a line."""
    for pct, style, label, gid in (
        (PR_LINE_PCT, "--", "−30 % (PR)", "threshold-PR"),
        (PD_LINE_PCT, ":", "+20 % (PD)", "threshold-PD"),
    ):
        ax.axhline(pct, color="#444", linestyle=style, linewidth=1)
        text = ax.annotate(
            label,
            xy=(1, pct),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            ha="left",
            fontsize=8,
        )
        text.set_gid(gid)


def _bor_legend(ax: Any, bors: Sequence[str], **where: Any) -> None:
    """A legend of the best overall responses present, in :data:`BOR_COLOURS`' order."""
    from matplotlib.patches import Patch

    present = [b for b in BOR_COLOURS if b in set(bors)]
    if present:
        ax.legend(
            handles=[Patch(color=BOR_COLOURS[b], label=b) for b in present],
            title="Best overall response",
            title_fontsize=7,
            fontsize=7,
            **where,
        )


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
        if tp.get("overall_response") in ("PD", "iCPD"):
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
    # Constrained layout sizes the axes to the tick labels: no empty band under them.
    fig = _figure(max(4.0, 0.35 * len(points) + 2), 4, constrained=True)
    ax = fig.add_subplot()
    for index, point in enumerate(points):
        bar = ax.bar(index, point["best_change_pct"], color=BOR_COLOURS[point["bor"]], width=0.8)
        bar.patches[0].set_gid(f"bar-{index}")
    _threshold_lines(ax)
    ax.set_xticks(range(len(points)), [p["subject_id"] for p in points], rotation=90, fontsize=7)
    ax.set_ylabel("best change from baseline (%)")
    ax.set_title(title)
    # Bars are sorted from growth to shrinkage: the lower left is empty of bars.
    _bor_legend(ax, [p["bor"] for p in points], loc="lower left")
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
    subject (complete sums only), coloured by the subject's best overall response (the
    legend), with the −30 % (R-TGT-PR) and +20 % (R-TGT-PD) lines."""
    points = []
    drawn: list[str] = []  # the best overall responses of the lines drawn
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
        drawn.append(result["best_overall_response"])
    _threshold_lines(ax)
    ax.set_xlabel("days since baseline")
    ax.set_ylabel("change from baseline (%)")
    ax.set_title(title)
    # The colours are the subjects' best overall response: say so, right of the axes and
    # of the threshold labels (a legend inside would hide lines).
    from matplotlib.transforms import ScaledTranslation

    _bor_legend(
        ax,
        drawn,
        loc="upper left",
        bbox_to_anchor=(1, 1),
        bbox_transform=ax.transAxes + ScaledTranslation(60 / 72, 0, fig.dpi_scale_trans),
        borderaxespad=0,
    )
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
        response = next((tp for tp in tps[1:] if tp.get("overall_response") in RESPONDING), None)
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
    from matplotlib.patches import Patch

    # Bars are coloured by best overall response, as in the waterfall and spider plots.
    present = [b for b in BOR_COLOURS if any(p["bor"] == b for p in points)]
    ax.legend(
        handles=[
            Line2D([], [], marker="^", color="black", linestyle="", label="first CR/PR"),
            Line2D([], [], marker="X", color="#c51b7d", linestyle="", label="progression"),
            *[Patch(color=BOR_COLOURS[b], label=f"BOR {b}") for b in present],
        ],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        borderaxespad=0,
    )
    _note(fig, note)
    return Plot(title, _svg(fig), points, note=note)


def kaplan_meier(
    observations: Sequence[Any],
    title: str,
    *,
    xlabel: str = "days since randomisation",
    ylabel: str = KM_YLABEL,
    records: Sequence[dict[str, Any]] | None = None,
    note: str | None = None,
) -> Plot:
    """Kaplan–Meier curves per arm (fitted by lifelines) with their 95 % confidence bands,
    censoring marks and the numbers at risk under the axis.

    ``observations`` are :class:`endpoints.analysis.Observation` (arm, days, event with 1 =
    event). The points are one per observation drawn: ``records`` when given (the subject
    rows behind the observations, in the same order: ``USUBJID``, ``AVAL``, ``CNSR``…),
    else ``ARM``/``AVAL``/``CNSR``; the summary is one row per arm (n, events, median).

    An observation without an arm (``endpoints.analysis.NO_ARM``) belongs to no curve of a
    by-arm plot: it is left out, listed in ``excluded`` and counted in the note, rather
    than drawn as an arm of its own.

    Raises
    ------
    ValueError
        ``records`` and ``observations`` differ in length.
    """
    import numpy as np
    from lifelines import KaplanMeierFitter

    from endpoints.analysis import NO_ARM

    if records is not None and len(records) != len(observations):
        raise ValueError(
            f"kaplan_meier: {len(records)} records for {len(observations)} observations"
        )
    rows = (
        [dict(r) for r in records]
        if records is not None
        else [{"ARM": o.arm, "AVAL": o.days, "CNSR": int(o.event != 1)} for o in observations]
    )
    armless = {i for i, o in enumerate(observations) if not o.arm or o.arm == NO_ARM}
    excluded = [
        {"subject_id": str(rows[i].get("USUBJID", "")), "why": "no arm"} for i in sorted(armless)
    ]
    points = [r for i, r in enumerate(rows) if i not in armless]
    observations = [o for i, o in enumerate(observations) if i not in armless]
    if armless:
        left_out = (
            f"{len(armless)} subject{'s' if len(armless) > 1 else ''} without an arm not shown"
        )
        note = f"{note}\n{left_out}" if note else left_out
    arms = sorted({o.arm for o in observations})
    fig = _figure(6.4, 4.6 + 0.2 * len(arms))
    # Inches: the curves' axes above, the numbers-at-risk table under the axis label.
    height = fig.get_figheight()
    row_in, table_top = 0.2, 0.7
    table_in = row_in * (len(arms) + 1)
    ax = fig.add_axes((0.14, (table_in + table_top) / height, 0.82, 1 - (table_in + 1.2) / height))
    table = fig.add_axes((0.14, 0.05 / height, 0.82, table_in / height), sharex=ax)
    fitters = []
    summary = []
    for index, arm in enumerate(arms):
        colour = ARM_COLOURS[index % len(ARM_COLOURS)]
        style = ARM_LINESTYLES[index % len(ARM_LINESTYLES)]
        arm_rows = [o for o in observations if o.arm == arm]
        days = np.array([o.days for o in arm_rows], dtype=float)
        events = np.array([o.event == 1 for o in arm_rows])
        kmf = KaplanMeierFitter().fit(days, events, label=arm)
        timeline = kmf.survival_function_.index.to_numpy(dtype=float)
        band = kmf.confidence_interval_survival_function_
        fill = ax.fill_between(
            timeline,
            band.iloc[:, 0].to_numpy(dtype=float),
            band.iloc[:, 1].to_numpy(dtype=float),
            step="post",
            color=colour,
            alpha=CI_ALPHA,
            linewidth=0,
            zorder=1,
        )
        fill.set_gid(f"km-ci-{arm}")
        (curve,) = ax.step(
            timeline,
            kmf.survival_function_.iloc[:, 0].to_numpy(dtype=float),
            where="post",
            color=colour,
            linestyle=style,
            linewidth=2,
            zorder=3,
            label=f"{arm} (n={len(arm_rows)}, {int(events.sum())} events)",
        )
        curve.set_gid(f"km-curve-{arm}")
        censored = days[~events]
        (marks,) = ax.plot(
            censored,
            kmf.survival_function_at_times(censored).to_numpy(dtype=float),
            linestyle="",
            marker="|",
            markersize=9,
            markeredgewidth=1.5,
            color=colour,
            zorder=4,
        )
        marks.set_gid(f"km-censor-{arm}")
        fitters.append(kmf)
        median = float(kmf.median_survival_time_)
        summary.append(
            {
                "arm": arm,
                "n": len(arm_rows),
                "events": int(events.sum()),
                "median_days": median if np.isfinite(median) else None,
            }
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    if arms:
        ax.legend(fontsize=7, loc="lower left", title="95 % CI shaded", title_fontsize=7)
    _at_risk_table(table, ax, arms, [kmf.durations for kmf in fitters])
    _note(fig, note)
    return Plot(title, _svg(fig), points, excluded, summary=summary, note=note)


def _at_risk_table(table: Any, ax: Any, arms: Sequence[str], durations: Sequence[Any]) -> None:
    """The numbers at risk under the curves' axes: one row per arm, the counts at the axis'
    ticks, and the arm names in a column of their own left of the leftmost count (however
    long the names and counts), in the arm's colour."""
    from matplotlib.transforms import Bbox

    for side in ("top", "right", "bottom", "left"):
        table.spines[side].set_visible(False)
    table.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False)
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    rows = len(arms)
    table.set_ylim(-0.5, rows + 0.5)
    counts = []
    for row, days in enumerate(durations):
        y = rows - 1 - row
        for column, tick in enumerate(ticks):
            count = table.text(
                tick, y, str(int((days >= tick).sum())), ha="center", va="center", fontsize=8
            )
            count.set_gid(f"at-risk-count-{row}-{column}")
            counts.append(count)

    def label_column(renderer: Any) -> Any:
        # Right edge of the names: the axes' left edge or the leftmost count, if further
        # left, whichever the layout gives; the names are placed a gap before it.
        edge = min(
            [table.get_window_extent(renderer).x0]
            + [c.get_window_extent(renderer).x0 for c in counts]
        )
        return Bbox.from_extents(edge, 0, edge, 1)

    header = ["At risk", *arms]
    colours = ["black"] + [ARM_COLOURS[i % len(ARM_COLOURS)] for i in range(rows)]
    for row, (name, colour) in enumerate(zip(header, colours, strict=True)):
        label = table.annotate(
            name,
            xy=(0, rows - row),
            xycoords=(label_column, "data"),
            xytext=(-8, 0),
            textcoords="offset points",
            ha="right",
            va="center",
            fontsize=8,
            color=colour,
            fontweight="bold" if row == 0 else "normal",
            annotation_clip=False,
        )
        label.set_gid("at-risk-header" if row == 0 else f"at-risk-row-{row - 1}")
