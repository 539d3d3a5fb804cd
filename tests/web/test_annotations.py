"""Lesion annotations the rules never read: a free-text location per lesion and new lesion,
a key image (series/image number) per measurement. Kept web-side (the case contract stays
closed), validated naming subject, timepoint, lesion and field, audited; and the entry
forms' errors name the input that holds the bad value, echoed input cut short."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.web.helpers import follow_up
from web.models import AuditRecord
from web.testing import baseline_lesions, bearer

BASE = "/trials/{trial}/subjects/S-1"


@pytest.fixture
def api(client: FlaskClient, users: dict[str, str]) -> Any:
    def call(role: str, method: str, path: str, **kwargs: Any) -> Any:
        return client.open("/api/v1" + path, method=method, headers=bearer(users[role]), **kwargs)

    return call


@pytest.fixture
def reader(logged_in: Callable[[str], FlaskClient], users: dict[str, str]) -> FlaskClient:
    return logged_in("reader")


@pytest.fixture
def enrolled(api: Any, trial: str) -> str:
    """S-1, enrolled by the trial manager, without a baseline yet: its URL."""
    api("trial_manager", "POST", f"/trials/{trial}/subjects", json={"subject_id": "S-1"})
    return BASE.format(trial=trial)


@pytest.fixture
def located(api: Any, enrolled: str) -> str:
    """S-1 with the located baseline of :func:`_located_baseline`, saved: its URL."""
    response = _located_baseline(api, enrolled)
    assert response.status_code == 200, response.get_json()
    return enrolled


def _located_baseline(api: Any, base: str, **extra: Any) -> Any:
    """The reader's PUT of the standard baseline, T01 located (segment VII, series 3,
    image 41) and ``extra`` on T01."""
    lesions = baseline_lesions()
    lesions[0] = {**lesions[0], "location": "segment VII", "series": 3, "image": 41, **extra}
    return api("reader", "PUT", base + "/baseline", json={"date": "2021-01-04", "lesions": lesions})


def _w8(**extra: Any) -> dict[str, Any]:
    """W8 as the API takes it (T01 21 mm, T02 14 mm, NT01 present), with ``extra``."""
    return {**follow_up("W8", "2021-03-01", 21.0, 14.0), **extra}


def test_api_keeps_a_location_and_key_image_beside_the_contract(
    api: Any, located: str, session: Session
) -> None:
    base = located
    lesions = api("reviewer", "GET", base + "/lesions").get_json()["lesions"]
    assert lesions[0]["location"] == "segment VII" and "location" not in lesions[1]
    response = api(
        "reader",
        "POST",
        base + "/timepoints",
        json=_w8(
            images={"T01": {"series": 4, "image": 37}},
            new_lesions=[
                {"id": "NL01", "site": "lung", "location": "right lower lobe", "image": 12}
            ],
        ),
    )
    assert response.status_code == 201, response.get_json()
    tp = api("reviewer", "GET", base + "/timepoints/W8").get_json()
    assert tp["images"] == {"T01": {"series": 4, "image": 37}}
    assert tp["new_lesions"][0]["location"] == "right lower lobe"
    assert tp["new_lesions"][0]["image"] == 12 and "series" not in tp["new_lesions"][0]
    # The engine never sees them: the case (the contract) has no such member.
    case = api("reviewer", "GET", base).get_json()["case"]
    assert "location" not in case["lesions"][0]
    assert "images" not in case["timepoints"][1]
    # Audited like any other field.
    fields = {
        (r.entity, r.entity_key.rsplit("/", 1)[-1], r.field, r.new)
        for r in session.scalars(select(AuditRecord))
    }
    assert ("lesion", "T01", "location", "segment VII") in fields
    assert ("measurement", "T01", "series", "4") in fields
    assert ("new_lesion", "NL01", "location", "right lower lobe") in fields
    # A PUT of what GET returned round-trips; dropping the image is audited as a change.
    tp["images"] = {}
    tp["reason"] = "wrong series noted"
    response = api("reader", "PUT", base + "/timepoints/W8", json=tp)
    assert response.status_code == 200, response.get_json()
    assert "images" not in api("reviewer", "GET", base + "/timepoints/W8").get_json()
    session.rollback()  # a fresh read of the trail, not the snapshot read above
    cleared = [
        r
        for r in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        if r.field == "image" and r.entity == "measurement" and r.new is None
    ]
    assert cleared and cleared[-1].old == "37"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"location": "x" * 121}, "location", "at most 120"),
        ({"location": "liver\x07dome"}, "location", "control character"),
        ({"series": 0}, "series", "whole number from 1"),
        ({"image": "12a"}, "image", "whole number from 1"),
        ({"image": True}, "image", "whole number from 1"),
    ],
)
def test_api_refuses_a_bad_annotation_naming_subject_lesion_and_field(
    api: Any, enrolled: str, extra: dict[str, Any], field: str, words: str
) -> None:
    response = _located_baseline(api, enrolled, **extra)
    assert response.status_code in (400, 422)
    error = response.get_json()["error"]
    assert error["pointer"] == f"/lesions/0/{field}"
    assert "subject S-1" in error["message"] and "lesion T01" in error["message"]
    assert words in error["message"]
    # Nothing was written: the subject still has no baseline.
    subject = api("reviewer", "GET", enrolled).get_json()
    assert subject["case"]["timepoints"] == []


def test_api_refuses_images_of_an_unknown_lesion(api: Any, located: str) -> None:
    response = api(
        "reader", "POST", located + "/timepoints", json=_w8(images={"T09": {"series": 4}})
    )
    assert response.status_code in (400, 422)
    error = response.get_json()["error"]
    assert error["pointer"] == "/images/T09" and "timepoint W8" in error["message"]


def _form(**rows: str) -> dict[str, str]:
    data = {
        "code": "BL",
        "date": "2021-01-04",
        "rows": "4",
        "kind_0": "target",
        "site_0": "liver",
        "size_0": "30",
        "location_0": "segment VII",
        "series_0": "3",
        "image_0": "41",
        "kind_1": "target",
        "site_1": "lymph node",
        "nodal_1": "on",
        "size_1": "20",
        "kind_3": "non-target",
        "site_3": "bone",
    }
    data.update(rows)
    return data


def test_baseline_form_saves_location_and_image_and_shows_them_again(
    reader: FlaskClient, enrolled: str
) -> None:
    url = enrolled + "/baseline"
    response = reader.post(url, data=_form())
    assert response.status_code == 302, response.data.decode()[-2000:]
    html = reader.get(url).data.decode()
    assert 'name="location_0" value="segment VII"' in html
    assert 'name="series_0" value="3"' in html and 'name="image_0" value="41"' in html
    assert 'maxlength="120"' in html and 'maxlength="2000"' in html
    follow = reader.get(enrolled + "/timepoints/new").data.decode()
    assert '<small class="location">segment VII</small>' in follow


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        # Text in a size, on the third row typed (the empty row 2 is skipped).
        ({"size_3": "", "kind_3": "target", "site_3": "lung", "size_1": "2o"}, "size_1"),
        # A duplicated id: the second lesion typed with it is the one named.
        ({"code_0": "T01", "code_1": "T01"}, "code_1"),
        # An id the storage refuses, on the fourth row (after an empty row).
        ({"code_3": "N T"}, "code_3"),
        ({"image_3": "-4"}, "image_3"),
    ],
)
def test_a_refused_baseline_names_the_input_that_holds_the_error(
    reader: FlaskClient, enrolled: str, rows: dict[str, str], field: str
) -> None:
    response = reader.post(enrolled + "/baseline", data=_form(**rows))
    assert response.status_code in (400, 409, 422)
    html = response.data.decode()
    assert f'data-field="{field}"' in html
    assert html.count('class="error" role="alert" id="error"') == 1


def test_echoed_input_is_cut_in_the_error_banner(reader: FlaskClient, enrolled: str) -> None:
    pasted = "twelve millimetres " * 40
    response = reader.post(enrolled + "/baseline", data=_form(size_0=pasted))
    html = response.data.decode()
    banner = html[html.index('id="error"') :].split("</p>", 1)[0]
    assert "twelve millimetres twelve" in banner and "…" in banner
    assert len(banner) < 300
    assert 'data-field="size_0"' in banner


def _follow_up(**extra: str) -> dict[str, str]:
    data = {
        "code": "W8",
        "date": "2021-03-01",
        "t_T01_mm": "21",
        "t_T01_state": "measured",
        "t_T02_mm": "14",
        "t_T02_state": "measured",
        "nt_NT01": "present",
        "new_0_id": "",
        "new_1_id": "",
        "new_2_id": "",
    }
    data.update(extra)
    return data


def test_follow_up_form_keeps_key_images_and_a_new_lesions_location(
    reader: FlaskClient, api: Any, located: str
) -> None:
    url = located + "/timepoints/new"
    response = reader.post(
        url,
        data=_follow_up(
            img_T02_series="5",
            img_T02_image="88",
            new_1_site="liver",
            new_1_location="segment IVb",
            new_1_series="5",
        ),
    )
    assert response.status_code == 302, response.data.decode()[-2000:]
    tp = api("reviewer", "GET", located + "/timepoints/W8").get_json()
    assert tp["images"] == {"T02": {"series": 5, "image": 88}}
    assert tp["new_lesions"] == [
        {"id": "NL01", "site": "liver", "equivocal": False, "location": "segment IVb", "series": 5}
    ]
    html = reader.get(located + "/timepoints/W8").data.decode()
    assert 'name="img_T02_image" value="88"' in html
    assert 'name="new_0_location" value="segment IVb"' in html


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"t_T02_mm": "1.4.2"}, "t_T02_mm"),
        (
            {"t_T01_mm": "", "t_T01_state": "fragments", "t_T01_fragments": "12 x"},
            "t_T01_fragments",
        ),
        # A new lesion without an id (the form numbers it) and without a site.
        ({"new_2_sa": "12", "new_2_nodal": "on"}, "new_2_site"),
        ({"new_1_site": "lung", "new_1_sa": "twelve"}, "new_1_sa"),
        ({"new_1_id": "T01", "new_1_site": "lung"}, "new_1_id"),
        ({"new_0_site": "lung", "new_0_location": "a\tb" * 70}, "new_0_location"),
        ({"new_0_site": "lung", "new_0_series": "0"}, "new_0_series"),
        ({"img_NT01_image": "x"}, "img_NT01_image"),
    ],
)
def test_a_refused_follow_up_names_the_input_that_holds_the_error(
    reader: FlaskClient, located: str, extra: dict[str, str], field: str
) -> None:
    response = reader.post(located + "/timepoints/new", data=_follow_up(**extra))
    assert response.status_code in (400, 409, 422)
    html = response.data.decode()
    assert f'data-field="{field}"' in html, html[html.find('id="error"') - 200 :][:600]
    assert "subject" in html or "new lesion" in html


def test_a_deleted_follow_up_keeps_its_annotations_in_the_trail(
    api: Any, located: str, session: Session
) -> None:
    base = located
    w8 = _w8(
        images={"T02": {"image": 9}},
        new_lesions=[{"id": "NL01", "site": "lung", "location": "right lower lobe"}],
    )
    created = api("reader", "POST", base + "/timepoints", json=w8).get_json()
    response = api(
        "reader",
        "DELETE",
        base + "/timepoints/W8",
        json={"version": created["timepoint"]["version"], "reason": "wrong subject"},
    )
    assert response.status_code == 200, response.get_json()
    session.rollback()
    deleted = [r for r in session.scalars(select(AuditRecord)) if r.action == "delete"]
    assert any(r.entity_key.endswith("/W8/T02") and r.field == "image" and r.old == "9"
               for r in deleted)  # fmt: skip
    (new,) = [r for r in deleted if r.entity == "new_lesion"]
    assert '"location": "right lower lobe"' in (new.old or "")


def test_an_open_equivocal_lesion_is_carried_to_the_next_visit_with_its_location(
    reader: FlaskClient, api: Any, located: str
) -> None:
    base = located
    equivocal = {"id": "NL01", "site": "lung", "equivocal": True, "location": "left apex"}
    response = api("reader", "POST", base + "/timepoints", json=_w8(new_lesions=[equivocal]))
    assert response.status_code == 201, response.get_json()
    html = reader.get(base + "/timepoints/new").data.decode()
    assert 'name="new_0_id" value="NL01"' in html
    assert 'name="new_0_location" value="left apex"' in html


def test_the_live_baseline_check_names_the_form_input_too(
    reader: FlaskClient, enrolled: str
) -> None:
    """The live check leaves out targets still without a size: its errors still name the
    row the reader typed (here the third), not the n-th lesion it checked."""
    form = _form(size_0="", code_1="T05", code_3="T05", kind_3="target", size_3="12")
    data = reader.post(enrolled + "/baseline/check", data=form).get_json()
    assert "used twice" in data["error"] and data["field"] == "code_3"
    data = reader.post(
        enrolled + "/baseline/check", data=_form(kind_2="non-target", series_2="7")
    ).get_json()
    assert data["field"] == "site_2", data  # a row with only a series is a lesion: its site?
