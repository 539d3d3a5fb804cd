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

# Arms: Okabe–Ito colours (told apart with colour-blindness), in the Kaplan–Meier curves
# (web.services.figures_km) and the swimmer plot's arm labels.
ARM_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")

BOR_COLOURS = {"CR": "#1b7837", "PR": "#5aae61", "SD": "#f1b640", "NON-CR/NON-PD": "#92c5de",
               "PD": "#c51b7d", "NE": "#9e9e9e"}  # fmt: skip
# iRECIST (docs/rules.md §10): its RECIST 1.1 class's colour; iUPD (unconfirmed) lighter.
BOR_COLOURS |= {i.value: BOR_COLOURS[c.value] for i, c in RECIST_CLASS.items() if i.value != "NE"}
BOR_COLOURS["iUPD"] = "#e9a3c9"
RESPONDING = ("CR", "PR", "iCR", "iPR")
PD = BOR_COLOURS["PD"]


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


def new_figure(width: float, height: float, *, constrained: bool = False) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained" if constrained else None)


def add_note(fig: Any, note: str | None) -> None:
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


def _bor_legend(
    ax: Any, bors: Sequence[str], *, extra: Sequence[Any] = (), **where: Any
) -> None:
    """A legend of the best overall responses present, in :data:`BOR_COLOURS`' order, and
    the ``extra`` handles after them (marks the plot draws)."""
    from matplotlib.patches import Patch

    present = [b for b in BOR_COLOURS if b in set(bors)]
    if present:
        ax.legend(
            handles=[*(Patch(color=BOR_COLOURS[b], label=b) for b in present), *extra],
            title="Best overall response",
            title_fontsize=7,
            fontsize=7,
            **where,
        )


def _source(sources: Mapping[str, str] | None, subject_id: str) -> dict[str, str]:
    return {} if sources is None else {"source": sources.get(subject_id, "")}


def svg_text(fig: Any) -> str:
    import matplotlib

    out = StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "recist"}):
        fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    return out.getvalue()


def titled(svg: str, titles: Mapping[str, str]) -> str:
    """``svg`` with a ``<title>`` (the browser's tooltip on hover) as the first child of each
    group whose id is a key of ``titles``."""
    from xml.sax.saxutils import escape, quoteattr

    for gid, title in titles.items():
        opening = f"<g id={quoteattr(gid)}>"
        svg = svg.replace(opening, f"{opening}<title>{escape(title)}</title>", 1)
    return svg


def stops_analysis(result: dict[str, Any], tp: dict[str, Any]) -> bool:
    """Whether ``tp`` is the progression that ends what analyses count of ``result``: the
    first PD read, or, after an adjudicator's override, the timepoint of the call used
    (none for no progression; R-BOR-USED)."""
    override = result.get("override")
    if override is not None:
        return bool(tp["id"] == override["cut_at"])
    return tp.get("overall_response") in ("PD", "iCPD")


