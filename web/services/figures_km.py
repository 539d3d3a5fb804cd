"""Kaplan–Meier curves per arm with their 95 % confidence bands, censoring marks and the
numbers at risk under the axis (split from :mod:`web.services.figures`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web.services.figures import ARM_COLOURS, Plot, add_note, new_figure, svg_text

# A line style per arm, so that curves differ in print and where their bands overlap.
ARM_LINESTYLES = ("-", "--", "-.", ":")
CI_ALPHA = 0.12  # the 95 % bands stay light enough to see the curves through them
KM_YLABEL = "Survival probability"


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
    fig = new_figure(6.4, 4.6 + 0.2 * len(arms))
    # Inches: the curves' axes above, the numbers-at-risk table under the axis label.
    height = fig.get_figheight()
    row_in, table_top = 0.2, 0.7
    table_in = row_in * (len(arms) + 1)
    ax = fig.add_axes((0.14, (table_in + table_top) / height, 0.82, 1 - (table_in + 1.2) / height))
    table = fig.add_axes((0.14, 0.05 / height, 0.82, table_in / height), sharex=ax)
    fitters = []
    summary = []
    banded = False  # whether any arm has a band of some width to shade
    for index, arm in enumerate(arms):
        colour = ARM_COLOURS[index % len(ARM_COLOURS)]
        style = ARM_LINESTYLES[index % len(ARM_LINESTYLES)]
        arm_rows = [o for o in observations if o.arm == arm]
        days = np.array([o.days for o in arm_rows], dtype=float)
        events = np.array([o.event == 1 for o in arm_rows])
        kmf = KaplanMeierFitter().fit(days, events, label=arm)
        timeline = kmf.survival_function_.index.to_numpy(dtype=float)
        band = kmf.confidence_interval_survival_function_
        width = band.iloc[:, 1].to_numpy(dtype=float) - band.iloc[:, 0].to_numpy(dtype=float)
        banded = banded or bool(np.nanmax(np.abs(width), initial=0.0) > 1e-9)
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
            label=f"{arm} (n={len(arm_rows)}, {int(events.sum())} event{_s(int(events.sum()))})",
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
        # The legend names the bands only when there are some: an arm without events has
        # a survival of 1 throughout and a band of no width.
        bands = "95 % CI shaded" if banded else None
        ax.legend(fontsize=7, loc="lower left", title=bands, title_fontsize=7)
    _at_risk_table(table, ax, arms, [kmf.durations for kmf in fitters])
    add_note(fig, note)
    return Plot(title, svg_text(fig), points, excluded, summary=summary, note=note)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


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
