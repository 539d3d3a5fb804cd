"""A trial with ``criteria: "irecist"`` end to end in the web application: created by the
form and the API, a case imported through the API, the grid, the subject summary and the
trial's subject list in iRECIST's codes with the RECIST 1.1 result beside them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from recist.jsonio import assess_json
from web.pages.grid import build_grid, follow_up_reference, response_css
from web.services import SYSTEM, import_case
from web.testing import bearer, login

IRECIST_TRIAL = "T-IREC"


def _case(subject: str, *follow_ups: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject_id": subject,
        "randomized_on": "2021-01-01",
        "lesions": [
            {"id": "T1", "site": "liver", "kind": "target"},
            {"id": "NT1", "site": "bone", "kind": "non-target"},
        ],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 30.0},
             "non_targets": {"NT1": "present"}, "new_lesions": []},
            *follow_ups,
        ],
    }  # fmt: skip


def _fu(tp: str, day: str, t1: float, new: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": tp, "date": day, "targets": {"T1": t1}, "non_targets": {"NT1": "present"},
            "new_lesions": new or []}  # fmt: skip


def _node(size: float) -> dict[str, Any]:
    """New lesion N1, a node: its short axis is what the web stores of a new lesion."""
    return {"id": "N1", "site": "lymph node", "nodal": True, "short_axis_mm": size}


# T1 30 → 40 mm with a new 16 mm node (iUPD, I-UPD-1) → T1 46 mm, node 22 mm 42 days later
# (I-CPD-1, I-CPD-3): iCPD. RECIST 1.1: PD at W8.
CONFIRMED = _case(
    "I-CPD",
    _fu("W8", "2021-03-01", 40.0, [_node(16.0)]),
    _fu("W14", "2021-04-12", 46.0, [_node(22.0)]),
)
# T1 30 → 40 mm (iUPD) → 33 mm: shrunk since the iUPD, the bar resets (I-RESET): iSD.
RESET = _case("I-RESET", _fu("W8", "2021-03-01", 40.0), _fu("W14", "2021-04-12", 33.0))


@pytest.fixture
def api(client: FlaskClient, users: dict[str, str]) -> Any:
    """Call the API as a role: api("trial_manager", "POST", path, json=...)."""

    def call(role: str, method: str, path: str, **kwargs: Any) -> Any:
        return client.open("/api/v1" + path, method=method, headers=bearer(users[role]), **kwargs)

    return call


@pytest.fixture
def manager(app: Flask, users: dict[str, str]) -> FlaskClient:
    client = app.test_client()
    login(client, "trial_manager")
    return client


@pytest.fixture
def irecist_trial(api: Any) -> str:
    """An iRECIST trial created through the API by the trial manager (its first member)."""
    body = {"code": IRECIST_TRIAL, "title": "Immunotherapy", "settings": {"criteria": "irecist"}}
    response = api("trial_manager", "POST", "/trials", json=body)
    assert response.status_code == 201, response.get_json()
    return IRECIST_TRIAL


def _import(api: Any, trial: str, case: dict[str, Any]) -> dict[str, Any]:
    response = api("trial_manager", "POST", f"/trials/{trial}/cases", json=case)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _cell_texts(html: str, row_label: str) -> list[str]:
    match = re.search(
        rf'<tr[^>]*><th scope="row"[^>]*>{re.escape(row_label)}</th>(.*?)</tr>', html, re.S
    )
    assert match, f"no row {row_label!r}"
    return [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    ]


def test_the_api_creates_an_irecist_trial_with_the_confirmation_window(
    api: Any, irecist_trial: str
) -> None:
    settings = api("trial_manager", "GET", f"/trials/{irecist_trial}").get_json()["settings"]
    assert settings["criteria"] == "irecist"
    assert (settings["irecist_confirm_min_days"], settings["irecist_confirm_max_days"]) == (28, 56)


def test_the_trial_form_offers_the_criteria_and_creates_an_irecist_trial(
    manager: FlaskClient,
) -> None:
    page = manager.get("/").data.decode()
    assert '<select name="s_criteria">' in page and '<option value="irecist" ' in page
    assert 'name="s_irecist_confirm_max_days" size="4" value="56"' in page
    form = {"code": "IREC-FORM", "title": "Form trial", "s_confirmation_min_days": "28",
            "s_confirmation_max_ne_between": "1", "s_sd_min_days": "42",
            "s_criteria": "irecist", "s_irecist_confirm_min_days": "21",
            "s_irecist_confirm_max_days": ""}  # fmt: skip
    response = manager.post("/trials", data=form)
    assert response.status_code == 302
    html = manager.get("/trials/IREC-FORM").data.decode()
    assert "<dt>criteria</dt><dd>irecist</dd>" in html
    assert "<dt>irecist_confirm_min_days</dt><dd>21</dd>" in html
    assert "<dt>irecist_confirm_max_days</dt><dd>56</dd>" in html  # left blank: the default


def test_the_trial_form_refuses_a_window_that_is_not_a_number_of_days(
    manager: FlaskClient,
) -> None:
    form = {"code": "IREC-BAD", "s_confirmation_min_days": "28",
            "s_confirmation_max_ne_between": "1", "s_sd_min_days": "42",
            "s_criteria": "irecist", "s_irecist_confirm_min_days": "four weeks"}  # fmt: skip
    response = manager.post("/trials", data=form)
    assert response.status_code == 400
    assert b"setting irecist_confirm_min_days: &#39;four weeks&#39; is not a whole" in (
        response.data
    )


def test_an_imported_irecist_case_is_stored_and_gets_the_engines_answer(
    api: Any, irecist_trial: str
) -> None:
    body = _import(api, irecist_trial, CONFIRMED)
    assert body["best_overall_response"] == "iCPD"
    assert body["progression"]["iupd_timepoint"] == "W8"
    stored = api("trial_manager", "GET", f"/trials/{irecist_trial}/subjects/I-CPD").get_json()
    # The node's size is stored (as its short axis), so the rebuilt case is the one sent.
    assert [tp["new_lesions"] for tp in stored["case"]["timepoints"]][1:] == [
        [{"id": "N1", "site": "lymph node", "equivocal": False, "nodal": True,
          "short_axis_mm": 16.0}],
        [{"id": "N1", "site": "lymph node", "equivocal": False, "nodal": True,
          "short_axis_mm": 22.0}],
    ]  # fmt: skip
    engine = assess_json({**CONFIRMED, "settings": stored["case"]["settings"]})
    assert stored["result"] == engine
    assert [tp["overall_response"] for tp in engine["recist1_1"]["timepoints"]] == [
        None, "PD", "PD"
    ]  # fmt: skip


def test_the_grid_shows_iupd_then_icpd_the_new_target_sum_and_the_recist_1_1_row(
    api: Any, manager: FlaskClient, irecist_trial: str
) -> None:
    _import(api, irecist_trial, CONFIRMED)
    html = manager.get(f"/trials/{irecist_trial}/subjects/I-CPD").data.decode()
    assert _cell_texts(html, "Overall response (iRECIST)") == ["", "iUPD", "iCPD"]
    assert _cell_texts(html, "Target response") == ["", "iUPD", "iCPD"]
    assert _cell_texts(html, "Non-target response") == ["", *["NON-iCR/NON-iUPD"] * 2]
    assert _cell_texts(html, "New-lesion response") == ["", "iUPD", "iCPD"]
    assert _cell_texts(html, "Overall response (RECIST 1.1)") == ["", "PD", "PD"]
    assert _cell_texts(html, "N1") == ["lymph node (node) · new target", "", "16.0", "22.0"]
    assert _cell_texts(html, "New-target sum (mm)") == ["", "16.0", "22.0"]
    assert _cell_texts(html, "New-target nadir (mm)") == ["", "", "16.0"]
    assert _cell_texts(html, "New-target change from nadir") == ["", "", "+6.0 mm, +37.5 %"]
    # iUPD and iCPD are coloured as progression and carry classes of their own.
    assert '<td class="r-pd r-iupd" title="' in html and '<td class="r-pd r-icpd" title="' in html
    assert 'id="recist11-row"' in html and '<td class="r-pd" title="R-TGT-PD' in html
    # The criteria line: iBOR, the confirmed progression dated by its iUPD, RECIST 1.1's.
    assert '<strong id="ibor" class="r-pd r-icpd">iCPD</strong>' in html
    line = re.sub(r"<[^>]+>|\s+", " ", re.search(r'id="criteria">(.*?)</p>', html, re.S)[1])
    assert re.sub(r" +", " ", line).strip() == (
        "Criteria: iRECIST (docs/rules.md §10) · iBOR iCPD · confirmed progression: iCPD at "
        "W14 , from the iUPD at W8 dated 2021-03-01 · RECIST 1.1 beside it: BOR PD , PD at "
        "W8 dated 2021-03-01"
    )


def test_the_subject_summary_and_the_trial_list_show_the_ibor(
    api: Any, manager: FlaskClient, irecist_trial: str
) -> None:
    _import(api, irecist_trial, CONFIRMED)
    _import(api, irecist_trial, RESET)
    page = manager.get(f"/trials/{irecist_trial}/subjects/I-CPD").data.decode()
    assert '<strong id="bor" class="r-pd r-icpd">iCPD</strong>' in page
    # I-PFS: the confirmed progression (iCPD at W14), dated by its iUPD (W8).
    assert re.search(r'id="progression" class="flag-pd">PD at W14, dated 2021-03-01', page)
    listing = manager.get(f"/trials/{irecist_trial}").data.decode()
    assert re.search(
        r'I-CPD</a></td>\s*<td></td>\s*<td class="r-pd r-icpd">iCPD</td>\s*'
        r'<td class="r-pd r-icpd">iCPD</td>',
        listing,
    )
    assert re.search(
        r'I-RESET</a></td>\s*<td></td>\s*<td class="r-sd r-isd">iSD</td>\s*'
        r'<td class="r-sd r-isd">iSD</td>',
        listing,
    )
    subjects = api("trial_manager", "GET", f"/trials/{irecist_trial}/subjects").get_json()
    assert {s["subject_id"]: s["best_overall_response"] for s in subjects["subjects"]} == {
        "I-CPD": "iCPD", "I-RESET": "iSD"
    }  # fmt: skip


def test_an_iupd_that_resets_reads_iupd_then_isd_with_no_progression(
    api: Any, manager: FlaskClient, irecist_trial: str
) -> None:
    _import(api, irecist_trial, RESET)
    html = manager.get(f"/trials/{irecist_trial}/subjects/I-RESET").data.decode()
    assert _cell_texts(html, "Overall response (iRECIST)") == ["", "iUPD", "iSD"]
    assert _cell_texts(html, "Overall response (RECIST 1.1)") == ["", "PD", "SD"]
    assert "New-target sum (mm)" not in html  # no new target, no sum row
    assert 'id="progression">none' in html
    assert "confirmed progression: none" in html
    assert 'BOR <strong class="r-pd">PD</strong>, PD at W8 dated 2021-03-01' in html


def test_a_recist_1_1_trials_grid_has_no_irecist_rows(
    manager: FlaskClient, session: Session, trial: str
) -> None:
    import_case(session, SYSTEM, trial, {**RESET, "subject_id": "R-1"})
    html = manager.get(f"/trials/{trial}/subjects/R-1").data.decode()
    assert _cell_texts(html, "Overall response") == ["", "PD", "SD"]
    assert 'id="criteria"' not in html and "RECIST 1.1)" not in html
    assert "New-lesion response" not in html


def test_a_non_nodal_new_target_keeps_its_size_when_imported(api: Any, irecist_trial: str) -> None:
    lung = {"id": "N1", "site": "lung"}
    case = _case(
        "I-LUNG",
        _fu("W8", "2021-03-01", 30.0, [{**lung, "size_mm": 14.0}]),
        _fu("W14", "2021-04-12", 30.0, [{**lung, "size_mm": 20.0}]),
    )
    engine = assess_json({**case, "settings": {"criteria": "irecist"}})
    assert engine["best_overall_response"] == "iCPD"  # I-CPD-3: 14 → 20 mm
    body = _import(api, irecist_trial, case)
    assert body["best_overall_response"] == "iCPD"  # N1's sizes are stored (NewLesion.size_units)


def test_a_new_lesion_listed_again_without_its_site_is_imported(
    api: Any, irecist_trial: str
) -> None:
    case = _case(
        "I-LATER",
        _fu("W8", "2021-03-01", 40.0, [_node(16.0)]),
        _fu("W14", "2021-04-12", 46.0, [{"id": "N1", "short_axis_mm": 22.0}]),
    )
    body = _import(api, irecist_trial, case)
    assert body["best_overall_response"] == "iCPD"
    # The later row keeps the first listing's site and nodal flag (I-NEW-4).
    stored = api("trial_manager", "GET", f"/trials/{irecist_trial}/subjects/I-LATER").get_json()
    assert stored["result"] == assess_json({**case, "settings": stored["case"]["settings"]})
    assert stored["case"]["timepoints"][2]["new_lesions"] == [
        {"id": "N1", "site": "lymph node", "equivocal": False, "nodal": True,
         "short_axis_mm": 22.0}
    ]  # fmt: skip


# The grid from the engine's result alone (no database).


def _irecist(case: dict[str, Any]) -> dict[str, Any]:
    return {**case, "settings": {"criteria": "irecist"}}


def test_grid_shows_a_new_targets_size_a_new_non_targets_state_and_a_partial_sum() -> None:
    case = _irecist(
        _case(
            "G-1",
            _fu("W8", "2021-03-01", 30.0, [
                {"id": "N1", "site": "lung", "size_mm": 14.0},
                {"id": "N2", "site": "liver", "size_mm": 12.0},
                {"id": "N3", "site": "bone"},
            ]),
            _fu("W14", "2021-04-12", 30.0, [
                {"id": "N1", "size_mm": 20.0}, {"id": "N2", "size_mm": "not_evaluated"},
                {"id": "N3", "state": "progression"},
            ]),
        )
    )  # fmt: skip
    grid = build_grid(case, assess_json(case))
    rows = {r.label: r for r in grid.new_rows}
    assert [c.text for c in rows["N1"].cells] == ["", "14.0", "20.0"]
    assert [c.text for c in rows["N2"].cells] == ["", "12.0", "NE"]
    assert [c.text for c in rows["N3"].cells] == ["", "yes", "progression"]
    assert rows["N1"].detail == "lung · new target"
    assert rows["N3"].detail == "bone · new non-target"
    sums = {r.label: r for r in grid.new_summary_rows}
    assert [c.text for c in sums["New-target sum (mm)"].cells] == ["", "26.0", "(20.0)"]
    assert sums["New-target sum (mm)"].cells[2].css == ["m-missing"]
    assert [c.text for c in sums["New-target change from nadir"].cells] == ["", "", ""]


def test_grid_of_a_recist_1_1_result_is_unchanged_by_irecist() -> None:
    case = _case("G-2", _fu("W8", "2021-03-01", 40.0, [{"id": "N1", "site": "lung"}]))
    grid = build_grid(case, assess_json(case))
    assert grid.criteria is None and grid.new_summary_rows == []
    assert [r.label for r in grid.response_rows] == [
        "Target response", "Non-target response", "New lesions", "Overall response"
    ]  # fmt: skip
    assert [c.text for c in grid.new_rows[0].cells] == ["", "yes"]
    assert grid.new_rows[0].detail == "lung"


@pytest.mark.parametrize(
    ("code", "css"),
    [("iCR", "r-cr r-icr"), ("iPR", "r-pr r-ipr"), ("iSD", "r-sd r-isd"),
     ("NON-iCR/NON-iUPD", "r-non-cr-non-pd r-non-icr-non-iupd"), ("iUPD", "r-pd r-iupd"),
     ("iCPD", "r-pd r-icpd"), ("NE", "r-ne"), ("PD", "r-pd"), ("NON-CR/NON-PD", "r-non-cr-non-pd"),
     (None, "")],
)  # fmt: skip
def test_response_codes_of_both_criteria_get_the_colour_of_their_recist_1_1_class(
    code: str | None, css: str
) -> None:
    assert response_css(code) == css


def test_the_follow_up_reference_holds_an_ipr_until_an_iupd_ends_it() -> None:
    # R-TGT-HOLD under iRECIST [iFAQ]; an iUPD of the targets ends the hold (I-RESET).
    responded = _irecist(_case("G-3", _fu("W8", "2021-03-01", 20.0)))
    assert follow_up_reference(responded, assess_json(responded), None)["hold_from"] == "W8"
    progressed = _irecist(
        _case("G-4", _fu("W8", "2021-03-01", 20.0), _fu("W14", "2021-04-12", 26.0))
    )
    result = assess_json(progressed)
    assert [tp["target_response"] for tp in result["timepoints"][1:]] == ["iPR", "iUPD"]
    assert follow_up_reference(progressed, result, None)["hold_from"] is None


def test_an_irecist_trial_draws_its_plots_and_takes_an_override(
    api: Any, app: Flask, irecist_trial: str
) -> None:
    """iRECIST codes have colours in every plot, and an adjudicator's override of an
    iRECIST call derives PFS again (the adequacy of iUPD/iCPD timepoints, §8)."""
    from web.services import SYSTEM
    from web.services.membership import add_member

    body = _import(api, irecist_trial, CONFIRMED)
    subject = CONFIRMED["subject_id"]
    db = app.extensions["recist_sessions"]()
    try:
        for name in ("reviewer", "adjudicator"):
            add_member(db, SYSTEM, username=name, trial_code=irecist_trial)
    finally:
        db.close()
    client = app.test_client()
    login(client, "reviewer")
    for kind in ("waterfall", "spider", "swimmer", "km-pfs", "km-os"):
        response = client.get(f"/trials/{irecist_trial}/plots/{kind}.svg")
        assert response.status_code == 200, (kind, response.data[:300])
    call = api("reviewer", "GET", f"/trials/{irecist_trial}/progression-calls/{subject}")
    assert call.status_code == 200, call.get_json()
    progression = body["result"]["progression"]
    seen = f"{progression['timepoint']}/{progression['date']}"
    override = api(
        "adjudicator",
        "POST",
        f"/trials/{irecist_trial}/progression-calls/{subject}/override",
        json={"timepoint": None, "reason": "pseudo-progression on biopsy", "call": seen},
    )
    assert override.status_code == 200, override.get_json()
    assert override.get_json()["used_call"]["timepoint"] is None
