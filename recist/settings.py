"""Protocol settings: every choice RECIST 1.1 leaves to the protocol, with our defaults.

Each field names the rule it tunes (``docs/rules.md``). Settings are stored with a
trial, shown in the UI and written into every exported result (see :meth:`to_dict`).

Some settings are a statistician's conventions rather than the protocol's: where RECIST
1.1 and the FDA's PFS guidance leave room, statistical analysis plans differ, and
admiralonco's arguments name the usual choices. The defaults stay RECIST 1.1 / FDA 2018;
a named profile (``settings_profile``) sets a tool's conventions at once
(:data:`PROFILES`), and :func:`explain` says where each value came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
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


class CensorAt(StrEnum):
    """§8: which assessments PFS is censored at ("the last assessment")."""

    ADEQUATE = "adequate"  # the last adequate (not NE) assessment, FDA 2018 (default)
    ANY = "any"  # the last assessment whatever its response, NE included (admiralonco)


class UnconfirmedBeforePd(StrEnum):
    """R-BOR-CONF: what an unconfirmed CR or PR followed by PD counts as."""

    SD = "sd"  # SD where R-BOR-SDMIN is met, else PD (RECIST 1.1 table 3, default)
    PD = "pd"  # it does not count as SD: the best response comes from the others


class SettingsProfile(StrEnum):
    """A named set of conventions (:data:`PROFILES`)."""

    ADMIRALONCO = "admiralonco"


# R-PLAUS-SETTINGS: no protocol window is longer than ten years, and no size threshold
# larger than the largest plausible lesion (recist.lesions.MAX_SIZE_MM).
MAX_DAYS = 3650
MAX_SETTING_MM = 1000
# R-PLAUS-SIZE for volumes: no lesion holds more than a cube a metre across (10⁶ mL).
MAX_VOLUME_ML = 1_000_000
# R-PLAUS-SETTINGS: an eligibility limit on the number of lesions, and on the text of a
# site or of the protocol's name.
MAX_ELIGIBLE_LESIONS = 1000
MAX_SITE_TEXT = 64
MAX_PROTOCOL_TEXT = 200


def _refuse(message: str, where: str) -> CaseInputError:
    return CaseInputError(message, field=where, rule="R-PLAUS-SETTINGS")


def _limit(value: Any, where: str, most: float, unit: str) -> float | None:
    """A size or volume limit: a finite number > 0 and ≤ ``most``, or ``None``."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= most
    ):
        raise _refuse(f"{value!r} is not a limit above 0 and at most {most:g} {unit}", where)
    return value


