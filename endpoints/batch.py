"""A batch of assessed cases → the trial's endpoint analyses.

One read per subject enters the analyses (``reader = "auto"``: the accepted read, else the
investigator's, else the only one), so that no subject counts twice. Per subject:
PFS (primary, FDA-style censoring, local recurrence included), PFS EMA-style sensitivity,
OS and, for responders, DOR; per treated lesion: time to local failure with death as a
competing risk (R-LOCAL).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from endpoints.analysis import (
    DEFAULT_TIMES,
    NO_ARM,
    Observation,
    cumulative_incidence,
    kaplan_meier,
)
from endpoints.derive import (
    TimeToEvent,
    duration_of_response,
    local_failure_records,
    overall_survival,
    pfs,
    pfs_ema,
)

if TYPE_CHECKING:
    from cdisc_io.cases import Assessed

INVESTIGATOR = "INVESTIGATOR"
ENDPOINTS = {
    "PFS": "Progression-free survival (primary, FDA 2018 censoring; §8, §9)",
    "PFS_EMA": "Progression-free survival, EMA-style sensitivity (events at observed dates, "
    "no missed-visit or new-therapy censoring)",
    "OS": "Overall survival",
    "DOR": "Duration of response (responders: first CR/PR to progression or death)",
}


@dataclass
class Analysis:
    """What :func:`analyse` returns: the summary and the records behind it."""

    summary: dict[str, Any]
    subjects: list[dict[str, Any]] = field(default_factory=list)
    lesions: list[dict[str, Any]] = field(default_factory=list)


def pick_reads(assessed: list[Assessed], reader: str = "auto") -> list[Assessed]:
    """One read per subject: ``auto`` (accepted, else investigator, else first) or a name."""
    by_subject: dict[str, list[Assessed]] = defaultdict(list)
    for item in assessed:
        by_subject[item.case["subject_id"]].append(item)
    chosen: list[Assessed] = []
    for reads in by_subject.values():
        if reader != "auto":
            chosen += [r for r in reads if (r.case.get("reader") or INVESTIGATOR) == reader]
            continue
        accepted = [r for r in reads if r.case.get("accepted")]
        investigator = [r for r in reads if (r.case.get("reader") or INVESTIGATOR) == INVESTIGATOR]
        chosen.append((accepted or investigator or reads)[0])
    return chosen


def _subject_row(item: Assessed, name: str, record: TimeToEvent) -> dict[str, Any]:
    return {
        "USUBJID": item.case["subject_id"],
        "reader": item.case.get("reader") or INVESTIGATOR,
        "ARM": item.case.get("arm") or NO_ARM,
        "endpoint": name,
        "STARTDT": record.start.isoformat(),
        "ADT": record.end.isoformat(),
        "AVAL": record.days,
        "CNSR": record.cnsr,
        "reason": record.reason,
        "EVNTDESC": record.description,
    }


def analyse(
    assessed: list[Assessed], *, reader: str = "auto", times: tuple[int, ...] = DEFAULT_TIMES
) -> Analysis:
    """Derive every endpoint per subject and analyse each by arm with lifelines."""
    reads = pick_reads(assessed, reader)
    out = Analysis(summary={})
    observations: dict[str, list[Observation]] = defaultdict(list)
    lesion_observations: list[Observation] = []
    for item in reads:
        arm = item.case.get("arm") or NO_ARM
        records = {
            "PFS": pfs(item.case, item.result),
            "PFS_EMA": pfs_ema(item.case),
            "OS": overall_survival(item.case),
        }
        dor = duration_of_response(item.case, item.result)
        if dor is not None:
            records["DOR"] = dor
        for name, record in records.items():
            observations[name].append(Observation(arm, record.days, int(record.event)))
            out.subjects.append(_subject_row(item, name, record))
        for failure in local_failure_records(item.case):
            lesion_observations.append(Observation(arm, failure.days, failure.event_code))
            out.lesions.append({
                "USUBJID": item.case["subject_id"],
                "ARM": arm,
                "lesion": failure.lesion,
                "treatment": failure.treatment or "",
                "treated_on": failure.treated_on.isoformat(),
                "outcome": failure.outcome.value,
                "date": failure.date.isoformat(),
                "days": failure.days,
                "event_code": failure.event_code,
                "timepoint": failure.timepoint or "",
                "reason": failure.reason,
            })  # fmt: skip
    settings: list[dict[str, Any]] = []
    for item in reads:
        if item.result.get("settings") not in settings:
            settings.append(item.result.get("settings", {}))
    out.summary = {
        "subjects": len(reads),
        "reader": reader,
        "settings": settings,
        "endpoints": {
            name: {"title": title, **kaplan_meier(observations[name], times)}
            for name, title in ENDPOINTS.items()
            if observations[name]
        },
        "local_failure": {
            "title": "Cumulative incidence of local failure per treated lesion (R-LOCAL), "
            "death as a competing risk (Aalen–Johansen)",
            "lesions": len(lesion_observations),
            **cumulative_incidence(lesion_observations, times),
        }
        if lesion_observations
        else None,
    }
    return out
