"""Baseline checks (§3.1, §4.2): R-MEAS-1..4 and R-SEL-1..3 as findings; strict mode."""

from __future__ import annotations

import pytest

from recist.baseline import measurability
from recist.errors import ProtocolDeviationError
from recist.jsonio import assess_json
from tests.recist.conftest import case


def findings(c) -> list[tuple[str, str]]:
    return [(w["rule"], w["lesion"]) for w in assess_json(c)["warnings"]]


def with_lesions(lesions: list[dict], sizes: dict, **extra) -> dict:
    return {
        "subject_id": "S-9",
        "lesions": lesions,
        "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": sizes}],
        **extra,
    }


def target(lid: str, site: str, **kw) -> dict:
    return {"id": lid, "site": site, "kind": "target", **kw}


@pytest.mark.parametrize(
    ("ld", "thickness", "measurable"),
    [
        (10.0, None, True),
        (9.9, None, False),
        (10.0, 5.0, True),  # 5 mm slices: the 10 mm floor stands
        (11.9, 6.0, False),  # 6 mm slices: at least 12 mm
        (12.0, 6.0, True),
    ],
)
def test_non_nodal_measurability_by_longest_diameter_and_slice_thickness(ld, thickness, measurable):
    verdict = measurability(nodal=False, longest_diameter_mm=ld, slice_thickness_mm=thickness)
    assert verdict.measurable is measurable
    assert verdict.reasons[0].startswith("R-MEAS-1")


def test_chest_xray_needs_20mm():
    assert not measurability(nodal=False, longest_diameter_mm=19.9, modality="XR").measurable
    assert measurability(nodal=False, longest_diameter_mm=20.0, modality="XR").measurable


@pytest.mark.parametrize(
    ("sa", "measurable", "pathological"),
    [(15.0, True, True), (14.9, False, True), (10.0, False, True), (9.9, False, False)],
)
def test_lymph_node_short_axis_thresholds(sa, measurable, pathological):
    verdict = measurability(nodal=True, short_axis_mm=sa)
    assert (verdict.measurable, verdict.pathological) == (measurable, pathological)
    assert verdict.reasons[0].startswith("R-MEAS-2")


@pytest.mark.parametrize("site", ["pleural effusion", "ascites", "blastic bone lesion"])
def test_never_measurable_disease(site):
    verdict = measurability(nodal=False, longest_diameter_mm=40.0, site=site)
    assert not verdict.measurable
    assert verdict.reasons[0].startswith("R-MEAS-3")


def test_small_target_at_baseline_is_a_finding_not_a_refusal():
    c = with_lesions([target("T1", "liver")], {"T1": 8.0})
    assert findings(c) == [("R-MEAS-1", "T1")]


def test_nodal_target_below_15mm_is_a_finding():
    c = with_lesions([target("T1", "lymph node", nodal=True)], {"T1": 12.0})
    assert findings(c) == [("R-MEAS-2", "T1")]


def test_a_lymph_node_target_not_marked_nodal_is_a_finding_and_is_assessed_on_its_long_axis():
    c = with_lesions([target("T1", "axillary lymph node")], {"T1": 22.0})
    result = assess_json(c)
    (warning,) = result["warnings"]
    assert (warning["rule"], warning["lesion"]) == ("R-MEAS-2", "T1")
    assert "is a lymph node but it is not marked nodal" in warning["message"]
    assert findings(with_lesions([target("T1", "lymph node", nodal=True)], {"T1": 22.0})) == []


def test_slice_thickness_of_the_lesion_raises_the_bar():
    c = with_lesions([target("T1", "liver", slice_thickness_mm=8.0)], {"T1": 15.0})
    assert findings(c) == [("R-MEAS-1", "T1")]


def test_target_treated_before_baseline_is_a_finding_unless_the_protocol_allows_it():
    lesion = target("T1", "liver", treated_on="2020-11-01", treatment="SBRT")
    c = with_lesions([lesion], {"T1": 30.0})
    assert findings(c) == [("R-MEAS-4", "T1")]
    c["settings"] = {"previously_treated_targets": True}
    assert findings(c) == []


