"""The JSON contract of ``recist assess`` (docs/contracts.md), in and out.

This is the engine's boundary: it validates a case's structure with pydantic (unknown
keys refused with their path, so a typo never passes silently), converts values to the
core objects once, and turns results back into JSON-ready dicts. The published JSON
Schema of a case (``recist/schema/case.schema.json``) is generated from these models.
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from recist.assessment import CaseResult, TimepointResult, assess
from recist.best_response import BestResponse
from recist.errors import CaseInputError, RecistError
from recist.irecist import (
    IBestResponse,
    IrecistResult,
    IrecistTimepointResult,
    NewLesionCategory,
    NewLesionRecord,
    irecist_timepoint,
)
from recist.lesions import (
    MAX_SIZE_MM,
    UNITS_PER_MM,
    Case,
    Lesion,
    LesionKind,
    NewLesion,
    NonTargetState,
    TargetState,
    TargetValue,
    Timepoint,
    date_problem,
    length_to_mm,
    mm_to_length,
)
from recist.response import NewLesionStatus, Response
from recist.settings import (
    MAX_DAYS,
    MAX_ELIGIBLE_LESIONS,
    MAX_PROTOCOL_TEXT,
    MAX_SETTING_MM,
    MAX_SITE_TEXT,
    MAX_VOLUME_ML,
    Criteria,
    Settings,
    with_profile,
)

Number = float | int

TARGET_WORDS = {
    "too_small": TargetState.TOO_SMALL,
    "absent": TargetState.ABSENT,
    "not_evaluated": TargetState.NOT_EVALUATED,
}
TARGET_VALUE_HELP = (
    "a number of mm, 'too_small', 'absent', 'not_evaluated', {\"fragments\": [mm, …]} or "
    '{"merged_into": "T1"}'
)


def _iso_date_text(value: Any) -> Any:
    """Dates are ISO strings (YYYY-MM-DD); refuse numbers that pydantic would take as
    Unix timestamps."""
    if isinstance(value, str | date):
        return value
    raise ValueError("not a date (YYYY-MM-DD)")


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]


def _site_text(value: str) -> str:
    """A site given is a word: an empty or blank site would put the lesion in no organ
    (the per-organ count of targets, R-SEL-2, could not see it)."""
    if not value.strip():
        raise ValueError("not a site; name the lesion's organ or site (e.g. 'liver')")
    return value


def _site_schema(schema: dict[str, Any]) -> None:
    # Optional (no "required"), but when given not blank; the internal default "" is no
    # value a client may send, so the schema shows none (OpenAPI checks defaults).
    schema.pop("default", None)
    schema["pattern"] = r"\S"


# A lesion's site: optional, but never given empty.
Site = Annotated[
    StrictStr,
    AfterValidator(_site_text),
    Field(description="the organ or site, e.g. 'liver'", json_schema_extra=_site_schema),
]


class _Strict(BaseModel):
    # NaN and ±Infinity are never values of the contract (R-PLAUS-SIZE, R-PLAUS-SETTINGS).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# R-PLAUS-SIZE: every size of the contract is at most this (recist.lesions.MAX_SIZE_MM).
Size = Annotated[float, Field(ge=0, le=MAX_SIZE_MM)]
# R-PLAUS-SETTINGS: protocol windows are whole days of at most ten years.
Days = Annotated[int, Field(ge=0, le=MAX_DAYS, strict=True)]


SiteText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_SITE_TEXT, pattern=r"\S")]
LimitMm = Annotated[float, Field(gt=0, le=MAX_SETTING_MM)]
LimitMl = Annotated[float, Field(gt=0, le=MAX_VOLUME_ML)]


class SiteLimitsIn(_Strict):
    """The limits of one site; they replace the general limit of the same measure there."""

    max_diameter_mm: LimitMm | None = None
    max_volume_ml: LimitMl | None = None


class EligibilityIn(_Strict):
    """A protocol's size-based eligibility (R-ELIG-COUNT, R-ELIG-SIZE, R-ELIG-VOLUME,
    R-ELIG-SITE; docs/rules.md §12): breaches at baseline are findings, never refusals."""

    protocol: StrictStr | None = Field(
        None, min_length=1, max_length=MAX_PROTOCOL_TEXT, description="e.g. 'NCT02089100'"
    )
    max_lesions: int | None = Field(
        None,
        ge=1,
        le=MAX_ELIGIBLE_LESIONS,
        strict=True,
        description="most baseline lesions (targets + non-target records)",
    )
    count_nodes: StrictBool = True
    max_diameter_mm: LimitMm | None = Field(
        None, description="largest baseline LD of a target (a node's short axis)"
    )
    max_volume_ml: LimitMl | None = Field(
        None, description="largest baseline volume_ml of a lesion"
    )
    sites: dict[SiteText, SiteLimitsIn] = Field(
        default_factory=dict, description='site -> limits, e.g. {"liver": {"max_diameter_mm": 70}}'
    )
    excluded_sites: list[SiteText] = Field(default_factory=list, description="e.g. ['brain']")


class SettingsIn(_Strict):
    """Protocol settings (docs/rules.md); every key optional. A ``settings_profile`` fills
    the keys not given with the profile's values (``recist.settings.PROFILES``)."""

    confirmation: StrictBool = False
    confirmation_min_days: Days = 28
    confirmation_max_ne_between: Days = 1
    sd_min_days: Days = 42
    visit_interval_days: int | None = Field(None, gt=0, le=MAX_DAYS, strict=True)
    pr_hold: StrictBool = True
    strict: StrictBool = False
    cut_at_new_therapy: StrictBool = True
    previously_treated_targets: StrictBool = False
    progression_date: Literal["earliest", "latest", "timepoint"] = "earliest"
    reappearance_min_mm: float = Field(5.0, ge=0, le=MAX_SETTING_MM)
    baseline_window_days: Days = 60
    criteria: Literal["recist1.1", "irecist"] = "recist1.1"
    irecist_confirm_min_days: Days = 28
    irecist_confirm_max_days: Days = 56
    accept_sd: StrictBool = False
    confirmation_max_days: int | None = Field(None, gt=0, le=MAX_DAYS, strict=True)
    pr_after_cr_confirms: StrictBool = True
    unconfirmed_before_pd: Literal["sd", "pd"] = "sd"
    censor_at: Literal["adequate", "any"] = "adequate"
    settings_profile: Literal["admiralonco"] | None = None
    eligibility: EligibilityIn | None = None

    @model_validator(mode="before")
    @classmethod
    def _profile(cls, data: Any) -> Any:
        # The profile's values stand in for the keys not given; explicit keys win.
        return with_profile(data) if isinstance(data, dict) else data


