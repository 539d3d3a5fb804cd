"""The statistician's conventions (issue 15): settings where RECIST 1.1 and FDA 2018 leave
room, the admiralonco profile, and ``recist settings --explain``.

For each setting, a case whose result differs between the default and the setting in
exactly the way docs/rules.md says: every other field of the result stays the same.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from recist import cli
from recist.best_response import Assessed, best_overall_response_confirmed, counted_timepoints
from recist.errors import CaseInputError
from recist.jsonio import parse_case
from recist.response import Response as R
from recist.settings import (
    PROFILE_SOURCES,
    PROFILES,
    SETTING_RULES,
    CensorAt,
    Settings,
    SettingsProfile,
    UnconfirmedBeforePd,
    explain,
)
from tests.recist.conftest import BASE_DATE, assess, case, fu

CONFIRMED = {"confirmation": True}


def day(n: int) -> str:
    """The date ``n`` days after the baseline (the origin of these cases)."""
    return (BASE_DATE + timedelta(days=n)).isoformat()


def differences(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    """The top-level keys of two results that differ, the echoed settings left out."""
    return {k for k in a.keys() | b.keys() if k != "settings" and a.get(k) != b.get(k)}


def both(c: dict[str, Any], **setting: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The result of ``c`` under its settings, and with ``setting`` added."""
    default = assess(c)
    changed = assess({**c, "settings": {**c.get("settings", {}), **setting}})
    return default, changed


def bor(result: dict[str, Any]) -> tuple[str, str | None]:
    detail = result["best_overall_response_detail"]
    return result["best_overall_response"], detail["timepoint"]


# --- each setting on sequences of overall responses (RECIST 1.1 table 3's way) --------

ORIGIN = date(2021, 1, 1)


def best(settings: Settings, *responses: R, days: tuple[int, ...] | None = None) -> R:
    days = days or tuple(56 * (i + 1) for i in range(len(responses)))
    followups = [
        Assessed(f"FU{i + 1}", ORIGIN + timedelta(days=d), r)
        for i, (r, d) in enumerate(zip(responses, days, strict=True))
    ]
    counted, _ = counted_timepoints(followups, settings, None)
    return best_overall_response_confirmed(counted, ORIGIN, settings, has_targets=True).response


# (setting, value, responses, days or None (every 56 days), default BOR, BOR with it)
SEQUENCES = [
    ("accept_sd", True, (R.PR, R.SD, R.PR), None, R.SD, R.PR),
    ("accept_sd", True, (R.PR, R.SD, R.CR), None, R.SD, R.PR),
    ("accept_sd", True, (R.PR, R.SD, R.SD, R.PR), None, R.SD, R.SD),  # one SD only
    ("accept_sd", True, (R.PR, R.NE, R.SD, R.PR), None, R.SD, R.PR),
    ("accept_sd", True, (R.CR, R.SD, R.CR), None, R.SD, R.SD),  # not for a CR
    ("accept_sd", True, (R.PR, R.SD, R.PD), None, R.SD, R.SD),
    ("confirmation_max_days", 56, (R.PR, R.PR), None, R.PR, R.PR),  # inclusive
    ("confirmation_max_days", 55, (R.PR, R.PR), None, R.PR, R.SD),
    ("confirmation_max_days", 55, (R.CR, R.CR), None, R.CR, R.SD),
    ("confirmation_max_days", 60, (R.PR, R.NE, R.PR), (56, 84, 140), R.PR, R.SD),
    ("pr_after_cr_confirms", False, (R.PR, R.CR, R.PR), (56, 70, 112), R.PR, R.SD),
    ("pr_after_cr_confirms", False, (R.CR, R.PR), None, R.PR, R.SD),
    ("pr_after_cr_confirms", False, (R.CR, R.PR, R.CR), (56, 70, 112), R.CR, R.PR),
    ("pr_after_cr_confirms", False, (R.PR, R.CR, R.PR), (56, 84, 140), R.PR, R.PR),
    ("pr_after_cr_confirms", False, (R.PR, R.PR, R.CR, R.PR), None, R.PR, R.PR),
    ("unconfirmed_before_pd", "pd", (R.PR, R.PD), None, R.SD, R.PD),
    ("unconfirmed_before_pd", "pd", (R.CR, R.PD), None, R.SD, R.PD),
    ("unconfirmed_before_pd", "pd", (R.PR, R.NE, R.PD), None, R.SD, R.PD),
    ("unconfirmed_before_pd", "pd", (R.PR, R.SD, R.PD), None, R.SD, R.SD),
    ("unconfirmed_before_pd", "pd", (R.SD, R.PR, R.PD), None, R.SD, R.SD),
    ("unconfirmed_before_pd", "pd", (R.PR, R.PR, R.PD), None, R.PR, R.PR),
    ("unconfirmed_before_pd", "pd", (R.PR, R.NE), None, R.SD, R.SD),
    ("unconfirmed_before_pd", "pd", (R.PR, R.PD), (14, 42), R.PD, R.PD),
]