def best_change(result: dict[str, Any]) -> float | None:
    """The best (lowest) % change of the target sum from baseline at a complete follow-up,
    up to and including the progression that ends the analysis (:func:`stops_analysis`);
    ``None`` without one."""
    best: float | None = None
    for tp in result["timepoints"][1:]:
        change = tp.get("change_from_baseline_pct")
        if change is not None and (best is None or change < best):
            best = change
        if stops_analysis(result, tp):
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
    with the −30 % (R-TGT-PR) and +20 % (R-TGT-PD) lines.

    The BOR and best change are those of the call analyses use (R-BOR-USED): after an
    adjudicator's override the bar is hatched, and the engine's own best change is drawn
    on it as a hollow diamond in the colour of the engine's BOR (both in the points)."""
    from web.services.plot_used import engine_columns, override_handles

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
                "overridden": "override" in result,
                **engine_columns(result),
                **_source(sources, result["subject_id"]),
            }
        )
    points.sort(key=lambda p: (-p["best_change_pct"], p["subject_id"]))
    # Constrained layout sizes the axes to the tick labels: no empty band under them.
    fig = new_figure(max(4.0, 0.35 * len(points) + 2), 4, constrained=True)
    ax = fig.add_subplot()
    titles = {}
    for index, point in enumerate(points):
        overridden = point["overridden"]
        bar = ax.bar(
            index,
            point["best_change_pct"],
            color=BOR_COLOURS[point["bor"]],
            width=0.8,
            hatch="///" if overridden else None,
            edgecolor="#333" if overridden else None,
            linewidth=0.6 if overridden else 0,
        )
        bar.patches[0].set_gid(f"bar-{index}")
        text = f"{point['subject_id']}: {point['best_change_pct']:.1f} %, BOR {point['bor']}"
        if overridden and point.get("engine_best_change_pct") is not None:
            (engine,) = ax.plot(
                index,
                point["engine_best_change_pct"],
                marker="D",
                markersize=6,
                markerfacecolor="white",
                markeredgecolor=BOR_COLOURS.get(point["engine_bor"], "#333"),
                markeredgewidth=1.8,
                linestyle="",
                zorder=4,
            )
            engine.set_gid(f"engine-{index}")
            text += (
                f" (adjudicator's override; engine: {point['engine_best_change_pct']:.1f} %, "
                f"BOR {point['engine_bor']})"
            )
        titles[f"bar-{index}"] = text
    _threshold_lines(ax)
    labels = [p["subject_id"] + (" *" if p["overridden"] else "") for p in points]
    ax.set_xticks(range(len(points)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("best change from baseline (%)")
    ax.set_title(title)
    # Bars are sorted from growth to shrinkage: the lower left is empty of bars.
    _bor_legend(ax, [p["bor"] for p in points], loc="lower left", extra=override_handles(points))
    add_note(fig, note)
    return Plot(title, titled(svg_text(fig), titles), points, excluded, note=note)


def day_of(result: dict[str, Any], iso: str) -> int:
    """Days from the result's baseline to the ISO date ``iso``."""
    start = date.fromisoformat(result["timepoints"][0]["date"])
    return (date.fromisoformat(iso) - start).days


def _spider_line(result: dict[str, Any]) -> tuple[list[tuple[int, float]], int | None]:
    """A subject's (day, % change) at baseline and each complete follow-up, and the index
    of the point that calls the progression used (``None`` without one). A progression
    at a timepoint without a complete sum is marked at that timepoint's day, at the last
    change known before it."""
    progression = result.get("progression")
    called = progression["timepoint"] if progression else None
    line: list[tuple[int, float]] = [(0, 0.0)]
    at: int | None = None
    for tp in result["timepoints"][1:]:
        change = tp.get("change_from_baseline_pct")
        if tp["id"] == called:
            line.append((day_of(result, tp["date"]), line[-1][1] if change is None else change))
            at = len(line) - 1
        elif change is not None:
            line.append((day_of(result, tp["date"]), change))
    return line, at


def spider(
    results: Sequence[dict[str, Any]],
    title: str = "Change in target sum over time",
    *,
    sources: Mapping[str, str] | None = None,
    note: str | None = None,
) -> Plot:
    """% change of the target sum from baseline over days since baseline, one line per
    subject (complete sums only), coloured by the subject's best overall response (the
    legend), with the −30 % (R-TGT-PR) and +20 % (R-TGT-PD) lines.

    The progression used (the result's ``progression``: the engine's call or an
    adjudicator's override) is marked with a cross; the line goes on after it thin and
    dashed; after an adjudicator's override the engine's own progression is a hollow
    cross (R-BOR-USED). Each line has a ``<title>`` naming the subject (shown on hover)."""
    from web.services.plot_used import engine_pd_point

    points = []
    drawn: list[str] = []  # the best overall responses of the lines drawn
    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    titles = {}
    for result in results:
        subject = result["subject_id"]
        line, at = _spider_line(result)
        for index, (day, change) in enumerate(line[1:], start=1):
            points.append(
                {
                    "subject_id": subject,
                    "day": day,
                    "change_pct": change,
                    "progression": index == at,
                    "after_progression": at is not None and index > at,
                    **_source(sources, subject),
                }
            )
        if len(line) < 2:
            continue
        colour = BOR_COLOURS[result["best_overall_response"]]
        end = len(line) if at is None else at + 1
        xs, ys = [d for d, _ in line], [c for _, c in line]
        (solid,) = ax.plot(xs[:end], ys[:end], marker="o", markersize=3, color=colour)
        solid.set_gid(f"line-{subject}")
        if at is not None:
            if end < len(line):
                (after,) = ax.plot(
                    xs[at:], ys[at:], color=colour, linestyle="--", linewidth=0.9, alpha=0.5
                )
                after.set_gid(f"after-{subject}")
                titles[f"after-{subject}"] = f"{subject}: after progression"
            (mark,) = ax.plot(
                xs[at], ys[at], marker="X", markersize=8, color=BOR_COLOURS["PD"],
                markeredgecolor="black", markeredgewidth=0.6, linestyle="", zorder=5,
            )  # fmt: skip
            mark.set_gid(f"pd-{subject}")
            titles[f"pd-{subject}"] = f"{subject}: progression at day {xs[at]}"
        engine = engine_pd_point(result)
        if engine is not None:  # the engine's call beside the override, hollow
            (hollow,) = ax.plot(engine[1], engine[2], marker="X", markersize=8, linestyle="",
                                markerfacecolor="none", markeredgecolor=PD)  # fmt: skip
            hollow.set_gid(f"engine-pd-{subject}")
            titles[f"engine-pd-{subject}"] = f"{subject}: engine's PD at {engine[0]} (overridden)"
        pd_text = f"PD at day {xs[at]}" if at is not None else "no progression"
        titles[f"line-{subject}"] = (
            f"{subject}: BOR {result['best_overall_response']}, {pd_text}"
            + (" (adjudicator's override)" if "override" in result else "")
        )
        drawn.append(result["best_overall_response"])
    _threshold_lines(ax)
    ax.set_xlabel("days since baseline")
    ax.set_ylabel("change from baseline (%)")
    ax.set_title(title)
    # The colours are the subjects' best overall response: say so, right of the axes and
    # of the threshold labels (a legend inside would hide lines).
    from matplotlib.lines import Line2D
    from matplotlib.transforms import ScaledTranslation

    marks = [
        Line2D([], [], marker="X", color=BOR_COLOURS["PD"], markeredgecolor="black",
               linestyle="", label="progression"),
    ] if any(p["progression"] for p in points) else []  # fmt: skip
    if any(gid.startswith("engine-pd-") for gid in titles):
        marks.append(Line2D([], [], marker="X", markerfacecolor="none", linestyle="",
                            markeredgecolor=PD, label="engine's PD (overridden)"))  # fmt: skip
    if any(p["after_progression"] for p in points):
        marks.append(Line2D([], [], color="#666", linestyle="--", linewidth=0.9,
                            label="after progression"))  # fmt: skip
    _bor_legend(
        ax,
        drawn,
        extra=marks,
        loc="upper left",
        bbox_to_anchor=(1, 1),
        bbox_transform=ax.transAxes + ScaledTranslation(60 / 72, 0, fig.dpi_scale_trans),
        borderaxespad=0,
    )
    add_note(fig, note)
    return Plot(title, titled(svg_text(fig), titles), points, note=note)


def swimmer(
    results: Sequence[dict[str, Any]],
    title: str = "Time on study",
    *,
    sources: Mapping[str, str] | None = None,
    arms: Mapping[str, str | None] | None = None,
    deaths: Mapping[str, str | None] | None = None,
    note: str | None = None,
) -> Plot:
    """One bar per subject from baseline to the last assessment, with the first response
    (CR/PR, triangle) and progression (cross, at the result's ``progression``: the call
    used, when the caller passes results as analyses use them) marked; an arrow when
    still on study. With ``arms`` (subject id → arm), subjects are grouped by arm, the arm
    written after each subject id in the arm's colour; with ``deaths`` (subject id → ISO
    date of death), a death is a black square at its day, joined to the bar by a thin
    line."""
    arms = arms or {}
    deaths = deaths or {}
    points = []
    for result in results:
        tps = result["timepoints"]
        end = day_of(result, tps[-1]["date"])
        response = next((tp for tp in tps[1:] if tp.get("overall_response") in RESPONDING), None)
        progression = result.get("progression")
        points.append(
            {
                "subject_id": result["subject_id"],
                "arm": arms.get(result["subject_id"]) or "",
                "days_on_study": end,
                "first_response_day": day_of(result, response["date"]) if response else None,
                "first_response": response["overall_response"] if response else None,
                "progression_day": day_of(result, progression["date"]) if progression else None,
                "ongoing": progression is None and not result["pfs"]["event"],
                "death_day": (
                    day_of(result, deaths[result["subject_id"]] or "")
                    if deaths.get(result["subject_id"])
                    else None
                ),
                "bor": result["best_overall_response"],
                **_source(sources, result["subject_id"]),
            }
        )
    # By arm (subjects without one last), then by time on study.
    points.sort(key=lambda p: (p["arm"] == "", p["arm"], p["days_on_study"], p["subject_id"]))
    arm_names = sorted({p["arm"] for p in points if p["arm"]})
    fig = new_figure(6, max(3.0, 0.3 * len(points) + 1.5))
    ax = fig.add_subplot()
    for row, point in enumerate(points):
        bar = ax.barh(row, point["days_on_study"], color=BOR_COLOURS[point["bor"]], height=0.6)
        bar.patches[0].set_gid(f"swim-{row}")
        if point["first_response_day"] is not None:
            ax.plot(point["first_response_day"], row, marker="^", color="black", markersize=6)
        if point["progression_day"] is not None:
            ax.plot(point["progression_day"], row, marker="X", color="#c51b7d", markersize=7)
        if point["death_day"] is not None:
            ax.plot([point["days_on_study"], point["death_day"]], [row, row], color="#555",
                    linewidth=0.8, linestyle=":")  # fmt: skip
            ax.plot(point["death_day"], row, marker="s", color="black", markersize=5)
        if point["ongoing"]:
            ax.annotate(
                "",
                xy=(point["days_on_study"] + 20, row),
                xytext=(point["days_on_study"], row),
                arrowprops={"arrowstyle": "->"},
            )
        if row and point["arm"] != points[row - 1]["arm"]:
            ax.axhline(row - 0.5, color="#888", linewidth=0.8, linestyle=":")
    # Room on the right for the on-study arrows (20 days long) and the deaths.
    ends = [max(p["days_on_study"] + 28, p["death_day"] or 0) for p in points]
    ax.set_xlim(0, max([*ends, 28]) * 1.04)
    labels = [f"{p['subject_id']} · {p['arm'] or 'no arm'}" if arms else p["subject_id"]
              for p in points]  # fmt: skip
    ax.set_yticks(range(len(points)), labels, fontsize=7)
    for tick, point in zip(ax.get_yticklabels(), points, strict=True):
        if point["arm"]:
            tick.set_color(ARM_COLOURS[arm_names.index(point["arm"]) % len(ARM_COLOURS)])
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
            *(
                [Line2D([], [], marker="s", color="black", linestyle="", label="death")]
                if any(p["death_day"] is not None for p in points)
                else []
            ),
            Line2D([], [], marker=r"$\rightarrow$", color="black", linestyle="",
                   markersize=10, label="on study"),
            *[Patch(color=BOR_COLOURS[b], label=f"BOR {b}") for b in present],
        ],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        borderaxespad=0,
    )
    add_note(fig, note)
    return Plot(title, svg_text(fig), points, note=note)
