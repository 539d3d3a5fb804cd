"""The JSON API: stateless assessment, resources, versions, JSON errors, OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from web.testing import baseline_lesions, bearer

CASE = {
    "subject_id": "0101-004",
    "randomized_on": "2021-01-01",
    "lesions": [
        {"id": "T1", "site": "liver", "kind": "target", "nodal": False},
        {"id": "T2", "site": "lymph node", "kind": "target", "nodal": True},
        {"id": "NT1", "site": "bone", "kind": "non-target"},
    ],
    "timepoints": [
        {
            "id": "BL",
            "date": "2020-12-28",
            "targets": {"T1": 32.0, "T2": 17.0},
            "non_targets": {"NT1": "present"},
            "new_lesions": [],
        },
        {
            "id": "W8",
            "date": "2021-02-26",
            "targets": {"T1": "too_small", "T2": 9.0},
            "non_targets": {"NT1": "present"},
            "new_lesions": [{"id": "N1", "site": "lung", "equivocal": True}],
        },
    ],
}


@pytest.fixture
def api(client: FlaskClient, users: dict[str, str]) -> Any:
    """Call the API as a role: api("reader", "GET", path, json=...)."""

    def call(role: str, method: str, path: str, **kwargs: Any) -> Any:
        return client.open("/api/v1" + path, method=method, headers=bearer(users[role]), **kwargs)

    return call


def test_assess_returns_the_engine_result_of_the_interfaces_example(api: Any) -> None:
    response = api("reviewer", "POST", "/assess", json=CASE)
    assert response.status_code == 200
    body = response.get_json()
    w8 = body["timepoints"][1]
    assert w8["sum_mm"] == 14.0
    assert (w8["target_response"], w8["new_lesions"], w8["overall_response"]) == (
        "PR",
        "equivocal",
        "PR",
    )
    assert body["best_overall_response"] == "PR"
    assert body["pfs"] == {**body["pfs"], "event": False, "days": 57}


def test_assess_error_is_json_with_code_message_field_and_pointer(api: Any) -> None:
    bad = {
        **CASE,
        "timepoints": [CASE["timepoints"][0], {**CASE["timepoints"][1], "targets": {"T1": -4.0}}],
    }
    response = api("reader", "POST", "/assess", json=bad)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert "W8" in error["message"] and "T1" in error["message"]
    assert error["pointer"] == "/timepoints/1/targets/T1"
    response = api("reader", "POST", "/assess", data="not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == (
        "the request body is not valid JSON: Expecting value at line 1, column 1"
    )
    response = api("reader", "POST", "/assess", data='{"subject_id": "S",\n  "lesions": [,]}',
                   content_type="application/json")  # fmt: skip
    assert response.get_json()["error"]["message"].endswith("at line 2, column 15")
    response = api("reader", "POST", "/assess", data="{}", content_type="text/plain")
    assert response.get_json()["error"]["message"].startswith("the request body must be JSON")


def test_unknown_key_in_a_case_is_refused_with_its_path(api: Any) -> None:
    response = api("reader", "POST", "/assess", json={**CASE, "randomised_on": "2021-01-01"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "randomised_on" in error["message"]
    assert error["pointer"] == "/randomised_on"


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda c: c["lesions"][1].update(nodall=True), "/lesions/1/nodall"),
        (lambda c: c["timepoints"][1]["non_targets"].update(NT1="weird"),
         "/timepoints/1/non_targets/NT1"),
        (lambda c: c["timepoints"][1]["new_lesions"][0].update(equivocal="maybe"),
         "/timepoints/1/new_lesions/0/equivocal"),
    ],
)  # fmt: skip
def test_nested_errors_point_at_the_value_itself(api: Any, change: Any, pointer: str) -> None:
    import copy

    bad = copy.deepcopy(CASE)
    change(bad)
    response = api("reader", "POST", "/assess", json=bad)
    assert response.status_code == 400
    assert response.get_json()["error"]["pointer"] == pointer


def test_full_workflow_trial_subject_baseline_follow_ups_and_result(api: Any) -> None:
    response = api(
        "trial_manager",
        "POST",
        "/trials",
        json={
            "code": "T-API",
            "title": "API trial",
            "settings": {"confirmation": False},
            "arms": [{"code": "A", "name": "arm A"}],
        },
    )
    assert response.status_code == 201
    assert response.get_json()["settings"]["sd_min_days"] == 42
    # Only members reach a trial: its creator (the trial manager) assigns the reader.
    assert api("reader", "GET", "/trials/T-API").status_code == 403
    assert [t["code"] for t in api("reader", "GET", "/trials").get_json()["trials"]] == []
    for name in ("reader", "reviewer"):
        response = api("trial_manager", "POST", "/trials/T-API/members", json={"username": name})
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["added_by"] == "trial_manager"
    names = [
        m["username"]
        for m in api("trial_manager", "GET", "/trials/T-API/members").get_json()["members"]
    ]
    assert names == ["reader", "reviewer", "trial_manager"]
    response = api(
        "trial_manager",
        "POST",
        "/trials/T-API/subjects",
        json={"subject_id": "S-1", "arm": "A", "randomized_on": "2021-01-01"},
    )
    assert response.status_code == 201
    base = "/trials/T-API/subjects/S-1"
    response = api(
        "reader",
        "PUT",
        base + "/baseline",
        json={"date": "2021-01-04", "lesions": baseline_lesions()},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["result"]["timepoints"][0]["sum_mm"] == 50.0
    response = api(
        "reader",
        "POST",
        base + "/timepoints",
        json={
            "id": "W8",
            "date": "2021-03-01",
            "targets": {"T01": 21.0, "T02": 14.0},
            "non_targets": {"NT01": "present"},
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["result"]["timepoints"][1]["overall_response"] == "PR"
    version = body["timepoint"]["version"]
    response = api(
        "reader",
        "PUT",
        base + "/timepoints/W8",
        json={
            "date": "2021-03-01",
            "targets": {"T01": 21.0, "T02": 14.0},
            "non_targets": {"NT01": "present"},
            "new_lesions": [{"id": "NL01", "site": "liver"}],
            "version": version,
        },
    )
    assert response.status_code == 200
    assert response.get_json()["result"]["timepoints"][1]["overall_response"] == "PD"
    result = api("reviewer", "GET", base + "/result").get_json()["result"]
    assert result["progression"]["timepoint"] == "W8"
    assert result["pfs"]["reason"] == "PD_NEW_LESION"
    subjects = api("reviewer", "GET", "/trials/T-API/subjects").get_json()["subjects"]
    assert subjects[0]["progression"]["timepoint"] == "W8"
    rows = api("reviewer", "GET", base + "/timepoints/W8/measurements").get_json()
    assert {r["lesion"] for r in rows["measurements"]} == {"T01", "T02", "NT01", "NL01"}
    lesions = api("reviewer", "GET", base + "/lesions").get_json()["lesions"]
    assert [le["id"] for le in lesions] == ["T01", "T02", "NT01"]


def test_stale_version_gets_409_with_a_clear_message(api: Any, trial: str) -> None:
    api("trial_manager", "POST", f"/trials/{trial}/subjects", json={"subject_id": "S-2"})
    base = f"/trials/{trial}/subjects/S-2"
    api(
        "reader",
        "PUT",
        base + "/baseline",
        json={"date": "2021-01-04", "lesions": baseline_lesions()},
    )
    created = api(
        "reader",
        "POST",
        base + "/timepoints",
        json={"id": "W8", "date": "2021-03-01", "targets": {"T01": 21.0, "T02": 14.0}},
    ).get_json()
    version = created["timepoint"]["version"]
    first = api(
        "reader",
        "PUT",
        base + "/timepoints/W8",
        json={
            "date": "2021-03-01",
            "targets": {"T01": 20.0, "T02": 14.0},
            "version": version,
            "reason": "re-measured",
        },
    )
    assert first.status_code == 200
    second = api(
        "adjudicator",
        "PUT",
        base + "/timepoints/W8",
        json={
            "date": "2021-03-01",
            "targets": {"T01": 35.0, "T02": 14.0},
            "version": version,
            "reason": "re-measured",
        },
    )
    assert second.status_code == 409
    error = second.get_json()["error"]
    assert error["code"] == "concurrent_edit"
    assert "last saved by reader" in error["message"]
    assert error["pointer"] == "/version"
    stored = api("reviewer", "GET", base + "/timepoints/W8").get_json()
    assert stored["targets"]["T01"] == 20.0
    missing = api(
        "reader", "PUT", base + "/timepoints/W8", json={"date": "2021-03-01", "targets": {}}
    )
    assert missing.status_code == 409
    assert "send the timepoint's version" in missing.get_json()["error"]["message"]


def test_baseline_with_findings_answers_422_listing_them_until_a_reason_is_given(
    api: Any, trial: str
) -> None:
    api("trial_manager", "POST", f"/trials/{trial}/subjects", json={"subject_id": "S-3"})
    lesions = [{"id": "T01", "kind": "target", "site": "liver", "size": 8.0}]
    path = f"/trials/{trial}/subjects/S-3/baseline"
    response = api("reader", "PUT", path, json={"date": "2021-01-04", "lesions": lesions})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "reason_required"
    assert [d["rule"] for d in error["details"]] == ["R-MEAS-1"]
    response = api(
        "reader",
        "PUT",
        path,
        json={"date": "2021-01-04", "lesions": lesions, "reason": "only lesion; PI approved"},
    )
    assert response.status_code == 200


def test_case_import_and_delete_of_a_follow_up(api: Any, trial: str) -> None:
    case = {**CASE, "subject_id": "IMP-1"}
    response = api("trial_manager", "POST", f"/trials/{trial}/cases", json=case)
    assert response.status_code == 201
    assert response.get_json()["result"]["best_overall_response"] == "PR"
    base = f"/trials/{trial}/subjects/IMP-1"
    version = api("reviewer", "GET", base + "/timepoints/W8").get_json()["version"]
    response = api("reader", "DELETE", base + "/timepoints/W8", json={"version": version})
    assert response.status_code == 400
    assert "needs a reason" in response.get_json()["error"]["message"]
    response = api(
        "reader",
        "DELETE",
        base + "/timepoints/W8",
        json={"version": version, "reason": "entered on the wrong subject"},
    )
    assert response.status_code == 200
    assert len(response.get_json()["result"]["timepoints"]) == 1


def test_not_found_names_the_missing_resource(api: Any, trial: str) -> None:
    response = api("reviewer", "GET", f"/trials/{trial}/subjects/NOPE")
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == (
        f"subject 'NOPE' does not exist in trial '{trial}'"
    )
    response = api("reviewer", "GET", "/trials/NOPE/subjects/NOPE")
    assert response.get_json()["error"]["message"] == "trial 'NOPE' does not exist"


def test_bad_trial_settings_are_refused_naming_the_setting(api: Any) -> None:
    response = api(
        "trial_manager", "POST", "/trials", json={"code": "T-X", "settings": {"sd_min": 4}}
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "unknown key 'sd_min'" in error["message"]
    assert error["pointer"] == "/settings/sd_min"


def test_openapi_documents_every_api_route_and_method(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    documented = {
        (path, method.upper()): op.get("x-permission")
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    served = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}")
        permission = app.view_functions[rule.endpoint].required_permission
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            served[(path, method)] = permission
    # Same routes, and each documented with the permission the server enforces.
    assert served == documented
    assert "Case" in doc["components"]["schemas"]


def test_openapi_document_is_valid_openapi_3_1_with_every_path_parameter_declared(
    client: FlaskClient,
) -> None:
    from openapi_spec_validator import validate

    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)  # raises, naming the first violation, when the document is not valid
    put = doc["paths"]["/trials/{trial_code}/subjects/{subject_code}/timepoints/{tp_code}"]["put"]
    assert [p["name"] for p in put["parameters"]] == ["trial_code", "subject_code", "tp_code"]
    assert "$defs" not in str(doc)


def test_simultaneous_saves_of_one_version_let_exactly_one_through(
    app: Flask, users: dict[str, str], trial: str
) -> None:
    import threading

    client = app.test_client()
    headers = bearer(users["reader"])
    client.post(
        f"/api/v1/trials/{trial}/subjects",
        json={"subject_id": "S-9"},
        headers=bearer(users["trial_manager"]),
    )
    base = f"/api/v1/trials/{trial}/subjects/S-9"
    client.put(
        base + "/baseline",
        json={"date": "2021-01-04", "lesions": baseline_lesions()},
        headers=headers,
    )
    version = client.post(
        base + "/timepoints",
        headers=headers,
        json={"id": "W8", "date": "2021-03-01", "targets": {"T01": 21.0, "T02": 14.0}},
    ).get_json()["timepoint"]["version"]
    start = threading.Barrier(6)
    statuses: list[int] = []

    def save(size: float) -> None:
        own = app.test_client()
        start.wait()
        response = own.put(
            base + "/timepoints/W8",
            headers=headers,
            json={
                "date": "2021-03-01",
                "targets": {"T01": size, "T02": 14.0},
                "version": version,
                "reason": "re-measured",
            },
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=save, args=(20.0 + i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409, 409, 409, 409, 409]
    stored = client.get(base + "/timepoints/W8", headers=headers).get_json()
    assert stored["version"] == version + 1


def test_a_request_body_over_5_mb_is_refused_outside_uploads(api: Any) -> None:
    response = api(
        "reader",
        "POST",
        "/assess",
        data=b"[" + b"0," * 3_000_000 + b"0]",
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["message"] == (
        "the request body is larger than the 5 MB limit"
    )


def test_scan_date_for_an_unknown_lesion_is_refused_with_its_pointer(api: Any, trial: str) -> None:
    api("trial_manager", "POST", f"/trials/{trial}/subjects", json={"subject_id": "S-11"})
    base = f"/trials/{trial}/subjects/S-11"
    api(
        "reader",
        "PUT",
        base + "/baseline",
        json={"date": "2021-01-04", "lesions": baseline_lesions()},
    )
    response = api(
        "reader",
        "POST",
        base + "/timepoints",
        json={
            "id": "W8",
            "date": "2021-03-01",
            "targets": {"T01": 21.0, "T02": 14.0},
            "scan_dates": {"T09": "2021-02-27"},
        },
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "scan_dates names 'T09'" in error["message"]
    assert error["pointer"] == "/scan_dates/T09"


def test_a_bad_baseline_size_points_into_the_lesions_of_the_request(api: Any, trial: str) -> None:
    api("trial_manager", "POST", f"/trials/{trial}/subjects", json={"subject_id": "S-12"})
    lesions = baseline_lesions()
    lesions[1]["size"] = -2.0
    response = api(
        "reader",
        "PUT",
        f"/trials/{trial}/subjects/S-12/baseline",
        json={"date": "2021-01-04", "lesions": lesions},
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "T02" in error["message"]
    assert error["pointer"] == "/lesions/1/size"


@pytest.mark.parametrize(
    ("new_lesion", "pointer", "message"),
    [
        ({"id": "NL01"}, "/new_lesions/0/site", "new lesion NL01 needs its site"),
        ({"id": "NL01", "site": "lymph node", "nodal": True}, "/new_lesions/0/short_axis_mm",
         "lesion NL01, field new_lesions: new lesion is a lymph node without its short axis"),
    ],
)  # fmt: skip
def test_a_new_lesion_without_site_or_a_new_node_without_short_axis_is_refused(
    api: Any, trial: str, new_lesion: dict[str, Any], pointer: str, message: str
) -> None:
    api("trial_manager", "POST", f"/trials/{trial}/subjects", json={"subject_id": "S-NL"})
    base = f"/trials/{trial}/subjects/S-NL"
    lesions = [
        {"id": "T01", "site": "liver", "kind": "target", "size": 30.0},
        {"id": "NT01", "site": "bone", "kind": "non-target"},
    ]
    body = {"date": "2021-01-04", "lesions": lesions}
    assert api("reader", "PUT", base + "/baseline", json=body).status_code in (200, 201)
    tp = {"id": "W8", "date": "2021-03-01", "targets": {"T01": 20.0},
          "non_targets": {"NT01": "present"}, "new_lesions": [new_lesion]}  # fmt: skip
    response = api("reader", "POST", base + "/timepoints", json=tp)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["pointer"] == pointer and message in error["message"]