@pytest.mark.parametrize(("setting", "value", "responses", "days", "before", "after"), SEQUENCES)
def test_each_setting_on_sequences_of_responses(setting, value, responses, days, before, after):
    default = Settings(confirmation=True)
    changed = Settings.from_dict({"confirmation": True, setting: value})
    assert best(default, *responses, days=days) is before
    assert best(changed, *responses, days=days) is after


# --- accept_sd -----------------------------------------------------------------------


def pr_sd_pr() -> dict[str, Any]:
    return case(
        {"T1": 30.0},
        fu(date=day(56), targets={"T1": 20.0}),  # PR
        fu(date=day(84), targets={"T1": 23.0}),  # SD: above 70 % of baseline, below PD
        fu(date=day(112), targets={"T1": 20.0}),  # PR, 56 days after the first
        settings=CONFIRMED,
    )


def test_accept_sd_lets_one_sd_sit_between_a_pr_and_its_confirmation():
    default, changed = both(pr_sd_pr(), accept_sd=True)
    assert [tp["overall_response"] for tp in default["timepoints"][1:]] == ["PR", "SD", "PR"]
    assert bor(default) == ("SD", "FU1")  # the SD breaks the confirmation (R-BOR-CONF)
    assert bor(changed) == ("PR", "FU1")  # admiralonco's accept_sd = TRUE
    assert differences(default, changed) == {
        "best_overall_response",
        "best_overall_response_confirmed",
        "best_overall_response_detail",
    }
    assert changed["settings"]["accept_sd"] is True


def test_accept_sd_allows_one_sd_only():
    c = case(
        {"T1": 30.0},
        fu(date=day(56), targets={"T1": 20.0}),
        fu(date=day(70), targets={"T1": 23.0}),
        fu(date=day(84), targets={"T1": 23.0}),
        fu(date=day(112), targets={"T1": 20.0}),
        settings={**CONFIRMED, "accept_sd": True},
    )
    assert bor(assess(c)) == ("SD", "FU1")


# --- confirmation_max_days -----------------------------------------------------------


def pr_pr(gap: int) -> dict[str, Any]:
    return case(
        {"T1": 30.0},
        fu(date=day(56), targets={"T1": 20.0}),
        fu(date=day(56 + gap), targets={"T1": 20.0}),
        settings=CONFIRMED,
    )


def test_confirmation_max_days_refuses_a_confirmation_that_comes_too_late():
    default, changed = both(pr_pr(56), confirmation_max_days=42)
    assert bor(default) == ("PR", "FU1")
    assert bor(changed) == ("SD", "FU1")  # unconfirmed PR at day 56 ≥ sd_min_days: SD
    assert "≤ 42 days later" in changed["best_overall_response_detail"]["reasons"][0]
    assert differences(default, changed) == {
        "best_overall_response",
        "best_overall_response_confirmed",
        "best_overall_response_detail",
    }


def test_confirmation_max_days_is_inclusive():
    assert (
        bor(assess({**pr_pr(42), "settings": {**CONFIRMED, "confirmation_max_days": 42}}))[0]
        == "PR"
    )
    assert (
        bor(assess({**pr_pr(43), "settings": {**CONFIRMED, "confirmation_max_days": 42}}))[0]
        == "SD"
    )


# --- pr_after_cr_confirms ------------------------------------------------------------


def pr_cr_pr() -> dict[str, Any]:
    return case(
        {"T1": 30.0},
        fu(date=day(56), targets={"T1": 20.0}),  # PR
        fu(date=day(70), targets={"T1": 0.0}),  # CR, 14 days later: confirms nothing
        fu(date=day(112), targets={"T1": 4.0}),  # a 4 mm residue (< 5 mm, R-REAPPEAR): PR
        settings=CONFIRMED,
    )


