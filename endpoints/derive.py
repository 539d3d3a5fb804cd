"""Subject-level time-to-event records from cases and engine results.

Every record is a :class:`TimeToEvent` (start, end, event or censored, why), from which
``AVAL = end − start + 1`` days, as in ADaM ADTTE and in the engine's PFS (§8):

- **PFS** (primary, FDA 2018 censoring): the engine's own ``pfs`` result; with treated
  lesions (§9, STEREO-SEIN) a local failure (R-LOCAL) before it is the event, with reason
  ``LOCAL_RECURRENCE``.
- **PFS, EMA-style sensitivity** (EMA anticancer guideline, appendix on PFS): the engine
  run again with the missed-visit and new-therapy censoring off, so that progression and
  death count at their observed dates.
- **OS**: death (``died_on``) is the event; otherwise censored on ``last_known_alive_on``
  (ADSL LSTALVDT), else on the last assessment, and never before the origin.
- **DOR** (ADaM PARAMCD ``RSD``, as pharmaverse): from the first CR or PR (confirmation not
  required, as pharmaverse's ADRS RSP) to the PFS event or censoring, for responders only.
- **Local failure** per treated lesion: :mod:`recist.local_failure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

RESPONSES = ("CR", "PR")

# EVNTDESC / CNSDTDSC texts, as pharmaverse ADTTE words them where it has the case.
PFS_DESCRIPTIONS = {
    "PD_TARGET": "Disease Progression",
    "PD_NONTARGET": "Disease Progression",
    "PD_NEW_LESION": "Disease Progression",
    "LOCAL_RECURRENCE": "Local Recurrence",
    "DEATH": "Death",
    "CENSORED_LAST_ASSESSMENT": "Last Tumor Assessment",
    "CENSORED_NEW_THERAPY": "Last Tumor Assessment Before New Anti-Cancer Therapy",
    "CENSORED_MISSED_VISITS": "Last Tumor Assessment Before Missed Assessments",
    "CENSORED_NO_ASSESSMENT": "No Post-Baseline Assessment: Randomization",
}


@dataclass(frozen=True, slots=True)
class TimeToEvent:
    """One subject's (or lesion's) time to an event.

    ``reason`` is the engine's reason code (``PD_TARGET``, ``DEATH``,
    ``CENSORED_LAST_ASSESSMENT``…); ``description`` the ADaM EVNTDESC text; ``source`` the
    ADaM SRCDOM/SRCVAR of the end date.
    """

    param: str
    start: date
    end: date
    event: bool
    reason: str
    description: str
    source: tuple[str, str]

    @property
    def days(self) -> int:
        """``end − start + 1`` (ADaM AVAL for time-to-event in days)."""
        return (self.end - self.start).days + 1

    @property
    def cnsr(self) -> int:
        """ADaM CNSR: 0 event, 1 censored."""
        return 0 if self.event else 1


def origin(case: dict[str, Any]) -> date:
    """Randomisation date, else the baseline date (§8)."""
    text = case.get("randomized_on") or case["timepoints"][0]["date"]
    return date.fromisoformat(text)


def _pfs_record(param: str, case: dict[str, Any], pfs: dict[str, Any]) -> TimeToEvent:
    reason = pfs["reason"]
    source = ("ADSL", "DTHDT") if reason == "DEATH" else ("ADRS", "ADT")
    return TimeToEvent(
        param, origin(case), date.fromisoformat(pfs["date"]), bool(pfs["event"]), reason,
        PFS_DESCRIPTIONS.get(reason, reason), source,
    )  # fmt: skip


def _with_local_recurrence(record: TimeToEvent, local: date | None) -> TimeToEvent:
    """§9: a local recurrence (R-LOCAL) is a PFS event when it comes first.

    It replaces an event dated later, and a censoring, unless that censoring is by rule
    (new therapy, missed visits: §8) and the recurrence comes after it.
    """
    if local is None:
        return record
    censored_by_rule = record.reason in ("CENSORED_NEW_THERAPY", "CENSORED_MISSED_VISITS")
    if record.event and local >= record.end:
        return record
    if censored_by_rule and local > record.end:
        return record
    return TimeToEvent(
        record.param, record.start, local, True, "LOCAL_RECURRENCE",
        PFS_DESCRIPTIONS["LOCAL_RECURRENCE"], ("ADRS", "ADT"),
    )  # fmt: skip


def pfs(case: dict[str, Any], result: dict[str, Any]) -> TimeToEvent:
    """Primary PFS: the engine's (§8), with a local recurrence first as the event (§9)."""
    record = _pfs_record("PFS", case, result["pfs"])
    return _with_local_recurrence(record, first_local_failure(case))


