"""The trial page's plots: engine results and endpoint analyses → :mod:`web.plots`.

Waterfall, spider and swimmer plots draw each subject's stored engine result; the
Kaplan–Meier plots draw PFS and OS by arm as derived by the endpoints package
(``endpoints.batch.analyse``, one read per subject), so the page and the endpoint exports
never disagree.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy.orm import Session

from web.models import Trial
from web.services import NotFound, build_case, list_subjects

PLOTS = {
    "waterfall": "Best change in target sum",
    "spider": "Change in target sum over time",
    "swimmer": "Time on study",
    "km-pfs": "Progression-free survival by arm",
    "km-os": "Overall survival by arm",
}


def _assessed(session: Session, trial: Trial) -> list[Any]:
    from cdisc_io.cases import Assessed

    out = []
    for subject in list_subjects(session, trial):
        result = subject.result_json
        if result and result.get("timepoints"):
            out.append(Assessed(case=build_case(subject), result=result))
    return out


def _observations(assessed: list[Any], endpoint: str) -> list[Any]:
    from endpoints.analysis import Observation
    from endpoints.batch import analyse

    rows = [r for r in analyse(assessed).subjects if r["endpoint"] == endpoint]
    return [Observation(r["ARM"], int(r["AVAL"]), 1 - int(r["CNSR"])) for r in rows]


def trial_plot(session: Session, trial: Trial, kind: str) -> Any:
    """The plot ``kind`` (a key of :data:`PLOTS`) of a trial, as a :class:`web.plots.Plot`.

    Raises
    ------
    NotFound
        ``kind`` is not a known plot.
    """
    from web import plots

    if kind not in PLOTS:
        raise NotFound(f"there is no plot {kind!r}; known: {', '.join(PLOTS)}", field="kind")
    assessed = _assessed(session, trial)
    title = f"{trial.code}: {PLOTS[kind]}"
    if kind == "waterfall":
        return plots.waterfall([a.result for a in assessed], title)
    if kind == "spider":
        return plots.spider([a.result for a in assessed], title)
    if kind == "swimmer":
        return plots.swimmer([a.result for a in assessed], title)
    endpoint = "PFS" if kind == "km-pfs" else "OS"
    return plots.kaplan_meier(_observations(assessed, endpoint), title)


def points_csv(plot: Any) -> str:
    """The data points a plot draws, as CSV (one row per point, keys as columns)."""
    out = io.StringIO()
    columns: list[str] = []
    for point in plot.points:
        columns += [k for k in point if k not in columns]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for point in plot.points:
        writer.writerow({k: "" if v is None else v for k, v in point.items()})
    return out.getvalue()