def test_pr_cr_pr_is_a_confirmed_pr_by_default_and_sd_without_pr_after_cr_confirms():
    default, changed = both(pr_cr_pr(), pr_after_cr_confirms=False)
    assert [tp["overall_response"] for tp in default["timepoints"][1:]] == ["PR", "CR", "PR"]
    assert bor(default) == ("PR", "FU1")  # RECIST 1.1 table 3: PR then CR/PR is PR
    assert bor(changed) == ("SD", "FU1")  # admiralonco: no PR after a CR in the period
    assert differences(default, changed) == {
        "best_overall_response",
        "best_overall_response_confirmed",
        "best_overall_response_detail",
    }
    # the unconfirmed variant and the data query do not depend on the setting
    assert changed["best_overall_response_unconfirmed"] == "CR"
    assert [q["timepoint"] for q in changed["queries"]] == ["FU3"]


def test_cr_then_pr_is_a_confirmed_pr_by_default_and_sd_without_pr_after_cr_confirms():
    c = case(
        {"T1": 30.0},
        fu(date=day(56), targets={"T1": 0.0}),
        fu(date=day(112), targets={"T1": 4.0}),
        settings=CONFIRMED,
    )
    default, changed = both(c, pr_after_cr_confirms=False)
    assert (bor(default), bor(changed)) == (("PR", "FU1"), ("SD", "FU1"))


def test_pr_cr_cr_still_confirms_without_pr_after_cr_confirms():
    c = case(
        {"T1": 30.0},
        fu(date=day(56), targets={"T1": 20.0}),
        fu(date=day(70), targets={"T1": 0.0}),
        fu(date=day(112), targets={"T1": 0.0}),
        settings={**CONFIRMED, "pr_after_cr_confirms": False},
    )
    assert bor(assess(c)) == ("CR", "FU2")


# --- unconfirmed_before_pd -----------------------------------------------------------


def pr_pd() -> dict[str, Any]:
    return case(
        {"T1": 30.0},
        fu(date=day(56), targets={"T1": 20.0}),  # PR, day 56 ≥ sd_min_days
        fu(date=day(112), targets={"T1": 30.0}),  # PD: 150 % of the nadir, +10 mm
        settings=CONFIRMED,
    )


def test_an_unconfirmed_pr_followed_by_pd_is_sd_by_default_and_pd_with_the_setting():
    default, changed = both(pr_pd(), unconfirmed_before_pd="pd")
    assert bor(default) == ("SD", "FU1")  # RECIST 1.1 table 3: PR, PD -> SD (min met)
    assert bor(changed) == ("PD", "FU2")
    assert any("followed by PD" in r for r in changed["best_overall_response_detail"]["reasons"])
    assert differences(default, changed) == {
        "best_overall_response",
        "best_overall_response_confirmed",
        "best_overall_response_detail",
    }


def test_unconfirmed_before_pd_looks_past_ne_and_keeps_other_sd():
    ne_between = case(
        {"T1": 30.0, "T2": 20.0},
        fu(date=day(56), targets={"T1": 20.0, "T2": 10.0}),  # PR
        fu(date=day(84), targets={"T1": 20.0}),  # T2 not evaluated: NE
        fu(date=day(112), targets={"T1": 40.0, "T2": 20.0}),  # PD
        settings={**CONFIRMED, "unconfirmed_before_pd": "pd"},
    )
    assert bor(assess(ne_between)) == ("PD", "FU3")
    earlier_sd = case(
        {"T1": 30.0},
        fu(date=day(49), targets={"T1": 28.0}),  # SD at day 49 ≥ 42
        fu(date=day(77), targets={"T1": 20.0}),  # PR
        fu(date=day(105), targets={"T1": 30.0}),  # PD
        settings={**CONFIRMED, "unconfirmed_before_pd": "pd"},
    )
    assert bor(assess(earlier_sd)) == ("SD", "FU1")


def test_unconfirmed_before_pd_leaves_the_unconfirmed_variant_alone():
    _, changed = both(pr_pd(), unconfirmed_before_pd="pd")
    assert changed["best_overall_response_unconfirmed"] == "PR"


# --- censor_at -----------------------------------------------------------------------


