"""The JSON contract of ``recist assess`` (docs/contracts.md), in and out.

This is the engine's boundary: it validates a case's structure with pydantic (unknown
keys refused with their path, so a typo never passes silently) and hands the validated
values to :mod:`recist.contract`, which builds the core objects once and turns results
back into JSON-ready dicts. The models below are the one definition of the contract: the
published JSON Schema of a case (``recist/schema/case.schema.json``) is generated from
them, the web validates its forms with them, and the engine's validator (:data:`_CASE`)
is derived from them.
"""

from __future__ import annotations

import json
import re
from datetime import date
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
from pydantic_core import SchemaValidator

from recist.contract import (
    NEW_SIZE_WORDS,
    TARGET_VALUE_HELP,
    assess_case,
    case_of,
    iso_date_text,
    keys_given,
    site_text,
)
from recist.errors import CaseInputError
from recist.lesions import (
    MAX_SIZE_MM,
    Case,
    mm_to_length,
)
from recist.settings import (
    MAX_DAYS,
    MAX_ELIGIBLE_LESIONS,
    MAX_PROTOCOL_TEXT,
    MAX_SETTING_MM,
    MAX_SITE_TEXT,
    MAX_VOLUME_ML,
    with_profile,
)

Number = float | int


# The validators of dates and sites are in recist.contract, which the compiled core
# compiles: the validator calls them for every date and site of every case.
IsoDate = Annotated[date, BeforeValidator(iso_date_text)]


def _site_schema(schema: dict[str, Any]) -> None:
    # Optional (no "required"), but when given not blank; the internal default "" is no
    # value a client may send, so the schema shows none (OpenAPI checks defaults).
    schema.pop("default", None)
    schema["pattern"] = r"\S"


# A lesion's site: optional, but never given empty.
Site = Annotated[
    StrictStr,
    AfterValidator(site_text),
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


def _plain(schema: Any) -> Any:
    """The core schema of a model with every model turned into a typed dict of the same
    fields, validators and constraints (pydantic-core's own ``typed-dict`` schema), whose
    defaults are left out: validation then gives the plain dicts and lists of the input,
    checked and converted exactly as the model would (the same errors at the same
    locations), with only the keys given. Building no model objects, it validates a case
    in about half the time, and :mod:`recist.contract` reads the dicts directly."""
    if isinstance(schema, list):
        return [_plain(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") != "model":
        return {key: _plain(value) for key, value in schema.items()}
    wrappers = []  # model validators (mode "before") around the fields
    inner = schema["schema"]
    while inner["type"] != "model-fields":
        wrappers.append(inner)
        inner = inner["schema"]
    fields = {}
    for name, field in inner["fields"].items():
        value = _plain(field["schema"])
        required = value.get("type") != "default"
        fields[name] = {
            "type": "typed-dict-field",
            "schema": value if required else value["schema"],
            "required": required,
        }
    config = schema.get("config", {})
    out: dict[str, Any] = {
        "type": "typed-dict",
        "fields": fields,
        "extra_behavior": config.get("extra_fields_behavior", "ignore"),
        "config": config,  # e.g. allow_inf_nan, for the fields of this model
    }
    for wrapper in reversed(wrappers):
        out = {**wrapper, "schema": out}
    return out


_CASE = SchemaValidator(_plain(CaseIn.__pydantic_core_schema__), CaseIn.model_config)  # type: ignore[arg-type]


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
        raw = _CASE.validate_python(obj)
    except ValidationError as exc:
        raise validation_error(exc, obj) from None
    return case_of(raw, today)


def parse_case_text(text: str | bytes, *, today: date | None = None) -> Case:
    """Like :func:`parse_case`, from the JSON text of one case (pydantic parses and
    validates it in one pass)."""
    try:
        raw = _CASE.validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "json_invalid":
            raise CaseInputError(f"malformed JSON: {error['msg']}") from None
        # Validate the parsed object again to name the subject, timepoint and lesion.
        parse_case(json.loads(text))
        raise  # pragma: no cover - parse_case raises the located error
    return case_of(raw, today)


def assess_json_line(text: str, *, today: date | None = None) -> dict[str, Any] | None:
    """:func:`assess_json` of one line of JSON Lines whose limits were checked already
    (:class:`recist.safejson.CaseInput` ``checked``), in one pass: pydantic parses and
    validates the text without the limited reader's pass over it first.

    Returns ``None`` when this path cannot vouch for the line; the caller then reads it
    the usual way (:func:`recist.safejson.loads` and :func:`assess_json`), which gives
    the same result and every refusal in its usual words. That is the case for anything
    the validation refuses, for ``NaN`` or ``Infinity`` (refused by the limited reader),
    for a settings profile (its values stand in for keys not written), and for a key
    given twice in one object, which this parser would take silently: every key of
    the text is followed by one ``:``, so ``text.count(":")`` is the number of keys
    written plus the colons inside strings, and it equals the keys kept
    (:func:`recist.contract.keys_given`) only when no key was given twice (and no string
    holds a colon).

    Raises
    ------
    RecistError
        As :func:`assess_json`, for a line that validates but is refused later (its
        dates, its lesions' consistency, strict mode).
    """
    if "NaN" in text or "Infinity" in text:
        return None
    try:
        raw = _CASE.validate_json(text)
    except ValidationError:
        return None
    settings = raw.get("settings")
    if (settings is not None and "settings_profile" in settings) or text.count(":") != keys_given(
        raw
    ):
        return None
    return assess_case(case_of(raw, today))


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
    return assess_case(case)
