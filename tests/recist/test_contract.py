"""The engine's validator is derived from the contract's models (``recist.jsonio._CASE``):
it must accept, refuse and default exactly as the models do, so that the models stay the
one definition of the contract (docs/contracts.md)."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from recist.contract import case_of, keys_given, keys_in
from recist.errors import CaseInputError
from recist.jsonio import (
    _CASE,
    CaseIn,
    EligibilityIn,
    LesionIn,
    NewLesionIn,
    SettingsIn,
    TimepointIn,
    assess_json,
    parse_case,
)
from recist.settings import Settings

MINIMAL: dict[str, Any] = {
    "subject_id": "S-1",
    "lesions": [
        {"id": "T1", "kind": "target"},
        {"id": "NT1", "kind": "non-target"},
    ],
    "timepoints": [
        {"id": "BL", "date": "2024-01-08", "targets": {"T1": 40}},
        {
            "id": "W8",
            "date": "2024-03-04",
            "targets": {"T1": 30},
            "new_lesions": [{"id": "N1"}],
        },
    ],
}


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The model's defaults that a client may also write out (a site's internal default
    "" is no value a client may send: a blank site is refused)."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required() and name != "site"
    }


def _with_every_default(case: dict[str, Any]) -> dict[str, Any]:
    """``case`` with every optional key written out at its model's default."""
    full = copy.deepcopy(case)
    for name, value in _defaults(CaseIn).items():
        if name != "settings":
            full.setdefault(name, value)
    full["settings"] = {
        name: value for name, value in _defaults(SettingsIn).items() if name != "eligibility"
    }
    for lesion in full["lesions"]:
        for name, value in _defaults(LesionIn).items():
            lesion.setdefault(name, value)
    for tp in full["timepoints"]:
        for name, value in _defaults(TimepointIn).items():
            tp.setdefault(name, value)
        for new in tp["new_lesions"]:
            for name, value in _defaults(NewLesionIn).items():
                new.setdefault(name, value)
    return full


def test_a_key_left_out_means_its_models_default():
    # The derived validator leaves out the keys not given; the engine's reading of a
    # missing key must be the model's default, or the two definitions drift apart.
    full = _with_every_default(MINIMAL)
    assert full != MINIMAL  # not vacuous: defaults were written out
    assert full["lesions"][0]["nodal"] is False and full["settings"]["confirmation"] is False
    assert parse_case(full) == parse_case(MINIMAL)
    assert assess_json(full) == assess_json(MINIMAL)
    site = LesionIn.model_fields["site"].default
    assert parse_case(MINIMAL).lesions[0].site == site == NewLesionIn.model_fields["site"].default
    assert parse_case(MINIMAL).timepoints[1].new_lesions[0].site == site


def test_the_settings_defaults_of_the_model_and_of_the_engine_agree():
    given = {name: value for name, value in _defaults(SettingsIn).items() if value is not None}
    assert Settings.from_dict(given) == Settings()
    rules = {"max_lesions": 5}
    assert Settings.from_dict({"eligibility": rules}) == Settings.from_dict(
        {"eligibility": {**_defaults(EligibilityIn), **rules}}
    )


def test_the_validator_gives_only_the_keys_given_checked_and_converted():
    raw = _CASE.validate_python(MINIMAL)
    assert set(raw) == {"subject_id", "lesions", "timepoints"}
    assert set(raw["lesions"][0]) == {"id", "kind"}
    assert raw["timepoints"][0]["date"].isoformat() == "2024-01-08"
    assert keys_given(raw) == 3 + 2 * 2 + (3 + 1) + (4 + 1 + 1)
    assert case_of(raw) == parse_case(MINIMAL)


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    case = copy.deepcopy(MINIMAL)
    where: Any = case
    for part in path[:-1]:
        where = where[part]
    if value is KeyError:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    return case


BROKEN = [
    (("subject_id",), KeyError),
    (("subject_id",), ""),
    (("lesions", 0, "kind"), "targt"),
    (("lesions", 0, "nodal"), "yes"),
    (("lesions", 0, "site"), "   "),
    (("lesions", 0, "slice_thickness_mm"), 0),
    (("lesions", 0, "volume_ml"), -1),
    (("lesions", 1, "colour"), "red"),
    (("timepoints", 0, "date"), 20240108),
    (("timepoints", 0, "date"), "2024-13-01"),
    (("timepoints", 1, "non_targets"), {"NT1": "gone"}),
    (("timepoints", 1, "new_lesions", 0, "size_mm"), -3),
    (("timepoints", 1, "new_lesions", 0, "size_mm"), "big"),
    (("timepoints", 1, "new_lesions", 0, "category"), "nontarget"),
    (("timepoints", 1, "scan_dates"), {"T1": "soon"}),
    (("settings",), {"sd_min_days": -1}),
    (("settings",), {"confirmation": "true"}),
    (("settings",), {"eligibility": {"max_lesions": 0}}),
    (("settings",), {"eligibility": {"sites": {"liver": {"max_diameter_mm": 0}}}}),
    (("settings",), {"criteria": "recist"}),
    (("timepoints",), []),
]


@pytest.mark.parametrize(("path", "value"), BROKEN)
def test_the_validator_refuses_as_the_model_does(path, value):
    case = _broken(path, value)
    with pytest.raises(ValidationError):
        CaseIn.model_validate(case)
    with pytest.raises(ValidationError) as by_validator:
        _CASE.validate_python(case)

    assert by_validator.value.errors() and _outcome(_CASE.validate_python, case) == _outcome(
        CaseIn.model_validate, case
    )


