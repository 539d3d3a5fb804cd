"""The trial page's plots: engine results and endpoint analyses → :mod:`web.services.figures`.

Every plot draws, per subject, the read and the progression call that analyses use, and
says which (:data:`SOURCES`):

* ``central``: in a trial with independent central review, the accepted central read
  (read 1 of concordant reads, or the read the adjudicator accepted; :mod:`web.services.central`),
  with the subject's arm, randomisation and death dates;
* ``override``: the site read with an adjudicator's override of its current progression
  call (:func:`web.services.progression.used_call`): progression moved to another timepoint, or
  none; PFS is derived again from it by the engine's rule (§8);
* ``engine``: the site read with the engine's stored call.

The Kaplan–Meier plots draw PFS and OS by arm as derived by the endpoints package
(``endpoints.batch.analyse``, one read per subject) from those reads, so that the page, the
points CSV and the endpoint exports of the same reads never disagree. A subject without an
arm is in no arm's curve: it is left out of them and counted in the plot's note.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from web.errors import NotFound
from web.models import Trial
from web.services.cases import build_case
from web.services.common import list_subjects

# The y-axis of each Kaplan–Meier plot: the endpoint it estimates.
KM_YLABELS = {
    "km-pfs": "Progression-free survival probability",
    "km-os": "Overall survival probability",
}

PLOTS = {
    "waterfall": "Best change in target sum",
    "spider": "Change in target sum over time",
    "swimmer": "Time on study",
    "km-pfs": "Progression-free survival by arm",
    "km-os": "Overall survival by arm",
}

# Where the progression call a plot uses for a subject comes from (the points' ``source``).
SOURCES = {
    "engine": "engine's call",
    "override": "adjudicator's override",
    "central": "accepted central read",
}


@dataclass(frozen=True)
class Used:
    """One subject as analyses use it: the read (case and result) and where it came from."""

    assessed: Any  # cdisc_io.cases.Assessed
    source: str


def used_reads(session: Session, trial: Trial) -> list[Used]:
    """Every subject with a read, as analyses use it (see the module docstring)."""
    from cdisc_io.cases import Assessed
    from web.services.as_used import used_result
    from web.services.central import accepted_reads, unblinded_case
    from web.services.progression import overrides, with_progression

    accepted = accepted_reads(session, trial) if trial.central_review else {}
    overridden = overrides(session, trial)
    out = []
    for subject in list_subjects(session, trial):
        read = accepted.get(subject.id)
        if read is not None:
            case = unblinded_case(subject, read)
            # The read was assessed blind: PFS again with the subject's death and therapy.
            central = with_progression(case, read.result_json, read.result_json["progression"])
            out.append(Used(Assessed(case=case, result=central), "central"))
            continue
        site = subject.result_json
        if not site or not site.get("timepoints"):
            continue
        case = build_case(subject)
        used = overridden.get(subject.id)
        if used is None:
            out.append(Used(Assessed(case=case, result=site), "engine"))
        else:
            out.append(Used(Assessed(case=case, result=used_result(case, site, used)), "override"))
    return out


def source_note(used: list[Used]) -> str:
    """The plot's footnote: how many subjects' calls come from each source."""
    counts = {key: sum(u.source == key for u in used) for key in SOURCES}
    parts = [f"{label} {counts[key]}" for key, label in SOURCES.items() if counts[key]]
    return "Progression call used: " + (" · ".join(parts) if parts else "no subjects")


def _km_records(used: list[Used], endpoint: str) -> list[dict[str, Any]]:
    from endpoints.batch import analyse

    sources = {u.assessed.case["subject_id"]: u.source for u in used}
    return [
        {
            "USUBJID": r["USUBJID"],
            "ARM": r["ARM"],
            "STARTDT": r["STARTDT"],
            "ADT": r["ADT"],
            "AVAL": int(r["AVAL"]),
            "CNSR": int(r["CNSR"]),
            "EVNTDESC": r["EVNTDESC"],
            "source": sources[r["USUBJID"]],
        }
        for r in analyse([u.assessed for u in used]).subjects
        if r["endpoint"] == endpoint
    ]


def trial_plot(session: Session, trial: Trial, kind: str) -> Any:
    """The plot ``kind`` (a key of :data:`PLOTS`) of a trial, as a
    :class:`web.services.figures.Plot`.

    Raises
    ------
    NotFound
        ``kind`` is not a known plot.
    """
    from endpoints.analysis import Observation
    from web.services import figures as plots

    if kind not in PLOTS:
        raise NotFound(f"there is no plot {kind!r}; known: {', '.join(PLOTS)}", field="kind")
    used = used_reads(session, trial)
    title = f"{trial.code}: {PLOTS[kind]}"
    note = source_note(used)
    results = [u.assessed.result for u in used]
    sources = {u.assessed.case["subject_id"]: u.source for u in used}
    if kind == "waterfall":
        return plots.waterfall(results, title, sources=sources, note=note)
    if kind == "spider":
        return plots.spider(results, title, sources=sources, note=note)
    if kind == "swimmer":
        return plots.swimmer(results, title, sources=sources, note=note)
    records = _km_records(used, "PFS" if kind == "km-pfs" else "OS")
    observations = [Observation(r["ARM"], r["AVAL"], 1 - r["CNSR"]) for r in records]
    return plots.kaplan_meier(
        observations, title, ylabel=KM_YLABELS[kind], records=records, note=note
    )


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