class LesionIn(_Strict):
    id: StrictStr = Field(min_length=1)
    site: Site = ""
    kind: Literal["target", "non-target"]
    nodal: StrictBool = False
    treated_on: IsoDate | None = None
    treatment: StrictStr | None = None
    modality: StrictStr | None = None
    slice_thickness_mm: float | None = Field(None, gt=0, le=MAX_SIZE_MM)
    volume_ml: float | None = Field(
        None,
        ge=0,
        le=MAX_VOLUME_ML,
        description="baseline volume in mL, where imaging measured it (R-ELIG-VOLUME)",
    )


NEW_SIZE_WORDS = {
    "too_small": TargetState.TOO_SMALL,
    "absent": TargetState.ABSENT,
    "not_evaluated": TargetState.NOT_EVALUATED,
}


def _new_size_value(value: Any) -> Any:
    """A new lesion's ``size_mm`` as entered: mm (finite, 0–1000: R-PLAUS-SIZE), or one of
    the words of I-NEW-4."""
    if value is None or (isinstance(value, str) and value in NEW_SIZE_WORDS):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a size in mm, 'too_small', 'absent' or 'not_evaluated'")
    if value < 0:
        raise ValueError("a negative size; a size must be ≥ 0 mm")
    try:
        mm_to_length(value)
    except CaseInputError as error:
        raise ValueError(
            f"not a size from 0 to {MAX_SIZE_MM} mm" + (f" ({error.rule})" if error.rule else "")
        ) from None
    return value


class NewLesionIn(_Strict):
    """A new lesion at one follow-up: size_mm is its longest diameter, a node's short axis
    (short_axis_mm is that size's older name for a node); category and state follow new
    lesions under iRECIST (I-NEW-1..4)."""

    id: StrictStr = Field(min_length=1)
    site: Site = ""
    equivocal: StrictBool = False
    nodal: StrictBool = False
    short_axis_mm: Size | None = None
    size_mm: Annotated[Any, BeforeValidator(_new_size_value)] = Field(
        None,
        description="size in mm (LD; a node's short axis), or a word (iRECIST, I-NEW-4)",
        json_schema_extra={
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_SIZE_MM},
                {"enum": list(NEW_SIZE_WORDS)},
                {"type": "null"},
            ]
        },
    )
    category: Literal["target", "non-target"] | None = None
    state: Literal["present", "absent", "progression", "not_evaluated"] | None = None


class TimepointIn(_Strict):
    id: StrictStr = Field(min_length=1)
    date: IsoDate
    targets: dict[str, Any] = Field(
        default_factory=dict,
        description="lesion id -> " + TARGET_VALUE_HELP,
        json_schema_extra={
            "additionalProperties": {
                "anyOf": [
                    {"type": "number", "minimum": 0, "maximum": MAX_SIZE_MM},
                    {"enum": ["too_small", "absent", "not_evaluated"]},
                    {
                        "type": "object",
                        "properties": {
                            "fragments": {
                                "type": "array",
                                "items": {"type": "number", "minimum": 0, "maximum": MAX_SIZE_MM},
                                "minItems": 1,
                            }
                        },
                        "required": ["fragments"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"merged_into": {"type": "string"}},
                        "required": ["merged_into"],
                        "additionalProperties": False,
                    },
                ]
            }
        },
    )
    non_targets: dict[str, Literal["present", "absent", "progression", "not_evaluated"]] = Field(
        default_factory=dict
    )
    new_lesions: list[NewLesionIn] = Field(default_factory=list)
    scan_dates: dict[str, IsoDate] = Field(default_factory=dict)


