"""iRECIST new lesions through SDTM: export-sdtm → import-sdtm gives the same assessment.

Every iRECIST case the engine's own tests assess (recorded by the plugin
tests/cdisc_io/irecist_corpus.py while tests/recist runs in a subprocess), the iRECIST
export tests' cases and the cases below (every size word, state and category of I-NEW-1..4)
are exported to TU/TR, written, read back with their settings and an ADSL made from the
case, and assessed again: the results must be equal, timepoint by timepoint (responses,
new_lesion_response, new-target sums and nadirs, reasons, flags), with iBOR and PFS.
Bad SDTM for these fields is refused in one line naming file, row, column, subject,
visit, lesion and rule, and nothing is imported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cdisc_io.cases import assess_cases
from cdisc_io.csvio import read_domain, write_csv
from cdisc_io.dates import ImputationRule
from cdisc_io.errors import CdiscFileError
from cdisc_io.sdtm_export import export_sdtm
from cdisc_io.sdtm_import import TR_REQUIRED, TU_REQUIRED, build_cases, read_subjects
from recist.cli import main
from recist.errors import RecistError
from recist.jsonio import assess_json
from tests.cdisc_io.test_irecist_export import CONFIRMED, RESET

REPO = Path(__file__).resolve().parents[2]
ENGINE_TESTS = [
    "tests/recist/test_irecist.py",
    "tests/recist/test_irecist_conventions.py",
    "tests/recist/test_conventions.py",
    "tests/recist/test_contract.py",
]
# tests/recist/test_fast_path.py is left out: its cases are drawn at random (hypothesis), and
# they meet import-sdtm's generic limits (a visit dated by its records' majority, a
# follow-up without any record), which are not iRECIST's.
ADSL_FIELDS = {
    "ARM": "arm",
    "RANDDT": "randomized_on",
    "DTHDT": "died_on",
    "LSTALVDT": "last_known_alive_on",
    "NACTDT": "new_therapy_on",
}
# Fields the import gives every case (TREVAL, TRACPTFL): echoed, not assessed.
ECHOED = ("reader", "accepted")


@pytest.fixture(scope="module")
def engine_cases(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The distinct iRECIST cases that the engine tests parse (tests/recist)."""
    out = tmp_path_factory.mktemp("corpus") / "irecist.jsonl"
    # The caller's path first: under `make test-mypyc` the compiled engine collects too.
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)]))
    env = {**os.environ, "RECIST_IRECIST_CORPUS": str(out), "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "tests.cdisc_io.irecist_corpus", *ENGINE_TESTS],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    lines = sorted(set(out.read_text(encoding="utf-8").splitlines()))
    return [json.loads(line) for line in lines]


def _adsl(case: dict[str, Any]) -> pd.DataFrame:
    row = {"USUBJID": case["subject_id"]}
    row |= {column: str(case.get(key) or "") for column, key in ADSL_FIELDS.items()}
    return pd.DataFrame([row], dtype=str)


def round_trip(tmp_path: Path, case: dict[str, Any], *, lenient: bool = False) -> dict[str, Any]:
    """The case after export-sdtm, CSV files and import-sdtm with the case's settings
    (``lenient``: exported with ``strict`` off, for a case whose findings strict refuses)."""
    exported = case
    if lenient:
        exported = {**case, "settings": {**case["settings"], "strict": False}}
    tu, tr, _ = export_sdtm(assess_cases([exported]))
    write_csv(tu, tmp_path / "tu.csv")
    write_csv(tr, tmp_path / "tr.csv")
    subjects = read_subjects(
        _adsl(case), file="ADSL", kind="adsl", rule=ImputationRule.LAST, notices=[]
    )
    (back,) = build_cases(
        read_domain(tmp_path / "tu.csv", TU_REQUIRED),
        read_domain(tmp_path / "tr.csv", TR_REQUIRED),
        subjects,
        settings=case.get("settings"),
    ).cases
    return back


def assessed(case: dict[str, Any]) -> dict[str, Any]:
    result = assess_json(case)
    for key in ECHOED:
        result.pop(key, None)
    return result


def _as_exported(case: dict[str, Any]) -> dict[str, Any]:
    """The case with a baseline target recorded ``absent`` as 0 mm, as export-sdtm writes
    it and SDTM records it (cdisc_io/README.md); the engine reads both alike but flags only
    the word."""
    out = json.loads(json.dumps(case))
    for tp in out["timepoints"]:
        tp["targets"] = {k: 0.0 if v == "absent" else v for k, v in tp["targets"].items()}
    return out


def assert_same_assessment(tmp_path: Path, case: dict[str, Any]) -> None:
    before = assessed(_as_exported(case))
    after = assessed(round_trip(tmp_path, case))
    assert after["criteria"] == "irecist"
    for tp_before, tp_after in zip(before["timepoints"], after["timepoints"], strict=True):
        assert tp_after == tp_before, tp_before["id"]
    for key in ("best_overall_response", "progression", "pfs", "new_lesion_categories"):
        assert after.get(key) == before.get(key), key
    assert after == before


def test_every_irecist_case_of_the_engine_tests_round_trips(
    tmp_path: Path, engine_cases: list[dict[str, Any]]
) -> None:
    assert len(engine_cases) >= 50  # the engine tests assess that many distinct cases
    with_new = [c for c in engine_cases if any(tp.get("new_lesions") for tp in c["timepoints"])]
    assert len(with_new) >= 30
    refused = tied = 0
    for case in engine_cases:
        try:
            assess_json(case)
        except RecistError as error:  # refused by the engine…
            refused += 1
            if not case["settings"].get("strict"):  # contradicting listings: no export either
                with pytest.raises(RecistError):
                    assess_cases([case])
                continue
            # strict I-NEW findings: exported without strict, the import refuses them again
            with pytest.raises(CdiscFileError, match=re.escape(error.message)):
                round_trip(tmp_path, case, lenient=True)
            continue
        if _date_tie(case):  # imported, but dated by import-sdtm's own rule
            tied += 1
            assert round_trip(tmp_path, case)["timepoints"]
        else:
            assert_same_assessment(tmp_path, case)
    assert refused < len(engine_cases) // 5
    assert tied < len(engine_cases) // 10


def _date_tie(case: dict[str, Any]) -> bool:
    """A follow-up whose date no more than half of its lesions carry (the rest in
    ``scan_dates``): import-sdtm dates a visit by the date most records carry, ties to the
    earliest (cdisc_io/README.md), which need not be the case's, and a confirmation window
    (I-CPD-WINDOW) measured from another date may give another response. Not an iRECIST
    matter (baseline targets are dated the same way), so such cases are only imported."""
    for tp in case["timepoints"][1:]:
        ids = [*tp.get("targets", {}), *tp.get("non_targets", {}),
               *(n["id"] for n in tp.get("new_lesions", []))]  # fmt: skip
        other = sum(1 for i in ids if tp.get("scan_dates", {}).get(i, tp["date"]) != tp["date"])
        if other * 2 >= len(ids) > 0:
            return True
    return False


def _case(*follow_ups: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {
        "subject_id": "I-RT",
        "randomized_on": "2021-01-01",
        "settings": {"criteria": "irecist", **settings},
        "lesions": [
            {"id": "T1", "site": "liver", "kind": "target", "nodal": False},
            {"id": "NT1", "site": "bone", "kind": "non-target"},
        ],
        "timepoints": [
            {"id": "BL", "date": "2021-01-04", "targets": {"T1": 50.0},
             "non_targets": {"NT1": "present"}, "new_lesions": []},
            *follow_ups,
        ],
    }  # fmt: skip


def _fu(tp: str, day: str, new: list[dict[str, Any]], t1: float = 50.0, **extra: Any) -> Any:
    return {"id": tp, "date": day, "targets": {"T1": t1}, "non_targets": {"NT1": "present"},
            "new_lesions": new, **extra}  # fmt: skip


# Each follows new lesions first seen at W6 through W12 and W18 (I-NEW-4).
LISTINGS = {
    "sizes and words of new targets": _case(
        _fu("W6", "2021-02-15", [{"id": "N1", "site": "lung", "size_mm": 14.0},
                                 {"id": "N2", "site": "liver", "size_mm": 11.5}]),
        _fu("W12", "2021-03-29", [{"id": "N1", "size_mm": "too_small"},
                                  {"id": "N2", "size_mm": "not_evaluated"}]),
        _fu("W18", "2021-05-10", [{"id": "N1", "size_mm": "absent"},
                                  {"id": "N2", "size_mm": 19.0}]),
    ),
    "states of new non-targets, the reader's categories": _case(
        _fu("W6", "2021-02-15", [{"id": "N1", "site": "bone", "category": "non-target"},
                                 {"id": "N2", "site": "lung", "size_mm": 16.0,
                                  "category": "target"},
                                 {"id": "N3", "site": "liver", "size_mm": 12.0,
                                  "category": "non-target"}]),
        _fu("W12", "2021-03-29", [{"id": "N1", "state": "progression"},
                                  {"id": "N2", "size_mm": 16.0, "category": "target"},
                                  {"id": "N3", "state": "not_evaluated"}]),
        _fu("W18", "2021-05-10", [{"id": "N1", "state": "absent"}, {"id": "N2", "state": "absent"},
                                  {"id": "N3", "size_mm": 13.0}]),
    ),
    "a node, an equivocal lesion confirmed, scan dates": _case(
        _fu("W6", "2021-02-15", [{"id": "N1", "site": "mediastinal lymph node", "nodal": True,
                                  "size_mm": 16.0},
                                 {"id": "N2", "site": "lung", "equivocal": True}],
            scan_dates={"N1": "2021-02-12"}),
        _fu("W12", "2021-03-29", [{"id": "N1", "short_axis_mm": 9.0, "nodal": True},
                                  {"id": "N2", "size_mm": 12.0}]),
        _fu("W18", "2021-05-10", [{"id": "N1", "size_mm": 22.0}, {"id": "N2", "size_mm": 12.0}],
            t1=30.0),
    ),
    # Found by the hypothesis test below: the category of an equivocal listing is not the
    # lesion's (the engine fixes it at W12, here a new target), so W18's 0 mm is a size.
    "a category given while equivocal, then sizes": _case(
        _fu("W6", "2021-02-15", [{"id": "N1", "site": "lung", "equivocal": True,
                                  "category": "non-target"}]),
        _fu("W12", "2021-03-29", [{"id": "N1", "size_mm": 10.0}]),
        _fu("W18", "2021-05-10", [{"id": "N1", "size_mm": 0.0}]),
    ),
    "more new targets than iRECIST allows, confirmation on": _case(
        _fu("W6", "2021-02-15", [{"id": f"N{i}", "site": site, "size_mm": 10.0 + i}
                                 for i, site in enumerate(["lung", "lung", "lung", "liver",
                                                           "kidney", "spleen", "brain"], 1)]),
        _fu("W12", "2021-03-29", [{"id": f"N{i}", "size_mm": 12.0 + i} for i in range(1, 8)]),
        confirmation=True,
    ),
}


@pytest.mark.parametrize("name", list(LISTINGS))
def test_every_new_lesion_listing_round_trips(tmp_path: Path, name: str) -> None:
    assert_same_assessment(tmp_path, LISTINGS[name])


@pytest.mark.parametrize("case", [CONFIRMED, RESET], ids=["confirmed", "reset"])
def test_the_export_tests_cases_round_trip(tmp_path: Path, case: dict[str, Any]) -> None:
    assert_same_assessment(tmp_path, case)


def test_tr_carries_sizes_states_and_categories_in_standard_variables(tmp_path: Path) -> None:
    case = LISTINGS["states of new non-targets, the reader's categories"]
    tu, tr, _ = export_sdtm(assess_cases([case]))
    new_tu = tu[tu.TUORRES.str.startswith("NEW")]
    assert new_tu[["TULNKID", "TUORRES", "TUSTRESC", "VISIT"]].values.tolist() == [
        ["N1", "NEW NON-TARGET", "NEW NON-TARGET", "W6"],
        ["N2", "NEW TARGET", "NEW TARGET", "W6"],
        ["N3", "NEW NON-TARGET", "NEW NON-TARGET", "W6"],
    ]  # fmt: skip
    rows = tr[tr.TRLNKID.str.startswith("N") & ~tr.TRLNKID.str.startswith("NT")]
    got = rows[["VISIT", "TRLNKID", "TRGRPID", "TRTESTCD", "TRORRES", "TRSTRESN", "TRSTRESU",
                "TRSTAT"]].values.tolist()  # fmt: skip
    assert got == [
        ["W6", "N1", "NEW NON-TARGET", "TUMSTATE", "UNEQUIVOCAL", "", "", ""],
        ["W6", "N2", "NEW TARGET", "LDIAM", "16", "16", "mm", ""],
        ["W6", "N3", "NEW NON-TARGET", "LDIAM", "12", "12", "mm", ""],
        ["W12", "N1", "NEW", "TUMSTATE", "UNEQUIVOCAL PROGRESSION", "", "", ""],
        ["W12", "N2", "NEW TARGET", "LDIAM", "16", "16", "mm", ""],
        ["W12", "N3", "NEW", "TUMSTATE", "", "", "", "NOT DONE"],
        ["W18", "N1", "NEW", "TUMSTATE", "ABSENT", "", "", ""],
        ["W18", "N2", "NEW", "TUMSTATE", "ABSENT", "", "", ""],
        # a size on a declared new non-target after its first sighting says it is present
        ["W18", "N3", "NEW", "TUMSTATE", "PRESENT", "", "", ""],
    ]
    back = round_trip(tmp_path, case)
    assert back["timepoints"][1]["new_lesions"][1] == {
        "id": "N2", "site": "lung", "equivocal": False, "size_mm": 16.0, "category": "target"
    }  # fmt: skip
    assert back["timepoints"][3]["new_lesions"][2] == {
        "id": "N3", "equivocal": False, "state": "present"
    }  # fmt: skip


def test_a_nodal_new_lesion_is_measured_on_its_short_axis(tmp_path: Path) -> None:
    case = LISTINGS["a node, an equivocal lesion confirmed, scan dates"]
    tr = export_sdtm(assess_cases([case]))[1]
    n1 = tr[(tr.TRLNKID == "N1") & (tr.TRTESTCD != "TUMSTATE")]
    assert n1[["VISIT", "TRTESTCD", "TRORRES", "TRDTC"]].values.tolist() == [
        ["W6", "LPERP", "16", "2021-02-12"], ["W12", "LPERP", "9", "2021-03-29"],
        ["W18", "LPERP", "22", "2021-05-10"],
    ]  # fmt: skip
    back = round_trip(tmp_path, case)
    assert back["timepoints"][1]["scan_dates"] == {"N1": "2021-02-12"}
    assert back["timepoints"][2]["new_lesions"][0]["size_mm"] == 9.0


def test_the_commands_round_trip_with_export_sdtms_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [LISTINGS["sizes and words of new targets"],
             {**LISTINGS["states of new non-targets, the reader's categories"],
              "subject_id": "I-RT-2"}]  # fmt: skip
    source, back, out = tmp_path / "cases.jsonl", tmp_path / "back.jsonl", tmp_path / "sdtm"
    source.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    assert main(["export-sdtm", str(source), "--out", str(out)]) == 0
    assert main(["import-sdtm", "--tu", str(out / "tu.csv"), "--tr", str(out / "tr.csv"),
                 "--settings", f"@{out / 'settings.json'}", "--out", str(back)]) == 0  # fmt: skip
    assert "2 cases" in capsys.readouterr().err
    for original, line in zip(cases, back.read_text(encoding="utf-8").splitlines(), strict=True):
        again = assessed(json.loads(line))
        expected = assessed(original)
        # no ADSL: the origin is the baseline for both when randomisation is dropped
        assert [tp["overall_response"] for tp in again["timepoints"]] == [
            tp["overall_response"] for tp in expected["timepoints"]
        ]
        assert again["best_overall_response"] == expected["best_overall_response"]


def test_without_irecist_settings_the_import_reads_new_lesions_as_recist_1_1(
    tmp_path: Path,
) -> None:
    case = LISTINGS["states of new non-targets, the reader's categories"]
    tu, tr, _ = export_sdtm(assess_cases([case]))
    write_csv(tu, tmp_path / "tu.csv")
    write_csv(tr, tmp_path / "tr.csv")
    (back,) = build_cases(read_domain(tmp_path / "tu.csv", TU_REQUIRED),
                          read_domain(tmp_path / "tr.csv", TR_REQUIRED)).cases  # fmt: skip
    w12 = back["timepoints"][2]["new_lesions"]
    # RECIST 1.1 lists a new lesion where it is seen (N1 grew, N2 measured, N3 not
    # evaluated); sizes, states and categories stay out
    assert w12 == [{"id": "N1", "site": "bone", "equivocal": False},
                   {"id": "N2", "site": "lung", "equivocal": False}]  # fmt: skip
    assert assess_json(back)["timepoints"][1]["overall_response"] == "PD"


# -- bad SDTM for the iRECIST new-lesion fields ---------------------------------------------


def _exported(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    case = LISTINGS["states of new non-targets, the reader's categories"]
    tu, tr, _ = export_sdtm(assess_cases([case]))
    return tu, tr


def _row(tr: pd.DataFrame, visit: str, lesion: str, test: str) -> Any:
    hit = tr[(tr.VISIT == visit) & (tr.TRLNKID == lesion) & (tr.TRTESTCD == test)]
    assert len(hit) == 1
    return hit.index[0]


def _import_cli(tmp_path: Path, tu: pd.DataFrame, tr: pd.DataFrame) -> int:
    write_csv(tu, tmp_path / "TU.csv")
    write_csv(tr, tmp_path / "TR.csv")
    settings = json.dumps({"criteria": "irecist"})
    return main(["import-sdtm", "--tu", str(tmp_path / "TU.csv"), "--tr",
                 str(tmp_path / "TR.csv"), "--settings", settings,
                 "--out", str(tmp_path / "cases.jsonl")])  # fmt: skip


def _tr_line(tr: pd.DataFrame, index: Any) -> int:
    return int(tr.index.get_loc(index)) + 2  # the header is row 1


def _edit_unknown_state(tr: pd.DataFrame) -> tuple[Any, str]:
    index = _row(tr, "W12", "N1", "TUMSTATE")
    tr.loc[index, ["TRORRES", "TRSTRESC"]] = "GROWING"
    return index, r"column TRORRES: subject I-RT \(INVESTIGATOR\) visit W12 new lesion N1: " \
        r"TUMSTATE 'GROWING' is not a new lesion's state; expected .* \(I-NEW-4\)"


def _edit_size_on_non_target(tr: pd.DataFrame) -> tuple[Any, str]:
    # W18: N3, a new non-target since W6, measured 13 mm instead of PRESENT
    index = _row(tr, "W18", "N3", "TUMSTATE")
    tr.loc[index, ["TRTESTCD", "TRTEST", "TRORRES", "TRSTRESC", "TRSTRESN", "TRORRESU",
                   "TRSTRESU"]] = ["LDIAM", "Longest Diameter", "13", "13", "13", "mm", "mm"]
    tr.loc[index, "TRGRPID"] = "NEW NON-TARGET"
    return index, r"column TRTESTCD: subject I-RT \(INVESTIGATOR\) visit W18 new lesion N3: " \
        r"a size is recorded for a new non-target lesion; .* \(I-NEW-4\)"


def _edit_category_change(tr: pd.DataFrame) -> tuple[Any, str]:
    index = _row(tr, "W12", "N2", "LDIAM")
    tr.loc[tr.index[(tr.VISIT == "W12") & (tr.TRLNKID == "N2")], "TRGRPID"] = "NEW NON-TARGET"
    return index, r"column TRGRPID: subject I-RT \(INVESTIGATOR\) visit W12 new lesion N2: " \
        r"TRGRPID NEW NON-TARGET differs from NEW TARGET given by its TU identification " \
        r"\(row \d+\); .* \(I-NEW-4\)"


def _as_state(tr: pd.DataFrame, index: Any, state: str) -> None:
    tr.loc[index, ["TRTESTCD", "TRTEST", "TRORRES", "TRSTRESC", "TRSTRESN", "TRORRESU",
                   "TRSTRESU"]] = ["TUMSTATE", "Tumor State", state, state, "", "", ""]


def _edit_size_and_state(tr: pd.DataFrame) -> tuple[Any, str]:
    # W12: N2 measured 16 mm (LDIAM) and recorded PRESENT too
    tr.loc[len(tr)] = tr.loc[_row(tr, "W12", "N2", "LDIAM")]
    index = tr.index[-1]
    _as_state(tr, index, "PRESENT")
    return index, r"column TRTESTCD: subject I-RT \(INVESTIGATOR\) visit W12 new lesion N2: " \
        r"LDIAM at row \d+ and TUMSTATE PRESENT both given; .* not both \(I-NEW-4\)"


@pytest.mark.parametrize(
    "edit",
    [_edit_unknown_state, _edit_size_on_non_target, _edit_category_change, _edit_size_and_state],
    ids=["unknown TUMSTATE", "size on a new non-target", "category changes", "size and state"],
)
def test_bad_irecist_new_lesion_records_are_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any
) -> None:
    tu, tr = _exported(tmp_path)
    tr = tr.copy()
    index, pattern = edit(tr)
    assert _import_cli(tmp_path, tu, tr) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    row = rf"row {_tr_line(tr, index)}, " if "TRGRPID" not in pattern else r"row \d+, "
    assert re.match(
        rf"recist import-sdtm: {tmp_path / 'TR.csv'}, {row}{pattern}", err
    ), err
    assert not (tmp_path / "cases.jsonl").exists()


def test_a_tu_category_the_records_contradict_is_refused(tmp_path: Path) -> None:
    tu, tr = _exported(tmp_path)
    tu = tu.copy()
    tu.loc[tu.TULNKID == "N2", ["TUORRES", "TUSTRESC"]] = "NEW NON-TARGET"
    write_csv(tu, tmp_path / "TU.csv")
    write_csv(tr, tmp_path / "TR.csv")
    with pytest.raises(CdiscFileError, match=r"visit W6 new lesion N2: TRGRPID NEW TARGET "
                       r"differs from NEW NON-TARGET given by its TU identification"):
        build_cases(read_domain(tmp_path / "TU.csv", TU_REQUIRED),
                    read_domain(tmp_path / "TR.csv", TR_REQUIRED),
                    settings={"criteria": "irecist"}, files=("TU.csv", "TR.csv"))  # fmt: skip


def test_what_the_engine_refuses_names_the_file_and_reader(tmp_path: Path) -> None:
    # A new target (TRGRPID NEW TARGET) listed PRESENT at W12 instead of its size (I-NEW-4).
    tu, tr = _exported(tmp_path)
    _as_state(tr, _row(tr, "W12", "N2", "LDIAM"), "PRESENT")
    write_csv(tu, tmp_path / "TU.csv")
    write_csv(tr, tmp_path / "TR.csv")
    with pytest.raises(CdiscFileError, match=r"^TR\.csv: reader INVESTIGATOR: subject I-RT, "
                       r"timepoint W12, lesion N2, .*size_mm.*\(I-NEW-4\)"):
        build_cases(read_domain(tmp_path / "TU.csv", TU_REQUIRED),
                    read_domain(tmp_path / "TR.csv", TR_REQUIRED),
                    settings={"criteria": "irecist"}, files=("TU.csv", "TR.csv"))  # fmt: skip


# -- property: any iRECIST new-lesion follow-up the engine accepts survives SDTM ------------

NEW_SITES = ["lung", "liver", "bone", "lymph node"]
new_sizes = st.one_of(
    st.integers(0, 400).map(lambda tenths: tenths / 10),
    st.sampled_from(["too_small", "absent", "not_evaluated"]),
)
new_states = st.sampled_from(["present", "absent", "progression", "not_evaluated"])


@st.composite
def irecist_cases(draw: st.DrawFn) -> dict[str, Any]:
    follow_ups: list[dict[str, Any]] = []
    known: dict[str, dict[str, Any]] = {}
    for k in range(1, draw(st.integers(1, 4)) + 1):
        listings: list[dict[str, Any]] = []
        for lesion_id, first in known.items():
            kind = draw(st.sampled_from(["size", "state", "left out"]))
            if kind == "left out":
                continue
            listing: dict[str, Any] = {"id": lesion_id}
            if kind == "size":
                listing["size_mm"] = draw(new_sizes)
            else:
                listing["state"] = draw(new_states)
            if "category" in first and draw(st.booleans()):
                listing["category"] = first["category"]
            listings.append(listing)
        for _ in range(draw(st.integers(0, 2))):
            lesion_id = f"N{len(known) + 1}"
            site = draw(st.sampled_from(NEW_SITES))
            first = {"id": lesion_id, "site": site}
            if site == "lymph node":
                first["nodal"] = True
            if draw(st.booleans()):
                first["size_mm"] = draw(st.integers(50, 400).map(lambda tenths: tenths / 10))
            if draw(st.integers(0, 5)) == 0:
                first["equivocal"] = True
            if draw(st.booleans()):
                first["category"] = draw(st.sampled_from(["target", "non-target"]))
            known[lesion_id] = first
            listings.append(first)
        t1 = draw(st.sampled_from([50.0, 30.0, 62.0, "absent", "not_evaluated"]))
        nt1 = draw(st.sampled_from(["present", "absent", "progression"]))
        follow_ups.append(
            {"id": f"W{6 * k}", "date": (date(2021, 1, 4) + timedelta(days=42 * k)).isoformat(),
             "targets": {"T1": t1}, "non_targets": {"NT1": nt1}, "new_lesions": listings}
        )  # fmt: skip
    return _case(*follow_ups, confirmation=draw(st.booleans()))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(case=irecist_cases())
def test_any_irecist_case_the_engine_accepts_round_trips(
    tmp_path: Path, case: dict[str, Any]
) -> None:
    try:
        assess_json(case)
    except RecistError:
        assume(False)  # the engine refuses it (a new target listed by its state…)
    assert_same_assessment(tmp_path, case)
