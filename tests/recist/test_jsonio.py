"""The case contract's refusals: each names the subject, timepoint, lesion and field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from recist.errors import CaseInputError
from recist.jsonio import assess_json, case_json_schema, parse_case
from tests.recist.conftest import case, fu

SCHEMA_FILE = Path(__file__).parents[2] / "recist" / "schema" / "case.schema.json"


def refuse(c, pattern: str) -> CaseInputError:
    with pytest.raises(CaseInputError, match=pattern) as info:
        parse_case(c)
    return info.value


def test_unknown_lesion_in_targets_is_refused_naming_it():
    c = case({"T1": 30.0}, fu(targets={"T1": 20.0, "T9": 4.0}))
    error = refuse(c, r"^subject S-001, timepoint FU1, lesion T9, field targets: .*not a known")
    assert (error.timepoint, error.lesion) == ("FU1", "T9")


def test_negative_size_is_refused():
    refuse(case({"T1": 30.0}, fu(targets={"T1": -1})), r"timepoint FU1, lesion T1.*negative")


def test_non_numeric_size_is_refused():
    refuse(case({"T1": 30.0}, fu(targets={"T1": "12"})), r"lesion T1.*'12' is not a number")


def test_boolean_size_is_refused():
    refuse(case({"T1": 30.0}, fu(targets={"T1": True})), r"lesion T1.*True is not")


def test_dates_out_of_order_are_refused():
    c = case({"T1": 30.0}, fu(date="2020-12-01", targets={"T1": 30.0}))
    refuse(c, r"timepoint FU1, field date: date 2020-12-01 is before .* BL")


def test_a_follow_up_before_randomisation_is_refused_but_a_baseline_before_it_is_not():
    # Baseline 2021-01-04, follow-ups every 56 days from it: FU1 2021-03-01.
    c = case({"T1": 30.0}, fu(targets={"T1": 20.0}), randomized_on="2021-03-15")
    refuse(
        c,
        r"^subject S-001, timepoint FU1, field date: follow-up date 2021-03-01 is before "
        r"randomisation \(2021-03-15\).*\(§8\)",
    )
    ok = case({"T1": 30.0}, fu(targets={"T1": 20.0}), randomized_on="2021-01-10")
    assert assess_json(ok)["pfs"]["days"] > 0


def test_death_before_randomisation_or_baseline_is_refused():
    c = case({"T1": 30.0}, randomized_on="2021-01-10", died_on="2021-01-08")
    refuse(c, r"field died_on: death date 2021-01-08 is before randomisation \(2021-01-10\)")
    c = case({"T1": 30.0}, died_on="2020-12-31")
    refuse(c, r"field died_on: death date 2020-12-31 is before the baseline")


def test_target_without_baseline_size_is_refused():
    c = case({"T1": 30.0})
    c["timepoints"][0]["targets"] = {}
    refuse(c, r"timepoint BL, lesion T1, field targets: target has no baseline size.*R-SEL-3")


def test_unknown_key_is_refused_with_its_path():
    c = case({"T1": 30.0}, fu(targets={"T1": 30.0}))
    c["timepoints"][1]["targtes"] = {}
    refuse(c, r"timepoint FU1, field timepoints\[1\]\.targtes: unknown key 'targtes'")


def test_unknown_setting_is_refused():
    c = case({"T1": 30.0}, settings={"confirmaton": True})
    refuse(c, r"field settings\.confirmaton: unknown key")


def test_unknown_non_target_state_is_refused():
    c = case(
        {"T1": 30.0}, fu(targets={"T1": 30.0}, non_targets={"NT1": "stable"}), non_targets=("NT1",)
    )
    refuse(c, r"timepoint FU1, lesion NT1, field timepoints\[1\]\.non_targets\.NT1: 'stable'")


def test_malformed_date_is_refused():
    c = case({"T1": 30.0}, fu(date="2021-13-01", targets={"T1": 30.0}))
    refuse(c, r"timepoint FU1, field timepoints\[1\]\.date: '2021-13-01' is not a date")


def test_missing_required_key_is_refused():
    refuse({"subject_id": "S-1", "lesions": []}, r"subject S-1, field timepoints: required key")


def test_merge_into_unknown_target_is_refused():
    c = case({"T1": 30.0}, fu(targets={"T1": {"merged_into": "T7"}}))
    refuse(c, r"lesion T1, field targets: merged into 'T7'.*R-MERGE")


def test_empty_fragment_list_is_refused():
    refuse(case({"T1": 30.0}, fu(targets={"T1": {"fragments": []}})), r"R-SPLIT")


def test_duplicate_lesion_id_is_refused():
    c = case({"T1": 30.0})
    c["lesions"].append(dict(c["lesions"][0]))
    refuse(c, r"lesion T1, field id: lesion id is used twice")


def test_new_lesion_reusing_a_baseline_id_is_refused():
    c = case({"T1": 30.0}, fu(targets={"T1": 30.0}, new_lesions=[{"id": "T1"}]))
    refuse(c, r"timepoint FU1, lesion T1.*reuses the id")


def test_non_object_case_is_refused():
    refuse([1, 2], r"a case must be a JSON object")


def test_the_published_schema_is_the_generated_one():
    assert json.loads(SCHEMA_FILE.read_text()) == case_json_schema()


def test_the_published_schema_accepts_a_contract_case_and_rejects_a_typo():
    schema = json.loads(SCHEMA_FILE.read_text())
    c = case({"T1": 30.0, "N1": 17.0}, fu(targets={"T1": "too_small", "N1": 9.0}), nodal=("N1",))
    jsonschema.validate(c, schema)
    c["timepoints"][1]["targets"]["T1"] = "gone"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(c, schema)


def test_result_echoes_arm_reader_and_accepted():
    c = case({"T1": 30.0}, arm="SBRT", reader="READER 1", accepted=True)
    out = assess_json(c)
    assert (out["arm"], out["reader"], out["accepted"]) == ("SBRT", "READER 1", True)
