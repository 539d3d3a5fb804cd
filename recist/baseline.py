"""Baseline checks: measurability (§3.1, R-MEAS-1..4), target selection (§4.2, R-SEL)
and a protocol's size-based eligibility (R-ELIG, setting ``eligibility``).

Checks are separate from policy: every check returns :class:`Finding` records; the caller
reports them as warnings, or, in strict mode, refuses the case
(:func:`enforce_findings`); eligibility breaches are never refused (the trial team
decides).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from recist.errors import ProtocolDeviationError
from recist.lesions import (
    UNITS_PER_MM,
    Case,
    Length,
    Lesion,
    TargetState,
    Timepoint,
    format_mm,
    length_to_mm,
    mm_to_length,
    names_a_node,
)
from recist.settings import Eligibility

# R-MEAS-1: least longest diameter of a measurable non-nodal lesion, by modality.
MIN_LD: Length = 10 * UNITS_PER_MM  # CT/MR and calliper: 10 mm
MIN_LD_CHEST_XRAY: Length = 20 * UNITS_PER_MM  # chest X-ray: 20 mm
THICK_SLICE: Length = 5 * UNITS_PER_MM  # slices thicker than 5 mm raise the bar to 2 × thickness
# R-MEAS-2: lymph node short axis.
NODE_MEASURABLE_SA: Length = 15 * UNITS_PER_MM  # ≥ 15 mm: pathological and measurable
NODE_PATHOLOGICAL_SA: Length = 10 * UNITS_PER_MM  # ≥ 10 mm: pathological (non-target only)
# R-SEL-1
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2

# R-MEAS-3: disease that is never measurable (matched as words in the site).
NEVER_MEASURABLE_SITES = (
    "leptomeningeal",
    "ascites",
    "pleural effusion",
    "pericardial effusion",
    "effusion",
    "inflammatory breast",
    "lymphangitic",
    "blastic",
)

# R-SEL-2: paired organs count as one organ; all lymph nodes count as one organ.
# R-MEAS-3: a bone lesion may be a target only when lytic or mixed with a soft-tissue
# component; the site text must say so.
BONE_WORDS = frozenset(
    "bone bones osseous skeletal vertebra vertebral vertebrae spine rib ribs sternum "
    "femur humerus skull sacrum ilium".split()
)
BONE_MEASURABLE_WORDS = ("lytic", "mixed", "soft tissue", "soft-tissue")


def is_bone_without_soft_tissue(site: str) -> bool:
    """R-MEAS-3: a bone site whose text does not say lytic/mixed with soft tissue."""
    words = set(re.split(r"[^a-z]+", site.lower()))
    return bool(words & BONE_WORDS) and not any(w in site.lower() for w in BONE_MEASURABLE_WORDS)


_ORGAN_ALIASES = {
    "lung": ("lung", "lungs", "left lung", "right lung", "pulmonary"),
    "kidney": ("kidney", "kidneys", "left kidney", "right kidney", "renal"),
    "adrenal": ("adrenal", "adrenals", "left adrenal", "right adrenal", "adrenal gland"),
    "ovary": ("ovary", "ovaries", "left ovary", "right ovary"),
    "breast": ("breast", "breasts", "left breast", "right breast"),
}
_ALIAS_TO_ORGAN = {alias: organ for organ, names in _ORGAN_ALIASES.items() for alias in names}
LYMPH_NODE_ORGAN = "lymph node"


@dataclass(slots=True, init=False, unsafe_hash=True)
class Finding:
    """A baseline rule that the case breaks: a protocol deviation, not an impossibility."""

    rule: Final[str]
    lesion: Final[str | None]
    message: Final[str]

    def __init__(
        self,
        rule: str,
        lesion: str | None,
        message: str,
    ) -> None:
        self.rule = rule
        self.lesion = lesion
        self.message = message

    def to_dict(self) -> dict[str, str | None]:
        return {"rule": self.rule, "lesion": self.lesion, "message": self.message}


@dataclass(frozen=True, slots=True)
class Measurability:
    """Whether a lesion of the given size may be a target (R-MEAS-1/2), and why."""

    measurable: bool
    pathological: bool
    reasons: tuple[str, ...]


def _fmt(length: Length) -> str:
    return format_mm(length)


def measurability(
    *,
    nodal: bool,
    longest_diameter_mm: float | None = None,
    short_axis_mm: float | None = None,
    slice_thickness_mm: float | None = None,
    modality: str | None = None,
    site: str = "",
) -> Measurability:
    """Apply R-MEAS-1 (non-nodal), R-MEAS-2 (nodal) and R-MEAS-3 (site) to one lesion.

    Parameters
    ----------
    nodal
        Lymph node: judged on ``short_axis_mm`` (R-MEAS-2).
    longest_diameter_mm, short_axis_mm
        The lesion's diameters in mm.
    slice_thickness_mm
        The slice thickness of the series; above 5 mm the minimum LD is twice it.
    modality
        ``CT``/``MR`` (default), ``XR`` for chest X-ray (20 mm), ``CALIPER`` (10 mm).
    site
        Free text; disease of R-MEAS-3 (effusions, blastic bone…) is never measurable.

    Returns
    -------
    Measurability
        ``measurable`` (may be a target), ``pathological`` (is disease at all: false only
        for nodes below 10 mm) and the reasons, each citing its rule.
    """
    site_verdict = _site_verdict(site, site.lower(), nodal)
    if site_verdict is not None:
        return site_verdict
    if nodal:
        if short_axis_mm is None:
            return Measurability(False, True, ("R-MEAS-2: a lymph node needs its short axis",))
        sa = mm_to_length(short_axis_mm, where="short axis")
        if sa >= NODE_MEASURABLE_SA:
            return Measurability(
                True, True, (f"R-MEAS-2: node short axis {_fmt(sa)} ≥ 15 mm: measurable",)
            )
        if sa >= NODE_PATHOLOGICAL_SA:
            return Measurability(
                False,
                True,
                (
                    f"R-MEAS-2: node short axis {_fmt(sa)} is 10–15 mm: pathological but "
                    "not measurable (non-target only)",
                ),
            )
        return Measurability(
            False, False, (f"R-MEAS-2: node short axis {_fmt(sa)} < 10 mm: normal node",)
        )
    if longest_diameter_mm is None:
        return Measurability(False, True, ("R-MEAS-1: no longest diameter",))
    ld = mm_to_length(longest_diameter_mm, where="longest diameter")
    minimum, why = _minimum_ld(modality, slice_thickness_mm)
    if ld >= minimum:
        return Measurability(
            True,
            True,
            (f"R-MEAS-1: longest diameter {_fmt(ld)} ≥ {_fmt(minimum)}{why}: measurable",),
        )
    return Measurability(
        False,
        True,
        (f"R-MEAS-1: longest diameter {_fmt(ld)} < {_fmt(minimum)}{why}: not measurable",),
    )


@lru_cache(maxsize=1024)
def _site_verdict(site: str, site_l: str, nodal: bool) -> Measurability | None:
    """R-MEAS-3 on the site text alone (cached: a trial uses a few site names)."""
    for word in NEVER_MEASURABLE_SITES:
        if word in site_l:
            return Measurability(
                False, True, (f"R-MEAS-3: {site!r} ({word}) is never measurable disease",)
            )
    if not nodal and is_bone_without_soft_tissue(site_l):
        return Measurability(
            False,
            True,
            (
                f"R-MEAS-3: bone lesion {site!r} is measurable only when lytic or mixed with a "
                "soft-tissue component (say so in the site, e.g. 'bone, lytic with soft-tissue "
                "component')",
            ),
        )
    return None


def _minimum_ld(modality: str | None, slice_thickness_mm: float | None) -> tuple[Length, str]:
    """R-MEAS-1: the least measurable longest diameter by modality and slice thickness,
    and the words that explain it."""
    mod = (modality or "CT").upper()
    if mod in ("XR", "CR", "DX", "CHEST X-RAY"):
        return MIN_LD_CHEST_XRAY, " on chest X-ray"
    minimum, why = MIN_LD, ""
    if mod not in ("CALIPER", "CALLIPER") and slice_thickness_mm is not None:
        thickness = mm_to_length(slice_thickness_mm, where="slice thickness")
        if thickness > THICK_SLICE and 2 * thickness > minimum:
            minimum = 2 * thickness
            why = f" (2 × slice thickness {_fmt(thickness)}: slices thicker than 5 mm)"
    return minimum, why


def _is_measurable_target(lesion: Lesion, size: Length) -> bool:
    """Whether :func:`measurability` calls this baseline size measurable, without
    writing its reasons (the same site verdict, thresholds and conversions)."""
    key = (lesion.site, lesion.nodal, lesion.modality, lesion.slice_thickness_mm)
    minimum = _TARGET_MINIMUM.get(key)
    if minimum is None:
        if _site_verdict(lesion.site, lesion.site.lower(), lesion.nodal) is not None:
            minimum = -1  # never measurable (R-MEAS-3)
        elif lesion.nodal:
            minimum = NODE_MEASURABLE_SA
        else:
            minimum = _minimum_ld(lesion.modality, lesion.slice_thickness_mm)[0]
        if len(_TARGET_MINIMUM) >= 4096:
            _TARGET_MINIMUM.clear()
        _TARGET_MINIMUM[key] = minimum
    return minimum >= 0 and mm_to_length(length_to_mm(size)) >= minimum


# The least measurable size by (site, nodal, modality, slice thickness); -1: never.
_TARGET_MINIMUM: dict[tuple[str, bool, str | None, float | None], Length] = {}


def organ_of(lesion: Lesion) -> str:
    """The organ a lesion counts towards for R-SEL-1 (R-SEL-2 groups nodes and pairs)."""
    if lesion.nodal or names_a_node(lesion.site):
        return LYMPH_NODE_ORGAN
    return _ALIAS_TO_ORGAN.get(lesion.site, lesion.site)


def check_baseline(case: Case) -> list[Finding]:
    """All baseline findings of a case: R-MEAS-1..4 for targets and R-SEL-1/2.

    Non-target lesions are not size-checked: any disease may be a non-target (R-SEL-3).
    """
    findings: list[Finding] = []
    baseline = case.baseline
    settings = case.settings
    targets = case.target_lesions
    for lesion in targets:
        value = baseline.target(lesion.id)
        if not lesion.nodal and names_a_node(lesion.site):
            # Not a refusal (the reader may know better), but never silent: a node
            # entered as non-nodal is followed on its long axis and can never be CR by
            # the < 10 mm short-axis rule.
            findings.append(
                Finding(
                    "R-MEAS-2",
                    lesion.id,
                    f"target {lesion.id}'s site {lesion.site!r} is a lymph node but it is not "
                    "marked nodal: it is assessed as a non-nodal lesion on its longest "
                    "diameter; mark it nodal and give its short axis (R-MEAS-2, R-NODE)",
                )
            )
        if value.state is TargetState.TOO_SMALL:
            findings.append(
                Finding(
                    "R-MEAS-1",
                    lesion.id,
                    f"target {lesion.id} is recorded too small to measure at baseline; "
                    "a target must be measurable",
                )
            )
        elif value.size is not None and not _is_measurable_target(lesion, value.size):
            size_mm = length_to_mm(value.size)
            verdict = measurability(
                nodal=lesion.nodal,
                longest_diameter_mm=None if lesion.nodal else size_mm,
                short_axis_mm=size_mm if lesion.nodal else None,
                slice_thickness_mm=lesion.slice_thickness_mm,
                modality=lesion.modality,
                site=lesion.site,
            )
            if not verdict.measurable:
                rule = verdict.reasons[0].split(":", 1)[0]
                findings.append(
                    Finding(
                        rule,
                        lesion.id,
                        f"target {lesion.id} ({lesion.site}) is not measurable at baseline: "
                        + verdict.reasons[0].split(": ", 1)[1],
                    )
                )
        if (
            lesion.treated_on is not None
            and lesion.treated_on <= baseline.date
            and not settings.previously_treated_targets
        ):
            findings.append(
                Finding(
                    "R-MEAS-4",
                    lesion.id,
                    f"target {lesion.id} was treated ({lesion.treatment or 'local therapy'}) "
                    f"on {lesion.treated_on.isoformat()}, before baseline; a previously "
                    "treated lesion is not measurable unless it progressed after therapy",
                )
            )
    randomized = case.randomized_on
    if randomized is not None and (randomized - baseline.date).days > settings.baseline_window_days:
        # R-PLAUS-BLWINDOW: a deviation to explain (an old scan reused, or a date slip),
        # not an impossibility.
        findings.append(
            Finding(
                "R-PLAUS-BLWINDOW",
                None,
                f"the baseline ({baseline.date.isoformat()}) is "
                f"{(randomized - baseline.date).days} days before randomisation "
                f"({randomized.isoformat()}); the protocol allows "
                f"{settings.baseline_window_days} (baseline_window_days)",
            )
        )
    if len(targets) > MAX_TARGETS:
        for lesion in targets[MAX_TARGETS:]:
            findings.append(
                Finding(
                    "R-SEL-1",
                    lesion.id,
                    f"{len(targets)} target lesions at baseline; at most {MAX_TARGETS} "
                    f"are allowed ({lesion.id} is beyond the fifth)",
                )
            )
    organs = [organ_of(le) for le in targets]
    seen: dict[str, int] = {}
    for lesion, organ in zip(targets, organs, strict=True):
        seen[organ] = seen.get(organ, 0) + 1
        if seen[organ] > MAX_TARGETS_PER_ORGAN:
            grouped = (
                " (R-SEL-2: all lymph nodes count as one organ)"
                if (organ == LYMPH_NODE_ORGAN)
                else (" (R-SEL-2: paired organs count as one)" if organ in _ORGAN_ALIASES else "")
            )
            findings.append(
                Finding(
                    "R-SEL-1",
                    lesion.id,
                    f"{organs.count(organ)} target lesions in {organ}; at most "
                    f"{MAX_TARGETS_PER_ORGAN} per organ{grouped}",
                )
            )
    rules = settings.eligibility
    if rules is not None:
        findings.extend(check_eligibility(case, rules))
    return findings


# R-ELIG: other words for a site an eligibility rule names (besides the site's own words
# and the R-SEL-2 organ groups), so that "brain" also finds a "cerebellar" lesion.
_SITE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "brain": ("cerebral", "cerebellar", "cerebellum", "intracranial"),
    "liver": ("hepatic", "intrahepatic"),
    "lung": ("lungs", "pulmonary", "intrapulmonary"),
    "bone": tuple(sorted(BONE_WORDS)),
    "kidney": ("kidneys", "renal"),
    "adrenal": ("adrenals",),
}


def _is_node(lesion: Lesion) -> bool:
    return lesion.nodal or names_a_node(lesion.site)


@lru_cache(maxsize=1024)
def _site_pattern(site: str) -> re.Pattern[str]:
    words = (site, *_SITE_SYNONYMS.get(site, ()))
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b")


def in_site(lesion: Lesion, site: str) -> bool:
    """R-ELIG: whether ``lesion`` lies in the ``site`` an eligibility rule names.

    A node is in a site that names a node (``lymph node``: R-SEL-2, all nodes are one
    organ) and in no other, so a ``liver hilum node`` does not take the liver's limit.
    Another lesion is in a site its own site text names as whole words (``liver`` finds
    ``liver segment VII``), or by a synonym (``brain`` finds ``cerebellar``), or by its
    R-SEL-2 organ (``lung`` finds ``left lung``).
    """
    if names_a_node(site):
        return _is_node(lesion)
    if _is_node(lesion):
        return False
    return organ_of(lesion) == site or _site_pattern(site).search(lesion.site) is not None


def _ml(value: float) -> str:
    return f"{value:g} mL"


def _for(field: str, site: str | None) -> str:
    """ " for liver" when the limit applied is the site's own."""
    return f" for {site}" if site is not None and ".sites." in field else ""


