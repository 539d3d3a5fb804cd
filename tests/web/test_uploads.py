"""Study uploads: hostile zips are refused before anything is unpacked; a real study is
measured by imaging_io and pre-fills the follow-up form.

The real study is dcmqi's 3-slice CT with its "Liver" DICOM SEG
(../shared/testdata/dicom-real/dcmqi beside the checkout, BSD-3; see the README there).
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from tests.web.helpers import form_fields
from web.services import SYSTEM, import_case
from web.services.uploads import UnsafeZip, check_zip, safe_extract
from web.testing import login

DCMQI = (
    Path(__file__).resolve().parents[3]  # ../shared beside the checkout
    / "shared/testdata/dicom-real/dcmqi/data/segmentations"
)


def _zip(
    entries: dict[str, bytes],
    *,
    symlink: str | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    "name",
    ["../evil.dcm", "a/../../evil.dcm", "/etc/cron.d/x", "C:/windows/x.dcm", "..\\..\\evil.dcm"],
)
def test_path_traversal_entries_are_refused(name: str) -> None:
    with (
        zipfile.ZipFile(_zip({name: b"x"})) as archive,
        pytest.raises(UnsafeZip, match="points outside the archive"),
    ):
        check_zip(archive)


def test_symbolic_links_are_refused() -> None:
    with (
        zipfile.ZipFile(_zip({"ok.dcm": b"x"}, symlink="link.dcm")) as archive,
        pytest.raises(UnsafeZip, match=r"'link\.dcm' is a symbolic link"),
    ):
        check_zip(archive)


def test_a_zip_bomb_is_refused_by_its_compression_ratio() -> None:
    bomb = _zip({"bomb.dcm": b"\0" * (20 * 1024 * 1024)})
    assert len(bomb.getvalue()) < 100_000
    with zipfile.ZipFile(bomb) as archive, pytest.raises(UnsafeZip, match="zip bomb"):
        check_zip(archive)


def test_too_many_entries_and_too_large_totals_are_refused() -> None:
    many = _zip({f"{i}.dcm": b"x" for i in range(12)})
    with zipfile.ZipFile(many) as archive, pytest.raises(UnsafeZip, match="12 entries"):
        check_zip(archive, max_entries=10)
    big = _zip({"a.dcm": b"1" * 3000, "b.dcm": b"2" * 3000}, compression=zipfile.ZIP_STORED)
    with zipfile.ZipFile(big) as archive, pytest.raises(UnsafeZip, match="more than"):
        check_zip(archive, max_total=5000)


def test_an_entry_larger_than_it_declares_is_stopped_while_unpacking(tmp_path: Path) -> None:
    buffer = _zip({"a.dcm": b"A" * 100_000})
    data = bytearray(buffer.getvalue())
    # Lower the declared size in the central directory only: the data still holds 100 kB.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with (
        zipfile.ZipFile(io.BytesIO(bytes(data))) as archive,
        pytest.raises(UnsafeZip, match=r"zip entry 'a\.dcm' is corrupt \(Bad CRC-32"),
    ):
        safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "a.dcm").stat().st_size <= 10


@pytest.fixture
def reader_with_subject(app: Flask, users: dict[str, str], session: Session, trial: str):
    import_case(
        session,
        SYSTEM,
        trial,
        {
            "subject_id": "UP-1",
            "lesions": [{"id": "T01", "site": "liver", "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": {"T01": 80.0}}],
        },
    )
    client = app.test_client()
    login(client, "reader")
    return client, f"/trials/{trial}/subjects/UP-1/upload"


def test_upload_of_something_that_is_not_a_zip_is_refused(reader_with_subject) -> None:
    client, url = reader_with_subject
    response = client.post(
        url, data={"study": (io.BytesIO(b"hello"), "study.zip")}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert b"not a readable .zip file" in response.data


def test_upload_larger_than_the_limit_gets_413(database) -> None:
    from web.testing import dispose, make_test_app

    small = make_test_app(database, MAX_CONTENT_LENGTH=1024)
    try:
        from web.services import create_trial, create_user

        db = small.extensions["recist_sessions"]()
        create_trial(db, SYSTEM, code="X", title="x")
        create_user(
            db,
            SYSTEM,
            username="reader",
            password="correct horse battery",
            role="reader",
            trials=["X"],
        )
        import_case(
            db,
            SYSTEM,
            "X",
            {
                "subject_id": "Y",
                "lesions": [{"id": "T01", "site": "liver", "kind": "target"}],
                "timepoints": [{"id": "BL", "date": "2021-01-04", "targets": {"T01": 80.0}}],
            },
        )
        db.close()
        client = small.test_client()
        login(client, "reader")
        response = client.post(
            "/trials/X/subjects/Y/upload",
            data={"study": (io.BytesIO(b"x" * 5000), "s.zip")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 413
        assert b"larger than the 1,024 bytes limit" in response.data
    finally:
        dispose(small)


@pytest.mark.skipif(not DCMQI.exists(), reason="shared DICOM test data not present")
def test_real_study_upload_prefills_the_follow_up_with_imaging_io_sizes(
    reader_with_subject, tmp_path: Path
) -> None:
    from imaging_io import measure_study

    client, url = reader_with_subject
    series = tmp_path / "series"
    series.mkdir()
    entries = {}
    for path in sorted((DCMQI / "ct-3slice").glob("*.dcm")):
        entries[f"study/ct/{path.name}"] = path.read_bytes()
        (series / path.name).write_bytes(path.read_bytes())
    entries["study/seg/liver.dcm"] = (DCMQI / "liver.dcm").read_bytes()
    expected = measure_study(series, DCMQI / "liver.dcm").to_dict()["lesions"][0]
    response = client.post(
        url, data={"study": (_zip(entries), "study.zip")}, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.data[:2000]
    html = response.data.decode()
    value = re.search(r'name="t_T01_mm" value="([^"]*)"', html).group(1)
    assert float(value) == pytest.approx(expected["longest_diameter_mm"], abs=0.05)
    assert float(value) > 0
    assert 'id="timepoint-form"' in html and "/timepoints/new" in html


SAMPLE = Path(__file__).resolve().parents[2] / "sample_dicom"


@pytest.mark.skipif(not (SAMPLE / "W8" / "SEG.dcm").exists(), reason="sample_dicom not built")
def test_sample_study_segments_go_to_the_targets_their_tracking_ids_name(
    app: Flask, users: dict[str, str], session: Session, trial: str, tmp_path: Path
) -> None:
    import json

    import pydicom

    from imaging_io import measure_study

    case = json.loads((SAMPLE / "demo_case.json").read_text())
    case["timepoints"] = case["timepoints"][:1]  # the baseline only; W8 is uploaded
    case.pop("arm", None)
    import_case(session, SYSTEM, trial, case)
    entries = {f"W8/CT/{p.name}": p.read_bytes() for p in (SAMPLE / "W8" / "CT").glob("*.dcm")}
    entries["W8/SEG.dcm"] = (SAMPLE / "W8" / "SEG.dcm").read_bytes()
    expected = {
        m["tracking_id"]: m
        for m in measure_study(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm").to_dict()["lesions"]
    }
    client = app.test_client()
    login(client, "reader")
    response = client.post(
        f"/trials/{trial}/subjects/{case['subject_id']}/upload",
        data={"study": (_zip(entries), "w8.zip")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.data[:2000]
    html = response.data.decode()
    for lesion, key in (
        ("T1", "longest_diameter_mm"),
        ("T2", "longest_diameter_mm"),
        ("T3", "short_axis_mm"),
    ):
        value = re.search(rf'name="t_{lesion}_mm" value="([^"]*)"', html).group(1)
        assert float(value) == pytest.approx(expected[lesion][key], abs=0.05), lesion
    assert "T3 ← segment &#39;lymph node&#39; (by its id): short axis" in html
    # The bone lesion's segment names non-target NT1: present, progression left to the reader.
    assert "NT1 ← segment &#39;bone lesion&#39;: present (judge progression yourself)" in html
    assert re.search(r'<option value="present"\s+selected', html.split('name="nt_NT1"', 1)[1])
    # The visit's scan date comes from the study's StudyDate.
    first = sorted((SAMPLE / "W8" / "CT").glob("*.dcm"))[0]
    raw = pydicom.dcmread(first, stop_before_pixels=True).StudyDate
    study_date = f"{raw[:4]}-{raw[4:6]}-{raw[6:]}"
    assert f'name="date" type="date" value="{study_date}"' in html
    assert f"scan date {study_date} from the study" in html


@pytest.mark.skipif(not (SAMPLE / "W8" / "SEG.dcm").exists(), reason="sample_dicom not built")
def test_a_segment_named_for_a_node_target_but_showing_a_lung_lesion_is_a_conflict(
    app: Flask, users: dict[str, str], session: Session, trial: str
) -> None:
    import json

    import pydicom

    case = json.loads((SAMPLE / "demo_case.json").read_text())
    case["timepoints"] = case["timepoints"][:1]
    case.pop("arm", None)
    import_case(session, SYSTEM, trial, case)
    # The W8 SEG with the tracking ids of its lung (T2) and node (T3) segments swapped.
    seg = pydicom.dcmread(SAMPLE / "W8" / "SEG.dcm")
    lung, node = (s for s in seg.SegmentSequence if s.TrackingID in ("T2", "T3"))
    assert (lung.SegmentLabel, node.SegmentLabel) == ("lung lesion", "lymph node")
    lung.TrackingID, node.TrackingID = "T3", "T2"
    edited = io.BytesIO()
    seg.save_as(edited)
    entries = {f"W8/CT/{p.name}": p.read_bytes() for p in (SAMPLE / "W8" / "CT").glob("*.dcm")}
    entries["W8/SEG.dcm"] = edited.getvalue()
    client = app.test_client()
    login(client, "reader")
    response = client.post(
        f"/trials/{trial}/subjects/{case['subject_id']}/upload",
        data={"study": (_zip(entries), "w8.zip")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.data[:2000]
    html = response.data.decode().replace("&#39;", "'")
    fields = form_fields(html, "timepoint-form")
    assert float(fields["t_T1_mm"]) > 0  # the liver segment still goes to T1 by its id
    assert fields["t_T2_mm"] == "" and fields["t_T3_mm"] == ""  # neither is pre-filled
    assert (
        "conflict: segment 'lung lesion' (tracking id 'T3') names T3, but its label names "
        "lung while T3 (lymph node) is nodal (R-MEAS-2); not filled: check the segment and "
        "enter T3 yourself"
    ) in html
    assert (
        "conflict: segment 'lymph node' (tracking id 'T2') names T2, but it is a lymph node "
        "while T2 (lung) is not nodal (R-MEAS-2); not filled"
    ) in html
    # Nor does the anatomy settle it behind the reader's back.
    assert "by site" not in html


def test_a_non_target_named_by_a_segment_of_another_organ_is_not_marked_present() -> None:
    from web.services.uploads import match_segments, non_targets_segmented

    case = {"lesions": [{"id": "NT1", "site": "bone", "kind": "non-target"}]}
    measured = {"lesions": [{"label": "liver lesion", "tracking_id": "NT1"}]}
    assert non_targets_segmented(case, measured) == {}
    _, notes, _ = match_segments(case, measured)
    assert notes == [
        "conflict: segment 'liver lesion' (tracking id 'NT1') names NT1, but its label names "
        "liver while the site of NT1 (bone) does not; not marked present: check the segment "
        "and record NT1 yourself"
    ]


@pytest.mark.skipif(not DCMQI.exists(), reason="shared DICOM test data not present")
def test_upload_for_an_existing_follow_up_prefills_its_edit_form_with_its_version(
    app: Flask, users: dict[str, str], session: Session, trial: str
) -> None:
    import_case(
        session,
        SYSTEM,
        trial,
        {
            "subject_id": "UP-2",
            "lesions": [
                {"id": "T01", "site": "liver", "kind": "target"},
                {"id": "NT01", "site": "bone", "kind": "non-target"},
            ],
            "timepoints": [
                {
                    "id": "BL",
                    "date": "2021-01-04",
                    "targets": {"T01": 80.0},
                    "non_targets": {"NT01": "present"},
                },
                {
                    "id": "W8",
                    "date": "2021-03-01",
                    "targets": {"T01": "not_evaluated"},
                    "non_targets": {"NT01": "absent"},
                },
            ],
        },
    )
    entries = {f"ct/{p.name}": p.read_bytes() for p in (DCMQI / "ct-3slice").glob("*.dcm")}
    entries["liver.dcm"] = (DCMQI / "liver.dcm").read_bytes()
    client = app.test_client()
    login(client, "reader")
    response = client.post(
        f"/trials/{trial}/subjects/UP-2/upload",
        data={"study": (_zip(entries), "s.zip"), "timepoint": "W8"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    html = response.data.decode()
    assert f'action="/trials/{trial}/subjects/UP-2/timepoints/W8"' in html
    assert re.search(r'name="version" value="1"', html)
    assert re.search(r'<option value="measured" selected>', html)
    assert float(re.search(r'name="t_T01_mm" value="([^"]*)"', html).group(1)) > 0
    # The non-target keeps its stored state: the study does not say anything about it.
    assert '<option value="absent" selected>' in html


@pytest.mark.skipif(not (SAMPLE / "W8" / "SEG.dcm").exists(), reason="sample_dicom not built")
def test_what_imaging_io_measured_is_kept_as_evidence_beside_what_the_reader_saved(
    app: Flask, users: dict[str, str], session: Session, trial: str
) -> None:
    import json

    case = json.loads((SAMPLE / "demo_case.json").read_text())
    w8_date = case["timepoints"][1]["date"]
    case["timepoints"] = case["timepoints"][:1]
    case.pop("arm", None)
    import_case(session, SYSTEM, trial, case)
    subject = case["subject_id"]
    entries = {f"W8/CT/{p.name}": p.read_bytes() for p in (SAMPLE / "W8" / "CT").glob("*.dcm")}
    entries["W8/SEG.dcm"] = (SAMPLE / "W8" / "SEG.dcm").read_bytes()
    client = app.test_client()
    login(client, "reader")
    html = client.post(
        f"/trials/{trial}/subjects/{subject}/upload",
        data={"study": (_zip(entries), "w8.zip")},
        content_type="multipart/form-data",
    ).data.decode()
    fields = form_fields(html, "timepoint-form")
    assert fields["imaging"]
    measured_t1 = float(fields["t_T1_mm"])
    fields.update(code="W8", date=w8_date, t_T1_mm=f"{measured_t1 + 2:.1f}")
    forged = client.post(
        f"/trials/{trial}/subjects/{subject}/timepoints/new",
        data={**fields, "imaging": fields["imaging"][:-3] + "abc"},
    )
    assert forged.status_code == 400
    assert b"the imaging measurements attached to this form are not valid" in forged.data
    saved = client.post(f"/trials/{trial}/subjects/{subject}/timepoints/new", data=fields)
    assert saved.status_code == 302
    reviewer = app.test_client()
    login(reviewer, "reviewer")
    page = reviewer.get(f"/trials/{trial}/subjects/{subject}/progression").data.decode()
    rows = re.findall(r'<tr data-tp="W8" data-lesion="(T\d)">(.*?)</tr>', page, re.S)
    by_lesion = dict(rows)
    assert set(by_lesion) == {"T1", "T2", "T3"}
    assert f"<td>{measured_t1} <small>longest diameter</small></td>" in by_lesion["T1"]
    assert "changed by the reader" in by_lesion["T1"]
    assert "changed by the reader" not in by_lesion["T2"]
    assert "short axis" in by_lesion["T3"]


@pytest.mark.skipif(not (SAMPLE / "W8" / "SEG.dcm").exists(), reason="sample_dicom not built")
def test_segments_without_a_lesion_id_go_to_targets_by_site_never_by_position(
    app: Flask, users: dict[str, str], session: Session, trial: str
) -> None:
    from imaging_io import measure_study

    # Ids the SEG does not know (its tracking ids are T1-T3), listed in another order than
    # the SEG's segments (liver, lung, node): only anatomy can match them.
    import_case(
        session,
        SYSTEM,
        trial,
        {
            "subject_id": "UP-3",
            "lesions": [
                {"id": "L1", "site": "lymph node", "kind": "target", "nodal": True},
                {"id": "L2", "site": "liver", "kind": "target"},
                {"id": "L3", "site": "lung", "kind": "target"},
                {"id": "B1", "site": "bone", "kind": "non-target"},
            ],
            "timepoints": [
                {"id": "BL", "date": "2021-01-04", "targets": {"L1": 21.0, "L2": 41.0,
                 "L3": 25.0}, "non_targets": {"B1": "present"}},
            ],
        },
    )  # fmt: skip
    measured = {
        m["label"]: m
        for m in measure_study(SAMPLE / "W8" / "CT", SAMPLE / "W8" / "SEG.dcm").to_dict()["lesions"]
    }
    entries = {f"W8/CT/{p.name}": p.read_bytes() for p in (SAMPLE / "W8" / "CT").glob("*.dcm")}
    entries["W8/SEG.dcm"] = (SAMPLE / "W8" / "SEG.dcm").read_bytes()
    client = app.test_client()
    login(client, "reader")
    response = client.post(
        f"/trials/{trial}/subjects/UP-3/upload",
        data={"study": (_zip(entries), "w8.zip")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.data[:2000]
    html = response.data.decode()
    for lesion, label, key in (
        ("L1", "lymph node", "short_axis_mm"),
        ("L2", "liver lesion", "longest_diameter_mm"),
        ("L3", "lung lesion", "longest_diameter_mm"),
    ):
        value = re.search(rf'name="t_{lesion}_mm" value="([^"]*)"', html).group(1)
        assert float(value) == pytest.approx(measured[label][key], abs=0.05), lesion
    assert "L1 ← segment &#39;lymph node&#39; (by site: lymph node): short axis" in html
    assert "in order" not in html


def test_an_ambiguous_or_unmatched_segment_is_listed_and_fills_nothing() -> None:
    from web.services.uploads import match_segments

    case = {
        "lesions": [
            {"id": "T01", "site": "liver", "kind": "target", "nodal": False},
            {"id": "T02", "site": "liver", "kind": "target", "nodal": False},
            {"id": "T03", "site": "lymph node", "kind": "target", "nodal": True},
        ]
    }
    measured = {
        "lesions": [
            {"label": "liver lesion", "longest_diameter_mm": 30.0, "short_axis_mm": 20.0},
            {"label": "segment 7", "longest_diameter_mm": 12.0, "short_axis_mm": 8.0},
            {"label": "lymph node", "nodal": True, "longest_diameter_mm": 18.0},
        ]
    }
    prefill, notes, sources = match_segments(case, measured)
    assert prefill == {} and sources == {}
    assert "T01 (liver): no segment names it or its site; enter it" in notes
    assert "T03 ← segment 'lymph node' (by site: lymph node) has no short axis; enter it" in notes
    assert (
        "segment 'liver lesion' matched no target (longest diameter 30.0 mm, short axis "
        "20.0 mm): enter it by hand if it is one, or add it as a new lesion"
    ) in notes
    assert any(n.startswith("segment 'segment 7' matched no target") for n in notes)


def test_a_target_named_by_several_segments_is_listed_for_its_fragments() -> None:
    from web.services.uploads import match_segments

    case = {"lesions": [{"id": "T1", "site": "liver", "kind": "target", "nodal": False}]}
    measured = {
        "lesions": [
            {"label": "liver lesion", "tracking_id": "T1", "longest_diameter_mm": 12.0},
            {"label": "liver lesion #2", "tracking_id": "T01", "longest_diameter_mm": 8.0},
        ]
    }
    prefill, notes, sources = match_segments(case, measured)
    assert prefill == {} and sources == {}
    assert notes == [
        "T1 is named by 2 segments ('liver lesion' longest diameter 12.0 mm; 'liver lesion #2' "
        "longest diameter 8.0 mm): if it split, enter each fragment's size (R-SPLIT)"
    ]