class CaseIn(_Strict):
    """One case of ``recist assess`` (docs/contracts.md)."""

    subject_id: StrictStr = Field(min_length=1)
    arm: StrictStr | None = None
    randomized_on: IsoDate | None = None
    died_on: IsoDate | None = None
    new_therapy_on: IsoDate | None = None
    last_known_alive_on: IsoDate | None = None
    reader: StrictStr | None = None
    accepted: StrictBool | None = None
    settings: SettingsIn = Field(default_factory=lambda: SettingsIn())
    lesions: list[LesionIn]
    timepoints: list[TimepointIn] = Field(min_length=1)


def case_json_schema() -> dict[str, Any]:
    """The JSON Schema of a case, as published in ``recist/schema/case.schema.json``."""
    schema = CaseIn.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "RECIST 1.1 case (recist assess)"
    return schema


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _locate(obj: Any, loc: tuple[int | str, ...]) -> dict[str, str | None]:
    """Name the subject, timepoint and lesion that a validation error points into."""
    where: dict[str, str | None] = {"subject": None, "timepoint": None, "lesion": None}
    if not isinstance(obj, dict):
        return where
    subject = obj.get("subject_id")
    where["subject"] = subject if isinstance(subject, str) and subject else None
    if len(loc) >= 2 and isinstance(loc[1], int):
        items = obj.get(str(loc[0]))
        item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
        item_id = item.get("id") if isinstance(item, dict) else None
        label = item_id if isinstance(item_id, str) and item_id else f"#{loc[1] + 1}"
        if loc[0] == "timepoints":
            where["timepoint"] = label
            if len(loc) >= 4 and loc[2] in ("targets", "non_targets", "scan_dates"):
                where["lesion"] = str(loc[3])
            elif len(loc) >= 4 and loc[2] == "new_lesions" and isinstance(loc[3], int):
                news = item.get("new_lesions") if isinstance(item, dict) else None
                new = news[loc[3]] if isinstance(news, list) and loc[3] < len(news) else None
                new_id = new.get("id") if isinstance(new, dict) else None
                where["lesion"] = new_id if isinstance(new_id, str) else f"new #{loc[3] + 1}"
        elif loc[0] == "lesions":
            where["lesion"] = label
    return where


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    if kind == "literal_error":
        return f"{error['input']!r} is not allowed: {error['msg'].lower()}"
    if kind == "value_error":
        return f"{error['input']!r} is {error['ctx']['error']}"
    if kind.startswith("date"):
        return f"{error['input']!r} is not a date (YYYY-MM-DD)"
    return f"{error['msg'].lower()} (got {error['input']!r})"


# Target values already built, by their raw JSON value: a TargetValue is immutable, and a
# batch repeats the same few hundred sizes. Numbers equal to 0 or 1 are never stored, so
# that ``true``/``false`` (equal to 1/0 in Python) always take the checked path.
_TARGET_CACHE: dict[Any, TargetValue] = {
    word: TargetValue(state) for word, state in TARGET_WORDS.items()
}
_TARGET_CACHE_MAX = 20_000
_LESION_KINDS = {kind.value: kind for kind in LesionKind}
_NON_TARGET_STATES = {state.value: state for state in NonTargetState}


def _target_value(raw: Any) -> TargetValue:
    kind = type(raw)
    if (kind is float or kind is int) and 0 <= raw <= MAX_SIZE_MM:  # the common case, fast
        value = TargetValue(TargetState.MEASURED, mm_to_length(raw))
        if raw != 0 and raw != 1:
            if len(_TARGET_CACHE) >= _TARGET_CACHE_MAX:
                _TARGET_CACHE.clear()
                _TARGET_CACHE.update({w: TargetValue(s) for w, s in TARGET_WORDS.items()})
            _TARGET_CACHE[raw] = value
        return value
    if isinstance(raw, bool):
        raise CaseInputError(f"{raw!r} is not {TARGET_VALUE_HELP}")
    if isinstance(raw, int | float):
        if raw < 0:
            raise CaseInputError(f"negative size {raw!r} mm; a size must be ≥ 0 mm")
        return TargetValue(TargetState.MEASURED, mm_to_length(raw))
    if isinstance(raw, str):
        state = TARGET_WORDS.get(raw)
        if state is None:
            raise CaseInputError(f"{raw!r} is not {TARGET_VALUE_HELP}")
        return TargetValue(state)
    if isinstance(raw, dict) and set(raw) == {"fragments"}:
        parts = raw["fragments"]
        if not isinstance(parts, list) or not parts:
            raise CaseInputError("fragments must be a non-empty list of sizes in mm (R-SPLIT)")
        sizes = []
        for part in parts:
            if isinstance(part, bool) or not isinstance(part, int | float) or part < 0:
                raise CaseInputError(f"fragment size {part!r} is not a number ≥ 0 mm (R-SPLIT)")
            sizes.append(mm_to_length(part))
        return TargetValue(TargetState.FRAGMENTS, fragments=tuple(sizes))
    if isinstance(raw, dict) and set(raw) == {"merged_into"}:
        into = raw["merged_into"]
        if not isinstance(into, str) or not into:
            raise CaseInputError("merged_into must name a target lesion id (R-MERGE)")
        return TargetValue(TargetState.MERGED, merged_into=into)
    raise CaseInputError(f"{raw!r} is not {TARGET_VALUE_HELP}")


