"""import-sdtm and the export commands under bad input (issue 11): units converted or
refused, a TU file without TULOC refused, no output left behind by a command that fails,
deeply nested or wrongly typed ``--settings`` refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recist.cli import main
from tests.cdisc_io.cdisc_fixtures import TR_COLUMNS, TU_COLUMNS, simple_study, write_rows

TR_WITH_UNITS = [*TR_COLUMNS, "TRORRESU"]


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def write_study(
    folder: Path,
    *,
    tu_columns: list[str] | None = None,
    tr_rows: list[dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    tu, tr = simple_study()
    return (
        write_rows(folder / "TU.csv", tu_columns or TU_COLUMNS, tu),
        write_rows(folder / "TR.csv", TR_WITH_UNITS, tr if tr_rows is None else tr_rows),
    )


def import_sdtm(tu: Path, tr: Path, out: Path, *extra: str) -> int:
    return main(["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--out", str(out), *extra])


def with_units(orres_unit: str, stres_unit: str, *, standard: bool = True) -> list[dict[str, Any]]:
    """The simple study's TR with every size given in the units named (one record at a
    time: the standard result, or only the original one when ``standard`` is false)."""
    _tu, rows = simple_study()
    for row in rows:
        if row["TRTESTCD"] in ("LDIAM", "LPERP"):
            row["TRORRESU"], row["TRSTRESU"] = orres_unit, stres_unit
            if not standard:
                row["TRSTRESN"] = row["TRSTRESC"] = ""
    return rows


def first_case(out: Path) -> dict[str, Any]:
    return json.loads(out.read_text().splitlines()[0])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("orres_unit", "stres_unit", "standard"),
    [("cm", "cm", True), ("", "CM", True), ("cm", "", False), ("cm", "", True)],
)
def test_sizes_in_cm_are_converted_to_mm_with_a_notice(
    tmp_path: Path, orres_unit: str, stres_unit: str, standard: bool
) -> None:
    tu, tr = write_study(tmp_path, tr_rows=with_units(orres_unit, stres_unit, standard=standard))
    out, notices = tmp_path / "cases.jsonl", tmp_path / "notices.jsonl"
    assert import_sdtm(tu, tr, out, "--notices", str(notices)) == 0
    case = first_case(out)
    # T01 30 cm LD, T02 (node) 20 cm short axis at baseline; 15 and 9 cm at WEEK 8.
    assert case["timepoints"][0]["targets"] == {"T01": 300.0, "T02": 200.0}
    assert case["timepoints"][1]["targets"] == {"T01": 150.0, "T02": 90.0}
    converted = [
        n
        for n in map(json.loads, notices.read_text().splitlines())
        if n["kind"] == "converted_unit"
    ]
    assert len(converted) == 8  # every LDIAM/LPERP record of the study
    first = converted[0]
    assert (first["file"], first["row"], first["subject"], first["lesion"]) == (
        str(tr),
        2,
        "S-001",
        "T01",
    )
    assert first["message"].lower() == "ldiam 30 cm converted to 300 mm"  # the unit as given


def test_sizes_in_mm_or_without_a_unit_are_read_as_mm(tmp_path: Path) -> None:
    for units in (("mm", "mm"), ("MM", ""), ("", "")):
        tu, tr = write_study(tmp_path, tr_rows=with_units(*units))
        out = tmp_path / "cases.jsonl"
        assert import_sdtm(tu, tr, out) == 0
        assert first_case(out)["timepoints"][0]["targets"] == {"T01": 30.0, "T02": 20.0}


@pytest.mark.parametrize(
    ("orres_unit", "stres_unit", "column", "unit"),
    [("in", "in", "TRSTRESU", "in"), ("", "millimetre", "TRSTRESU", "millimetre"),
     ("µm", "", "TRORRESU", "µm")],
)  # fmt: skip
def test_any_other_unit_is_refused_naming_file_row_subject_and_unit(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    orres_unit: str,
    stres_unit: str,
    column: str,
    unit: str,
) -> None:
    tu, tr = write_study(tmp_path, tr_rows=with_units(orres_unit, stres_unit))
    out = tmp_path / "cases.jsonl"
    assert import_sdtm(tu, tr, out) == 2
    assert one_line(capsys) == (
        f"recist import-sdtm: {tr}, row 2, column {column}: subject S-001: LDIAM unit "
        f"{unit!r} is not mm or cm; sizes are read in mm (cm is converted)\n"
    )
    assert not out.exists()


# --------------------------------------------------------------------------- TULOC


def test_a_tu_file_without_tuloc_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    columns = [c for c in TU_COLUMNS if c != "TULOC"]
    tu, tr = write_study(tmp_path, tu_columns=columns)
    out = tmp_path / "cases.jsonl"
    assert import_sdtm(tu, tr, out) == 2
    err = one_line(capsys)
    assert err.startswith(f"recist import-sdtm: {tu}, row 1, column TULOC: required column TULOC")
    assert "lymph node" in err
    assert not out.exists()


# --------------------------------------------------------------------------- staged outputs


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.partial"))


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_an_unwritable_notices_leaves_no_out_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    tu, tr = write_study(tmp_path)
    out = tmp_path / "cases.jsonl"
    notices = tmp_path / "nope" / "n.jsonl" if where == "missing folder" else tmp_path
    assert import_sdtm(tu, tr, out, "--notices", str(notices)) == 2
    assert one_line(capsys).startswith(f"recist import-sdtm: --notices {notices}: cannot write (")
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_an_unwritable_notices_keeps_an_older_out_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tu, tr = write_study(tmp_path)
    out = tmp_path / "cases.jsonl"
    out.write_text("the previous import\n")
    assert import_sdtm(tu, tr, out, "--notices", str(tmp_path / "no" / "n.jsonl")) == 2
    assert out.read_text() == "the previous import\n"
    assert main(["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--out", "-",
                 "--notices", str(tmp_path / "no" / "n.jsonl")]) == 2  # fmt: skip
    captured = capsys.readouterr()
    assert captured.out == ""  # standard output comes after every file is written


@pytest.mark.parametrize(
    ("command", "files"),
    [("export-sdtm", ["tu.csv", "tr.csv", "rs.csv"]), ("export-adam", ["adrs.csv", "adtte.csv"])],
)
def test_an_export_that_cannot_write_one_file_writes_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, files: list[str]
) -> None:
    tu, tr = write_study(tmp_path)
    cases = tmp_path / "cases.jsonl"
    assert import_sdtm(tu, tr, cases) == 0
    out = tmp_path / "export"
    (out / "settings.json").mkdir(parents=True)  # the last file cannot be written
    capsys.readouterr()
    assert main([command, str(cases), "--out", str(out)]) == 2
    err = one_line(capsys)
    assert err.startswith(f"recist {command}: {out / 'settings.json'}: cannot write (")
    assert sorted(p.name for p in out.iterdir()) == ["settings.json"]
    assert leftovers(tmp_path) == []
    # And when it can, every file is there and no temporary one.
    (out / "settings.json").rmdir()
    assert main([command, str(cases), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*files, "settings.json"])


# --------------------------------------------------------------------------- --settings


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nesting deeper than the limit of 64 levels"),
        ("[" * 100_000 + "]" * 100_000, "nesting deeper than the limit of 64 levels"),
        ('{"confirmation": ' + "[" * 60 + "]" * 60 + "}", "field settings.confirmation"),
        ('{"sd_min_days": "42"}', "field settings.sd_min_days"),
    ],
    ids=["deep object", "deep array", "nested value", "string number"],
)
@pytest.mark.parametrize("as_file", [False, True], ids=["inline", "@file"])
def test_hostile_settings_are_refused_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    settings: str,
    words: str,
    as_file: bool,
) -> None:
    tu, tr = write_study(tmp_path)
    out = tmp_path / "cases.jsonl"
    argument = settings
    if as_file:
        (tmp_path / "settings.json").write_text(settings)
        argument = f"@{tmp_path / 'settings.json'}"
    assert import_sdtm(tu, tr, out, "--settings", argument) == 2
    err = one_line(capsys)
    assert err.startswith("recist import-sdtm: --settings") and words in err
    assert len(err) < 400
    assert not out.exists()


def test_an_imported_case_the_contract_refuses_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """import-sdtm validates every case with the engine's contract before writing: a size
    of 5 m (a unit slip the file does not declare) is refused with R-PLAUS-SIZE."""
    rows = with_units("mm", "mm")
    sized = next(row for row in rows if row["TRTESTCD"] in ("LDIAM", "LPERP"))
    sized["TRORRESC"] = sized["TRSTRESC"] = sized["TRSTRESN"] = "5000"
    tu, tr = write_study(tmp_path, tr_rows=rows)
    out = tmp_path / "cases.jsonl"
    assert import_sdtm(tu, tr, out) == 2
    err = one_line(capsys)
    assert "R-PLAUS-SIZE" in err and "5000" in err
    assert not out.exists()
