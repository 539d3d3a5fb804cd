"""The central reader's worksheet: lesion rows × visit columns become a read of the case
contract (docs/contracts.md), with errors naming the lesion, the visit and the field; a
read entered on the worksheet is checked without signing, or assessed and signed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.models import AuditRecord, CentralRead
from web.pages.read_sheet import Sheet, SheetError
from web.services import SYSTEM, Actor, create_subject, get_subject
from web.services.central import reads_of, set_central_review
from web.testing import PASSWORD, login

BL, FU1, FU2 = "2021-01-04", "2021-03-01", "2021-04-26"
Cells = Sequence[str]


def _form(
    columns: Sequence[tuple[str, str]],
    rows: Sequence[tuple[str, str, str, bool, Cells]],
    **extra: str,
) -> dict[str, str]:
    """The fields the worksheet posts: columns are (visit, date), rows are (id, role, site,
    node, cells)."""
    form = {"columns": str(len(columns)), "rows": str(len(rows)), **extra}
    for j, (visit, day) in enumerate(columns):
        form[f"visit_{j}"], form[f"date_{j}"] = visit, day
    for i, (lid, role, site, node, cells) in enumerate(rows):
        form[f"id_{i}"], form[f"role_{i}"], form[f"site_{i}"] = lid, role, site
        if node:
            form[f"node_{i}"] = "1"
        for j, text in enumerate(cells):
            form[f"cell_{i}_{j}"] = text
    return form


VISITS = [("BL", BL), ("FU1", FU1), ("FU2", FU2)]


def _read(rows: Sequence[tuple[str, str, str, bool, Cells]], columns: Any = None) -> Any:
    return Sheet.from_form(_form(columns or VISITS, rows)).to_read()


def _cell(role: str, text: str, *, node: bool = False, baseline: str = "30") -> Any:
    """The contract value of one follow-up cell (FU1) of a lesion of ``role``."""
    rows = [
        ("", "target", "liver", False, ["30", "20", "20"]),
        ("", "target", "lung", False, ["25", "20", "20"]),
        ("", role, "lymph node" if node else "bone", node, [baseline, text, ""]),
    ]
    read = _read(rows, VISITS[:2])
    fu1 = read["timepoints"][1]
    if role == "target":
        return fu1["targets"]["T03"]
    if role == "non-target":
        return fu1["non_targets"]["NT01"]
    return fu1["new_lesions"]


# --------------------------------------------------------------------------- the notation


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("32", 32.0),
        ("32.5", 32.5),
        ("32,5", 32.5),
        ("0", 0.0),
        ("TS", "too_small"),
        ("ts", "too_small"),
        ("A", "absent"),
        ("NE", "not_evaluated"),
        ("10+8", {"fragments": [10.0, 8.0]}),
        ("10 + 8 + 2.5", {"fragments": [10.0, 8.0, 2.5]}),
        (">T01", {"merged_into": "T01"}),
        ("→T01", {"merged_into": "T01"}),
        ("-> t01", {"merged_into": "T01"}),
    ],
)
def test_a_target_cell_becomes_a_target_value_of_the_contract(text: str, value: Any) -> None:
    assert _cell("target", text) == value


@pytest.mark.parametrize(
    ("text", "state"),
    [("P", "present"), ("a", "absent"), ("PD", "progression"), ("NE", "not_evaluated")],
)
def test_a_non_target_cell_becomes_a_non_target_state(text: str, state: str) -> None:
    assert _cell("non-target", text, baseline="P") == state


def test_a_blank_non_target_cell_at_baseline_is_present() -> None:
    read = _read(
        [
            ("", "target", "liver", False, ["30", "20"]),
            ("", "non-target", "bone", False, ["", "P"]),
        ],
        VISITS[:2],
    )
    assert read["timepoints"][0]["non_targets"] == {"NT01": "present"}


@pytest.mark.parametrize(
    ("text", "node", "new_lesions"),
    [
        ("", False, []),
        ("N", False, [{"id": "NL01", "site": "bone", "equivocal": False}]),
        ("eq", False, [{"id": "NL01", "site": "bone", "equivocal": True}]),
        (
            "N 12",
            True,
            [
                {
                    "id": "NL01",
                    "site": "lymph node",
                    "equivocal": False,
                    "nodal": True,
                    "short_axis_mm": 12.0,
                }
            ],
        ),
        ("N", True, [{"id": "NL01", "site": "lymph node", "equivocal": False, "nodal": True}]),
    ],
)
def test_a_new_lesion_cell_is_not_seen_new_or_equivocal_with_a_new_nodes_short_axis(
    text: str, node: bool, new_lesions: list[dict[str, Any]]
) -> None:
    assert _cell("new", text, node=node, baseline="") == new_lesions


def test_the_worksheet_becomes_a_read_with_automatic_ids_and_no_blank_rows_or_columns() -> None:
    columns = [*VISITS, ("", ""), ("", "")]
    rows = [
        ("", "target", "liver", False, ["32", "TS", "10+8", "", ""]),
        ("T01", "target", "lymph node", True, ["17", "9", ">T02", "", ""]),
        ("", "non-target", "bone", False, ["", "P", "PD", "", ""]),
        ("", "target", "", False, ["", "", "", "", ""]),  # a spare row
        ("", "new", "lung", False, ["", "EQ", "N", "", ""]),
    ]
    assert _read(rows, columns) == {
        "lesions": [
            {"id": "T02", "site": "liver", "kind": "target", "nodal": False},
            {"id": "T01", "site": "lymph node", "kind": "target", "nodal": True},
            {"id": "NT01", "site": "bone", "kind": "non-target", "nodal": False},
        ],
        "timepoints": [
            {
                "id": "BL",
                "date": BL,
                "targets": {"T02": 32.0, "T01": 17.0},
                "non_targets": {"NT01": "present"},
                "new_lesions": [],
            },
            {
                "id": "FU1",
                "date": FU1,
                "targets": {"T02": "too_small", "T01": 9.0},
                "non_targets": {"NT01": "present"},
                "new_lesions": [{"id": "NL01", "site": "lung", "equivocal": True}],
            },
            {
                "id": "FU2",
                "date": FU2,
                "targets": {"T02": {"fragments": [10.0, 8.0]}, "T01": {"merged_into": "T02"}},
                "non_targets": {"NT01": "progression"},
                "new_lesions": [{"id": "NL01", "site": "lung", "equivocal": False}],
            },
        ],
    }


def test_a_read_laid_out_as_a_worksheet_reads_back_the_same() -> None:
    rows = [
        ("T1", "target", "liver", False, ["32", "A", "10.5+8"]),
        ("T2", "target", "lymph node", True, ["17", "TS", ">T1"]),
        ("NT1", "non-target", "bone", False, ["P", "NE", "PD"]),
        ("N1", "new", "lymph node", True, ["", "EQ 8", "N 12.5"]),
    ]
    read = _read(rows)
    again = Sheet.from_read(read)
    assert [r.cells for r in again.rows] == [list(r[4]) for r in rows]
    assert again.to_read() == read


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cells", "message", "field"),
    [
        (["abc", "20", "20"], r"lesion T01, visit BL, size: 'abc' is not a size in mm", "cell_0_0"),
        (
            ["", "20", "20"],
            r"lesion T01, visit BL, size: missing; a target needs its baseline "
            r"size in mm \(R-SEL-3\)",
            "cell_0_0",
        ),
        (["30", "", "20"], r"lesion T01, visit FU1, size: missing; enter a size in mm", "cell_0_1"),
        (["30", "20", "-4"], r"lesion T01, visit FU2, size: '-4' is not", "cell_0_2"),
        (
            ["30", "20", ">T09"],
            r"lesion T01, visit FU2, merged into: 'T09' is not a target "
            r"lesion of this read \(R-MERGE\)",
            "cell_0_2",
        ),
        (["30", "20", ">NT01"], r"'NT01' is not a target lesion", "cell_0_2"),
        (
            ["30", "20", ">T01"],
            r"lesion T01, visit FU2, merged into: a lesion cannot merge "
            r"into itself",
            "cell_0_2",
        ),
    ],
)
def test_a_bad_target_cell_is_refused_naming_lesion_visit_and_field(
    cells: list[str], message: str, field: str
) -> None:
    rows = [
        ("", "target", "liver", False, cells),
        ("", "non-target", "bone", False, ["", "P", "P"]),
    ]
    with pytest.raises(SheetError, match=message) as refused:
        _read(rows)
    assert refused.value.field == field and refused.value.status == 400


@pytest.mark.parametrize(
    ("row", "message", "field"),
    [
        (
            ("", "non-target", "bone", False, ["", "X", "P"]),
            r"lesion NT01, visit FU1, state: 'X' is not P, A, PD or NE",
            "cell_1_1",
        ),
        (
            ("", "non-target", "bone", False, ["", "P", ""]),
            r"lesion NT01, visit FU2, state: missing; enter P, A, PD or NE",
            "cell_1_2",
        ),
        (
            ("", "new", "lung", False, ["N", "", ""]),
            r"lesion NL01, visit BL, new lesion: a new lesion cannot be seen at the baseline",
            "cell_1_0",
        ),
        (
            ("", "new", "lung", False, ["", "maybe", ""]),
            r"lesion NL01, visit FU1, new lesion: 'maybe' is not blank \(not seen\), N",
            "cell_1_1",
        ),
        (
            ("", "new", "lung", False, ["", "N 12", ""]),
            r"lesion NL01, visit FU1, short axis: a size is kept only for a new lymph node",
            "cell_1_1",
        ),
        (
            ("", "non-target", "", False, ["", "P", "P"]),
            r"lesion NT01, site: choose the site",
            "site_1",
        ),
    ],
)
def test_a_bad_non_target_new_lesion_or_row_is_refused_naming_lesion_visit_and_field(
    row: tuple[str, str, str, bool, Cells], message: str, field: str
) -> None:
    rows = [("", "target", "liver", False, ["30", "20", "20"]), row]
    with pytest.raises(SheetError, match=message) as refused:
        _read(rows)
    assert refused.value.field == field


def test_two_rows_with_one_typed_id_are_refused_and_automatic_ids_skip_typed_ones() -> None:
    rows = [("T1", "target", "liver", False, ["30"]), ("T1", "non-target", "bone", False, [""])]
    with pytest.raises(SheetError, match=r"lesion T1: the id is used by row 1 too") as refused:
        _read(rows, VISITS[:1])
    assert refused.value.field == "id_1"
    sheet = Sheet.from_form(
        _form(
            VISITS[:1],
            [("", "target", "", False, [])] * 2
            + [("T01", "target", "", False, []), ("", "new", "", False, [])],
        )
    )
    assert sheet.auto_ids() == ["T02", "T03", "T01", "NL01"]


@pytest.mark.parametrize(
    ("columns", "message", "field"),
    [
        ([("BL", BL), ("", FU1)], r"visit column 2: the visit name is missing", "visit_1"),
        ([("BL", BL), ("FU1", "")], r"visit FU1, scan date: missing", "date_1"),
        (
            [("BL", BL), ("FU1", "1/3/21")],
            r"visit FU1, scan date: '1/3/21' is not a date",
            "date_1",
        ),
        ([("BL", BL), ("BL", FU1)], r"visit BL: the name is used by column 1 too", "visit_1"),
        ([("", ""), ("FU1", FU1)], r"the first column is the baseline", "visit_0"),
    ],
)
def test_a_bad_visit_column_is_refused_naming_the_visit_and_field(
    columns: list[tuple[str, str]], message: str, field: str
) -> None:
    rows = [("", "target", "liver", False, ["", "20"] if columns[0][0] == "" else ["30", "20"])]
    with pytest.raises(SheetError, match=message) as refused:
        _read(rows, columns)
    assert refused.value.field == field


def test_an_engine_refusal_points_at_the_worksheet_cell() -> None:
    sheet = Sheet.from_form(_form(VISITS, [("", "target", "liver", False, ["30", "20", "20"])]))
    assert sheet.field_at("/timepoints/2/targets/T01") == "cell_0_2"
    assert sheet.field_at("/timepoints/1/date") == "date_1"
    assert sheet.field_at("/lesions/0/site") is None and sheet.field_at(None) is None


def test_a_posted_worksheet_is_never_laid_out_larger_than_the_limits() -> None:
    sheet = Sheet.from_form({"columns": "100000", "rows": "x"}).padded()
    assert len(sheet.columns) == 40 and len(sheet.rows) == 10
    assert len(sheet.with_more_columns(5).columns) == 40
    assert len(Sheet.blank().with_more_columns().columns) == 6


# --------------------------------------------------------------------------- the page

PD_SHEET = [
    ("", "target", "liver", False, ["30", "28", "40"]),
    ("", "non-target", "bone", False, ["", "P", "P"]),
]


@pytest.fixture
def icr(session: Session, trial: str, users: dict[str, str]) -> str:
    """The trial under independent central review, with subject S-9 to read."""
    set_central_review(session, Actor("trial_manager", "trial_manager"), trial, on=True)
    create_subject(session, SYSTEM, trial, code="S-9", arm="B", randomized_on=BL)
    return trial


def _reader(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "reader")
    return client


def _stored(session: Session, trial: str) -> tuple[list[CentralRead], int]:
    session.expunge_all()
    session.rollback()
    reads = reads_of(session, get_subject(session, trial, "S-9"))
    # Clinical records only: access events (a login, a failed password) are audited too.
    audits = session.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(AuditRecord.entity.not_in(("access", "api_token")))
    ) or 0
    return reads, audits


def test_a_read_entered_on_the_worksheet_is_signed_and_its_result_stored(
    app: Flask, session: Session, icr: str
) -> None:
    client = _reader(app)
    url = f"/trials/{icr}/subjects/S-9/central-read"
    page = client.get(url).data.decode()
    assert 'id="read-sheet"' in page and 'name="cell_0_0"' in page and 'placeholder="NT01"' in page
    response = client.post(url, data=_form(VISITS, PD_SHEET, action="sign", password=PASSWORD))
    assert response.status_code == 302
    (read,), _ = _stored(session, icr)
    assert read.reader == "reader" and read.case_json["lesions"][0] == {
        "id": "T01",
        "site": "liver",
        "kind": "target",
        "nodal": False,
    }
    assert read.case_json["timepoints"][2]["targets"] == {"T01": 40.0}
    assert read.result_json["best_overall_response"] == "SD"
    assert read.result_json["progression"]["date"] == FU2
    page = client.get(url).data.decode()
    assert 'id="my-pd">PD at FU2, 2021-04-26<' in page and 'id="signed-sheet"' in page
    assert 'id="read-sheet"' not in page  # a signed read cannot be changed


def test_check_shows_the_engine_outcome_and_stores_nothing(
    app: Flask, session: Session, icr: str
) -> None:
    _, audits_before = _stored(session, icr)
    client = _reader(app)
    url = f"/trials/{icr}/subjects/S-9/central-read"
    response = client.post(url, data=_form(VISITS, PD_SHEET, action="check"))
    page = response.data.decode()
    assert response.status_code == 200
    assert 'id="check-bor" class="r-sd">SD<' in page
    assert 'id="check-pd">PD at FU2, 2021-04-26<' in page
    assert "+42.9 %" in page and "R-TGT-PD" in page  # 40 mm vs nadir 28 mm
    assert 'value="40"' in page  # the worksheet as typed, ready to sign
    reads, audits = _stored(session, icr)
    assert reads == [] and audits == audits_before


def test_check_lists_the_baseline_findings(app: Flask, icr: str) -> None:
    rows = [("", "target", "liver", False, ["8", "8"])]  # below 10 mm: R-MEAS-1
    response = _reader(app).post(
        f"/trials/{icr}/subjects/S-9/central-read", data=_form(VISITS[:2], rows, action="check")
    )
    page = response.data.decode()
    assert response.status_code == 200 and 'id="check-findings"' in page and "R-MEAS-1" in page


def test_a_wrong_password_stores_nothing_and_shows_the_worksheet_as_typed(
    app: Flask, session: Session, icr: str
) -> None:
    _, audits_before = _stored(session, icr)
    response = _reader(app).post(
        f"/trials/{icr}/subjects/S-9/central-read",
        data=_form(VISITS, PD_SHEET, action="sign", password="wrong"),
    )
    page = response.data.decode()
    assert response.status_code == 400 and "the password does not match" in page
    assert 'name="cell_0_2" value="40"' in page and 'name="visit_2" value="FU2"' in page
    reads, audits = _stored(session, icr)
    assert reads == [] and audits <= audits_before + 1  # at most the refused signature


def test_a_worksheet_error_is_shown_on_the_page_at_its_cell_never_a_traceback(
    app: Flask, session: Session, icr: str
) -> None:
    rows = [("", "target", "liver", False, ["30", "28", "4O"])]
    response = _reader(app).post(
        f"/trials/{icr}/subjects/S-9/central-read",
        data=_form(VISITS, rows, action="sign", password=PASSWORD),
    )
    page = response.data.decode()
    assert response.status_code == 400
    assert "lesion T01, visit FU2, size: &#39;4O&#39; is not a size in mm" in page
    assert 'name="cell_0_2" value="4O" size="7" autocomplete="off"' in page
    assert 'class="bad" aria-invalid="true"' in page and "Traceback" not in page
    assert _stored(session, icr)[0] == []


def test_an_engine_refusal_is_shown_with_the_worksheet_as_typed(
    app: Flask, session: Session, icr: str
) -> None:
    columns = [("BL", BL), ("FU1", "2020-12-01")]  # before the baseline
    rows = [("", "target", "liver", False, ["30", "28"])]
    response = _reader(app).post(
        f"/trials/{icr}/subjects/S-9/central-read", data=_form(columns, rows, action="check")
    )
    page = response.data.decode()
    assert response.status_code == 400 and 'id="error"' in page and "FU1" in page
    assert 'value="2020-12-01"' in page and "Traceback" not in page


def test_add_columns_and_rows_re_render_the_worksheet_larger_without_javascript(
    app: Flask, icr: str
) -> None:
    client = _reader(app)
    url = f"/trials/{icr}/subjects/S-9/central-read"
    form = _form(VISITS, PD_SHEET, action="add_columns")
    page = client.post(url, data=form).data.decode()
    assert 'name="visit_4"' in page and 'name="visit_5"' not in page
    assert 'name="cell_0_4"' in page and 'name="cell_0_2" value="40"' in page
    page = client.post(url, data={**form, "action": "add_rows"}).data.decode()
    assert 'name="id_4"' in page and 'name="id_5"' not in page


def test_the_json_read_can_still_be_checked_and_signed_from_the_advanced_form(
    app: Flask, session: Session, icr: str
) -> None:
    import json

    read = _read(PD_SHEET)
    client = _reader(app)
    url = f"/trials/{icr}/subjects/S-9/central-read"
    page = client.post(url, data={"read": json.dumps(read), "action": "check"}).data.decode()
    assert 'id="check-pd">PD at FU2, 2021-04-26<' in page and '<details id="advanced" open>' in page
    assert _stored(session, icr)[0] == []
    response = client.post(url, data={"read": json.dumps(read), "password": PASSWORD})
    assert response.status_code == 302 and len(_stored(session, icr)[0]) == 1


def test_the_worksheet_reader_stays_blinded(app: Flask, icr: str) -> None:
    client = _reader(app)
    page = client.post(
        f"/trials/{icr}/subjects/S-9/central-read", data=_form(VISITS, PD_SHEET, action="check")
    ).data.decode()
    assert "arm" not in page.lower()
    for url in (
        f"/trials/{icr}/subjects/S-9",
        f"/trials/{icr}/subjects/S-9/baseline",
        f"/trials/{icr}/progression",
        f"/trials/{icr}/central-review",
    ):
        assert client.get(url).status_code == 403, url


def test_the_worksheet_script_checks_as_the_reader_types_and_gets_json(
    app: Flask, session: Session, icr: str
) -> None:
    client = _reader(app)
    url = f"/trials/{icr}/subjects/S-9/central-read"
    json_only = {"Accept": "application/json"}
    body = client.post(url, data=_form(VISITS, PD_SHEET, action="check"), headers=json_only)
    answer = body.get_json()
    assert answer["error"] is None and answer["outcome"]["progression"]["date"] == FU2
    bad = [("", "target", "liver", False, ["30", "28", "x"])]
    answer = client.post(url, data=_form(VISITS, bad, action="check"), headers=json_only).get_json()
    assert answer["outcome"] is None and answer["field"] == "cell_0_2"
    assert answer["error"].startswith("lesion T01, visit FU2, size: 'x' is not")
    assert _stored(session, icr)[0] == []


def test_the_central_check_gives_rule_ids_and_counts_blank_cells_as_pending(
    app: Flask, session: Session, icr: str
) -> None:
    client = _reader(app)
    url = f"/trials/{icr}/subjects/S-9/central-read"
    json_only = {"Accept": "application/json"}
    answer = client.post(
        url, data=_form(VISITS, PD_SHEET, action="check"), headers=json_only
    ).get_json()
    fu2 = answer["outcome"]["timepoints"][2]
    assert fu2["rules"] == [r.split(":")[0] for r in fu2["reasons"] if r.startswith("R-")]
    assert "R-TGT-PD" in fu2["rules"] and answer["pending"] == []
    typing = [
        ("", "target", "liver", False, ["30", "28", "40"]),
        ("", "non-target", "bone", False, ["", "P", ""]),
    ]
    answer = client.post(url, data=_form(VISITS, typing, action="check"), headers=json_only)
    data = answer.get_json()
    assert data["error"] is None and data["pending"] == ["NT01 at FU2"]
    assert data["outcome"]["timepoints"][2]["non_target_response"] == "NE"
    # Signing never fills a blank: the same worksheet is refused, naming the cell.
    signed = client.post(url, data=_form(VISITS, typing, action="sign", password=PASSWORD))
    assert signed.status_code == 400 and "lesion NT01, visit FU2, state: missing" in signed.text
    assert _stored(session, icr)[0] == []