def pr_then_ne() -> dict[str, Any]:
    return case(
        {"T1": 30.0, "T2": 20.0},
        fu(date=day(56), targets={"T1": 20.0, "T2": 10.0}),  # PR
        fu(date=day(112), targets={"T1": 20.0}),  # T2 not evaluated: NE
    )


def test_censor_at_any_censors_pfs_at_the_last_assessment_even_if_ne():
    default, changed = both(pr_then_ne(), censor_at="any")
    assert default["pfs"] == {
        "event": False,
        "date": day(56),
        "days": 57,
        "reason": "CENSORED_LAST_ASSESSMENT",
        "explanation": "no progression or death; censored at the last adequate assessment "
        f"FU1 ({day(56)})",
    }
    assert changed["pfs"] == {
        "event": False,
        "date": day(112),
        "days": 113,
        "reason": "CENSORED_LAST_ASSESSMENT",
        "explanation": "no progression or death; censored at the last assessment (any "
        f"response) FU2 ({day(112)})",
    }
    assert differences(default, changed) == {"pfs"}


def test_censor_at_any_also_dates_new_therapy_censoring_and_the_missed_visit_reference():
    therapy = {**pr_then_ne(), "new_therapy_on": day(120)}
    default, changed = both(therapy, censor_at="any")
    assert (default["pfs"]["date"], changed["pfs"]["date"]) == (day(56), day(112))
    assert changed["pfs"]["reason"] == "CENSORED_NEW_THERAPY"
    late_pd = case(
        {"T1": 30.0, "T2": 20.0},
        fu(date=day(56), targets={"T1": 30.0, "T2": 20.0}),  # SD
        fu(date=day(112), targets={"T1": 30.0}),  # NE
        fu(date=day(200), targets={"T1": 40.0, "T2": 20.0}),  # PD, 144 days after FU1
        settings={"visit_interval_days": 56},
    )
    default, changed = both(late_pd, censor_at="any")
    assert default["pfs"]["reason"] == "CENSORED_MISSED_VISITS"  # 144 > 2 × 56
    assert changed["pfs"]["reason"] == "PD_TARGET"  # 88 days after the NE visit
    assert differences(default, changed) == {"pfs"}


def test_censor_at_any_with_no_follow_up_is_censored_at_the_origin():
    c = case({"T1": 30.0}, settings={"censor_at": "any"})
    assert assess(c)["pfs"]["reason"] == "CENSORED_NO_ASSESSMENT"


def test_censor_at_any_applies_to_irecist_pfs_too():
    c = {**pr_then_ne(), "settings": {"criteria": "irecist", "censor_at": "any"}}
    assert assess(c)["pfs"]["date"] == day(112)


# --- the admiralonco profile ---------------------------------------------------------


def test_the_admiralonco_profile_sets_its_values_and_names_a_source_for_each():
    profile = PROFILES[SettingsProfile.ADMIRALONCO]
    assert profile == {
        "sd_min_days": 42,
        "confirmation_min_days": 28,
        "confirmation_max_ne_between": 1,
        "accept_sd": False,
        "confirmation_max_days": None,
        "pr_after_cr_confirms": False,
        "unconfirmed_before_pd": "sd",
        "censor_at": "any",
        "visit_interval_days": None,
    }
    assert PROFILE_SOURCES[SettingsProfile.ADMIRALONCO].keys() == profile.keys()
    settings = Settings.from_dict({"settings_profile": "admiralonco"})
    assert settings.settings_profile is SettingsProfile.ADMIRALONCO
    assert settings.censor_at is CensorAt.ANY
    assert settings.pr_after_cr_confirms is False
    assert settings.unconfirmed_before_pd is UnconfirmedBeforePd.SD
    assert {k: settings.to_dict()[k] for k in profile} == profile


def test_the_admiralonco_profile_changes_the_results_it_documents():
    default = assess(pr_cr_pr())
    profiled = assess({**pr_cr_pr(), "settings": {**CONFIRMED, "settings_profile": "admiralonco"}})
    assert bor(profiled) == ("SD", "FU1")
    assert profiled["settings"]["settings_profile"] == "admiralonco"
    assert profiled["settings"]["censor_at"] == "any"
    # FU3 is the last assessment either way: PFS keeps its date, its sentence says "any"
    assert differences(default, profiled) == {
        "best_overall_response",
        "best_overall_response_confirmed",
        "best_overall_response_detail",
        "pfs",
    }
    assert {**default["pfs"], "explanation": ""} == {**profiled["pfs"], "explanation": ""}
    ne_last = assess({**pr_then_ne(), "settings": {"settings_profile": "admiralonco"}})
    assert ne_last["pfs"]["date"] == day(112)