def test_target_treated_after_baseline_is_not_a_finding():
    c = with_lesions([target("T1", "liver", treated_on="2021-02-01")], {"T1": 30.0})
    assert findings(c) == []


def test_more_than_five_targets_is_a_finding_for_each_extra():
    sites = ["liver", "lung", "adrenal", "spleen", "skin", "brain"]
    lesions = [target(f"T{i}", s) for i, s in enumerate(sites, 1)]
    c = with_lesions(lesions, {f"T{i}": 20.0 for i in range(1, 7)})
    assert findings(c) == [("R-SEL-1", "T6")]


def test_three_targets_in_one_organ_is_a_finding():
    lesions = [target(f"T{i}", "liver") for i in range(1, 4)]
    c = with_lesions(lesions, {f"T{i}": 20.0 for i in range(1, 4)})
    assert findings(c) == [("R-SEL-1", "T3")]


def test_all_lymph_nodes_count_as_one_organ():
    lesions = [
        target("T1", "axillary lymph node", nodal=True),
        target("T2", "mediastinal lymph node", nodal=True),
        target("T3", "iliac lymph node", nodal=True),
    ]
    c = with_lesions(lesions, {"T1": 20.0, "T2": 20.0, "T3": 20.0})
    result = assess_json(c)
    assert [(w["rule"], w["lesion"]) for w in result["warnings"]] == [("R-SEL-1", "T3")]
    assert "R-SEL-2" in result["warnings"][0]["message"]


def test_paired_organs_count_as_one_organ():
    lesions = [target("T1", "left lung"), target("T2", "right lung"), target("T3", "lung")]
    c = with_lesions(lesions, {"T1": 20.0, "T2": 20.0, "T3": 20.0})
    assert findings(c) == [("R-SEL-1", "T3")]


def test_two_targets_per_organ_is_fine():
    lesions = [target("T1", "liver"), target("T2", "liver"), target("T3", "lung")]
    c = with_lesions(lesions, {"T1": 20.0, "T2": 20.0, "T3": 20.0})
    assert findings(c) == []


def test_strict_mode_refuses_a_baseline_with_findings():
    c = with_lesions([target("T1", "liver")], {"T1": 8.0}, settings={"strict": True})
    with pytest.raises(
        ProtocolDeviationError, match=r"subject S-9, timepoint BL, lesion T1: .*8\.0 mm.*R-MEAS-1"
    ):
        assess_json(c)


def test_baseline_sum_adds_diameters_and_short_axes():
    c = case({"T1": 32.0, "N1": 17.0}, nodal=("N1",))
    assert assess_json(c)["timepoints"][0]["sum_mm"] == 49.0


@pytest.mark.parametrize("site", ["bone", "Bone", "vertebra L2", "left rib"])
def test_bone_target_without_a_soft_tissue_component_is_a_finding(site):
    c = with_lesions([target("T1", site)], {"T1": 25.0})
    result = assess_json(c)
    assert [(w["rule"], w["lesion"]) for w in result["warnings"]] == [("R-MEAS-3", "T1")]
    assert "lytic or mixed" in result["warnings"][0]["message"]


@pytest.mark.parametrize("site", ["bone, lytic with soft-tissue component", "rib, mixed lesion"])
def test_lytic_or_mixed_bone_target_with_soft_tissue_is_measurable(site):
    assert findings(with_lesions([target("T1", site)], {"T1": 25.0})) == []


def test_bone_non_target_is_not_size_checked():
    c = case({"T1": 30.0}, non_targets=("NT1",))  # NT1's site is "bone"
    assert findings(c) == []


def test_word_inside_another_word_is_not_bone():
    assert measurability(nodal=False, longest_diameter_mm=25.0, site="distribution").measurable