def target_value(raw: Any) -> TargetValue:
    """One target value of the contract (a size in mm, a word, fragments or a merge) as
    the engine's :class:`TargetValue`, at the engine's precision (R-EXACT), refusing what
    is not one (R-PLAUS-SIZE, R-SPLIT, R-MERGE). Every way in stores what this returns."""
    return _target_value(raw)


def target_to_json(value: TargetValue) -> Any:
    """A :class:`TargetValue` back to its contract form (sizes in mm): the canonical value
    that is stored, shown and audited."""
    state = value.state
    if state is TargetState.MEASURED:
        return None if value.size is None else value.size / UNITS_PER_MM
    if state is TargetState.FRAGMENTS:
        return {"fragments": [part / UNITS_PER_MM for part in value.fragments]}
    if state is TargetState.MERGED:
        return {"merged_into": value.merged_into}
    return state.value


def _baseline_size(value: Any) -> Any:
    """A baseline size as entered: mm (finite, 0–1000: R-PLAUS-SIZE) or ``"too_small"``."""
    if value is None or value == "too_small":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a size in mm or 'too_small'")
    if value < 0:
        raise ValueError("a negative size; a size must be ≥ 0 mm")
    try:
        mm_to_length(value)
    except CaseInputError as error:
        raise ValueError(
            f"not a size from 0 to {MAX_SIZE_MM} mm" + (f" ({error.rule})" if error.rule else "")
        ) from None
    return value


class BaselineLesionIn(LesionIn):
    """A lesion as selected at baseline, with its baseline value: the web's baseline entry.

    A target carries ``size`` (LD, or SA for a node; mm or ``"too_small"``), a non-target
    may carry ``state`` (default present). :func:`baseline_timepoint` makes the case's
    baseline timepoint of them.
    """

    size: Annotated[Any, BeforeValidator(_baseline_size)] = Field(
        None,
        description="baseline size in mm (LD; SA for a node) or 'too_small'",
        json_schema_extra={
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_SIZE_MM},
                {"const": "too_small"},
                {"type": "null"},
            ]
        },
    )
    state: Literal["present", "absent", "progression", "not_evaluated"] | None = None


def baseline_timepoint(
    lesions: list[BaselineLesionIn], tp_id: str, tp_date: date | str
) -> dict[str, Any]:
    """The baseline timepoint of the contract for lesions entered with their values.

    Raises
    ------
    CaseInputError
        A target without its size (R-SEL-3), a size on a non-target (it would be dropped
        unseen), or a state on a target; naming the lesion and field.
    """
    targets: dict[str, Any] = {}
    non_targets: dict[str, Any] = {}
    for le in lesions:
        if le.kind == "target":
            if le.size is None:
                raise CaseInputError(
                    "a target needs its baseline size in mm (R-SEL-3)",
                    timepoint=tp_id,
                    lesion=le.id,
                    field="size",
                    rule="R-SEL-3",
                )
            if le.state is not None:
                raise CaseInputError(
                    f"a target is measured, it has no state ({le.state!r}); give its size",
                    timepoint=tp_id,
                    lesion=le.id,
                    field="state",
                )
            targets[le.id] = le.size
        else:
            if le.size is not None:
                raise CaseInputError(
                    f"a non-target is recorded present, not measured (R-SEL-3), but a size "
                    f"({le.size}) was entered; clear the size or make the lesion a target",
                    timepoint=tp_id,
                    lesion=le.id,
                    field="size",
                    rule="R-SEL-3",
                )
            non_targets[le.id] = le.state or "present"
    return {
        "id": tp_id,
        "date": tp_date.isoformat() if isinstance(tp_date, date) else tp_date,
        "targets": targets,
        "non_targets": non_targets,
        "new_lesions": [],
    }