def _site_key(value: Any, where: str) -> str:
    """A site named by an eligibility rule: non-blank text, compared in lower case."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SITE_TEXT:
        raise _refuse(
            f"{value!r} is not a site (text of 1 to {MAX_SITE_TEXT} characters, e.g. 'liver')",
            where,
        )
    return " ".join(value.lower().split())


@dataclass(frozen=True, slots=True)
class SiteLimits:
    """The limits of one site (``eligibility.sites``): they replace the general limit of
    the same measure for lesions of that site (the more specific rule wins)."""

    max_diameter_mm: float | None = None
    max_volume_ml: float | None = None

    def to_dict(self) -> dict[str, float]:
        out = {}
        if self.max_diameter_mm is not None:
            out["max_diameter_mm"] = self.max_diameter_mm
        if self.max_volume_ml is not None:
            out["max_volume_ml"] = self.max_volume_ml
        return out


ELIGIBILITY_KEYS = (
    "protocol",
    "max_lesions",
    "count_nodes",
    "max_diameter_mm",
    "max_volume_ml",
    "sites",
    "excluded_sites",
)


@dataclass(frozen=True, slots=True)
class Eligibility:
    """A protocol's size-based eligibility (R-ELIG-COUNT, -SIZE, -VOLUME, -SITE).

    RECIST 1.1 has no such rules; a trial states its own (``docs/rules.md`` §12). Every
    breach at baseline is a finding for the trial team, never a refusal of the case, and
    no response changes with it.

    Attributes
    ----------
    protocol
        The protocol the rules come from (``NCT02089100``), named in every finding.
    max_lesions
        R-ELIG-COUNT: the most metastatic lesions at baseline: every target and every
        non-target record counts one (a non-target record that stands for several lesions
        still counts one: the count is a lower bound), lymph nodes included unless
        ``count_nodes`` is false.
    count_nodes
        Whether nodal lesions count towards ``max_lesions`` (default true: the engine
        cannot tell a regional node from a distant metastasis).
    max_diameter_mm
        R-ELIG-SIZE: the largest baseline size of a target: its longest diameter, a
        node's short axis (the size the case records). Non-targets carry no size.
    max_volume_ml
        R-ELIG-VOLUME: the largest baseline volume of a lesion, where the case gives one
        (``volume_ml``, from imaging).
    sites
        Per-site limits (site → :class:`SiteLimits`), sorted by site.
    excluded_sites
        R-ELIG-SITE: sites where any baseline lesion is a breach (``brain``).
    """

    protocol: str | None = None
    max_lesions: int | None = None
    count_nodes: bool = True
    max_diameter_mm: float | None = None
    max_volume_ml: float | None = None
    sites: tuple[tuple[str, SiteLimits], ...] = ()
    excluded_sites: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, values: Any, where: str = "settings.eligibility") -> Eligibility:
        """Eligibility rules from their JSON object, refusing anything else by its field
        (R-PLAUS-SETTINGS)."""
        if not isinstance(values, Mapping):
            raise _refuse(f"{values!r} is not an object of eligibility rules", where)
        for key in values:
            if key not in ELIGIBILITY_KEYS:
                raise _refuse(
                    f"unknown eligibility rule {key!r}; known: {', '.join(ELIGIBILITY_KEYS)}",
                    f"{where}.{key}",
                )
        protocol = values.get("protocol")
        if protocol is not None and (
            not isinstance(protocol, str)
            or not protocol.strip()
            or len(protocol) > MAX_PROTOCOL_TEXT
        ):
            raise _refuse(
                f"{protocol!r} is not a protocol name (text of 1 to {MAX_PROTOCOL_TEXT} "
                "characters)",
                f"{where}.protocol",
            )
        most = values.get("max_lesions")
        if most is not None and (
            isinstance(most, bool)
            or not isinstance(most, int)
            or not 1 <= most <= MAX_ELIGIBLE_LESIONS
        ):
            raise _refuse(
                f"{most!r} is not a whole number of lesions from 1 to {MAX_ELIGIBLE_LESIONS}",
                f"{where}.max_lesions",
            )
        count_nodes = values.get("count_nodes", True)
        if count_nodes is None:
            count_nodes = True
        if not isinstance(count_nodes, bool):
            raise _refuse(f"{count_nodes!r} is not true or false", f"{where}.count_nodes")
        sites_in = values.get("sites") or {}
        if not isinstance(sites_in, Mapping):
            raise _refuse(
                f"{sites_in!r} is not an object of site → limits "
                '(e.g. {"liver": {"max_diameter_mm": 70}})',
                f"{where}.sites",
            )
        sites: dict[str, SiteLimits] = {}
        for raw_site, limits in sites_in.items():
            at = f"{where}.sites.{raw_site}"
            site = _site_key(raw_site, at)
            if site in sites:
                raise _refuse(f"site {site!r} is given twice", at)
            if not isinstance(limits, Mapping):
                raise _refuse(f"{limits!r} is not an object of limits", at)
            for key in limits:
                if key not in ("max_diameter_mm", "max_volume_ml"):
                    raise _refuse(
                        f"unknown site limit {key!r}; known: max_diameter_mm, max_volume_ml",
                        f"{at}.{key}",
                    )
            one = SiteLimits(
                _limit(
                    limits.get("max_diameter_mm"), f"{at}.max_diameter_mm", MAX_SETTING_MM, "mm"
                ),
                _limit(limits.get("max_volume_ml"), f"{at}.max_volume_ml", MAX_VOLUME_ML, "mL"),
            )
            if one.max_diameter_mm is None and one.max_volume_ml is None:
                raise _refuse("a site needs max_diameter_mm or max_volume_ml (or both)", at)
            sites[site] = one
        excluded_in = values.get("excluded_sites") or []
        if isinstance(excluded_in, str) or not isinstance(excluded_in, list | tuple):
            raise _refuse(
                f'{excluded_in!r} is not a list of sites (e.g. ["brain"])',
                f"{where}.excluded_sites",
            )
        excluded: list[str] = []
        for index, raw in enumerate(excluded_in):
            site = _site_key(raw, f"{where}.excluded_sites[{index}]")
            if site in excluded:
                raise _refuse(f"site {site!r} is listed twice", f"{where}.excluded_sites[{index}]")
            excluded.append(site)
        return cls(
            protocol=protocol.strip() if isinstance(protocol, str) else None,
            max_lesions=most,
            count_nodes=count_nodes,
            max_diameter_mm=_limit(
                values.get("max_diameter_mm"), f"{where}.max_diameter_mm", MAX_SETTING_MM, "mm"
            ),
            max_volume_ml=_limit(
                values.get("max_volume_ml"), f"{where}.max_volume_ml", MAX_VOLUME_ML, "mL"
            ),
            sites=tuple(sorted(sites.items())),
            excluded_sites=tuple(excluded),
        )

    @property
    def empty(self) -> bool:
        """No rule at all (the protocol name alone checks nothing)."""
        return (
            self.max_lesions is None
            and self.max_diameter_mm is None
            and self.max_volume_ml is None
            and not self.sites
            and not self.excluded_sites
        )

    def site_limits(self) -> dict[str, SiteLimits]:
        return dict(self.sites)

    def to_dict(self) -> dict[str, Any]:
        """The rules as JSON, only those given (the canonical form stored and echoed)."""
        out: dict[str, Any] = {}
        if self.protocol is not None:
            out["protocol"] = self.protocol
        if self.max_lesions is not None:
            out["max_lesions"] = self.max_lesions
        if not self.count_nodes:
            out["count_nodes"] = False
        if self.max_diameter_mm is not None:
            out["max_diameter_mm"] = self.max_diameter_mm
        if self.max_volume_ml is not None:
            out["max_volume_ml"] = self.max_volume_ml
        if self.sites:
            out["sites"] = {site: limits.to_dict() for site, limits in self.sites}
        if self.excluded_sites:
            out["excluded_sites"] = list(self.excluded_sites)
        return out


# The model trial's eligibility as its registration states it (NCT02089100, STEREO-SEIN:
# at most 5 metastatic lesions, each ≤ 10 cm or ≤ 500 mL, liver metastases ≤ 7 cm, no
# brain metastases); docs/rules.md §12 and the demo trial use it.
STEREO_SEIN_ELIGIBILITY: dict[str, Any] = {
    "protocol": "NCT02089100",
    "max_lesions": 5,
    "max_diameter_mm": 100,
    "max_volume_ml": 500,
    "sites": {"liver": {"max_diameter_mm": 70}},
    "excluded_sites": ["brain"],
}


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
    accept_sd
        R-BOR-CONF: one SD may sit between a PR and the assessment that confirms it
        (admiralonco's ``accept_sd``). Off: any SD between breaks the confirmation.
    confirmation_max_days
        R-BOR-CONF: the most days between a response and the assessment that confirms it;
        a later CR or PR does not confirm. ``None`` (default): no maximum. At least
        ``confirmation_min_days``.
    pr_after_cr_confirms
        R-BOR-CONF: a PR after a CR may confirm a response (default, RECIST 1.1 table 3:
        PR, CR, PR is a confirmed PR; CR, PR a confirmed PR and a data query). Off
        (admiralonco): a PR after a CR breaks the confirmation, so PR, CR, PR and CR, PR
        are unconfirmed and count as SD where R-BOR-SDMIN is met.
    unconfirmed_before_pd
        R-BOR-CONF: an unconfirmed CR or PR whose next assessment other than NE is PD
        counts as SD where R-BOR-SDMIN is met (``sd``, RECIST 1.1 table 3, default), or
        not at all (``pd``: the best response is then PD unless another timepoint
        qualifies).
    censor_at
        §8: PFS without an event is censored at the last *adequate* assessment (not NE,
        FDA 2018, default) or at the last assessment of *any* response (admiralonco's
        last tumour assessment); the same choice dates the new-therapy censoring and is
        the reference of the missed-visit rule.
    settings_profile
        A named set of conventions (:data:`PROFILES`): the values it gives fill every
        setting not given explicitly (:meth:`from_dict`). Recorded with the settings so
        that every result names it.
    eligibility
        The protocol's size-based eligibility (:class:`Eligibility`: R-ELIG-COUNT,
        R-ELIG-SIZE, R-ELIG-VOLUME, R-ELIG-SITE), given as its JSON object; each breach
        at baseline is a finding, never a refusal (not even with ``strict``). ``None``
        (default): no eligibility rules, as in RECIST 1.1; an object without rules is
        ``None`` too.

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
    accept_sd: bool = False
    confirmation_max_days: int | None = None
    pr_after_cr_confirms: bool = True
    unconfirmed_before_pd: UnconfirmedBeforePd = UnconfirmedBeforePd.SD
    censor_at: CensorAt = CensorAt.ADEQUATE
    settings_profile: SettingsProfile | None = None
    eligibility: Eligibility | None = None

    def __post_init__(self) -> None:
        rules = self.eligibility
        if rules is not None:
            if not isinstance(rules, Eligibility):
                rules = Eligibility.from_dict(rules)
            object.__setattr__(self, "eligibility", None if rules.empty else rules)
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
        for name in ("visit_interval_days", "confirmation_max_days"):
            days = getattr(self, name)
            if days is not None and (
                isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= MAX_DAYS
            ):
                raise CaseInputError(
                    f"{days!r} is not a whole number of days from 1 to {MAX_DAYS}, nor null",
                    field=f"settings.{name}",
                    rule="R-PLAUS-SETTINGS",
                )
        for name in (
            "confirmation",
            "pr_hold",
            "strict",
            "cut_at_new_therapy",
            "previously_treated_targets",
            "accept_sd",
            "pr_after_cr_confirms",
        ):
            if not isinstance(getattr(self, name), bool):
                raise CaseInputError(
                    f"{getattr(self, name)!r} is not true or false",
                    field=f"settings.{name}",
                    rule="R-PLAUS-SETTINGS",
                )
        self._choice("unconfirmed_before_pd", UnconfirmedBeforePd)
        self._choice("censor_at", CensorAt)
        if self.settings_profile is not None:
            self._choice("settings_profile", SettingsProfile)
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
        most = self.confirmation_max_days
        if most is not None and most < self.confirmation_min_days:
            raise CaseInputError(
                f"a response is confirmed at least {self.confirmation_min_days} days later "
                f"but at most {most}; the maximum may not be below the minimum (R-BOR-CONF)",
                field="settings.confirmation_max_days",
                rule="R-PLAUS-SETTINGS",
            )

    def _choice(self, name: str, kind: type[StrEnum]) -> None:
        """Convert the string value of setting ``name`` to its enum, refusing others."""
        value = getattr(self, name)
        if isinstance(value, kind):
            return
        try:
            member = kind(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in kind)
            raise CaseInputError(
                f"{value!r} is not one of {allowed}",
                field=f"settings.{name}",
                rule="R-PLAUS-SETTINGS",
            ) from None
        object.__setattr__(self, name, member)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Settings:
        """Build settings from a mapping, refusing unknown keys by name.

        A ``settings_profile`` fills every setting the mapping does not give with the
        profile's value (:func:`with_profile`); the mapping's own values win.
        """
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise CaseInputError(
                    f"unknown setting {key!r}; known settings: {', '.join(sorted(known))}",
                    field=f"settings.{key}",
                )
        return cls(**with_profile(values))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (written into every exported result)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Eligibility):
                value = value.to_dict()
            out[f.name] = value.value if isinstance(value, StrEnum) else value
        return out


# §8: PD or death more than this many visit intervals after the last adequate assessment
# is censored at that assessment (FDA 2018 censoring table).
MISSED_VISITS = 2

DEFAULT_SETTINGS = Settings()


# The conventions of a profile, as JSON values, and where each comes from. admiralonco:
# pharmaverse's R package for oncology ADaM (github.com/pharmaverse/admiralonco), its
# functions' defaults and, for the arguments without one, its templates' values
# (inst/templates/ad_adrs.R, ad_adtte.R). docs/rules.md lists them with the same sources.
PROFILES: dict[SettingsProfile, dict[str, Any]] = {
    SettingsProfile.ADMIRALONCO: {
        "sd_min_days": 42,
        "confirmation_min_days": 28,
        "confirmation_max_ne_between": 1,
        "accept_sd": False,
        "confirmation_max_days": None,
        "pr_after_cr_confirms": False,
        "unconfirmed_before_pd": "sd",
        "censor_at": "any",
        "visit_interval_days": None,
    },
}

PROFILE_SOURCES: dict[SettingsProfile, dict[str, str]] = {
    SettingsProfile.ADMIRALONCO: {
        "sd_min_days": "ref_start_window = 42 (ad_adrs.R: derive_param_bor, "
        "derive_param_confirmed_bor; reference_date = RANDDT)",
        "confirmation_min_days": "ref_confirm = 28 (ad_adrs.R: derive_param_confirmed_bor, "
        "derive_param_confirmed_resp)",
        "confirmation_max_ne_between": "max_nr_ne = 1 (derive_param_confirmed_bor default)",
        "accept_sd": "accept_sd = FALSE (derive_param_confirmed_bor default)",
        "confirmation_max_days": "no maximum: the confirming assessment is the first CR/PR "
        "with ADT >= ADT + ref_confirm (derive_param_confirmed_bor's first_cond)",
        "pr_after_cr_confirms": "a PR needs 'no PR after a CR in the confirmation period', a "
        "CR only CR or NE before its confirming CR (derive_param_confirmed_bor)",
        "unconfirmed_before_pd": "an unconfirmed CR/PR at >= ref_start_window is SD "
        "whatever follows (derive_param_confirmed_bor)",
        "censor_at": "PFS censor_conditions = lasta_censor: the last OVR record of any "
        "AVALC, NE included (ad_adtte.R; derive_param_lasta)",
        "visit_interval_days": "no missed-visit censoring: PFS events pd_event and "
        "death_event only (ad_adtte.R: derive_param_tte)",
    },
}


def with_profile(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every setting that ``values`` does not give taken from the profile
    it names (``settings_profile``, :data:`PROFILES`); unchanged without a known profile
    (an unknown one is refused when the settings are built, R-PLAUS-SETTINGS)."""
    name = values.get("settings_profile")
    try:
        profile = PROFILES[SettingsProfile(name)] if isinstance(name, str) else {}
    except ValueError:
        profile = {}
    return {**profile, **values}