def test_explicit_settings_override_the_profile():
    c = {
        **pr_then_ne(),
        "settings": {"settings_profile": "admiralonco", "censor_at": "adequate"},
    }
    result = assess(c)
    assert result["pfs"]["date"] == day(56)
    assert result["settings"]["censor_at"] == "adequate"
    assert result["settings"]["pr_after_cr_confirms"] is False  # still the profile's
    settings = Settings.from_dict({"settings_profile": "admiralonco", "sd_min_days": 28})
    assert settings.sd_min_days == 28 and settings.censor_at is CensorAt.ANY


def test_a_result_with_a_profile_reads_back_to_the_same_settings():
    result = assess({**pr_then_ne(), "settings": {"settings_profile": "admiralonco"}})
    echoed = result["settings"]
    assert Settings.from_dict(echoed).to_dict() == echoed
    assert parse_case({**pr_then_ne(), "settings": echoed}).settings.to_dict() == echoed


# --- bad values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("accept_sd", "yes", "settings.accept_sd: input should be a valid boolean"),
        ("accept_sd", 1, "settings.accept_sd: input should be a valid boolean"),
        ("pr_after_cr_confirms", None, "settings.pr_after_cr_confirms: input should be"),
        ("confirmation_max_days", 0, r"settings.confirmation_max_days: .*R-PLAUS-SETTINGS"),
        ("confirmation_max_days", 3651, r"settings.confirmation_max_days: .*R-PLAUS-SETTINGS"),
        ("confirmation_max_days", 30.5, "settings.confirmation_max_days"),
        ("confirmation_max_days", 20, r"may not be below the minimum .*R-PLAUS-SETTINGS"),
        ("unconfirmed_before_pd", "PD", "settings.unconfirmed_before_pd: 'PD' is not allowed"),
        ("censor_at", "last", "settings.censor_at: 'last' is not allowed"),
        ("settings_profile", "admiral", "settings.settings_profile: 'admiral' is not allowed"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(setting, value, message):
    c = case({"T1": 30.0}, fu(targets={"T1": 20.0}), settings={setting: value})
    with pytest.raises(CaseInputError, match=message) as info:
        parse_case(c)
    assert info.value.field == f"settings.{setting}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"accept_sd": "yes"}, r"settings.accept_sd: 'yes' is not true or false"),
        ({"confirmation": "yes"}, r"settings.confirmation: 'yes' is not true or false"),
        ({"pr_after_cr_confirms": 0}, r"settings.pr_after_cr_confirms: 0 is not true"),
        ({"confirmation_max_days": 0}, r"settings.confirmation_max_days: 0 is not a whole"),
        ({"confirmation_max_days": True}, r"settings.confirmation_max_days: True is not"),
        ({"confirmation_max_days": 27}, r"settings.confirmation_max_days: a response is"),
        ({"unconfirmed_before_pd": "PD"}, r"settings.unconfirmed_before_pd: 'PD' is not one"),
        ({"censor_at": "last"}, r"settings.censor_at: 'last' is not one of 'adequate', 'any'"),
        ({"settings_profile": "admiral"}, r"settings.settings_profile: 'admiral' is not one"),
    ],
)
def test_the_core_refuses_bad_values_by_r_plaus_settings(values, message):
    with pytest.raises(CaseInputError, match=message) as info:
        Settings.from_dict(values)
    assert info.value.rule == "R-PLAUS-SETTINGS"


# --- explain and `recist settings` ---------------------------------------------------


def test_every_setting_names_the_rules_it_changes():
    assert SETTING_RULES.keys() == Settings().to_dict().keys()


