"""The best overall response and best change analyses use after an adjudicator's override
(R-BOR-USED), with the engine's own call kept beside them.

:func:`web.services.progression.used_result` moves the progression date and PFS to the
call used; this module makes the plots' best overall response and best change follow the
same call. The counted timepoints (R-BOR-CUT) end at the overriding call's timepoint, which
counts as PD; a PD the engine read before it (or anywhere, when the override says there is
no progression) counts as NE, the adjudicator having ruled it is no progression and the
reads giving no other response for it. The best overall response is then chosen from those
by the engine's own rules (R-BOR-1, R-BOR-SDMIN, R-BOR-CONF by the trial's settings).
Under iRECIST (responses the RECIST 1.1 rules do not know) the engine's best overall
response is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

RECIST_RESPONSES = ("CR", "PR", "SD", "NON-CR/NON-PD", "PD", "NE")


def used_bor(case: dict[str, Any], result: dict[str, Any], cut_at: str | None) -> str:
    """The best overall response with the progression at ``cut_at`` (``None``: no
    progression) in place of the engine's (R-BOR-USED)."""
    from recist.best_response import (
        Assessed,
        best_overall_response_confirmed,
        best_overall_response_unconfirmed,
        counted_timepoints,
    )
    from recist.jsonio import parse_case
    from recist.response import Response

    followups = result["timepoints"][1:]
    if any(tp.get("overall_response") not in RECIST_RESPONSES for tp in followups):
        return str(result["best_overall_response"])
    sequence = []
    for tp in followups:
        response = Response.PD if tp["id"] == cut_at else Response(tp["overall_response"])
        if response is Response.PD and tp["id"] != cut_at:
            response = Response.NE  # a PD the adjudicator ruled out (R-BOR-USED)
        sequence.append(Assessed(tp["id"], date.fromisoformat(tp["date"]), response))
        if tp["id"] == cut_at:
            break
    parsed = parse_case(case)
    settings = parsed.settings
    counted, _notes = counted_timepoints(sequence, settings, parsed.new_therapy_on)
    if settings.confirmation:
        best = best_overall_response_confirmed(
            counted, parsed.origin, settings, has_targets=bool(parsed.target_lesions)
        )
    else:
        best = best_overall_response_unconfirmed(counted, parsed.origin, settings)
    return str(best.response.value)


def analysed(case: dict[str, Any], engine: dict[str, Any], used: dict[str, Any]) -> dict[str, Any]:
    """``used`` (:func:`web.services.progression.used_result` of ``engine``) with the best
    overall response of the call used, and an ``override`` entry: where the analysis
    stops (``cut_at``) and the engine's own best overall response and best change."""
    from web.services.figures import best_change

    cut_at = used["progression"]["timepoint"] if used.get("progression") else None
    return {
        **used,
        "best_overall_response": used_bor(case, engine, cut_at),
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
