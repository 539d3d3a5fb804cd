"""The engine result as analyses use it once an adjudicator has overridden a progression call.

An override (:func:`web.services.progression.used_call`) says where progression is for
analysis: at another timepoint and date, or nowhere. Everything analyses read from the
result then follows that call, so that the grid, the subject list, the waterfall and the
ADaM-shaped summaries tell one story:

* progression and PFS: the override's, PFS derived again by the engine's rule (§8);
* timepoint responses: the timepoint the override names is PD; an engine PD *before* it (or
  any engine PD, when the override says there is none) is overruled and counts as NE,
  because the adjudicator said what that read is not, not what it is (for PFS it stays an
  adequate assessment: it was read, §8); every other
  timepoint keeps the engine's response. A changed timepoint keeps the engine's answer in
  ``engine_overall_response``;
* the best overall response: derived again by the engine's own rules (R-BOR-1, R-BOR-CONF,
  R-BOR-SDMIN, R-BOR-CUT) from those responses, the engine's kept in
  ``engine_best_overall_response`` when it differs.

The engine's result itself is never changed: it stays stored and shown beside this one.
Under iRECIST only progression and PFS follow the override (the iUPD/iCPD sequence is the
engine's to derive; an adjudicator's call on it is recorded, not re-derived here).
"""

from __future__ import annotations

from datetime import date
from typing import Any

OVERRULED = "NE"  # an overruled PD, for analysis (see the module's docstring)


def used_result(
    case: dict[str, Any], result: dict[str, Any], used: dict[str, Any]
) -> dict[str, Any]:
    """The engine result as analyses use it, given ``used_call``'s answer: unchanged for the
    engine's call; for an override, progression at the override's timepoint and date
    (keeping the rule the engine named) or none, PFS, responses and BOR following it."""
    from web.services.progression import with_progression

    if used["source"] != "override":
        return result
    progression = None
    if used["date"]:
        progression = {
            "timepoint": used["timepoint"],
            "date": used["date"],
            "reason": result["progression"]["reason"],
            "back_dated": False,
        }
    derived = with_progression(case, result, progression)
    if result.get("criteria") == "irecist":
        return derived
    return responses_as_used(case, derived, used["timepoint"] if used["date"] else None)


def responses_as_used(
    case: dict[str, Any], result: dict[str, Any], progression_at: str | None
) -> dict[str, Any]:
    """``result`` with its follow-up responses and best overall response as the call
    "progression at ``progression_at``" (or none) makes them."""
    from recist.assessment import best_responses
    from recist.best_response import Assessed
    from recist.jsonio import parse_case
    from recist.response import Response

    timepoints = [result["timepoints"][0]]
    followups: list[Assessed] = []
    reached = False
    for tp in result["timepoints"][1:]:
        engine = tp.get("overall_response")
        response = engine
        if tp["id"] == progression_at:
            response, reached = "PD", True
        elif engine == "PD" and not reached:
            response = OVERRULED
        if response != engine:
            tp = {**tp, "overall_response": response, "engine_overall_response": engine}
        timepoints.append(tp)
        if response:
            followups.append(Assessed(tp["id"], date.fromisoformat(tp["date"]), Response(response)))
    parsed = parse_case(case)
    confirmed, unconfirmed = best_responses(parsed, followups)
    best = confirmed if parsed.settings.confirmation else unconfirmed
    out = {**result, "timepoints": timepoints}
    if best.response.value != result["best_overall_response"]:
        out["engine_best_overall_response"] = result["best_overall_response"]
        out["best_overall_response"] = best.response.value
        out["best_overall_response_detail"] = {
            "response": best.response.value,
            "timepoint": best.timepoint,
            "reasons": [*best.reasons, "as used: the adjudicator's progression call"],
        }
        out["best_overall_response_confirmed"] = confirmed.response.value
        out["best_overall_response_unconfirmed"] = unconfirmed.response.value
    return out
