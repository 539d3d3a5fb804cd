"""The trial page's plots: engine results and endpoint analyses → :mod:`web.services.figures`.

Every plot draws, per subject, the read and the progression call that analyses use, and
says which (:data:`SOURCES`):

* ``central``: in a trial with independent central review, the accepted central read
  (read 1 of concordant reads, or the read the adjudicator accepted; :mod:`web.services.central`),
  with the subject's arm, randomisation and death dates;
* ``override``: the site read with an adjudicator's override of its current progression
  call (:func:`web.services.progression.used_call`): progression moved to another timepoint, or
  none; PFS is derived again from it by the engine's rule (§8), and the best overall
  response and best change follow it (R-BOR-USED, :mod:`web.services.plot_used`), the
  engine's own kept beside them;
* ``engine``: the site read with the engine's stored call.

The Kaplan–Meier plots draw PFS and OS by arm as derived by the endpoints package
(``endpoints.batch.analyse``, one read per subject) from those reads, so that the page, the
points CSV and the endpoint exports of the same reads never disagree. A subject without an
arm is in no arm's curve: it is left out of them and counted in the plot's note. Overall
survival does not depend on the progression call: its note says nothing of it.

Pages draw through :func:`cached_trial_plot` and :func:`cached_subject_plot`
(:mod:`web.services.plot_cache`): a plot is drawn again only when its inputs change.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from web.errors import NotFound
from web.models import LesionRecord, Subject, Timepoint, Trial
from web.services.cases import build_case

# The y-axis of each Kaplan–Meier plot: the endpoint it estimates.
KM_YLABELS = {
    "km-pfs": "Progression-free survival probability",
    "km-os": "Overall survival probability",
}

# The plots of one subject, on the subject's page.
SUBJECT_PLOTS = {
    "spider": "Change in target sum over time",
    "sums": "Sum of target diameters",
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


def _subjects(session: Session, trial: Trial, code: str | None) -> list[Subject]:
    """The trial's subjects (or the one named ``code``) with everything a case is built
    from loaded in a few queries, not one per timepoint and lesion."""
    query = (
        select(Subject)
        .where(Subject.trial_id == trial.id)
        .options(
            selectinload(Subject.arm),
            selectinload(Subject.lesions),
            selectinload(Subject.timepoints)
            .selectinload(Timepoint.records)
            .selectinload(LesionRecord.lesion),
            selectinload(Subject.timepoints).selectinload(Timepoint.new_lesions),
        )
        .order_by(Subject.code)
    )
    if code is not None:
        query = query.where(Subject.code == code)
    return list(session.scalars(query))


def used_reads(session: Session, trial: Trial, *, code: str | None = None) -> list[Used]:
    """Every subject with a read (or only the subject ``code``), as analyses use it (see
    the module docstring)."""
    from cdisc_io.cases import Assessed
    from web.services.as_used import used_result
    from web.services.central import accepted_reads, unblinded_case
    from web.services.plot_used import analysed
    from web.services.progression import overrides, with_progression

    accepted = accepted_reads(session, trial) if trial.central_review else {}
    overridden = overrides(session, trial)
    out = []
    for subject in _subjects(session, trial, code):
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
            result = analysed(case, site, used_result(case, site, used))
            out.append(Used(Assessed(case=case, result=result), "override"))
    return out


def plot_inputs(used: list[Used]) -> list[dict[str, Any]]:
    """Everything a trial plot draws from, as JSON (the cache key's inputs)."""
    return [
        {"case": u.assessed.case, "result": u.assessed.result, "source": u.source} for u in used
    ]


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
    _known(kind, PLOTS)
    return draw_trial_plot(trial, kind, used_reads(session, trial))


def _known(kind: str, known: dict[str, str]) -> None:
    if kind not in known:
        raise NotFound(f"there is no plot {kind!r}; known: {', '.join(known)}", field="kind")


def draw_trial_plot(trial: Trial, kind: str, used: list[Used]) -> Any:
    """Draw the plot ``kind`` of ``trial`` from ``used`` (:func:`used_reads`)."""
    from endpoints.analysis import Observation
    from web.services import figures as plots
    from web.services.figures_km import kaplan_meier

    title = f"{trial.code}: {PLOTS[kind]}"
    note = source_note(used)
    results = [u.assessed.result for u in used]
    sources = {u.assessed.case["subject_id"]: u.source for u in used}
    if kind == "waterfall":
        return plots.waterfall(results, title, sources=sources, note=note)
    if kind == "spider":
        return plots.spider(results, title, sources=sources, note=note)
    if kind == "swimmer":
        arms = {u.assessed.case["subject_id"]: u.assessed.case.get("arm") for u in used}
        deaths = {u.assessed.case["subject_id"]: u.assessed.case.get("died_on") for u in used}
        return plots.swimmer(
            results, title, sources=sources, arms=arms, deaths=deaths, note=note
        )
    records = _km_records(used, "PFS" if kind == "km-pfs" else "OS")
    observations = [Observation(r["ARM"], r["AVAL"], 1 - r["CNSR"]) for r in records]
    return kaplan_meier(
        observations,
        title,
        ylabel=KM_YLABELS[kind],
        records=records,
        # Death does not depend on the progression call: the OS plot does not name it.
        note=note if kind == "km-pfs" else None,
    )


def cached_trial_plot(
    session: Session, trial: Trial, kind: str, *, role: str | None, folder: str
) -> tuple[Any, str]:
    """:func:`trial_plot` through the plot cache (:mod:`web.services.plot_cache`) under
    ``folder``, for a user of ``role``: the plot and its key."""
    from web.services.plot_cache import cached

    _known(kind, PLOTS)
    used = used_reads(session, trial)
    scope = {"trial": trial.id, "trial_code": trial.code, "role": role, "kind": kind}
    return cached(folder, scope, plot_inputs(used), lambda: draw_trial_plot(trial, kind, used))


def subject_used(session: Session, trial: Trial, subject_code: str) -> Used | None:
    """The subject's read as analyses use it (:func:`used_reads`), ``None`` without one."""
    return next(iter(used_reads(session, trial, code=subject_code)), None)


def draw_subject_plot(kind: str, used: Used) -> Any:
    """One subject's plot ``kind`` (a key of :data:`SUBJECT_PLOTS`) from its read."""
    from web.services import figures as plots
    from web.services.figures_subject import sums

    result = used.assessed.result
    code = used.assessed.case["subject_id"]
    title = f"{code}: {SUBJECT_PLOTS[kind]}"
    note = source_note([used])
    sources = {code: used.source}
    if kind == "spider":
        return plots.spider([result], title, sources=sources, note=note)
    return sums(result, title, note=note)


def cached_subject_plot(
    session: Session, trial: Trial, subject_code: str, kind: str, *, role: str | None, folder: str
) -> tuple[Any, str]:
    """A subject's plot through the plot cache, for a user of ``role``.

    Raises
    ------
    NotFound
        ``kind`` is not a known plot, or the subject has no assessed follow-up yet.
    """
    from web.services.plot_cache import cached

    _known(kind, SUBJECT_PLOTS)
    used = subject_used(session, trial, subject_code)
    if used is None or len(used.assessed.result["timepoints"]) < 2:
        raise NotFound(
            f"subject {subject_code} has no assessed follow-up to plot yet", field="subject"
        )
    scope = {
        "trial": trial.id,
        "trial_code": trial.code,
        "role": role,
        "kind": f"subject-{used.assessed.case['subject_id']}-{kind}",
    }
    return cached(folder, scope, plot_inputs([used]), lambda: draw_subject_plot(kind, used))


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