# The rules each setting changes (docs/rules.md; "§8": PFS, which has no rule ids).
SETTING_RULES: dict[str, tuple[str, ...]] = {
    "confirmation": ("R-BOR-CONF",),
    "confirmation_min_days": ("R-BOR-CONF", "R-TGT-HOLD"),
    "confirmation_max_ne_between": ("R-BOR-CONF",),
    "sd_min_days": ("R-BOR-SDMIN",),
    "visit_interval_days": ("§8",),
    "pr_hold": ("R-TGT-HOLD",),
    "strict": ("R-MEAS", "R-SEL", "R-PLAUS-BLWINDOW"),
    "cut_at_new_therapy": ("R-BOR-CUT", "§8"),
    "previously_treated_targets": ("R-MEAS-4",),
    "progression_date": ("§8",),
    "reappearance_min_mm": ("R-REAPPEAR",),
    "baseline_window_days": ("R-PLAUS-BLWINDOW",),
    "criteria": ("§10",),
    "irecist_confirm_min_days": ("I-CPD-WINDOW",),
    "irecist_confirm_max_days": ("I-CPD-WINDOW",),
    "accept_sd": ("R-BOR-CONF",),
    "confirmation_max_days": ("R-BOR-CONF",),
    "pr_after_cr_confirms": ("R-BOR-CONF",),
    "unconfirmed_before_pd": ("R-BOR-CONF", "R-BOR-SDMIN"),
    "censor_at": ("§8", "I-PFS"),
    "settings_profile": (),  # none of its own: those of the settings it fills
    "eligibility": ("R-ELIG-COUNT", "R-ELIG-SIZE", "R-ELIG-VOLUME", "R-ELIG-SITE"),
}


