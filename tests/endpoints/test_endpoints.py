"""Endpoint derivations (PFS, EMA PFS, OS, DOR, local recurrence) and their analyses."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdisc_io.cases import assess_cases
from endpoints.analysis import Observation, cumulative_incidence, kaplan_meier
from endpoints.batch import pick_reads
from endpoints.derive import duration_of_response, overall_survival, pfs, pfs_ema
from recist.cli import main


def subject(
    sid: str, arm: str, sums: list[float], *, step: int = 56, **extra: Any
) -> dict[str, Any]:
    """One target lesion measured every ``step`` days from 2021-01-04 (randomised then)."""
    start = date(2021, 1, 4)
    timepoints = [
        {"id": f"V{i}", "date": (start + timedelta(days=step * i)).isoformat(),
         "targets": {"T1": size}}
        for i, size in enumerate(sums)
    ]  # fmt: skip
    lesion: dict[str, Any] = {"id": "T1", "site": "liver", "kind": "target"}
    lesion.update(extra.pop("lesion", {}))
    lesions = [lesion]
    if extra.pop("second_target", False):  # an untreated 50 mm lung target, stable
        lesions.append({"id": "T2", "site": "lung", "kind": "target"})
        for tp in timepoints:
            tp["targets"]["T2"] = 50
    return {"subject_id": sid, "arm": arm, "randomized_on": start.isoformat(),
            "lesions": lesions, "timepoints": timepoints, **extra}  # fmt: skip


def one(case: dict[str, Any]) -> Any:
    return assess_cases([case])[0]


def test_pfs_is_the_engines_event_with_aval_days_plus_one() -> None:
    item = one(subject("S1", "A", [40, 30, 50]))  # PD at V2 (day 112)
    record = pfs(item.case, item.result)
    assert (record.event, record.reason, record.end, record.days) == (
        True, "PD_TARGET", date(2021, 4, 26), 113,
    )  # fmt: skip
    assert (record.cnsr, record.description) == (0, "Disease Progression")


def test_local_recurrence_before_recist_progression_is_the_pfs_event() -> None:
    # T1 treated by SBRT: 40 → 20 → 25 mm is a local failure (R-LOCAL: ≥ 120 % and +5 mm of
    # its own nadir) though the RECIST sum with T2 (90 → 70 → 75 mm) is not PD.
    case = subject("S1", "A", [40, 20, 25, 20], second_target=True,
                   lesion={"treated_on": "2021-01-04", "treatment": "SBRT"})  # fmt: skip
    item = one(case)
    assert item.result["pfs"]["event"] is False
    record = pfs(item.case, item.result)
    assert (record.event, record.reason, record.end) == (
        True,
        "LOCAL_RECURRENCE",
        date(2021, 4, 26),
    )
    assert record.description == "Local Recurrence"


def test_ema_variant_counts_progression_after_missed_visits_at_its_observed_date() -> None:
    # Visits every 56 days; the PD comes 168 days after the last adequate assessment
    # (> 2 intervals): FDA-style censors there (§8), EMA-style counts the progression.
    case = subject("S1", "A", [40, 30], settings={"visit_interval_days": 56})
    case["timepoints"].append({"id": "V5", "date": "2021-09-06", "targets": {"T1": 60}})
    item = one(case)
    primary, ema = pfs(item.case, item.result), pfs_ema(item.case)
    assert (primary.event, primary.reason) == (False, "CENSORED_MISSED_VISITS")
    assert (ema.event, ema.reason, ema.end) == (True, "PD_TARGET", date(2021, 9, 6))


def test_os_is_death_else_censored_when_last_known_alive() -> None:
    dead = subject("S1", "A", [40, 30], died_on="2021-06-01")
    alive = subject("S2", "A", [40, 30], last_known_alive_on="2021-08-01")
    assert (overall_survival(dead).event, overall_survival(dead).days) == (True, 149)
    record = overall_survival(alive)
    assert (record.event, record.end, record.source) == (False, date(2021, 8, 1),
                                                         ("ADSL", "LSTALVDT"))  # fmt: skip


def test_os_is_never_negative_when_last_known_alive_is_before_randomisation() -> None:
    # pharmaverse 01-705-1018: LSTALVDT 2013-06-30 before RANDDT 2013-07-05; admiralonco
    # censors at RANDDT (AVAL 1, "Randomization").
    case = subject("S1", "A", [40], last_known_alive_on="2020-12-30")
    record = overall_survival(case)
    assert (record.event, record.end, record.days) == (False, date(2021, 1, 4), 1)
    assert (record.description, record.source) == ("Randomization", ("ADSL", "RANDDT"))


def test_os_is_censored_when_last_known_alive_even_if_assessed_later_as_admiralonco() -> None:
    # pharmaverse 01-701-1115: assessed 2013-02-01, LSTALVDT 2013-01-23, ADTTE OS ADT
    # 2013-01-23. Without LSTALVDT the last assessment is the censoring date.
    case = subject("S1", "A", [40, 30, 30], last_known_alive_on="2021-02-01")  # V2 2021-04-26
    record = overall_survival(case)
    assert (record.event, record.end, record.source) == (False, date(2021, 2, 1),
                                                         ("ADSL", "LSTALVDT"))  # fmt: skip
    assert overall_survival(subject("S2", "A", [40, 30, 30])).end == date(2021, 4, 26)


def test_duration_of_response_runs_from_the_first_response_to_progression() -> None:
    responder = one(subject("S1", "A", [40, 20, 20, 40]))  # PR at V1, PD at V3
    record = duration_of_response(responder.case, responder.result)
    assert record is not None
    assert (record.start, record.end, record.days, record.event) == (
        date(2021, 3, 1), date(2021, 6, 21), 113, True,
    )  # fmt: skip
    stable = one(subject("S2", "A", [40, 38, 39]))
    assert duration_of_response(stable.case, stable.result) is None


def test_one_read_per_subject_prefers_the_accepted_one() -> None:
    base = subject("S1", "A", [40, 30])
    reads = assess_cases([
        base | {"reader": "INVESTIGATOR", "accepted": False},
        base | {"reader": "RADIOLOGIST 2", "accepted": True},
        subject("S2", "A", [40, 30]) | {"reader": "INVESTIGATOR"},
    ])  # fmt: skip
    assert [(r.case["subject_id"], r.case["reader"]) for r in pick_reads(reads)] == [
        ("S1", "RADIOLOGIST 2"), ("S2", "INVESTIGATOR"),
    ]  # fmt: skip


def test_kaplan_meier_median_and_identical_arms_give_a_null_logrank() -> None:
    obs = [Observation(arm, d, 1) for arm in ("A", "B") for d in (10, 20, 30)]
    result = kaplan_meier(obs, times=(0, 15, 40))
    assert result["arms"]["A"]["median_days"] == 20.0
    assert result["arms"]["A"]["survival"] == [1.0, 0.6667, 0.0]
    assert result["arms"]["A"]["at_risk"] == [3, 2, 0]
    assert result["logrank"]["statistic"] == pytest.approx(0.0, abs=1e-9)
    assert result["logrank"]["p_value"] == pytest.approx(1.0)
    assert result["cox"]["versus"]["B"]["hazard_ratio"] == pytest.approx(1.0, abs=1e-3)


def test_one_arm_has_no_comparison_and_says_why() -> None:
    result = kaplan_meier([Observation("A", 10, 1), Observation("A", 20, 0)])
    assert result["logrank"] == {"note": "one arm only: no comparison"}
    assert result["cox"] == {"note": "one arm only: no hazard ratio"}


def test_cumulative_incidence_treats_death_as_competing_not_as_censoring() -> None:
    # Failures on days 50 and 100, deaths on days 70 and 120, nobody censored: the
    # cumulative incidence of failure ends at 2/4; 1 − KM with deaths censored would be 5/8.
    obs = [Observation("A", 50, 1), Observation("A", 70, 2), Observation("A", 100, 1),
           Observation("A", 120, 2)]  # fmt: skip
    result = cumulative_incidence(obs, times=(0, 60, 110, 200))
    group = result["groups"]["A"]
    assert (group["events"], group["competing_events"]) == (2, 2)
    assert group["incidence"] == pytest.approx([0.0, 0.25, 0.5, 0.5], abs=1e-3)
    low, high = group["ci95"][2]
    assert low is not None and high is not None and low <= 0.5 <= high


def test_endpoints_command_writes_json_and_csv(tmp_path: Path) -> None:
    cases = [
        subject(
            "S1", "SBRT", [40, 20, 25, 20], second_target=True, lesion={"treated_on": "2021-01-04"}
        ),
        subject("S2", "SBRT", [40, 30, 30], died_on="2021-05-01"),
        subject("S3", "Control", [40, 50]),
        subject("S4", "Control", [40, 38, 60]),
    ]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    assert main(["endpoints", str(path), "--out", str(tmp_path / "out"), "--times", "0,100"]) == 0
    summary = json.loads((tmp_path / "out" / "endpoints.json").read_text())
    assert summary["subjects"] == 4
    assert summary["endpoints"]["PFS"]["arms"]["SBRT"]["events"] == 2  # local recurrence, death
    assert summary["local_failure"]["groups"]["all"]["events"] == 1
    for name in ("subjects.csv", "km.csv", "lesions.csv", "local_failure.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ("10,x", r"--times '10,x' is not a comma-separated list of days"),
        ("30,10", r"--times '30,10' must be ascending days ≥ 0"),
    ],
)
def test_bad_times_are_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], times: str, message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(subject("S1", "A", [40, 30])), encoding="utf-8")
    assert main(["endpoints", str(path), "--times", times]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(message, err)
