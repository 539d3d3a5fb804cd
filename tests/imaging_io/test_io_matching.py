"""The one matcher of segments to case lesions (imaging_io.matching), shared by `recist
ingest` and the web upload: names first (T1 ≙ T01), each name checked against anatomy,
then, where asked, unambiguous anatomy alone."""

from __future__ import annotations

import pytest

from imaging_io.ingest import Finding, build_timepoint, findings_from_report
from imaging_io.matching import (
    Segment,
    conflict_reason,
    lesion_key,
    match_to_lesions,
    organs_named,
)

LIVER = {"id": "T1", "site": "liver", "kind": "target", "nodal": False}
LUNG = {"id": "T2", "site": "lung", "kind": "target", "nodal": False}
NODE = {"id": "T3", "site": "lymph node", "kind": "target", "nodal": True}
BONE = {"id": "NT1", "site": "bone", "kind": "non-target"}
CASE = [LIVER, LUNG, NODE, BONE]


@pytest.mark.parametrize(("text", "key"), [
    ("T1", "T1"), ("t1", "T1"), ("T01", "T1"), (" T001 ", "T1"), ("NT02", "NT2"),
    ("liver lesion", "LIVER LESION"),
])  # fmt: skip
def test_lesion_ids_compare_ignoring_case_and_leading_zeros(text: str, key: str) -> None:
    assert lesion_key(text) == key


def test_a_tracking_id_written_t01_names_lesion_t1() -> None:
    matching = match_to_lesions(CASE, [Segment("liver lesion", "t01")])
    assert matching.lesions == {"T1": [0]} and matching.how == {0: "by its id"}


def test_the_label_names_the_lesion_when_there_is_no_tracking_id() -> None:
    matching = match_to_lesions(CASE, [Segment("T02")])
    assert matching.lesions == {"T2": [0]}


def test_an_exact_id_wins_over_a_loose_one_and_two_loose_ids_match_only_exactly() -> None:
    case = [{"id": "T1", "site": "liver", "kind": "target"},
            {"id": "T01", "site": "liver", "kind": "target"}]  # fmt: skip
    matching = match_to_lesions(case, [Segment("a", "T01"), Segment("b", "T1"),
                                       Segment("c", "t001")])  # fmt: skip
    assert matching.lesions == {"T01": [0], "T1": [1]}
    assert matching.unmatched == [2]


def test_segments_sharing_a_tracking_id_are_the_pieces_of_one_lesion() -> None:
    matching = match_to_lesions(CASE, [Segment("liver lesion", "T1"),
                                       Segment("liver lesion #2", "T1")])  # fmt: skip
    assert matching.lesions == {"T1": [0, 1]}  # R-SPLIT


def test_a_lung_segment_named_for_a_node_target_is_a_conflict() -> None:
    matching = match_to_lesions(CASE, [Segment("lung lesion", "T3")])
    assert matching.lesions == {} and matching.unmatched == []
    [conflict] = matching.conflicts
    assert (conflict.lesion_id, conflict.segment) == ("T3", 0)
    assert conflict.reason == ("its label names lung while T3 (lymph node) is nodal (R-MEAS-2)")


def test_a_node_segment_named_for_a_liver_target_is_a_conflict() -> None:
    by_flag = match_to_lesions(CASE, [Segment("lesion 1", "T1", nodal=True)])
    by_label = match_to_lesions(CASE, [Segment("axillary lymph node", "T1")])
    for matching in (by_flag, by_label):
        [conflict] = matching.conflicts
        assert conflict.reason == "it is a lymph node while T1 (liver) is not nodal (R-MEAS-2)"
        assert matching.lesions == {}


def test_a_lung_segment_named_for_a_liver_target_is_a_conflict() -> None:
    [conflict] = match_to_lesions(CASE, [Segment("lung lesion", "T1")]).conflicts
    assert conflict.reason == "its label names lung while the site of T1 (liver) does not"


def test_a_label_naming_another_lesion_than_the_tracking_id_is_a_conflict() -> None:
    [conflict] = match_to_lesions(CASE, [Segment("T2", "T1")]).conflicts
    assert conflict.reason == "its label names lesion T2 while its tracking id names T1"


@pytest.mark.parametrize(("lesion", "segment"), [
    (LIVER, Segment("liver lesion", "T1")),
    (LIVER, Segment("hepatic metastasis", "T1")),
    ({**LUNG, "site": "left lung, lower lobe"}, Segment("pulmonary nodule", "T2")),
    (NODE, Segment("lymph node", "T3", nodal=True)),
    ({**NODE, "site": "hilar lymph node"}, Segment("lung hilum lymph node", "T3")),
    # Nothing known of the segment's anatomy: a generic label, nodal only means "says so".
    (NODE, Segment("Segment 3", "T3")),
    (LIVER, Segment("Segment 1", "T1")),
    # Nothing known of the lesion's organ.
    ({**LIVER, "site": "segment VII"}, Segment("lung lesion", "T1")),
])  # fmt: skip
def test_a_segment_whose_anatomy_agrees_or_is_unknown_is_matched(lesion, segment) -> None:
    assert conflict_reason(lesion, segment) is None
    assert match_to_lesions([lesion], [segment]).lesions == {lesion["id"]: [0]}


def test_a_site_naming_a_node_makes_the_lesion_a_node_as_the_engine_counts_it() -> None:
    unflagged = {"id": "T3", "site": "axillary lymph node", "kind": "target"}
    assert conflict_reason(unflagged, Segment("lymph node", "T3", nodal=True)) is None
    assert conflict_reason(unflagged, Segment("lung lesion", "T3")) is not None


