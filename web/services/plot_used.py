"""The best overall response and best change analyses use after an adjudicator's override
(R-BOR-USED), with the engine's own call kept beside them.

The responses and the BOR as used come from :func:`web.services.as_used.responses_as_used`
(the same derivation the grid and the subject list show): the counted timepoints
(R-BOR-CUT) end at the overriding call's timepoint, which counts as PD; a PD the engine read
before it (or anywhere, when the override says there is no progression) counts as NE, the
adjudicator having ruled it is no progression and the reads giving no other response for
it; the BOR is chosen from those by the engine's own rules (R-BOR-1, R-BOR-SDMIN,
R-BOR-CONF by the trial's settings). Under iRECIST the engine's best overall response is
kept. This module adds what the plots draw beside it: the engine's own BOR, best change
and progression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def analysed(case: dict[str, Any], engine: dict[str, Any], used: dict[str, Any]) -> dict[str, Any]:
    """``used`` (:func:`web.services.progression.used_result` of ``engine``) with the best
    overall response of the call used, and an ``override`` entry: where the analysis
    stops (``cut_at``) and the engine's own best overall response and best change."""
    from web.services.as_used import responses_as_used
    from web.services.figures import best_change

    cut_at = used["progression"]["timepoint"] if used.get("progression") else None
    if used.get("criteria") != "irecist":  # iRECIST: the engine's iBOR is kept
        used = responses_as_used(case, used, cut_at)
    return {
        **used,
        "override": {
            "cut_at": cut_at,
            "engine_bor": engine["best_overall_response"],
            "engine_best_change_pct": best_change(engine),
            "engine_progression": engine.get("progression"),
        },
    }


def engine_columns(result: dict[str, Any]) -> dict[str, Any]:
    """The engine's own call beside an overridden one (R-BOR-USED): empty without one."""
    override = result.get("override")
    if override is None:
        return {}
    return {
        "engine_bor": override["engine_bor"],
        "engine_best_change_pct": override["engine_best_change_pct"],
    }


def override_handles(points: Sequence[dict[str, Any]]) -> list[Any]:
    """Legend entries for overridden calls, when the plot has any (R-BOR-USED)."""
    if not any(p["overridden"] for p in points):
        return []
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Patch(facecolor="white", edgecolor="#333", hatch="///", label="* override used"),
        Line2D(
            [], [], marker="D", markerfacecolor="white", markeredgecolor="#333",
            linestyle="", label="engine's own call",
        ),
    ]  # fmt: skip


def engine_pd_point(result: dict[str, Any]) -> tuple[str, int, float] | None:
    """Where the engine called the progression an override replaced (R-BOR-USED): its
    timepoint, day since baseline and % change from baseline (0 without a complete sum);
    ``None`` without an override or where the call used is at the same timepoint."""
    from web.services.figures import day_of

    override = result.get("override") or {}
    engine = override.get("engine_progression")
    if not engine or engine["timepoint"] == override.get("cut_at"):
        return None
    tp = next(t for t in result["timepoints"] if t["id"] == engine["timepoint"])
    return tp["id"], day_of(result, tp["date"]), tp.get("change_from_baseline_pct") or 0.0
