"""One contract from form to engine (issue 10): the CLI, ``POST /api/v1/assess``, a case
stored through the API and a case entered through the forms give identical results,
identical stored sizes and audit values equal to what was stored — sizes with more than
one decimal included (R-EXACT: 35.04 mm is not 35.0 mm)."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import count
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from web.models import AuditRecord
from web.testing import bearer, login

_NUMBERS = count(1)

# Sizes as a reader or a tool writes them: whole, one decimal, or up to four (R-EXACT).
size = st.one_of(
    st.integers(min_value=0, max_value=300).map(float),
    st.integers(min_value=0, max_value=3000).map(lambda v: v / 10),
    st.integers(min_value=0, max_value=3_000_000).map(lambda v: v / 10_000),
)
baseline_size = st.integers(min_value=150, max_value=3000).map(lambda v: v / 10)
follow_up = st.fixed_dictionaries(
    {
        "t1": size,
        "t2": size,
        "nt": st.sampled_from(["present", "absent", "progression"]),
        "new": st.booleans(),
    }
)


def _case(subject: str, b1: float, b2: float, visits: list[dict[str, Any]]) -> dict[str, Any]:
    timepoints = [
        {
            "id": "BL",
            "date": "2021-01-04",
            "targets": {"T01": b1, "T02": b2},
            "non_targets": {"NT01": "present"},
            "new_lesions": [],
        }
    ]
    for number, visit in enumerate(visits, start=1):
        timepoints.append(
            {
                "id": f"W{8 * number}",
                "date": f"2021-{1 + 2 * number:02d}-01",
                "targets": {"T01": visit["t1"], "T02": visit["t2"]},
                "non_targets": {"NT01": visit["nt"]},
                "new_lesions": [{"id": f"NL{number:02d}", "site": "lung"}] if visit["new"] else [],
            }
        )
    return {
        "subject_id": subject,
        "randomized_on": "2021-01-05",
        "settings": {"visit_interval_days": 56},
        "lesions": [
            {"id": "T01", "site": "liver", "kind": "target", "nodal": False},
            {"id": "T02", "site": "lymph node", "kind": "target", "nodal": True},
            {"id": "NT01", "site": "bone", "kind": "non-target", "nodal": False},
        ],
        "timepoints": timepoints,
    }


def _cli(case: dict[str, Any]) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-m", "recist", "assess", "-"],
        input=json.dumps(case),
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _by_form(client: FlaskClient, trial: str, case: dict[str, Any]) -> None:
    """Enter the case as a reader does: the baseline form, then one follow-up form a visit."""
    code = case["subject_id"]
    base = f"/trials/{trial}/subjects/{code}"
    baseline = case["timepoints"][0]
    form = {"code": "BL", "date": baseline["date"], "rows": "3"}
    for i, le in enumerate(case["lesions"]):
        form |= {f"code_{i}": le["id"], f"kind_{i}": le["kind"], f"site_{i}": le["site"]}
        if le["nodal"]:
            form[f"nodal_{i}"] = "on"
        form[f"size_{i}"] = repr(baseline["targets"][le["id"]]) if le["kind"] == "target" else ""
    response = client.post(base + "/baseline", data=form)
    assert response.status_code == 302, response.data.decode()[:2000]
    for tp in case["timepoints"][1:]:
        form = {"code": tp["id"], "date": tp["date"], "nt_NT01": tp["non_targets"]["NT01"]}
        for lesion, value in tp["targets"].items():
            form |= {f"t_{lesion}_mm": repr(value), f"t_{lesion}_state": "measured"}
        for i, new in enumerate(tp["new_lesions"]):
            form |= {f"new_{i}_id": new["id"], f"new_{i}_site": new["site"]}
        response = client.post(base + "/timepoints/new", data=form)
        assert response.status_code == 302, response.data.decode()[:2000]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    b1=baseline_size,
    b2=baseline_size,
    visits=st.lists(follow_up, min_size=1, max_size=3),
)
def test_every_way_in_gives_the_same_result_sizes_and_audit(
    app: Flask,
    session: Session,
    trial: str,
    users: dict[str, str],
    b1: float,
    b2: float,
    visits: list[dict[str, Any]],
) -> None:
    number = next(_NUMBERS)
    stored_code, form_code = f"C-{number}", f"F-{number}"
    case = _case(stored_code, b1, b2, visits)
    client = app.test_client()
    headers = bearer(users["trial_manager"])

    cli = _cli(case)
    assessed = client.post("/api/v1/assess", json=case, headers=headers).get_json()
    assert assessed == cli

    response = client.post(f"/api/v1/trials/{trial}/cases", json=case, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["result"] == cli
    stored = client.get(f"/api/v1/trials/{trial}/subjects/{stored_code}", headers=headers)
    stored_case = stored.get_json()["case"]
    for sent, kept in zip(case["timepoints"], stored_case["timepoints"], strict=True):
        assert kept["targets"] == sent["targets"]  # as entered, never rounded

    # The audit trail holds the case exactly as stored (its canonical JSON).
    session.rollback()  # a fresh snapshot: the writes above came through the app
    audited = session.scalars(
        select(AuditRecord.new).where(
            AuditRecord.entity == "subject",
            AuditRecord.entity_key == f"{trial}/{stored_code}",
            AuditRecord.field == "case",
        )
    ).one()
    assert json.loads(audited or "null")["timepoints"] == [
        {k: v for k, v in tp.items() if k != "version"} for tp in stored_case["timepoints"]
    ]

    reader = app.test_client()
    login(reader, "reader")
    client.post(
        f"/api/v1/trials/{trial}/subjects",
        json={"subject_id": form_code, "randomized_on": case["randomized_on"]},
        headers=bearer(users["trial_manager"]),
    )
    _by_form(reader, trial, {**case, "subject_id": form_code})
    by_form = client.get(f"/api/v1/trials/{trial}/subjects/{form_code}/result", headers=headers)
    expected = {**cli, "subject_id": form_code}
    assert by_form.get_json()["result"] == expected
    # Each measurement the form saved is audited with the value stored, to the last decimal.
    session.rollback()
    for tp in case["timepoints"]:
        for lesion, value in tp["targets"].items():
            audited = session.scalars(
                select(AuditRecord.new).where(
                    AuditRecord.entity == "measurement",
                    AuditRecord.entity_key == f"{trial}/{form_code}/{tp['id']}/{lesion}",
                )
            ).first()
            assert audited is not None and json.loads(audited) == value


def test_a_size_with_two_decimals_is_shown_and_re_saved_as_entered(
    app: Flask, trial: str, users: dict[str, str]
) -> None:
    """35.04 mm is shown as 35.04 on the grid and in the edit form, and saving the form
    unchanged keeps it (shown as 35.0, it used to come back as 35.0 and turn SD into PR)."""
    case = _case("R-1", 50.0, 20.0, [])
    case["lesions"] = case["lesions"][:1] + case["lesions"][2:]
    for tp in case["timepoints"]:
        tp["targets"].pop("T02")
    case["timepoints"].append(
        {"id": "W8", "date": "2021-03-01", "targets": {"T01": 35.04},
         "non_targets": {"NT01": "present"}, "new_lesions": []}
    )  # fmt: skip
    api = app.test_client()
    headers = bearer(users["trial_manager"])
    assert api.post(f"/api/v1/trials/{trial}/cases", json=case, headers=headers).status_code == 201
    reader = app.test_client()
    login(reader, "reader")
    base = f"/trials/{trial}/subjects/R-1"
    grid = reader.get(base).data.decode()
    assert ">35.04<" in grid and "-29.9 %" in grid
    form = reader.get(base + "/timepoints/W8").data.decode()
    assert 'name="t_T01_mm" value="35.04"' in form
    version = api.get(f"/api/v1{base}/timepoints/W8", headers=headers).get_json()["version"]
    posted = {"code": "W8", "date": "2021-03-01", "t_T01_mm": "35.04", "t_T01_state": "measured",
              "nt_NT01": "present", "version": str(version)}  # fmt: skip
    assert reader.post(base + "/timepoints/W8", data=posted).status_code == 302
    result = api.get(f"/api/v1{base}/result", headers=headers).get_json()["result"]
    assert result["timepoints"][1]["sum_mm"] == 35.04
    assert result["timepoints"][1]["overall_response"] == "SD"
