"""The CDISC commands at the command line: exit status 2 and one line for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recist.cli import main
from tests.cdisc_io.cdisc_fixtures import TR_COLUMNS, TU_COLUMNS, simple_study, write_rows


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, Path]:
    tu, tr = simple_study()
    return write_rows(tmp_path / "TU.csv", TU_COLUMNS, tu), write_rows(
        tmp_path / "TR.csv", TR_COLUMNS, tr
    )


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_import_writes_json_lines_and_a_summary(
    study: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tu, tr = study
    out, notices = tmp_path / "cases.jsonl", tmp_path / "notices.jsonl"
    settings = '{"confirmation": true}'
    assert main(["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--out", str(out),
                 "--settings", settings, "--notices", str(notices)]) == 0  # fmt: skip
    (case,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert case["settings"] == {"confirmation": True}
    assert notices.read_text() == ""
    assert one_line_error(capsys) == "recist import-sdtm: 1 cases (1 subjects)\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--settings", '{"confirmaton": true}'], r"unknown setting 'confirmaton'"),
        (["--settings", "{"], r"--settings is not valid JSON"),
        (["--settings", '{"sd_min_days": -1}'], r"settings\.sd_min_days"),
    ],
)
def test_bad_settings_are_refused_with_one_line(
    study: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    tu, tr = study
    args = ["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--out", str(tmp_path / "o")]
    assert main([*args, *extra]) == 2
    assert re.search(message, one_line_error(capsys))
    assert not (tmp_path / "o").exists()


def test_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-sdtm", "--tu", str(tmp_path / "nope.csv"), "--tr", "x.csv",
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert one_line_error(capsys) == f"recist import-sdtm: {tmp_path / 'nope.csv'}: no such file\n"


def test_adsl_supplies_arm_origin_death_and_last_alive_dates(
    study: tuple[Path, Path], tmp_path: Path
) -> None:
    tu, tr = study
    adsl = tmp_path / "ADSL.csv"
    adsl.write_text("USUBJID,ARM,RANDDT,DTHDT,LSTALVDT\nS-001,SBRT,2019-12-20,2020-06,"
                    "2020-05-01\n", encoding="utf-8")  # fmt: skip
    out = tmp_path / "c.jsonl"
    notices = tmp_path / "n.jsonl"
    assert main(["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--adsl", str(adsl),
                 "--out", str(out), "--notices", str(notices)]) == 0  # fmt: skip
    case = json.loads(out.read_text())
    assert (case["arm"], case["randomized_on"], case["died_on"], case["last_known_alive_on"]) == (
        "SBRT", "2019-12-20", "2020-06-30", "2020-05-01",
    )  # fmt: skip
    (notice,) = [json.loads(line) for line in notices.read_text().splitlines()]
    assert notice["kind"] == "imputed_date" and "DTHDT 2020-06" in notice["message"]


def test_engine_refusal_names_subject_and_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {"subject_id": "S9", "reader": "RADIOLOGIST 1",
            "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-01", "targets": {"T1": -4}}]}  # fmt: skip
    path = tmp_path / "c.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    assert main(["export-sdtm", str(path), "--out", str(tmp_path / "o")]) == 2
    err = one_line_error(capsys)
    assert err.startswith("recist export-sdtm: c.json, case 1: subject S9")
    assert "RADIOLOGIST 1" in err
    for command in (["export-adam"], ["endpoints"]):
        assert main([*command, str(path), "--out", str(tmp_path / "o2")]) == 2
        err = one_line_error(capsys)
        assert err.startswith(f"recist {command[0]}: c.json, case 1: subject S9"), err


def test_malformed_cases_file_is_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"subject_id": "S1"}\n{"subject_id": \n', encoding="utf-8")
    assert main(["export-sdtm", str(path), "--out", str(tmp_path / "o")]) == 2
    assert re.search(r"c\.jsonl line 2: malformed JSON", one_line_error(capsys))


def test_compare_reports_agreement_and_disagreements_with_rule_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {"subject_id": "S1", "reader": "INVESTIGATOR",
            "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-01", "targets": {"T1": 40}},
                           {"id": "W8", "date": "2021-03-01", "targets": {"T1": 20}},
                           {"id": "W16", "date": "2021-04-26", "targets": {"T1": 26}}]}  # fmt: skip
    cases = tmp_path / "c.jsonl"
    cases.write_text(json.dumps(case) + "\n", encoding="utf-8")
    rs = tmp_path / "rs.csv"
    rs.write_text("USUBJID,RSTESTCD,VISIT,RSDTC,RSEVAL,RSEVALID,RSSTRESC\n"
                  "S1,OVRLRESP,W8,2021-03-01,INVESTIGATOR,,PR\n"
                  "S1,OVRLRESP,W16,2021-04-26,INVESTIGATOR,,PR\n"
                  "S1,OVRLRESP,W24,2021-06-21,INVESTIGATOR,,CHECK\n", encoding="utf-8")  # fmt: skip
    out = tmp_path / "dis.csv"
    assert main(["compare", str(cases), "--recorded", str(rs), "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "OVRLRESP: 1/2 agree (50.0 %)" in report
    # 26 mm is 130 % of the 20 mm nadir and 6 mm above it: PD, not the recorded PR.
    assert "S1 / INVESTIGATOR / W16 (2021-04-26) / OVRLRESP: PR → PD [R-TGT-PD]" in report
    assert "not a response code: CHECK ×1" in report
    assert "R-TGT-PD" in out.read_text(encoding="utf-8")


def test_compare_lists_reads_the_engine_refuses_and_compares_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {"subject_id": "S1", "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-01", "targets": {"T1": 40}},
                           {"id": "W8", "date": "2021-03-01", "targets": {"T1": 20}}]}  # fmt: skip
    baseline = {"id": "BL", "date": "2021-01-01", "targets": {"T1": "not_evaluated"}}
    bad = {"subject_id": "S2", "reader": "RADIOLOGIST 1", "timepoints": [baseline],
           "lesions": [{"id": "T1", "site": "liver", "kind": "target"}]}  # fmt: skip
    cases = tmp_path / "c.jsonl"
    cases.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    rs = tmp_path / "rs.csv"
    rs.write_text("USUBJID,RSTESTCD,VISIT,RSEVAL,RSSTRESC\nS1,OVRLRESP,W8,INVESTIGATOR,PR\n",
                  encoding="utf-8")  # fmt: skip
    assert main(["compare", str(cases), "--recorded", str(rs)]) == 0
    report = capsys.readouterr().out
    assert "OVRLRESP: 1/1 agree (100.0 %)" in report
    assert "reads the engine refused (not compared): 1" in report
    assert re.search(r"subject S2.*lesion T1.*\(read by RADIOLOGIST 1\)", report)


def test_export_settings_json_reads_back_with_settings_at_file(
    study: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cdisc_io.cases import assess_cases

    tu, tr = study
    first, second, sdtm = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "sdtm"
    assert main(["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--out", str(first),
                 "--settings", '{"confirmation": true, "sd_min_days": 42}']) == 0  # fmt: skip
    assert main(["export-sdtm", str(first), "--out", str(sdtm)]) == 0
    assert main(["import-sdtm", "--tu", str(sdtm / "tu.csv"), "--tr", str(sdtm / "tr.csv"),
                 "--out", str(second), "--settings", f"@{sdtm}/settings.json"]) == 0  # fmt: skip
    (before,) = [json.loads(line) for line in first.read_text().splitlines()]
    (after,) = [json.loads(line) for line in second.read_text().splitlines()]
    assert after["settings"]["confirmation"] is True and after["settings"]["sd_min_days"] == 42
    assert assess_cases([after])[0].result == assess_cases([before])[0].result


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"settings": [{"confirmation": true}, {"confirmation": false}]}',
         r"--settings .*s\.json holds 2 settings sets .* exactly one"),
        ('{"confirmaton": true}', r"--settings .*s\.json: .*unknown setting 'confirmaton'"),
        ("[1]", r"--settings .*s\.json must be a JSON object"),
        (None, r"--settings .*s\.json: cannot read \(No such file or directory\)"),
    ],
)  # fmt: skip
def test_settings_file_is_refused_with_one_line_naming_it(
    study: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    tu, tr = study
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--out", str(tmp_path / "o"),
                 "--settings", f"@{path}"]) == 2  # fmt: skip
    assert re.search(message, one_line_error(capsys))


def test_import_errors_name_the_file_as_typed(
    study: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tu, _ = study
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "TR.csv").write_text("USUBJID\nS-001\n", encoding="utf-8")
    assert main(["import-sdtm", "--tu", str(tu), "--tr", "in/TR.csv", "--out", "o"]) == 2
    assert one_line_error(capsys).startswith("recist import-sdtm: in/TR.csv, row 1, column ")
    assert main(["import-sdtm", "--tu", str(tu), "--tr", "in/TR.csv", "--adsl", "in/none.csv",
                 "--out", "o"]) == 2  # fmt: skip
    assert one_line_error(capsys).startswith("recist import-sdtm: in/TR.csv")


@pytest.mark.parametrize("option", ["--out", "--notices"])
@pytest.mark.parametrize("target", ["missing/x.jsonl", ".", "/proc/x.jsonl"])
def test_import_refuses_an_unwritable_output_with_one_line(
    study: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, option: str, target: str,
) -> None:
    tu, tr = study
    monkeypatch.chdir(tmp_path)
    args = ["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--out", "c.jsonl"]
    args += [option, target] if option == "--notices" else []
    if option == "--out":
        args[-1] = target
    assert main(args) == 2
    assert one_line_error(capsys).startswith(f"recist import-sdtm: {option} {target}: cannot write")


def test_import_reports_last_known_alive_before_randomisation_as_a_date_order_notice(
    study: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tu, tr = study
    adsl = tmp_path / "ADSL.csv"
    adsl.write_text("USUBJID,ARM,RANDDT,LSTALVDT\nS-001,SBRT,2019-12-20,2019-12-01\n",
                    encoding="utf-8")  # fmt: skip
    notices = tmp_path / "n.jsonl"
    assert main(["import-sdtm", "--tu", str(tu), "--tr", str(tr), "--adsl", str(adsl),
                 "--out", str(tmp_path / "c.jsonl"), "--notices", str(notices)]) == 0  # fmt: skip
    (notice,) = [json.loads(line) for line in notices.read_text().splitlines()]
    assert (notice["kind"], notice["subject"], notice["file"]) == ("date_order", "S-001", str(adsl))
    assert "LSTALVDT 2019-12-01 is before RANDDT 2019-12-20" in notice["message"]
    assert "1 date order" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "blocked"),
    [(["export-sdtm"], "tu.csv"), (["export-adam"], "adrs.csv"),
     (["endpoints"], "endpoints.json")],
)  # fmt: skip
def test_a_folder_where_an_output_file_goes_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], blocked: str
) -> None:
    case = {"subject_id": "S1", "reader": "INVESTIGATOR", "arm": "A",
            "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-01", "targets": {"T1": 40}},
                           {"id": "W8", "date": "2021-03-01", "targets": {"T1": 30}}]}  # fmt: skip
    path = tmp_path / "c.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    (tmp_path / "o" / blocked).mkdir(parents=True)
    assert main([*command, str(path), "--out", str(tmp_path / "o")]) == 2
    err = one_line_error(capsys)
    where = tmp_path / "o" / blocked
    assert err == f"recist {command[0]}: {where}: cannot write (Is a directory)\n"


@pytest.mark.parametrize("target", [".", "/proc/x.csv"])
def test_compare_refuses_an_unwritable_out_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    case = {"subject_id": "S1", "reader": "INVESTIGATOR",
            "lesions": [{"id": "T1", "site": "liver", "kind": "target"}],
            "timepoints": [{"id": "BL", "date": "2021-01-01", "targets": {"T1": 40}}]}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    Path("c.json").write_text(json.dumps(case), encoding="utf-8")
    Path("rs.csv").write_text("USUBJID,RSTESTCD,VISIT,RSEVAL,RSSTRESC\n", encoding="utf-8")
    assert main(["compare", "c.json", "--recorded", "rs.csv", "--out", target]) == 2
    assert one_line_error(capsys).startswith(f"recist compare: --out {target}: cannot write (")