def pfs_ema(case: dict[str, Any]) -> TimeToEvent:
    """EMA-style sensitivity PFS: no missed-visit and no new-therapy censoring."""
    from recist.jsonio import assess_json

    variant = dict(case)
    variant["settings"] = dict(case.get("settings") or {}) | {
        "visit_interval_days": None,
        "cut_at_new_therapy": False,
    }
    record = _pfs_record("PFSEMA", variant, assess_json(variant)["pfs"])
    return _with_local_recurrence(record, first_local_failure(case))


def overall_survival(case: dict[str, Any]) -> TimeToEvent:
    """OS from the origin: death, else censored when last known alive, never before it.

    As admiralonco's ADTTE (pinned by the pharmaverse set): censored on
    ``last_known_alive_on`` (ADSL LSTALVDT) even when a tumour assessment comes later
    (01-701-1115), and on the origin (RANDDT, "Randomization", AVAL 1) when LSTALVDT is
    before it (01-705-1018), so that a survival time is never negative. Without
    LSTALVDT, censored on the last assessment, and never before the origin. The importer
    reports both date orders as ``date_order`` notices.
    """
    start = origin(case)
    if case.get("died_on"):
        return TimeToEvent(
            "OS", start, date.fromisoformat(case["died_on"]), True, "DEATH", "Death",
            ("ADSL", "DTHDT"),
        )  # fmt: skip
    if case.get("last_known_alive_on"):
        end, source = date.fromisoformat(case["last_known_alive_on"]), ("ADSL", "LSTALVDT")
    else:
        end, source = date.fromisoformat(case["timepoints"][-1]["date"]), ("ADRS", "ADT")
    if end < start:
        end = start
        source = ("ADSL", "RANDDT") if case.get("randomized_on") else ("ADRS", "ADT")
    description = "Randomization" if source == ("ADSL", "RANDDT") else "Alive"
    return TimeToEvent("OS", start, end, False, "ALIVE", description, source)


def first_response(result: dict[str, Any]) -> tuple[str, date] | None:
    """The first timepoint with overall CR or PR, up to the first PD (R-BOR-CUT)."""
    for tp in result["timepoints"][1:]:
        response = tp.get("overall_response")
        if response == "PD":
            return None
        if response in RESPONSES:
            return tp["id"], date.fromisoformat(tp["date"])
    return None


def duration_of_response(case: dict[str, Any], result: dict[str, Any]) -> TimeToEvent | None:
    """DOR (ADaM ``RSD``) for a responder: first CR/PR to the PFS event or censoring."""
    response = first_response(result)
    if response is None:
        return None
    record = pfs(case, result)
    end = max(record.end, response[1])
    return TimeToEvent(
        "RSD", response[1], end, record.event, record.reason, record.description, record.source
    )


def local_failure_records(case: dict[str, Any]) -> list[Any]:
    """:class:`recist.local_failure.LocalFailure` for every treated lesion of the case."""
    from recist.jsonio import parse_case
    from recist.local_failure import local_failures

    if not any(le.get("treated_on") for le in case.get("lesions", [])):
        return []
    return list(local_failures(parse_case(case)))


def first_local_failure(case: dict[str, Any]) -> date | None:
    """The date of the case's earliest local failure (R-LOCAL), if any."""
    from recist.local_failure import LocalOutcome

    dates = [f.date for f in local_failure_records(case) if f.outcome is LocalOutcome.LOCAL_FAILURE]
    return min(dates, default=None)