def lesion_json(le: LesionIn) -> dict[str, Any]:
    """A validated lesion in the contract's canonical form (no unset optional keys)."""
    out: dict[str, Any] = {"id": le.id, "site": le.site, "kind": le.kind, "nodal": le.nodal}
    if le.treated_on is not None:
        out["treated_on"] = le.treated_on.isoformat()
    for name in ("treatment", "modality", "slice_thickness_mm", "volume_ml"):
        value = getattr(le, name)
        if value is not None and value != "":
            out[name] = value
    return out


def _targets(tp: TimepointIn) -> dict[str, TargetValue]:
    """A timepoint's target values; the error names the first bad one."""
    cache = _TARGET_CACHE
    try:
        # Fast path: every value seen before (a KeyError or an unhashable dict falls back).
        return {lesion_id: cache[raw] for lesion_id, raw in tp.targets.items()}
    except (KeyError, TypeError):
        pass
    targets = {}
    for lesion_id, raw in tp.targets.items():
        try:
            targets[lesion_id] = _target_value(raw)
        except CaseInputError as error:
            raise error.located(timepoint=tp.id, lesion=lesion_id, field="targets") from None
    return targets


# Settings already built, by the validated values (a batch usually shares one protocol).
_SETTINGS_CACHE: dict[tuple[Any, ...], Settings] = {}


def _settings(model: SettingsIn) -> Settings:
    # The float's repr too: -0.0 == 0.0, but the result's settings would print differently.
    # The eligibility rules (nested, unhashable) by their JSON.
    rules = model.eligibility
    key = (
        *(v for k, v in model.__dict__.items() if k != "eligibility"),
        repr(model.reappearance_min_mm),
        None if rules is None else rules.model_dump_json(),
    )
    settings = _SETTINGS_CACHE.get(key)
    if settings is None:
        settings = Settings.from_dict(model.model_dump())
        if len(_SETTINGS_CACHE) >= 256:
            _SETTINGS_CACHE.clear()
        _SETTINGS_CACHE[key] = settings
    return settings


# Lesions already built, by their validated fields: a Lesion is immutable, and the cases
# of a trial declare the same lesions (T1 liver target…) over and over.
_LESION_CACHE: dict[tuple[Any, ...], Lesion] = {}


def _lesions(model: CaseIn) -> tuple[Lesion, ...]:
    cache = _LESION_CACHE
    lesions = []
    for le in model.lesions:
        key = (
            le.id,
            le.site,
            le.kind,
            le.nodal,
            le.treated_on,
            le.treatment,
            le.modality,
            le.slice_thickness_mm,
            le.volume_ml,
        )
        lesion = cache.get(key)
        if lesion is None:
            lesion = Lesion(
                le.id,
                le.site,
                _LESION_KINDS[le.kind],
                le.nodal,
                le.treated_on,
                le.treatment,
                le.modality,
                le.slice_thickness_mm,
                le.volume_ml,
            )
            if len(cache) >= 20_000:
                cache.clear()
            cache[key] = lesion
        lesions.append(lesion)
    return tuple(lesions)


def _new_size(tp: TimepointIn, n: NewLesionIn) -> float | str | None:
    """A new lesion's size: ``size_mm``, or for a node ``short_axis_mm`` (its older name);
    both given, they must agree."""
    if n.nodal and n.short_axis_mm is not None:
        if n.size_mm is not None and n.size_mm != n.short_axis_mm:
            raise CaseInputError(
                f"size_mm {n.size_mm!r} and short_axis_mm {n.short_axis_mm!r} differ; a node's "
                "size is its short axis: give one of them",
                timepoint=tp.id,
                lesion=n.id,
                field="new_lesions",
            )
        return n.short_axis_mm
    size: float | str | None = n.size_mm  # checked by _new_size_value
    return size


def _recist_new_lesions(tp: TimepointIn) -> tuple[NewLesion, ...]:
    """RECIST 1.1's new lesions of ``tp`` (R-NEW-1 reads a node's size)."""
    out = []
    for n in tp.new_lesions:
        size = _new_size(tp, n)
        if n.category is not None or n.state is not None or isinstance(size, str):
            what = (
                "category"
                if n.category is not None
                else "state"
                if n.state is not None
                else f"size_mm {size!r}"
            )
            raise CaseInputError(
                f"{what} belongs to iRECIST's follow-up of new lesions (I-NEW-4): set the "
                "setting criteria to 'irecist', or leave it out (RECIST 1.1 lists a new lesion "
                "when it is seen)",
                timepoint=tp.id,
                lesion=n.id,
                field="new_lesions",
                rule="I-NEW-4",
            )
        out.append(
            NewLesion(n.id, n.site, n.equivocal, n.nodal, size if n.nodal else n.short_axis_mm)
        )
    return tuple(out)


def _same_site(one: Any, other: Any) -> bool:
    return str(one).strip().lower() == str(other).strip().lower()


