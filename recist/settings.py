"""Protocol settings: every choice RECIST 1.1 leaves to the protocol, with our defaults.

Each field names the rule it tunes (``docs/rules.md``). Settings are stored with a
trial, shown in the UI and written into every exported result (see :meth:`to_dict`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from recist.errors import CaseInputError


class ProgressionDateRule(StrEnum):
    """Which scan date dates a progression when a timepoint's scans differ (§8)."""

    EARLIEST = "earliest"  # the earliest scan date that shows the progression (default)
    LATEST = "latest"  # the latest scan date of the timepoint
    TIMEPOINT = "timepoint"  # the timepoint's own date, whatever the scans say


class Criteria(StrEnum):
    """The response criteria a protocol uses (``docs/rules.md`` §10)."""

    RECIST_1_1 = "recist1.1"  # RECIST 1.1 (default)
    IRECIST = "irecist"  # iRECIST for immunotherapy (I-UPD, I-CPD…), RECIST 1.1 beside it


# R-PLAUS-SETTINGS: no protocol window is longer than ten years, and no size threshold
# larger than the largest plausible lesion (recist.lesions.MAX_SIZE_MM).
MAX_DAYS = 3650
MAX_SETTING_MM = 1000


@dataclass(frozen=True, slots=True)
class Settings:
    """The protocol settings of one trial.

    Attributes
    ----------
    confirmation
        R-BOR-CONF: CR/PR need confirmation for the best overall response. Off by default
        (randomised trials with a PFS endpoint).
    confirmation_min_days
        R-BOR-CONF: least days between a response and the assessment that confirms it.
    confirmation_max_ne_between
        R-BOR-CONF: how many NE timepoints may sit between a response and its confirmation.
    sd_min_days
        R-BOR-SDMIN: least days from the origin for SD or NON-CR/NON-PD to count.
    visit_interval_days
        §8: the protocol's assessment interval; PD or death more than
        ``MISSED_VISITS`` × this after the last adequate assessment is censored there.
        ``None`` turns the missed-visit rule off.
    pr_hold
        R-TGT-HOLD: once PR is reached (and confirmed, where confirmation is on) later
        timepoints stay PR while PD is not met.
    strict
        R-MEAS/R-SEL: refuse a baseline that breaks a rule instead of reporting findings.
    cut_at_new_therapy
        R-BOR-CUT / §8: timepoints after the start of a new anticancer therapy do not count
        for the best overall response, and PFS is censored before it.
    previously_treated_targets
        R-MEAS-4: accept target lesions treated locally before baseline (the protocol
        documents that they progressed after that therapy). Off: such a target is a
        finding.
    progression_date
        §8: how a progression is dated when a timepoint's scans have different dates.
    reappearance_min_mm
        R-REAPPEAR: the size at which a non-nodal target counts as reappeared after an
        overall CR (nodes: short axis ≥ 10 mm). Default 5 mm, the R-SMALL value of a lesion
        that is seen at all; a smaller residue is measured and the sum rules decide, and the
        CR → PR sequence is flagged as a data query (table 3 footnote: the CR was likely a
        PR). 0 makes any measurable residue PD.
    baseline_window_days
        R-PLAUS-BLWINDOW: a baseline scan more than this many days before randomisation is
        a finding (a deviation the reader explains), not a refusal. Default 60.
    criteria
        ``recist1.1`` (default) or ``irecist``: iRECIST's timepoint responses (iCR … iUPD,
        iCPD), with the RECIST 1.1 result of the same case beside them (§10).
    irecist_confirm_min_days, irecist_confirm_max_days
        I-CPD-WINDOW: an iUPD is confirmed (iCPD) by an assessment at least the minimum
        number of days after the first iUPD (default 28, four weeks) and at most the
        maximum after the latest iUPD (default 56, eight weeks). The minimum may not exceed
        the maximum.

    Every day count is a whole number of at most :data:`MAX_DAYS` and every size finite
    and at most :data:`MAX_SETTING_MM` (R-PLAUS-SETTINGS), so a stored protocol always
    prints as valid JSON.
    """

    confirmation: bool = False
    confirmation_min_days: int = 28
    confirmation_max_ne_between: int = 1
    sd_min_days: int = 42
    visit_interval_days: int | None = None
    pr_hold: bool = True
    strict: bool = False
    cut_at_new_therapy: bool = True
    previously_treated_targets: bool = False
    progression_date: ProgressionDateRule = ProgressionDateRule.EARLIEST
    reappearance_min_mm: float = 5.0
    baseline_window_days: int = 60
    criteria: Criteria = Criteria.RECIST_1_1
    irecist_confirm_min_days: int = 28
    irecist_confirm_max_days: int = 56

    def __post_init__(self) -> None:
        for name in (
            "confirmation_min_days",
            "confirmation_max_ne_between",
            "sd_min_days",
            "baseline_window_days",
            "irecist_confirm_min_days",
            "irecist_confirm_max_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
                raise CaseInputError(
                    f"{value!r} is not a whole number of days from 0 to {MAX_DAYS}",
                    field=f"settings.{name}",
                    rule="R-PLAUS-SETTINGS",
                )
        reappear = self.reappearance_min_mm
        if (
            isinstance(reappear, bool)
            or not isinstance(reappear, int | float)
            or not math.isfinite(reappear)
            or not 0 <= reappear <= MAX_SETTING_MM
        ):
            raise CaseInputError(
                f"{reappear!r} is not a size from 0 to {MAX_SETTING_MM} mm",
                field="settings.reappearance_min_mm",
                rule="R-PLAUS-SETTINGS",
            )
        interval = self.visit_interval_days
        if interval is not None and (
            isinstance(interval, bool)
            or not isinstance(interval, int)
            or not 0 < interval <= MAX_DAYS
        ):
            raise CaseInputError(
                f"{interval!r} is not a whole number of days from 1 to {MAX_DAYS}",
                field="settings.visit_interval_days",
                rule="R-PLAUS-SETTINGS",
            )
        if not isinstance(self.progression_date, ProgressionDateRule):
            try:
                rule = ProgressionDateRule(self.progression_date)
            except ValueError:
                allowed = ", ".join(r.value for r in ProgressionDateRule)
                raise CaseInputError(
                    f"{self.progression_date!r} is not one of {allowed}",
                    field="settings.progression_date",
                ) from None
            object.__setattr__(self, "progression_date", rule)
        if not isinstance(self.criteria, Criteria):
            try:
                criteria = Criteria(self.criteria)
            except ValueError:
                allowed = ", ".join(c.value for c in Criteria)
                raise CaseInputError(
                    f"{self.criteria!r} is not one of {allowed}", field="settings.criteria"
                ) from None
            object.__setattr__(self, "criteria", criteria)
        if self.irecist_confirm_min_days > self.irecist_confirm_max_days:
            raise CaseInputError(
                f"the iRECIST confirmation window opens {self.irecist_confirm_min_days} days "
                f"after iUPD but closes at {self.irecist_confirm_max_days}; the minimum may "
                "not exceed the maximum (I-CPD-WINDOW)",
                field="settings.irecist_confirm_max_days",
                rule="R-PLAUS-SETTINGS",
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Settings:
        """Build settings from a mapping, refusing unknown keys by name."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise CaseInputError(
                    f"unknown setting {key!r}; known settings: {', '.join(sorted(known))}",
                    field=f"settings.{key}",
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (written into every exported result)."""
        out = asdict(self)
        out["progression_date"] = self.progression_date.value
        out["criteria"] = self.criteria.value
        return out


# §8: PD or death more than this many visit intervals after the last adequate assessment
# is censored at that assessment (FDA 2018 censoring table).
MISSED_VISITS = 2

DEFAULT_SETTINGS = Settings()
