"""One subject's target sum over time: the sums read, the nadir each follow-up is compared
with, the sum that would be progression (R-TGT-PD) and the progression used, marked."""

from __future__ import annotations

from typing import Any

from web.services.figures import (
    BOR_COLOURS,
    Plot,
    add_note,
    day_of,
    new_figure,
    svg_text,
    titled,
)

PD_INCREASE = 0.20  # R-TGT-PD: 20 % over the nadir …
PD_MIN_MM = 5.0  # … and at least 5 mm


def sums(result: dict[str, Any], title: str, *, note: str | None = None) -> Plot:
    """The sum of target diameters (mm) at each timepoint over days since baseline; for
    each follow-up, from the timepoint before it, the nadir it is compared with (dashed,
    R-TGT-PD) and the sum that would be progression (nadir + 20 % and at least 5 mm,
    dotted); the progression used (the result's ``progression``) crossed. Points: one per
    timepoint with a sum (and the progression's, without one)."""
    progression = result.get("progression")
    called = progression["timepoint"] if progression else None
    points = []
    for tp in result["timepoints"]:
        if tp.get("sum_mm") is None and tp["id"] != called:
            continue
        nadir = tp.get("nadir_mm")
        points.append(
            {
                "timepoint": tp["id"],
                "date": tp["date"],
                "day": day_of(result, tp["date"]),
                "sum_mm": tp.get("sum_mm"),
                "nadir_mm": nadir,
                "pd_threshold_mm": (
                    None if nadir is None else round(max(nadir * (1 + PD_INCREASE),
                                                         nadir + PD_MIN_MM), 1)
                ),
                "overall_response": tp.get("overall_response") or "",
                "progression": tp["id"] == called,
            }
        )  # fmt: skip
    fig = new_figure(5.5, 3.4, constrained=True)
    ax = fig.add_subplot()
    read = [p for p in points if p["sum_mm"] is not None]
    (line,) = ax.plot(
        [p["day"] for p in read], [p["sum_mm"] for p in read], marker="o", color="#333",
        label="sum of target diameters",
    )  # fmt: skip
    line.set_gid("sums")
    # Each follow-up's reference (nadir) and threshold, drawn from the timepoint before it
    # to it: the sum it had to exceed to be progression.
    for index, point in enumerate(points):
        if point["nadir_mm"] is None or index == 0:
            continue
        span = [points[index - 1]["day"], point["day"]]
        first = all(p["nadir_mm"] is None for p in points[1:index])
        ax.plot(span, [point["nadir_mm"]] * 2, color="#5aae61", linestyle="--", linewidth=1,
                label="nadir (reference)" if first else None)  # fmt: skip
        ax.plot(span, [point["pd_threshold_mm"]] * 2, color=BOR_COLOURS["PD"], linestyle=":",
                linewidth=1.4, label="PD threshold (R-TGT-PD)" if first else None)  # fmt: skip
    titles = {}
    for index, point in enumerate(read):
        titles[f"sum-{index}"] = f"{point['timepoint']} ({point['date']}): {point['sum_mm']} mm"
    for point in points:
        if point["progression"]:
            y = point["sum_mm"] if point["sum_mm"] is not None else (read[-1]["sum_mm"] if read
                                                                     else 0)  # fmt: skip
            (mark,) = ax.plot(point["day"], y, marker="X", markersize=10, linestyle="",
                              color=BOR_COLOURS["PD"], markeredgecolor="black",
                              label=f"progression ({point['timepoint']})", zorder=5)  # fmt: skip
            mark.set_gid("pd")
            titles["pd"] = f"progression at {point['timepoint']} ({point['date']})"
    for index, point in enumerate(read):
        label = ax.annotate(point["timepoint"], (point["day"], point["sum_mm"]), fontsize=7,
                            xytext=(0, 6), textcoords="offset points", ha="center")  # fmt: skip
        label.set_gid(f"sum-{index}")
    tops = [p["sum_mm"] or 0 for p in points] + [p["pd_threshold_mm"] or 0 for p in points]
    ax.set_ylim(0, max([*tops, 1.0]) * 1.15)  # room for the timepoint labels
    ax.set_xlabel("days since baseline")
    ax.set_ylabel("sum of diameters (mm)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    add_note(fig, note)
    return Plot(title, titled(svg_text(fig), titles), points, note=note)