def _irecist_timepoints(model: CaseIn) -> list[Timepoint]:
    """The timepoints of an iRECIST case: each new lesion's listings as records (I-NEW-4).

    A later listing that leaves out ``site`` or ``nodal`` keeps those of the lesion's first
    listing; one that gives others is refused.
    """
    states = _NON_TARGET_STATES
    first: dict[str, NewLesionIn] = {}
    out: list[Timepoint] = []
    for tp in model.timepoints:
        records = []
        for n in tp.new_lesions:
            seen = first.setdefault(n.id, n)
            site, nodal = n.site, n.nodal
            if seen is not n:
                given = n.model_fields_set
                for name, mine, theirs in (
                    ("site", n.site, seen.site),
                    ("nodal", nodal, seen.nodal),
                ):
                    same = _same_site(mine, theirs) if name == "site" else mine == theirs
                    if name in given and not same:
                        raise CaseInputError(
                            f"{name} {mine!r} differs from the first listing of this new lesion "
                            f"({theirs!r}); a new lesion keeps its site and nodal flag (I-NEW-4)",
                            timepoint=tp.id,
                            lesion=n.id,
                            field="new_lesions",
                            rule="I-NEW-4",
                        )
                site, nodal = seen.site, seen.nodal
            size = _new_size(tp, n.model_copy(update={"nodal": nodal}))
            try:
                records.append(
                    NewLesionRecord(
                        n.id,
                        site,
                        nodal,
                        n.equivocal,
                        NewLesionCategory(n.category) if n.category is not None else None,
                        None
                        if size is None
                        else TargetValue(NEW_SIZE_WORDS[size])
                        if isinstance(size, str)
                        else TargetValue(TargetState.MEASURED, mm_to_length(size)),
                        states[n.state] if n.state is not None else None,
                    )
                )
            except CaseInputError as error:
                raise error.located(timepoint=tp.id, field="new_lesions") from None
        out.append(
            irecist_timepoint(
                tp.id,
                tp.date,
                _targets(tp),
                {k: states[v] for k, v in tp.non_targets.items()},
                records,
                dict(tp.scan_dates),
            )
        )
    return out


def _convert(model: CaseIn) -> Case:
    lesions = _lesions(model)
    states = _NON_TARGET_STATES
    if model.settings.criteria == Criteria.IRECIST.value:
        timepoints = tuple(_irecist_timepoints(model))
    else:
        timepoints = tuple(
            [
                Timepoint(
                    tp.id,
                    tp.date,
                    _targets(tp),
                    {k: states[v] for k, v in tp.non_targets.items()},
                    _recist_new_lesions(tp) if tp.new_lesions else (),
                    dict(tp.scan_dates),
                )
                for tp in model.timepoints
            ]
        )
    return Case(
        model.subject_id,
        lesions,
        timepoints,
        _settings(model.settings),
        model.arm,
        model.randomized_on,
        model.died_on,
        model.new_therapy_on,
        model.last_known_alive_on,
        model.reader,
        model.accepted,
    )


_BOUND_ERRORS = frozenset(
    {"finite_number", "less_than_equal", "less_than", "greater_than_equal", "greater_than"}
)
_SIZE_FIELDS = frozenset({"short_axis_mm", "size_mm", "slice_thickness_mm"})


_RULE_ID = re.compile(r"\(([RI]-[A-Z]+(?:-[A-Z0-9]+)*)\)")


def _rule(error: Any) -> str | None:
    """The plausibility rule a bound check of the models stands for, if any."""
    loc = error["loc"]
    if error["type"] == "value_error":
        cited = _RULE_ID.search(str(error["ctx"]["error"]))
        return cited.group(1) if cited else None
    if error["type"] not in _BOUND_ERRORS or not loc:
        return None
    if loc[0] == "settings":
        return "R-PLAUS-SETTINGS"
    if loc[-1] in _SIZE_FIELDS:
        return "R-PLAUS-SIZE"
    return None


def validation_error(
    exc: ValidationError, obj: Any, prefix: tuple[int | str, ...] = ()
) -> CaseInputError:
    """The first error of a failed validation as one located :class:`CaseInputError`.

    ``obj`` is the input that was validated; ``prefix`` locates it inside a case (e.g.
    ``("timepoints", 2)`` for one timepoint validated alone), so the error names the
    subject, timepoint, lesion and field in every way in (CLI, API, forms).
    """
    error = exc.errors()[0]
    loc = prefix + tuple(error["loc"])
    error = {**error, "loc": loc}
    whole: Any = obj
    for part in reversed(prefix):
        whole = [whole] * (int(part) + 1) if isinstance(part, int) else {part: whole}
    where = _locate(whole, loc)
    return CaseInputError(
        _message(error),
        subject=where["subject"],
        timepoint=where["timepoint"],
        lesion=where["lesion"],
        field=_path(loc),
        rule=_rule(error),
    )


def check_not_after(case: Case, today: date) -> None:
    """R-PLAUS-DATE: refuse any date of the case after ``today`` (a clock the caller
    owns: the CLI's ``--today``, the web's clock), naming where it is."""
    for name, when, where in case.dates():
        problem = date_problem(when, today)
        if problem is not None:
            raise CaseInputError(
                problem, subject=case.subject_id, field=name, rule="R-PLAUS-DATE", **where
            )