def test_explain_gives_each_setting_its_source():
    _, items = explain({"settings_profile": "admiralonco", "censor_at": "adequate"})
    by_name = {item.name: item for item in items}
    assert by_name["censor_at"].source.value == "case"
    assert by_name["pr_after_cr_confirms"].source.value == "profile"
    assert by_name["pr_after_cr_confirms"].reference is not None
    assert by_name["pr_hold"].source.value == "default"
    assert by_name["settings_profile"].source.value == "case"
    _, items = explain({}, "admiralonco")
    assert {i.name: i.source.value for i in items}["settings_profile"] == "profile"
    with pytest.raises(CaseInputError, match="name the profile 'admiralonco', not 'other'"):
        explain({"settings_profile": "admiralonco"}, "other")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(["settings", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_recist_settings_prints_the_settings_as_json(capsys):
    status, out, _ = run_cli(capsys)
    assert status == 0
    assert json.loads(out) == Settings().to_dict()


def test_recist_settings_explain_prints_a_table(capsys, tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps({**pr_then_ne(), "settings": {"censor_at": "adequate"}}))
    status, out, err = run_cli(capsys, "--profile", "admiralonco", "--case", str(path), "--explain")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["setting", "value", "source", "rules"]
    rows = {line.split()[0]: line.split(None, 3) for line in lines[1 : 1 + len(SETTING_RULES)]}
    assert len(rows) == len(SETTING_RULES)
    assert rows["censor_at"] == ["censor_at", '"adequate"', "case", "§8, I-PFS"]
    assert rows["pr_after_cr_confirms"] == [
        "pr_after_cr_confirms",
        "false",
        "profile",
        "R-BOR-CONF",
    ]
    assert rows["pr_hold"] == ["pr_hold", "true", "default", "R-TGT-HOLD"]
    assert rows["settings_profile"][:3] == ["settings_profile", '"admiralonco"', "profile"]
    assert "profile admiralonco: where each of its values comes from" in out
    assert "  pr_after_cr_confirms: a PR needs 'no PR after a CR" in out
    assert "  censor_at: " not in out  # given by the case, not taken from the profile


def test_recist_settings_explain_json(capsys, tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case({"T1": 30.0}, settings={"accept_sd": True})))
    status, out, _ = run_cli(capsys, "--case", str(path), "--explain", "--json")
    assert status == 0
    data = json.loads(out)
    assert (data["settings_profile"], data["case"]) == (None, str(path))
    items = {item["setting"]: item for item in data["settings"]}
    assert list(items) == list(SETTING_RULES)
    assert items["accept_sd"] == {
        "setting": "accept_sd",
        "value": True,
        "source": "case",
        "rules": ["R-BOR-CONF"],
        "reference": None,
    }
    assert items["censor_at"]["source"] == "default"
    assert items["censor_at"]["value"] == "adequate"


def test_recist_settings_refuses_bad_settings_in_one_line(capsys, tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case({"T1": 30.0}, settings={"censor_at": "last"})))
    status, out, err = run_cli(capsys, "--case", str(path), "--explain")
    assert (status, out) == (2, "")
    assert err == (
        f"recist settings: {path}: subject S-001, field settings.censor_at: 'last' is not one "
        "of 'adequate', 'any' (R-PLAUS-SETTINGS)\n"
    )
    path.write_text(json.dumps(case({"T1": 30.0}, settings={"confirmation": "yes"})))
    status, _, err = run_cli(capsys, "--case", str(path))
    assert status == 2
    assert "field settings.confirmation: 'yes' is not true or false (R-PLAUS-SETTINGS)" in err
    path.write_text(json.dumps(case({"T1": 30.0}, settings={"confirmation_max_days": 7})))
    status, _, err = run_cli(capsys, "--case", str(path))
    assert status == 2
    assert "field settings.confirmation_max_days" in err and "(R-PLAUS-SETTINGS)" in err
    path.write_text(json.dumps([case({"T1": 30.0}), case({"T1": 30.0})]))
    status, _, err = run_cli(capsys, "--case", str(path))
    assert (status, err) == (
        2,
        f"recist settings: {path}: --case takes one case; the file holds 2\n",
    )


def test_under_irecist_the_best_response_conventions_change_the_ibor_as_the_bor():
    # docs/rules.md "Statistical conventions": they apply to the iBOR too (I-BOR).
    settings = {**CONFIRMED, "criteria": "irecist"}
    default = assess({**pr_cr_pr(), "settings": settings})
    assert (default["recist1_1"]["best_overall_response"], default["best_overall_response"]) == (
        "PR", "iPR"
    )  # fmt: skip
    result = assess({**pr_cr_pr(), "settings": {**settings, "pr_after_cr_confirms": False}})
    assert result["recist1_1"]["best_overall_response"] == "SD"
    assert result["best_overall_response"] == "iSD"