def test_an_sr_finding_without_nodal_information_is_checked_only_on_what_it_says() -> None:
    # A TID 1500 measurement group has a tracking identifier and sizes, no nodal flag.
    [finding] = findings_from_report([_Measurement("T3", "short axis", 12.0)])
    assert finding.segment() == Segment("T3", None, nodal=False)
    matching = match_to_lesions(CASE, [finding.segment()])
    assert matching.lesions == {"T3": [0]} and matching.conflicts == []


@pytest.mark.parametrize(("text", "organs"), [
    ("hilar lymph node", {"lymph node"}), ("LYMPH NODE", {"lymph node"}),
    ("left lung", {"lung"}), ("adrenal", {"adrenal"}), ("renal mass", {"kidney"}),
    ("rib", {"bone"}), ("gall bladder", set()), ("urinary bladder", {"bladder"}),
    ("lymphangitic spread", set()), ("lung nodule", {"lung"}), ("Segment 1", set()),
    ("liver and lung", {"liver", "lung"}), (None, set()),
])  # fmt: skip
def test_the_organs_a_site_or_label_names(text: str | None, organs: set[str]) -> None:
    assert organs_named(text) == organs


# ------------------------------------------------------------------ by anatomy alone


def test_by_anatomy_an_unnamed_segment_goes_to_the_one_target_of_its_organ() -> None:
    segments = [Segment("liver lesion"), Segment("lymph node", nodal=True),
                Segment("pulmonary nodule")]  # fmt: skip
    matching = match_to_lesions(CASE, segments, by_anatomy=True)
    assert matching.lesions == {"T1": [0], "T3": [1], "T2": [2]}
    assert matching.how == {0: "by site: liver", 1: "by site: lymph node", 2: "by site: lung"}
    # ingest does not match by anatomy: the same segments are unmatched.
    assert match_to_lesions(CASE, segments).unmatched == [0, 1, 2]


def test_by_anatomy_nothing_ambiguous_and_no_non_target_is_matched() -> None:
    two_livers = [LIVER, {**LIVER, "id": "T4"}, BONE]
    matching = match_to_lesions(
        two_livers, [Segment("liver lesion"), Segment("bone lesion")], by_anatomy=True
    )
    assert matching.lesions == {} and matching.unmatched == [0, 1]
    rivals = match_to_lesions(
        CASE, [Segment("liver lesion"), Segment("liver lesion #2")], by_anatomy=True
    )
    assert rivals.lesions == {} and rivals.unmatched == [0, 1]


def test_by_anatomy_a_conflict_is_not_settled_behind_the_readers_back() -> None:
    # The tracking ids of the lung and the node segments are swapped: neither segment nor
    # lesion is then matched by anatomy, though each segment fits the other lesion.
    segments = [Segment("liver lesion", "T1"), Segment("lung lesion", "T3"),
                Segment("lymph node", "T2", nodal=True)]  # fmt: skip
    matching = match_to_lesions(CASE, segments, by_anatomy=True)
    assert matching.lesions == {"T1": [0]}
    assert [(c.lesion_id, c.segment) for c in matching.conflicts] == [("T3", 1), ("T2", 2)]
    assert matching.conflicted() == {"T2", "T3"}
    assert matching.unmatched == []


# ------------------------------------------------------------------ through ingest


def test_ingest_refuses_a_conflict_naming_timepoint_segment_and_lesion() -> None:
    findings = [Finding("T3", "lung lesion", False, 30.0, 20.0)]
    case = {"lesions": CASE}
    with pytest.raises(
        ValueError,
        match=(
            r"^study/SEG\.dcm: timepoint W8: segment 'lung lesion' \(tracking id 'T3'\) names "
            r"lesion T3, but its label names lung while T3 \(lymph node\) is nodal \(R-MEAS-2\)"
        ),
    ):
        build_timepoint(
            case, findings, timepoint_id="W8", date="2024-03-04", source="study/SEG.dcm"
        )
    accepted = build_timepoint(
        case,
        findings,
        timepoint_id="W8",
        date="2024-03-04",
        source="study/SEG.dcm",
        accept_conflicts=True,
    )
    assert accepted["targets"]["T3"] == 20.0  # the case says nodal: its short axis


class _Measurement:
    """A linear measurement as imaging_io.sr reads it (tracking id, kind, value)."""

    def __init__(self, tracking: str, kind: str, value_mm: float) -> None:
        self.tracking_identifier = tracking
        self.tracking_uid = None
        self.kind = kind
        self.value_mm = value_mm


def test_ingest_accept_conflicts_records_what_the_reader_checked(tmp_path) -> None:
    """`recist ingest --accept-conflicts` records a conflicting segment the default refuses."""
    import json
    import shutil
    from pathlib import Path

    import pydicom

    from recist.cli import main

    sample = Path(__file__).resolve().parents[2] / "sample_dicom"
    study = tmp_path / "W8"
    shutil.copytree(sample / "W8", study)
    seg = pydicom.dcmread(study / "SEG.dcm")
    by_id = {str(item.get("TrackingID", "")): item for item in seg.SegmentSequence}
    by_id["T2"].SegmentLabel = "hilar lymph node"  # T2 is the lung target
    seg.save_as(study / "SEG.dcm")
    case = json.loads((sample / "demo_case.json").read_text())
    case["timepoints"] = case["timepoints"][:1]
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case))
    args = ["ingest", str(study), "--case", str(case_file), "--timepoint", "W8"]
    assert main([*args, "-o", str(tmp_path / "refused.json")]) == 2
    assert not (tmp_path / "refused.json").exists()
    assert main([*args, "--accept-conflicts", "-o", str(tmp_path / "out.json")]) == 0
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["timepoints"][1]["targets"]["T2"] == 16.5  # its longest diameter