def check_eligibility(case: Case, rules: Eligibility) -> list[Finding]:
    """The protocol's eligibility at baseline (setting ``eligibility``): one finding per
    breach, naming the lesion, its site, its size and the limit (R-ELIG-COUNT, R-ELIG-SIZE,
    R-ELIG-VOLUME, R-ELIG-SITE). Findings only: the trial team decides, and no response
    depends on them."""
    findings: list[Finding] = []
    baseline = case.baseline
    cite = f"{rules.protocol} eligibility" if rules.protocol else "protocol eligibility"
    lesions = case.lesions
    if rules.max_lesions is not None:
        counted = [le for le in lesions if rules.count_nodes or not _is_node(le)]
        if len(counted) > rules.max_lesions:
            n_targets = sum(1 for le in counted if le.is_target)
            nodes = "" if rules.count_nodes else "; lymph nodes not counted"
            findings.append(
                Finding(
                    "R-ELIG-COUNT",
                    None,
                    f"{len(counted)} metastatic lesions at baseline ({n_targets} target, "
                    f"{len(counted) - n_targets} non-target{nodes}); at most {rules.max_lesions} "
                    f"are allowed ({cite}, eligibility.max_lesions)",
                )
            )
    limits = rules.site_limits()
    for lesion in lesions:
        excluded = next((s for s in rules.excluded_sites if in_site(lesion, s)), None)
        kind = "target" if lesion.is_target else "non-target"
        if excluded is not None:
            findings.append(
                Finding(
                    "R-ELIG-SITE",
                    lesion.id,
                    f"{kind} {lesion.id} ({lesion.site}) is in an excluded site, {excluded!r} "
                    f"({cite}, eligibility.excluded_sites)",
                )
            )
        site = next((s for s in limits if in_site(lesion, s)), None)
        site_limits = limits.get(site) if site is not None else None
        most_mm, mm_field = rules.max_diameter_mm, "eligibility.max_diameter_mm"
        most_ml, ml_field = rules.max_volume_ml, "eligibility.max_volume_ml"
        if site_limits is not None and site_limits.max_diameter_mm is not None:
            most_mm = site_limits.max_diameter_mm
            mm_field = f"eligibility.sites.{site}.max_diameter_mm"
        if site_limits is not None and site_limits.max_volume_ml is not None:
            most_ml = site_limits.max_volume_ml
            ml_field = f"eligibility.sites.{site}.max_volume_ml"
        volume = lesion.volume_ml
        size = _baseline_size(baseline, lesion)
        over_mm = most_mm is not None and size is not None and size > mm_to_length(most_mm)
        over_ml = most_ml is not None and volume is not None and volume > most_ml
        if over_mm and most_mm is not None and size is not None:
            axis = "short axis" if lesion.nodal else "longest diameter"
            other = (
                f"; its volume {_ml(volume)} is within {_ml(most_ml)}, which the protocol may "
                "accept instead"
                if most_ml is not None and volume is not None and not over_ml
                else ""
            )
            findings.append(
                Finding(
                    "R-ELIG-SIZE",
                    lesion.id,
                    f"{kind} {lesion.id} ({lesion.site}): baseline {axis} {format_mm(size)} is "
                    f"above the limit of {format_mm(mm_to_length(most_mm))}"
                    f"{_for(mm_field, site)} ({cite}, {mm_field}){other}",
                )
            )
        if over_ml and most_ml is not None and volume is not None:
            other = (
                f"; its size {format_mm(size)} is within "
                f"{format_mm(mm_to_length(most_mm))}, which the protocol may accept instead"
                if most_mm is not None and size is not None and not over_mm
                else ""
            )
            findings.append(
                Finding(
                    "R-ELIG-VOLUME",
                    lesion.id,
                    f"{kind} {lesion.id} ({lesion.site}): baseline volume {_ml(volume)} is "
                    f"above the limit of {_ml(most_ml)}{_for(ml_field, site)} "
                    f"({cite}, {ml_field}){other}",
                )
            )
    return findings


def _baseline_size(baseline: Timepoint, lesion: Lesion) -> Length | None:
    """A target's measured baseline size (LD; a node's SA); ``None`` for a non-target or a
    target recorded too small to measure (R-SMALL: its 5 mm is no measurement)."""
    if not lesion.is_target:
        return None
    value = baseline.target(lesion.id)
    return value.size if value.state is TargetState.MEASURED else None


def enforce_findings(case: Case, findings: list[Finding]) -> None:
    """Strict mode: refuse a case with any baseline finding.

    Raises
    ------
    ProtocolDeviationError
        Naming the subject, the first finding's lesion and rule.
    """
    # R-ELIG: eligibility breaches are the trial team's to judge, never a refusal.
    findings = [f for f in findings if not f.rule.startswith("R-ELIG-")]
    if case.settings.strict and findings:
        first = findings[0]
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise ProtocolDeviationError(
            first.message + more + "; strict mode refuses baseline findings",
            subject=case.subject_id,
            timepoint=case.baseline.id,
            lesion=first.lesion,
            rule=first.rule,
        )