class SettingSource(StrEnum):
    """Where the value of a setting came from (:func:`explain`)."""

    DEFAULT = "default"  # the engine's default (RECIST 1.1 / FDA 2018)
    PROFILE = "profile"  # the named profile (settings_profile)
    CASE = "case"  # given explicitly (the case's or trial's settings)


@dataclass(frozen=True, slots=True)
class ExplainedSetting:
    """One setting as :func:`explain` reports it."""

    name: str
    value: Any  # the JSON value
    source: SettingSource
    rules: tuple[str, ...]
    reference: str | None  # the profile's source for a value the profile set

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": self.name,
            "value": self.value,
            "source": self.source.value,
            "rules": list(self.rules),
            "reference": self.reference,
        }


def explain(
    values: Mapping[str, Any], profile: str | None = None
) -> tuple[Settings, list[ExplainedSetting]]:
    """The settings ``values`` give (as :meth:`Settings.from_dict`) and, for every setting
    in order, its value, where it came from and the rules it changes.

    Parameters
    ----------
    values
        The settings given explicitly (a case's or a trial's ``settings``).
    profile
        A profile to apply when ``values`` names none (``recist settings --profile``);
        its ``settings_profile`` is then reported as coming from the profile.

    Raises
    ------
    CaseInputError
        An unknown setting or a bad value, naming the setting (R-PLAUS-SETTINGS), or a
        ``profile`` other than the one ``values`` names.
    """
    named = values.get("settings_profile")
    if profile is not None:
        if named is not None and named != profile:
            raise CaseInputError(
                f"the settings name the profile {named!r}, not {profile!r}",
                field="settings.settings_profile",
                rule="R-PLAUS-SETTINGS",
            )
        settings = Settings.from_dict({**values, "settings_profile": profile})
    else:
        settings = Settings.from_dict(values)
    chosen = settings.settings_profile
    given = PROFILES[chosen] if chosen is not None else {}
    sources = PROFILE_SOURCES[chosen] if chosen is not None else {}
    out = []
    for name, value in settings.to_dict().items():
        if name == "settings_profile" and value is not None and named is None:
            source = SettingSource.PROFILE
        elif name in values:
            source = SettingSource.CASE
        elif name in given:
            source = SettingSource.PROFILE
        else:
            source = SettingSource.DEFAULT
        reference = sources.get(name) if source is SettingSource.PROFILE else None
        out.append(ExplainedSetting(name, value, source, SETTING_RULES[name], reference))
    return settings, out