def parse_case(obj: Any, *, today: date | None = None) -> Case:
    """Validate one case of the JSON contract and build the engine's :class:`Case`.

    ``today``, when given, refuses dates after it (R-PLAUS-DATE).

    Raises
    ------
    CaseInputError
        One sentence naming the subject, timepoint, lesion and field that are wrong.
    """
    if not isinstance(obj, dict):
        raise CaseInputError(f"a case must be a JSON object, got {type(obj).__name__}")
    try:
        model = CaseIn.model_validate(obj)
    except ValidationError as exc:
        raise validation_error(exc, obj) from None
    try:
        case = _convert(model)
    except CaseInputError as error:
        raise error.located(subject=model.subject_id) from None
    if today is not None:
        check_not_after(case, today)
    return case


def parse_case_text(text: str | bytes, *, today: date | None = None) -> Case:
    """Like :func:`parse_case`, from the JSON text of one case (the fast path of JSON
    Lines: pydantic parses and validates in one pass)."""
    try:
        model = CaseIn.model_validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "json_invalid":
            raise CaseInputError(f"malformed JSON: {error['msg']}") from None
        # Validate the parsed object again to name the subject, timepoint and lesion.
        parse_case(json.loads(text))
        raise  # pragma: no cover - parse_case raises the located error
    try:
        case = _convert(model)
    except CaseInputError as error:
        raise error.located(subject=model.subject_id) from None
    if today is not None:
        check_not_after(case, today)
    return case


@lru_cache(maxsize=64)
def _settings_values(settings: Settings) -> dict[str, Any]:
    return settings.to_dict()


def _settings_dict(settings: Settings) -> dict[str, Any]:
    """The settings as a fresh dict (cached: a batch usually shares one protocol; the
    values are immutable scalars, so a shallow copy is a fresh result)."""
    return dict(_settings_values(settings))


def _mm(length: int | None) -> float | None:
    return None if length is None else length_to_mm(length)


def _best(best: BestResponse) -> dict[str, Any]:
    return {
        "response": best.response.value,
        "timepoint": best.timepoint,
        "reasons": list(best.reasons),
    }


# A response or new-lesion code as its JSON string (``None`` stays ``None``).
_CODES: dict[Any, str | None] = {
    None: None,
    **{code: code.value for code in Response},
    **{code: code.value for code in NewLesionStatus},
}


def timepoint_to_json(tp: TimepointResult) -> dict[str, Any]:
    """One timepoint's result in the contract's shape (sizes in mm)."""
    codes = _CODES
    if tp.overall_response is not None and tp.partial_sum is None:  # a follow-up, complete
        return {
            "id": tp.id,
            "date": tp.date.isoformat(),
            "sum_mm": None if tp.sum is None else tp.sum / UNITS_PER_MM,
            "nadir_mm": None if tp.nadir is None else tp.nadir / UNITS_PER_MM,
            "change_from_baseline_pct": tp.change_from_baseline_pct,
            "change_from_nadir_pct": tp.change_from_nadir_pct,
            "target_response": codes[tp.target_response],
            "non_target_response": codes[tp.non_target_response],
            "new_lesions": codes[tp.new_lesions],
            "overall_response": codes[tp.overall_response],
            "reasons": list(tp.reasons),
            "flags": {k: list(v) for k, v in tp.flags.items()} if tp.flags else {},
        }
    out: dict[str, Any] = {
        "id": tp.id,
        "date": tp.date.isoformat(),
        "sum_mm": None if tp.sum is None else tp.sum / UNITS_PER_MM,
    }
    if tp.partial_sum is not None:
        out["partial_sum_mm"] = tp.partial_sum / UNITS_PER_MM
    if tp.overall_response is not None:
        out["nadir_mm"] = None if tp.nadir is None else tp.nadir / UNITS_PER_MM
        out["change_from_baseline_pct"] = tp.change_from_baseline_pct
        out["change_from_nadir_pct"] = tp.change_from_nadir_pct
    out["target_response"] = codes[tp.target_response]
    out["non_target_response"] = codes[tp.non_target_response]
    out["new_lesions"] = codes[tp.new_lesions]
    out["overall_response"] = codes[tp.overall_response]
    out["reasons"] = list(tp.reasons)
    out["flags"] = {k: list(v) for k, v in tp.flags.items()} if tp.flags else {}
    return out


def _i_best(best: IBestResponse) -> dict[str, Any]:
    return {
        "response": best.response.value,
        "timepoint": best.timepoint,
        "reasons": list(best.reasons),
    }


def _code(value: Any) -> str | None:
    return None if value is None else str(value.value)