def test_a_settings_profile_fills_the_same_values_through_the_validator():
    case = {**MINIMAL, "settings": {"settings_profile": "admiralonco"}}
    model = CaseIn.model_validate(case)
    raw = _CASE.validate_python(case)
    given = {name: getattr(model.settings, name) for name in raw["settings"]}
    assert raw["settings"] == given and len(raw["settings"]) > 1


HOSTILE = [
    None,
    True,
    0,
    -1,
    0.5,
    1e9,
    float("nan"),
    float("inf"),
    "",
    " ",
    "x",
    "2024-02-30",
    "2024-02-01",
    20240201,
    [],
    {},
    {"x": 1},
    [1, 2],
    "present",
    "target",
    "too_small",
    {"fragments": [1]},
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and item path in a JSON value, and a new key in every object."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        out.append((*prefix, "extra_key"))
        for key, item in value.items():
            out.append((*prefix, key))
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.append((*prefix, index))
            out.extend(_paths(item, (*prefix, index)))
    return out


RICH: dict[str, Any] = {
    **MINIMAL,
    "arm": "A",
    "randomized_on": "2024-01-10",
    "settings": {
        "confirmation": True,
        "reappearance_min_mm": 5,
        "eligibility": {"max_lesions": 5, "sites": {"liver": {"max_diameter_mm": 70}}},
    },
    "lesions": [
        {"id": "T1", "kind": "target", "site": "liver", "nodal": False, "volume_ml": 3.5},
        {"id": "NT1", "kind": "non-target", "treated_on": "2023-12-01"},
    ],
    "timepoints": [
        {
            "id": "BL",
            "date": "2024-01-08",
            "targets": {"T1": 40},
            "non_targets": {"NT1": "present"},
        },
        {
            "id": "W8",
            "date": "2024-03-04",
            "targets": {"T1": 30},
            "non_targets": {"NT1": "present"},
            "new_lesions": [{"id": "N1", "site": "lung", "equivocal": True, "short_axis_mm": 4}],
            "scan_dates": {"T1": "2024-03-01"},
        },
    ],
}
RICH_PATHS = _paths(RICH)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(RICH_PATHS), st.sampled_from([KeyError, *HOSTILE])),
        min_size=1,
        max_size=3,
    )
)
def test_a_spoiled_case_meets_the_same_answer_from_the_model_and_the_validator(edits):
    # Differential: hostile values and missing keys anywhere in a rich case; the derived
    # validator accepts exactly what the model accepts, refusing with the same errors.
    case = copy.deepcopy(RICH)
    for path, value in edits:
        where: Any = case
        try:
            for part in path[:-1]:
                where = where[part]
            if value is KeyError:
                if isinstance(where, dict):
                    where.pop(path[-1], None)
            else:
                where[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit changed the shape under this path

    outcome = _outcome(_CASE.validate_python, case)
    assert outcome == _outcome(CaseIn.model_validate, case)
    if outcome == "accepted":  # the fast path's key count walks less, to the same count
        raw = _CASE.validate_python(case)
        assert keys_given(raw) == keys_in(raw)


def _outcome(validate: Any, case: Any) -> Any:
    """The errors of a validation, or "accepted". The one difference the derived
    validator is meant to have: where an object is expected and something else is given,
    it says "a valid dictionary" without the model's "or instance of SiteLimitsIn" (a
    class name no client of the contract knows)."""
    try:
        validate(case)
    except ValidationError as exc:
        return [
            ("dict_type", e["loc"], "Input should be a valid dictionary")
            if e["type"] == "model_type"
            else (e["type"], e["loc"], e["msg"])
            for e in exc.errors()
        ]
    return "accepted"


def test_the_date_range_spans_every_date_the_plausibility_checks_locate():
    # Case.date_range (min/max, no list) and Case.dates (each date with where it is) list
    # the same dates twice over: a date kind added to one only would escape R-PLAUS-DATE.
    case = {
        **RICH,
        "died_on": "2024-06-01",
        "new_therapy_on": "2024-05-01",
        "last_known_alive_on": "2024-06-01",
        "randomized_on": "2024-01-09",
    }
    built = parse_case(case)
    whens = [when for _name, when, _where in built.dates()]
    assert {"treated_on", "scan_dates", "date", "died_on"} <= {n for n, _w, _x in built.dates()}
    assert built.date_range() == (min(whens), max(whens))
    # The latest of each kind, past "today", is refused and located (check_not_after
    # looks only when date_range says a date is past today).
    today = date(2024, 6, 15)
    assert parse_case(case, today=today) == built
    later = "2024-07-01"
    spoiled = [
        ({**case, "died_on": later, "last_known_alive_on": later}, "died_on"),
        ({**case, "new_therapy_on": later}, "new_therapy_on"),
        ({**case, "last_known_alive_on": later}, "last_known_alive_on"),
    ]
    lesions = copy.deepcopy(case["lesions"])
    lesions[1]["treated_on"] = later
    spoiled.append(({**case, "lesions": lesions}, "treated_on"))
    timepoints = copy.deepcopy(case["timepoints"])
    timepoints[1]["scan_dates"] = {"T1": later}
    spoiled.append(({**case, "timepoints": timepoints}, "scan_dates"))
    for spoilt, field in spoiled:
        with pytest.raises(CaseInputError, match="in the future") as refused:
            parse_case(spoilt, today=today)
        assert refused.value.field == field and refused.value.rule == "R-PLAUS-DATE"
