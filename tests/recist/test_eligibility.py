"""A protocol's size-based eligibility (setting ``eligibility``, docs/rules.md §12):
R-ELIG-COUNT, R-ELIG-SIZE, R-ELIG-VOLUME and R-ELIG-SITE as findings at the boundaries,
never refusals and never a change of response; the settings' validation
(R-PLAUS-SETTINGS); ``recist settings --explain``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recist import cli
from recist.baseline import in_site
from recist.errors import CaseInputError
from recist.jsonio import assess_json, parse_case
from recist.lesions import Lesion, LesionKind
from recist.settings import STEREO_SEIN_ELIGIBILITY, Eligibility, Settings


def lesion(lid: str, site: str, kind: str = "target", **kw: Any) -> dict[str, Any]:
    return {"id": lid, "site": site, "kind": kind, **kw}


def make_case(
    lesions: list[dict[str, Any]],
    sizes: dict[str, Any],
    eligibility: dict[str, Any] | None = STEREO_SEIN_ELIGIBILITY,
    **settings: Any,
) -> dict[str, Any]:
    non_targets = {le["id"]: "present" for le in lesions if le["kind"] == "non-target"}
    if eligibility is not None:
        settings["eligibility"] = eligibility
    return {
        "subject_id": "S-EL",
        "settings": settings,
        "lesions": lesions,
        "timepoints": [
            {"id": "BL", "date": "2024-01-08", "targets": sizes, "non_targets": non_targets},
            {
                "id": "W8",
                "date": "2024-03-04",
                "targets": {k: v * 0.5 if isinstance(v, float) else v for k, v in sizes.items()},
                "non_targets": non_targets,
            },
        ],
    }


def elig(c: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in assess_json(c)["warnings"] if w["rule"].startswith("R-ELIG-")]


def rules(c: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(w["rule"], w["lesion"]) for w in elig(c)]


# R-ELIG-COUNT: targets + non-targets at baseline.


def count_case(n_targets: int, n_non_targets: int, **kw: Any) -> dict[str, Any]:
    lesions = [lesion(f"T{i}", "lung") for i in range(1, n_targets + 1)]
    lesions += [lesion(f"NT{i}", "bone", "non-target") for i in range(1, n_non_targets + 1)]
    return make_case(lesions, {f"T{i}": 20.0 for i in range(1, n_targets + 1)}, **kw)


def test_five_lesions_are_within_the_count_and_six_are_one_finding():
    assert rules(count_case(3, 2)) == []
    found = elig(count_case(3, 3))
    assert [(f["rule"], f["lesion"]) for f in found] == [("R-ELIG-COUNT", None)]
    message = found[0]["message"]
    assert "6 metastatic lesions at baseline (3 target, 3 non-target)" in message
    assert "at most 5" in message and "NCT02089100" in message


def test_nodes_count_unless_the_protocol_says_not():
    lesions = [lesion(f"T{i}", "lung") for i in range(1, 5)]
    lesions += [
        lesion("N1", "lymph node", nodal=True),
        lesion("NT1", "axillary node", "non-target"),
    ]
    sizes = {**{f"T{i}": 20.0 for i in range(1, 5)}, "N1": 16.0}
    assert rules(make_case(lesions, sizes)) == [("R-ELIG-COUNT", None)]
    no_nodes = {**STEREO_SEIN_ELIGIBILITY, "count_nodes": False}
    assert rules(make_case(lesions, sizes, no_nodes)) == []


# R-ELIG-SIZE: a target's baseline LD (a node's SA) against the general or the site's limit.


@pytest.mark.parametrize(("ld", "breach"), [(100.0, False), (100.1, True)])
def test_general_diameter_limit_at_100_mm(ld, breach):
    c = make_case([lesion("T1", "lung")], {"T1": ld})
    assert rules(c) == ([("R-ELIG-SIZE", "T1")] if breach else [])


@pytest.mark.parametrize(("ld", "breach"), [(70.0, False), (70.1, True)])
def test_liver_limit_at_70_mm(ld, breach):
    c = make_case([lesion("T1", "liver segment VII")], {"T1": ld})
    found = elig(c)
    assert [(f["rule"], f["lesion"]) for f in found] == ([("R-ELIG-SIZE", "T1")] if breach else [])
    if breach:
        message = found[0]["message"]
        assert "target T1 (liver segment vii)" in message
        assert "longest diameter 70.1 mm" in message and "limit of 70.0 mm for liver" in message
        assert "eligibility.sites.liver.max_diameter_mm" in message


def test_a_node_is_judged_on_its_short_axis_and_not_by_the_liver_limit():
    lesions = [lesion("N1", "liver hilum lymph node", nodal=True)]
    assert rules(make_case(lesions, {"N1": 80.0})) == []  # 80 ≤ 100: the liver's 70 is not its
    found = elig(make_case(lesions, {"N1": 100.5}))
    assert [f["rule"] for f in found] == ["R-ELIG-SIZE"]
    assert "short axis 100.5 mm" in found[0]["message"]


def test_a_site_limit_replaces_the_general_one_even_when_larger():
    rules_ = {"max_diameter_mm": 100, "sites": {"bone": {"max_diameter_mm": 150}}}
    c = make_case([lesion("T1", "rib, lytic with soft-tissue component")], {"T1": 120.0}, rules_)
    assert rules(c) == []
    assert rules(make_case([lesion("T1", "lung")], {"T1": 120.0}, rules_)) == [
        ("R-ELIG-SIZE", "T1")
    ]


def test_a_target_too_small_to_measure_has_no_size_to_breach():
    c = make_case([lesion("T1", "lung")], {"T1": "too_small"}, {"max_diameter_mm": 4})
    assert rules(c) == []  # it counts 5 mm in the sum (R-SMALL), but was not measured


# R-ELIG-VOLUME: only where the case gives a volume.


@pytest.mark.parametrize(("ml", "breach"), [(500, False), (500.0, False), (501, True)])
def test_volume_limit_at_500_ml(ml, breach):
    c = make_case([lesion("T1", "lung", volume_ml=ml)], {"T1": 90.0})
    found = elig(c)
    assert [(f["rule"], f["lesion"]) for f in found] == (
        [("R-ELIG-VOLUME", "T1")] if breach else []
    )
    if breach:
        message = found[0]["message"]
        assert "volume 501 mL is above the limit of 500 mL" in message
        # The protocol's "or": within the diameter limit, said so.
        assert "size 90.0 mm is within 100.0 mm" in message


def test_a_non_target_volume_is_checked_and_no_volume_is_no_finding():
    lesions = [lesion("T1", "lung"), lesion("NT1", "peritoneum", "non-target", volume_ml=800)]
    assert rules(make_case(lesions, {"T1": 30.0})) == [("R-ELIG-VOLUME", "NT1")]
    lesions[1].pop("volume_ml")
    assert rules(make_case(lesions, {"T1": 30.0})) == []


def test_both_limits_breached_are_two_findings():
    c = make_case([lesion("T1", "liver", volume_ml=640.5)], {"T1": 112.0})
    assert rules(c) == [("R-ELIG-SIZE", "T1"), ("R-ELIG-VOLUME", "T1")]
    assert all("may accept instead" not in f["message"] for f in elig(c))


# R-ELIG-SITE


def test_a_brain_lesion_is_a_finding_target_or_not():
    lesions = [lesion("T1", "lung"), lesion("NT1", "cerebellum", "non-target")]
    found = elig(make_case(lesions, {"T1": 30.0}))
    assert [(f["rule"], f["lesion"]) for f in found] == [("R-ELIG-SITE", "NT1")]
    assert "non-target NT1 (cerebellum) is in an excluded site, 'brain'" in found[0]["message"]
    assert rules(make_case([lesion("T1", "brain")], {"T1": 12.0})) == [("R-ELIG-SITE", "T1")]


def test_site_matching_by_words_synonyms_and_organ_groups():
    def le(site: str, nodal: bool = False) -> Lesion:
        return Lesion("X", site, LesionKind.TARGET, nodal)

    assert in_site(le("liver segment VII"), "liver")
    assert in_site(le("hepatic dome"), "liver")
    assert not in_site(le("deliverable"), "liver")  # whole words only
    assert in_site(le("left lung"), "lung")
    assert not in_site(le("liver hilum node", nodal=True), "liver")
    assert in_site(le("mediastinal", nodal=True), "lymph node")
    assert not in_site(le("liver"), "lymph node")


# Findings, not refusals; responses unchanged; no eligibility, no finding.


def test_no_eligibility_no_finding_and_the_default_is_none():
    big = [lesion(f"T{i}", "brain") for i in range(1, 7)]
    c = make_case(big, {f"T{i}": 150.0 for i in range(1, 7)}, None)
    assert rules(c) == []
    assert Settings().eligibility is None
    assert assess_json(c)["settings"]["eligibility"] is None
    assert Settings.from_dict({"eligibility": {}}).eligibility is None


def test_breaches_change_no_response_and_strict_does_not_refuse_them():
    lesions = [lesion("T1", "liver", volume_ml=900), lesion("NT1", "brain", "non-target")]
    with_rules = assess_json(make_case(lesions, {"T1": 80.0}, strict=True))
    without = assess_json(make_case(lesions, {"T1": 80.0}, None, strict=True))
    assert [w["rule"] for w in with_rules["warnings"]] == [
        "R-ELIG-SIZE",
        "R-ELIG-VOLUME",
        "R-ELIG-SITE",
    ]
    assert with_rules["timepoints"] == without["timepoints"]
    assert with_rules["best_overall_response"] == without["best_overall_response"] == "PR"


def test_the_result_echoes_the_rules_in_canonical_form():
    out = assess_json(make_case([lesion("T1", "lung")], {"T1": 30.0}))["settings"]["eligibility"]
    assert out == {
        "protocol": "NCT02089100",
        "max_lesions": 5,
        "max_diameter_mm": 100,
        "max_volume_ml": 500,
        "sites": {"liver": {"max_diameter_mm": 70}},
        "excluded_sites": ["brain"],
    }


# R-PLAUS-SETTINGS: strict validation naming the field.


@pytest.mark.parametrize(
    ("rules_", "field"),
    [
        ({"max_lesions": 0}, "settings.eligibility.max_lesions"),
        ({"max_lesions": 5.5}, "settings.eligibility.max_lesions"),
        ({"max_lesions": True}, "settings.eligibility.max_lesions"),
        ({"max_diameter_mm": 0}, "settings.eligibility.max_diameter_mm"),
        ({"max_diameter_mm": 1500}, "settings.eligibility.max_diameter_mm"),
        ({"max_diameter_mm": "10 cm"}, "settings.eligibility.max_diameter_mm"),
        ({"max_volume_ml": -1}, "settings.eligibility.max_volume_ml"),
        ({"max_volume_ml": float("inf")}, "settings.eligibility.max_volume_ml"),
        ({"sites": {"liver": {"max_diam": 70}}}, "settings.eligibility.sites.liver.max_diam"),
        ({"sites": {"liver": {}}}, "settings.eligibility.sites.liver"),
        ({"sites": {" ": {"max_diameter_mm": 70}}}, "settings.eligibility.sites. "),
        ({"sites": ["liver"]}, "settings.eligibility.sites"),
        ({"excluded_sites": "brain"}, "settings.eligibility.excluded_sites"),
        ({"excluded_sites": ["brain", "Brain"]}, "settings.eligibility.excluded_sites[1]"),
        ({"excluded_sites": [""]}, "settings.eligibility.excluded_sites[0]"),
        ({"count_nodes": "no"}, "settings.eligibility.count_nodes"),
        ({"protocol": ""}, "settings.eligibility.protocol"),
        ({"max_lesion": 5}, "settings.eligibility.max_lesion"),
        ([5], "settings.eligibility"),
    ],
)
def test_the_engine_refuses_bad_rules_naming_the_field(rules_, field):
    with pytest.raises(CaseInputError) as info:
        Settings.from_dict({"eligibility": rules_})
    assert info.value.field == field
    assert info.value.rule == "R-PLAUS-SETTINGS"


@pytest.mark.parametrize(
    ("rules_", "where"),
    [
        ({"max_lesions": 0}, "settings.eligibility.max_lesions"),
        ({"sites": {"liver": {"max_diam": 70}}}, "settings.eligibility.sites.liver.max_diam"),
        ({"excluded_sites": "brain"}, "settings.eligibility.excluded_sites"),
    ],
)
def test_the_contract_refuses_bad_rules_naming_the_field(rules_, where):
    c = make_case([lesion("T1", "lung")], {"T1": 30.0}, rules_)
    with pytest.raises(CaseInputError) as info:
        parse_case(c)
    assert where in str(info.value)


def test_a_lesion_volume_must_be_plausible():
    c = make_case([lesion("T1", "lung", volume_ml=2_000_000)], {"T1": 30.0})
    with pytest.raises(CaseInputError, match="volume_ml"):
        parse_case(c)
    with pytest.raises(CaseInputError, match="R-PLAUS-SIZE"):
        Lesion("T1", "lung", LesionKind.TARGET, volume_ml=float("nan"))


def test_eligibility_round_trips_through_its_dict():
    rules_ = Eligibility.from_dict(STEREO_SEIN_ELIGIBILITY)
    assert Eligibility.from_dict(rules_.to_dict()) == rules_
    assert rules_.site_limits()["liver"].max_diameter_mm == 70


# recist settings --explain


def test_recist_settings_explain_lists_eligibility(capsys, tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(make_case([lesion("T1", "lung")], {"T1": 30.0})))
    assert cli.main(["settings", "--case", str(path), "--explain", "--json"]) == 0
    items = {i["setting"]: i for i in json.loads(capsys.readouterr().out)["settings"]}
    assert items["eligibility"]["source"] == "case"
    assert items["eligibility"]["value"]["excluded_sites"] == ["brain"]
    assert items["eligibility"]["rules"] == [
        "R-ELIG-COUNT",
        "R-ELIG-SIZE",
        "R-ELIG-VOLUME",
        "R-ELIG-SITE",
    ]
    assert cli.main(["settings", "--case", str(path), "--explain"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("eligibility "))
    assert row.split()[1:3] == ["(below)", "case"]  # too wide for the table: written below it
    assert '  eligibility: {"protocol": "NCT02089100", "max_lesions": 5,' in table
    assert cli.main(["settings", "--explain"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("eligibility "))
    assert row.split()[1:3] == ["null", "default"] and "R-ELIG-SITE" in row


def test_recist_settings_refuses_bad_rules_with_the_field(capsys, tmp_path):
    path = tmp_path / "case.json"
    path.write_text(
        json.dumps(make_case([lesion("T1", "lung")], {"T1": 30.0}, {"max_lesions": -2}))
    )
    assert cli.main(["settings", "--case", str(path), "--explain"]) == 2
    err = capsys.readouterr().err
    assert "settings.eligibility.max_lesions" in err and "R-PLAUS-SETTINGS" in err