def irecist_timepoint_to_json(tp: IrecistTimepointResult) -> dict[str, Any]:
    """One iRECIST timepoint in the contract's shape: the RECIST 1.1 fields with iRECIST's
    codes, and the new lesions' response and sum (I-NEW-3, I-NEW-4)."""
    out: dict[str, Any] = {
        "id": tp.id,
        "date": tp.date.isoformat(),
        "sum_mm": _mm(tp.sum),
    }
    if tp.partial_sum is not None:
        out["partial_sum_mm"] = _mm(tp.partial_sum)
    if tp.overall_response is not None:
        out["nadir_mm"] = _mm(tp.nadir)
        out["change_from_baseline_pct"] = tp.change_from_baseline_pct
        out["change_from_nadir_pct"] = tp.change_from_nadir_pct
    out["target_response"] = _code(tp.target_response)
    out["non_target_response"] = _code(tp.non_target_response)
    out["new_lesions"] = _code(tp.new_lesions)
    out["new_lesion_response"] = _code(tp.new_lesion_response)
    out["new_target_sum_mm"] = _mm(tp.new_target_sum)
    if tp.new_target_partial_sum is not None:
        out["new_target_partial_sum_mm"] = _mm(tp.new_target_partial_sum)
    out["new_target_nadir_mm"] = _mm(tp.new_target_nadir)
    out["overall_response"] = _code(tp.overall_response)
    out["reasons"] = list(tp.reasons)
    out["flags"] = {k: list(v) for k, v in tp.flags.items()}
    return out


def irecist_result_to_json(result: IrecistResult) -> dict[str, Any]:
    """An iRECIST result in the contract's shape, the RECIST 1.1 result as ``recist1_1``."""
    progression = result.progression
    best = result.best_overall_response
    return {
        "subject_id": result.subject_id,
        "criteria": Criteria.IRECIST.value,
        "warnings": [f.to_dict() for f in result.warnings],
        "queries": [q.to_dict() for q in result.queries],
        "timepoints": [irecist_timepoint_to_json(tp) for tp in result.timepoints],
        "best_overall_response": best.response.value,
        "best_overall_response_detail": _i_best(best),
        "best_overall_response_confirmed": result.best_overall_response_confirmed.response.value,
        "best_overall_response_unconfirmed": (
            result.best_overall_response_unconfirmed.response.value
        ),
        "progression": None
        if progression is None
        else {
            "timepoint": progression.timepoint,
            "date": progression.date.isoformat(),
            "reason": progression.reason.value,
            "back_dated": progression.back_dated,
            "iupd_timepoint": result.iupd_timepoint,
        },
        "pfs": result.pfs.to_dict(),
        "new_lesion_categories": [n.to_dict() for n in result.new_lesions],
        "settings": _settings_dict(result.settings),
        "recist1_1": result_to_json(result.recist1_1),
    }


def result_to_json(result: CaseResult) -> dict[str, Any]:
    """A case result in the contract's shape, plus both best-response variants."""
    progression = result.progression
    pfs = result.pfs
    best = result.best_overall_response
    return {
        "subject_id": result.subject_id,
        "warnings": [f.to_dict() for f in result.warnings] if result.warnings else [],
        "queries": [q.to_dict() for q in result.queries] if result.queries else [],
        "timepoints": [timepoint_to_json(tp) for tp in result.timepoints],
        "best_overall_response": best.response.value,
        "best_overall_response_detail": _best(best),
        "best_overall_response_confirmed": result.best_overall_response_confirmed.response.value,
        "best_overall_response_unconfirmed": (
            result.best_overall_response_unconfirmed.response.value
        ),
        "progression": None
        if progression is None
        else {
            "timepoint": progression.timepoint,
            "date": progression.date.isoformat(),
            "reason": progression.reason.value,
            "back_dated": progression.back_dated,
        },
        "pfs": {
            "event": pfs.event,
            "date": pfs.date.isoformat(),
            "days": pfs.days,
            "reason": pfs.reason.value,
            "explanation": pfs.explanation,
        },
        "settings": _settings_dict(result.settings),
    }


def assess_json(obj: Any, *, today: date | None = None) -> dict[str, Any]:
    """Parse, assess and serialise one case: a dict, or the JSON text of one case.

    ``today``, when given, refuses dates after it (R-PLAUS-DATE).

    Raises
    ------
    RecistError
        :class:`CaseInputError` for bad input, ``ProtocolDeviationError`` in strict mode.
    """
    case = (
        parse_case_text(obj, today=today)
        if isinstance(obj, str | bytes)
        else parse_case(obj, today=today)
    )
    try:
        result = assess(case)
    except RecistError as error:
        raise error.located(subject=case.subject_id) from None
    out = (
        irecist_result_to_json(result)
        if isinstance(result, IrecistResult)
        else result_to_json(result)
    )
    if case.arm is not None:
        out["arm"] = case.arm
    if case.reader is not None:
        out["reader"] = case.reader
    if case.accepted is not None:
        out["accepted"] = case.accepted
    return out
