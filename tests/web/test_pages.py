"""Pages for people: subject list, the lesion × timepoint grid and the entry forms."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from web.services import SYSTEM, import_case
from web.testing import login


@pytest.fixture
def reader(app: Flask, users: dict[str, str]) -> FlaskClient:
    client = app.test_client()
    login(client, "reader")
    return client


@pytest.fixture
def manager(app: Flask, users: dict[str, str]) -> FlaskClient:
    client = app.test_client()
    login(client, "trial_manager")
    return client


def _baseline_form(**rows: Any) -> dict[str, str]:
    data = {
        "code": "BL",
        "date": "2021-01-04",
        "rows": "3",
        "code_0": "",
        "kind_0": "target",
        "site_0": "liver",
        "size_0": "30",
        "code_1": "",
        "kind_1": "target",
        "site_1": "lymph node",
        "nodal_1": "on",
        "size_1": "20",
        "code_2": "",
        "kind_2": "non-target",
        "site_2": "bone",
        "size_2": "",
    }
    data.update(rows)
    return data


def _follow_up_form(code: str, day: str, t1: str, t2: str, **extra: str) -> dict[str, str]:
    data = {
        "code": code,
        "date": day,
        "t_T01_mm": t1,
        "t_T01_state": "measured",
        "t_T02_mm": t2,
        "t_T02_state": "measured",
        "nt_NT01": "present",
    }
    data.update(extra)
    return data


def _cell_texts(html: str, row_label: str) -> list[str]:
    match = re.search(
        rf'<tr[^>]*><th scope="row"[^>]*>{re.escape(row_label)}</th>(.*?)</tr>', html, re.S
    )
    assert match, f"no row {row_label!r}"
    return [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    ]


def test_create_subject_enter_baseline_pr_then_pd_updates_grid_and_list(
    manager: FlaskClient, reader: FlaskClient, trial: str
) -> None:
    response = manager.post(
        f"/trials/{trial}/subjects",
        data={"code": "S-10", "arm": "A", "randomized_on": "2021-01-01"},
    )
    base = f"/trials/{trial}/subjects/S-10"
    # A trial manager registers the subject and lands on its page (readers measure).
    assert response.status_code == 302 and response.headers["Location"] == base
    landing = manager.get(base)
    assert landing.status_code == 200
    assert "Subject S-10 created; a reader enters the baseline next." in landing.data.decode()
    response = reader.post(base + "/baseline", data=_baseline_form())
    assert response.status_code == 302, response.data[:3000]
    response = reader.post(
        base + "/timepoints/new", data=_follow_up_form("W8", "2021-03-01", "21", "14")
    )
    assert response.status_code == 302
    html = reader.get(base).data.decode()
    assert _cell_texts(html, "Overall response") == ["", "PR"]
    assert _cell_texts(html, "Sum of diameters (mm)") == ["50.0", "35.0"]
    assert _cell_texts(html, "Change from baseline") == ["", "-30.0 %"]
    assert 'id="progression">none' in html
    response = reader.post(
        base + "/timepoints/new", data=_follow_up_form("W16", "2021-04-26", "27", "15")
    )
    assert response.status_code == 302
    html = reader.get(base).data.decode()
    assert _cell_texts(html, "Overall response") == ["", "PR", "PD"]
    assert "R-TGT-PD" in html
    assert re.search(r'id="progression" class="flag-pd">PD at W16', html)
    listing = reader.get(f"/trials/{trial}").data.decode()
    assert re.search(r"S-10</a></td>\s*<td>A</td>\s*<td class=\"r-pd\">PD</td>", listing)
    assert "PD_TARGET" in listing and "flag-pd" in listing


def test_grid_marks_missing_too_small_split_merged_new_and_equivocal(
    reader: FlaskClient, session: Session, trial: str
) -> None:
    import_case(
        session,
        SYSTEM,
        trial,
        {
            "subject_id": "S-20",
            "lesions": [
                {"id": "T01", "site": "liver", "kind": "target"},
                {"id": "T02", "site": "liver", "kind": "target"},
                {"id": "T03", "site": "lung", "kind": "target"},
            ],
            "timepoints": [
                {"id": "BL", "date": "2021-01-04", "targets": {"T01": 30, "T02": 20, "T03": 15}},
                {
                    "id": "W8",
                    "date": "2021-03-01",
                    "targets": {"T01": {"fragments": [10, 8]}, "T02": "too_small"},
                    "new_lesions": [{"id": "NL01", "site": "bone", "equivocal": True}],
                },
                {
                    "id": "W16",
                    "date": "2021-04-26",
                    "targets": {"T01": 20, "T02": {"merged_into": "T01"}, "T03": 12},
                    "new_lesions": [{"id": "NL01", "site": "bone"}],
                },
            ],
        },
    )
    html = reader.get(f"/trials/{trial}/subjects/S-20").data.decode()
    assert _cell_texts(html, "T01") == ["liver", "30.0", "10.0 + 8.0split", "20.0"]
    assert "m-split" in html and "m-merged" in html and "m-small" in html
    assert _cell_texts(html, "T03") == ["lung", "15.0", "NEmissing", "12.0"]
    assert "m-missing" in html
    assert _cell_texts(html, "NL01") == ["bone", "", "equivocal", "yes"]
    assert "m-equivocal" in html and "m-new" in html
    # R-NEW-2: confirmed at W16, progression back-dated to the first sighting at W8.
    assert re.search(r"PD at W16, dated 2021-03-01", html)


def test_baseline_form_with_findings_asks_for_a_reason_and_keeps_what_was_typed(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-30"})
    base = f"/trials/{trial}/subjects/S-30/baseline"
    form = _baseline_form(size_0="8")  # an 8 mm liver target breaks R-MEAS-1
    response = reader.post(base, data=form)
    assert response.status_code == 422
    html = response.data.decode()
    assert "R-MEAS-1" in html and "needs a reason" in html
    assert 'name="size_0" value="8"' in html
    assert re.search(r'<input name="reason" size="60" maxlength="2000" value=""\s+required', html)
    response = reader.post(base, data={**form, "reason": "measured on 5 mm slices"})
    assert response.status_code == 302


def test_live_check_endpoint_returns_findings_for_the_form_as_typed(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-31"})
    url = f"/trials/{trial}/subjects/S-31/baseline/check"
    findings = reader.post(url, data=_baseline_form(size_1="12")).get_json()["findings"]
    assert [f["rule"] for f in findings] == ["R-MEAS-2"]
    assert findings[0]["lesion"] == "T02"
    assert reader.post(url, data=_baseline_form()).get_json() == {"findings": [], "error": None}


def test_follow_up_form_error_shows_the_message_and_keeps_the_input(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-40"})
    base = f"/trials/{trial}/subjects/S-40"
    reader.post(base + "/baseline", data=_baseline_form())
    response = reader.post(
        base + "/timepoints/new", data=_follow_up_form("W8", "2021-03-01", "", "14")
    )
    assert response.status_code == 400
    html = response.data.decode()
    assert "target T01: enter a size in mm or choose another state" in html
    assert 'name="t_T02_mm" value="14"' in html


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"t_T01_mm": "30", "t_T01_state": "absent"},
         "target T01: the state is &#39;absent&#39; but a size (30 mm) was also entered"),
        ({"t_T01_mm": "30", "t_T01_fragments": "10, 12"},
         "target T01: the state is &#39;measured&#39; but fragment sizes was also entered"),
        ({"t_T01_mm": "1e9"},
         "timepoint W8, lesion T01, field targets.T01: size 1000000000.0 mm is not a plausible "
         "size (more than 1000 mm)"),
        ({"new_0_id": "NL01"}, "new lesion NL01: choose its site"),
        ({"new_0_id": "NL01", "new_0_site": "lymph node", "new_0_nodal": "on"},
         "lesion NL01, field new_lesions: new lesion is a lymph node without its short axis"),
    ],
)  # fmt: skip
def test_a_follow_up_row_that_says_two_things_or_too_little_is_refused_and_nothing_saved(
    reader: FlaskClient, manager: FlaskClient, trial: str, extra: dict[str, str], message: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-45"})
    base = f"/trials/{trial}/subjects/S-45"
    reader.post(base + "/baseline", data=_baseline_form())
    form = {**_follow_up_form("W8", "2021-03-01", "21", "14"), **extra}
    response = reader.post(base + "/timepoints/new", data=form)
    assert response.status_code == 400
    assert message in response.data.decode()
    assert reader.get(base + "/timepoints/W8").status_code == 404


def test_fragments_or_a_merge_target_alone_mean_split_or_merged(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-46"})
    base = f"/trials/{trial}/subjects/S-46"
    reader.post(base + "/baseline", data=_baseline_form())
    form = {**_follow_up_form("W8", "2021-03-01", "", ""), "t_T01_fragments": "10 8",
            "t_T02_merged": "T01"}  # fmt: skip
    assert reader.post(base + "/timepoints/new", data=form).status_code == 302
    edit = reader.get(base + "/timepoints/W8").data.decode()
    assert 'name="t_T01_fragments" value="10.0 8.0"' in edit
    assert re.search(r'<option value="T01"\s+selected', edit)


def test_editing_a_follow_up_after_someone_else_saved_it_is_refused(
    reader: FlaskClient, app: Flask, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-50"})
    base = f"/trials/{trial}/subjects/S-50"
    reader.post(base + "/baseline", data=_baseline_form())
    reader.post(base + "/timepoints/new", data=_follow_up_form("W8", "2021-03-01", "21", "14"))
    page = reader.get(base + "/timepoints/W8").data.decode()
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    other = app.test_client()
    login(other, "adjudicator")
    response = other.post(
        base + "/timepoints/W8",
        data={
            **_follow_up_form("W8", "2021-03-01", "22", "14"),
            "version": version,
            "reason": "re-measured",
        },
    )
    assert response.status_code == 302
    response = reader.post(
        base + "/timepoints/W8",
        data={
            **_follow_up_form("W8", "2021-03-01", "40", "14"),
            "version": version,
            "reason": "re-measured",
        },
    )
    assert response.status_code == 409
    assert b"last saved by adjudicator" in response.data
    html = reader.get(base).data.decode()
    assert _cell_texts(html, "T01") == ["liver", "30.0", "22.0"]


def test_reviewer_sees_the_grid_without_entry_links(
    app: Flask, users: dict[str, str], session: Session, trial: str
) -> None:
    import_case(
        session,
        SYSTEM,
        trial,
        {
            "subject_id": "S-60",
            "lesions": [{"id": "T01", "site": "liver", "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": {"T01": 30}}],
        },
    )
    client = app.test_client()
    login(client, "reviewer")
    html = client.get(f"/trials/{trial}/subjects/S-60").data.decode()
    assert 'id="grid"' in html
    assert "Add follow-up" not in html and "Edit baseline" not in html
    assert client.get(f"/trials/{trial}/subjects/S-60/baseline").status_code == 403


def test_missing_subject_page_is_a_404_naming_it(reader: FlaskClient, trial: str) -> None:
    response = reader.get(f"/trials/{trial}/subjects/NOPE")
    assert response.status_code == 404
    assert b"subject &#39;NOPE&#39; does not exist" in response.data
    # Once, under the page's heading (the layout used to show it above it as well).
    text = response.data.decode()
    assert text.count("does not exist") == 1 and text.count('role="alert"') == 1
    assert text.index("<h1>404") < text.index("does not exist")


def test_manager_creates_a_trial_with_arms_and_protocol_settings(
    manager: FlaskClient, reader: FlaskClient
) -> None:
    form = {
        "code": "NEW-1",
        "title": "New trial",
        "arms": "SBRT: SBRT + ST\nST: ST alone",
        "s_confirmation": "on",
        "s_confirmation_min_days": "28",
        "s_confirmation_max_ne_between": "1",
        "s_sd_min_days": "49",
        "s_visit_interval_days": "",
        "s_pr_hold": "on",
        "s_cut_at_new_therapy": "on",
        "s_progression_date": "earliest",
    }
    assert reader.post("/trials", data=form).status_code == 403
    response = manager.post("/trials", data=form)
    assert response.status_code == 302
    html = manager.get("/trials/NEW-1").data.decode()
    assert "<dt>sd_min_days</dt><dd>49</dd>" in html
    assert "<dt>confirmation</dt><dd>True</dd>" in html
    assert "<dt>visit_interval_days</dt><dd>None</dd>" in html
    assert "SBRT – SBRT + ST" in html
    response = manager.post("/trials", data={**form, "code": "NEW-2", "s_sd_min_days": "x"})
    assert response.status_code == 400
    assert b"setting sd_min_days: &#39;x&#39; is not a whole number of days" in response.data


def test_trial_list_shows_each_trial_with_its_subject_count(
    reader: FlaskClient, session: Session, trial: str
) -> None:
    for code in ("C-1", "C-2"):
        import_case(
            session,
            SYSTEM,
            trial,
            {
                "subject_id": code,
                "lesions": [{"id": "T01", "site": "liver", "kind": "target"}],
                "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": {"T01": 30}}],
            },
        )
    html = reader.get("/").data.decode()
    assert re.search(rf">{trial}</a></td>\s*<td>Test trial</td><td>2</td>\s*<td>A, B</td>", html)


def test_follow_up_form_records_scan_dates_and_a_small_new_node_that_is_not_pd(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-70"})
    base = f"/trials/{trial}/subjects/S-70"
    reader.post(base + "/baseline", data=_baseline_form())
    form = _follow_up_form(
        "W8",
        "2021-03-01",
        "21",
        "14",
        scan_T01="2021-02-26",
        new_0_id="NL01",
        new_0_site="lymph node",
        new_0_nodal="on",
        new_0_sa="8",
        new_0_scan="2021-02-27",
    )
    response = reader.post(base + "/timepoints/new", data=form)
    assert response.status_code == 302
    html = reader.get(base).data.decode()
    # R-NEW-1: a new node below 10 mm short axis is not progression.
    assert _cell_texts(html, "Overall response") == ["", "PR"]
    edit = reader.get(base + "/timepoints/W8").data.decode()
    assert 'name="scan_T01" value="2021-02-26"' in edit
    assert 'name="new_0_sa" value="8.0"' in edit
    assert 'name="new_0_scan" value="2021-02-27"' in edit
    assert re.search(r'name="new_0_nodal" checked', edit)


def test_a_follow_up_can_be_deleted_with_a_reason_and_the_grid_is_reassessed(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-80"})
    base = f"/trials/{trial}/subjects/S-80"
    reader.post(base + "/baseline", data=_baseline_form())
    reader.post(base + "/timepoints/new", data=_follow_up_form("W8", "2021-03-01", "21", "14"))
    reader.post(base + "/timepoints/new", data=_follow_up_form("W16", "2021-04-26", "27", "15"))
    page = reader.get(base + "/timepoints/W16").data.decode()
    version = re.findall(r'name="version" value="(\d+)"', page)[-1]
    response = reader.post(base + "/timepoints/W16/delete", data={"version": version})
    assert response.status_code == 400
    assert b"deleting a timepoint needs a reason" in response.data
    response = reader.post(
        base + "/timepoints/W16/delete", data={"version": version, "reason": "scan belongs to S-81"}
    )
    assert response.status_code == 302
    html = reader.get(base).data.decode()
    assert _cell_texts(html, "Overall response") == ["", "PR"]
    assert "scan belongs to S-81" not in html  # readers do not see the audit trail
    assert "scan belongs to S-81" in manager.get(base).data.decode()  # managers do


def test_follow_up_form_shows_baseline_previous_nadir_and_the_pr_pd_sums(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-80"})
    base = f"/trials/{trial}/subjects/S-80"
    reader.post(base + "/baseline", data=_baseline_form())  # T01 30, T02 20: sum 50
    reader.post(base + "/timepoints/new", data=_follow_up_form("W8", "2021-03-01", "21", "14"))
    html = reader.get(base + "/timepoints/new").data.decode()
    text = re.sub(r"<[^>]+>", "", html.split('id="reference">', 1)[1].split("</p>", 1)[0])
    # W8 was PR, so R-TGT-HOLD keeps this visit PR below the PD sum:
    # ≥ max(120 % of nadir 35.0 = 42.0, 35.0 + 5) = 42.0 mm.
    assert " ".join(text.split()) == (
        "Baseline sum 50.0 mm · nadir 35.0 mm (W8) — PR was reached at W8: this visit stays "
        "PR below the PD sum (R-TGT-HOLD; where confirmation is required, once that PR is "
        "confirmed), PD at a sum ≥ 42.0 mm (R-TGT-PD)."
    )
    assert '<td class="ref">30.0 · 21.0</td>' in html and "Baseline · W8 (mm)" in html
    # Editing W8 itself: it is compared with the baseline (nadir 50.0: PD ≥ 60.0 mm).
    edit = reader.get(base + "/timepoints/W8").data.decode()
    assert "nadir <strong>50.0 mm</strong> (BL)" in edit and "≥ <strong>60.0 mm</strong>" in edit
    # PR: ≤ 70 % of the baseline sum 50.0 = 35.0 mm.
    assert "this visit is PR at a sum ≤ <strong>35.0 mm</strong> (R-TGT-PR)" in edit
    assert '<td class="ref">30.0</td>' in edit


def test_a_new_lesion_row_filled_without_an_id_is_kept_with_an_id_no_lesion_has_used(
    reader: FlaskClient, manager: FlaskClient, trial: str
) -> None:
    manager.post(f"/trials/{trial}/subjects", data={"code": "S-90"})
    base = f"/trials/{trial}/subjects/S-90"
    reader.post(base + "/baseline", data=_baseline_form())
    w8 = _follow_up_form("W8", "2021-03-01", "29", "19", new_0_id="", new_0_site="lung",
                         new_0_equivocal="on")  # fmt: skip
    assert reader.post(base + "/timepoints/new", data=w8).status_code == 302
    # W16: a different new lesion, again without an id: it must not take NL01, which
    # would confirm W8's equivocal lesion (R-NEW-2) by accident.
    w16 = _follow_up_form("W16", "2021-04-26", "29", "19", new_0_site="liver")
    assert reader.post(base + "/timepoints/new", data=w16).status_code == 302
    html = reader.get(base).data.decode()
    assert _cell_texts(html, "New lesions") == ["", "equivocal", "yes"]
    edit = reader.get(base + "/timepoints/W16").data.decode()
    assert 'name="new_0_id" value="NL02"' in edit
    assert "R-NEW-1: unequivocal new lesion NL02 (liver)" in html
