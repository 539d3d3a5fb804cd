"""Survival statistics by lifelines: Kaplan–Meier, log-rank, Cox, Aalen–Johansen.

Nothing here is a hand-written estimator: the numbers are lifelines' (Davidson-Pilon,
lifelines, JOSS 2019). This module only arranges subject-level records by arm and turns
lifelines' results into plain JSON-ready values.

- Kaplan–Meier per arm: median with its 95 % CI (Brookmeyer–Crowley-type interval from
  the pointwise CI, ``lifelines.utils.median_survival_times``), survival and number at risk
  at given times.
- Log-rank test across arms (``multivariate_logrank_test``; with two arms it is the usual
  two-sample test).
- Cox proportional hazards: hazard ratio of each arm against the reference arm, 95 % CI,
  Wald p-value (``CoxPHFitter``).
- Cumulative incidence of local failure with death as a competing risk
  (``AalenJohansenFitter``), not 1 − Kaplan–Meier. lifelines breaks tied times by a tiny
  random jitter; the seed is fixed so that results repeat.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMES = (0, 91, 182, 365, 547, 730, 1095)  # days: 0, 3, 6, 12, 18, 24, 36 months
NO_ARM = "(no arm)"


@dataclass(frozen=True, slots=True)
class Observation:
    """One subject's (or lesion's) time and outcome for one endpoint.

    ``event`` is 0 censored, 1 the event of interest, 2 a competing event (local failure
    analysis only).
    """

    arm: str
    days: int
    event: int


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def kaplan_meier(
    observations: Sequence[Observation], times: Sequence[int] = DEFAULT_TIMES
) -> dict[str, Any]:
    """Kaplan–Meier per arm, log-rank test and Cox hazard ratios.

    Returns
    -------
    dict
        ``arms`` (per arm: n, events, median_days and its 95 % CI — ``None`` when not
        reached —, survival and number at risk at ``times``), ``logrank`` and ``cox``
        (``None`` with a ``note`` when fewer than two arms or no event).
    """
    import numpy as np
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    arms = sorted({o.arm for o in observations})
    out: dict[str, Any] = {"arms": {}, "times": list(times)}
    for arm in arms:
        rows = [o for o in observations if o.arm == arm]
        durations = np.array([o.days for o in rows], dtype=float)
        events = np.array([o.event == 1 for o in rows])
        kmf = KaplanMeierFitter(alpha=0.05).fit(durations, events, label=arm)
        ci = median_survival_times(kmf.confidence_interval_)
        lower, upper = (float(v) for v in ci.iloc[0, :2])
        survival = kmf.survival_function_at_times(list(times)).to_numpy()
        out["arms"][arm] = {
            "n": len(rows),
            "events": int(events.sum()),
            "median_days": _finite(float(kmf.median_survival_time_)),
            "median_ci95_days": [_finite(lower), _finite(upper)],
            "survival": [_finite(float(s)) for s in survival],
            # Number at risk: subjects still followed (time ≥ t), by its definition.
            "at_risk": [int((durations >= t).sum()) for t in times],
        }
    out["logrank"] = logrank(observations)
    out["cox"] = cox(observations)
    return out


def logrank(observations: Sequence[Observation]) -> dict[str, Any]:
    """Log-rank test of equal survival across arms."""
    from lifelines.statistics import multivariate_logrank_test

    arms = {o.arm for o in observations}
    if len(arms) < 2:
        return {"note": "one arm only: no comparison"}
    if not any(o.event == 1 for o in observations):
        return {"note": "no event: no comparison"}
    result = multivariate_logrank_test(
        [o.days for o in observations],
        [o.arm for o in observations],
        [o.event == 1 for o in observations],
    )
    return {
        "statistic": _finite(float(result.test_statistic)),
        "df": int(result.degrees_of_freedom),
        "p_value": _finite(float(result.p_value)),
    }


def cox(observations: Sequence[Observation], reference: str | None = None) -> dict[str, Any]:
    """Cox hazard ratio of each arm against ``reference`` (default: the first arm by name)."""
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    arms = sorted({o.arm for o in observations})
    if len(arms) < 2:
        return {"note": "one arm only: no hazard ratio"}
    if not any(o.event == 1 for o in observations):
        return {"note": "no event: no hazard ratio"}
    reference = reference if reference in arms else arms[0]
    others = [a for a in arms if a != reference]
    frame = pd.DataFrame(
        {"T": [o.days for o in observations], "E": [int(o.event == 1) for o in observations]}
    )
    for i, arm in enumerate(others):
        frame[f"arm{i}"] = [int(o.arm == arm) for o in observations]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lifelines' convergence advice goes to the note
            fitted = CoxPHFitter().fit(frame, duration_col="T", event_col="E")
    except (ConvergenceError, ValueError, ZeroDivisionError) as error:
        return {"note": f"Cox model did not converge: {str(error).splitlines()[0]}"}
    summary = fitted.summary
    ratios = {}
    for i, arm in enumerate(others):
        row = summary.loc[f"arm{i}"]
        ratios[arm] = {
            "hazard_ratio": _finite(float(row["exp(coef)"])),
            "ci95": [
                _finite(float(row["exp(coef) lower 95%"])),
                _finite(float(row["exp(coef) upper 95%"])),
            ],
            "p_value": _finite(float(row["p"])),
        }
    return {"reference": reference, "versus": ratios}


def cumulative_incidence(
    observations: Sequence[Observation], times: Sequence[int] = DEFAULT_TIMES
) -> dict[str, Any]:
    """Aalen–Johansen cumulative incidence of the event (code 1) with competing code 2.

    Returns per arm (and ``all``): n, events, competing events, and the cumulative
    incidence with its 95 % CI at ``times``.
    """
    import numpy as np
    from lifelines import AalenJohansenFitter

    groups: dict[str, list[Observation]] = {"all": list(observations)}
    for o in observations:
        groups.setdefault(o.arm, []).append(o)
    out: dict[str, Any] = {"times": list(times), "groups": {}}
    for name, rows in groups.items():
        entry: dict[str, Any] = {
            "n": len(rows),
            "events": sum(o.event == 1 for o in rows),
            "competing_events": sum(o.event == 2 for o in rows),
        }
        if entry["events"] == 0:
            entry["incidence"] = [0.0 for _ in times]
            entry["ci95"] = [[None, None] for _ in times]
            out["groups"][name] = entry
            continue
        fitter = AalenJohansenFitter(calculate_variance=True, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tied-times notice: ties are jittered
            fitter.fit(
                np.array([o.days for o in rows], dtype=float),
                np.array([o.event for o in rows]),
                event_of_interest=1,
            )
        incidence = fitter.predict(list(times))
        bounds = fitter.confidence_interval_.sort_index()
        entry["incidence"] = [_finite(float(v)) for v in incidence.to_numpy()]
        ci: list[list[float | None]] = []
        for t in times:
            upto = bounds[bounds.index <= t]
            if upto.empty:
                ci.append([0.0, 0.0])
                continue
            # lifelines labels the two bounds inconsistently: take them by size.
            a, b = (float(v) for v in upto.iloc[-1])
            ci.append([_finite(min(a, b)), _finite(max(a, b))])
        entry["ci95"] = ci
        out["groups"][name] = entry
    return out
