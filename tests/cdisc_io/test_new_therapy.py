"""New anti-cancer therapy from CM / PR / ADSL NACTDT → ``new_therapy_on`` → PFS censoring.

RECIST 1.1 §7 (BOR cut at new therapy) and §8 (PFS censored at the last adequate
assessment before new therapy, reason CENSORED_NEW_THERAPY).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recist.cli import main
from tests.cdisc_io.cdisc_fixtures import TR_COLUMNS, TU_COLUMNS, simple_study, write_rows

CM_HEADER = "STUDYID,USUBJID,CMCAT,CMSCAT,CMTRT,CMSTDTC\n"
PR_HEADER = "STUDYID,USUBJID,PRCAT,PRSCAT,PRTRT,PRSTDTC\n"


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    tu, tr = simple_study()  # S-001: PR at WEEK 8 (2020-02-26), new lesion PD at WEEK 16
    adsl = tmp_path / "ADSL.csv"
    adsl.write_text("USUBJID,ARM,RANDDT\nS-001,SBRT,2019-12-20\n", encoding="utf-8")
    return {
        "tu": write_rows(tmp_path / "TU.csv", TU_COLUMNS, tu),
        "tr": write_rows(tmp_path / "TR.csv", TR_COLUMNS, tr),
        "adsl": adsl,
    }


def run_import(study: dict[str, Path], tmp_path: Path, *extra: str) -> tuple[dict, list[dict]]:
    out, notices = tmp_path / "cases.jsonl", tmp_path / "notices.jsonl"
    args = ["import-sdtm", "--tu", str(study["tu"]), "--tr", str(study["tr"]),
            "--out", str(out), "--notices", str(notices), *extra]  # fmt: skip
    assert main(args) == 0
    (case,) = [json.loads(line) for line in out.read_text().splitlines()]
    return case, [json.loads(line) for line in notices.read_text().splitlines()]


def test_on_treatment_cm_record_sets_new_therapy_and_prior_therapy_does_not(
    study: dict[str, Path], tmp_path: Path
) -> None:
    cm = tmp_path / "CM.csv"
    cm.write_text(CM_HEADER + "X,S-001,PRIOR TREATMENT,CHEMOTHERAPY,DOXORUBICIN,2020-01-15\n"
                  "X,S-001,ON TREATMENT,CHEMOTHERAPY,CAPECITABINE,2020-03-10\n"
                  "X,S-001,ON TREATMENT,CHEMOTHERAPY,CAPECITABINE,2020-05-01\n",
                  encoding="utf-8")  # fmt: skip
    case, _ = run_import(study, tmp_path, "--adsl", str(study["adsl"]), "--cm", str(cm))
    assert case["new_therapy_on"] == "2020-03-10"


def test_earliest_of_cm_pr_and_adsl_nactdt_wins_and_prior_starts_are_reported(
    study: dict[str, Path], tmp_path: Path
) -> None:
    adsl = tmp_path / "ADSL2.csv"
    adsl.write_text("USUBJID,ARM,RANDDT,NACTDT\nS-001,SBRT,2019-12-20,2020-04-01\n",
                    encoding="utf-8")  # fmt: skip
    cm = tmp_path / "CM.csv"
    cm.write_text(CM_HEADER + "X,S-001,ON TREATMENT,CHEMOTHERAPY,CAPECITABINE,2020-03\n",
                  encoding="utf-8")  # fmt: skip
    pr = tmp_path / "PR.csv"
    pr.write_text(PR_HEADER + "X,S-001,CANCER RELATED,ON TREATMENT,SURGERY,2020-03-20\n"
                  "X,S-001,CANCER RELATED,ON TREATMENT,RADIOTHERAPY,2019-12-01\n",
                  encoding="utf-8")  # fmt: skip
    case, notices = run_import(
        study, tmp_path, "--adsl", str(adsl), "--cm", str(cm), "--pr", str(pr)
    )
    # CM 2020-03 → 2020-03-31 (rule last); PR surgery 2020-03-20; NACTDT 2020-04-01.
    assert case["new_therapy_on"] == "2020-03-20"
    by_kind = {(n["kind"], n["file"]): n for n in notices}
    assert "CMSTDTC 2020-03 imputed as 2020-03-31" in by_kind[("imputed_date", str(cm))]["message"]
    skipped = by_kind[("new_therapy_skipped", str(pr))]
    assert skipped["row"] == 3 and "before randomisation 2019-12-20" in skipped["message"]


def test_adsl_nactdt_alone_sets_new_therapy(study: dict[str, Path], tmp_path: Path) -> None:
    adsl = tmp_path / "ADSL2.csv"
    adsl.write_text("USUBJID,ARM,RANDDT,NACTDT\nS-001,SBRT,2019-12-20,2020-03-01\n",
                    encoding="utf-8")  # fmt: skip
    case, _ = run_import(study, tmp_path, "--adsl", str(adsl))
    assert case["new_therapy_on"] == "2020-03-01"


def test_category_option_selects_which_records_count(
    study: dict[str, Path], tmp_path: Path
) -> None:
    cm = tmp_path / "CM.csv"
    cm.write_text(CM_HEADER + "X,S-001,SUBSEQUENT ANTI-CANCER THERAPY,,LETROZOLE,2020-03-05\n",
                  encoding="utf-8")  # fmt: skip
    case, _ = run_import(study, tmp_path, "--cm", str(cm))
    assert "new_therapy_on" not in case
    case, _ = run_import(
        study, tmp_path, "--cm", str(cm), "--new-therapy-category", "subsequent anti-cancer therapy"
    )
    assert case["new_therapy_on"] == "2020-03-05"


def test_new_therapy_before_the_new_lesion_censors_pfs_at_the_last_assessment_before_it(
    study: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cm = tmp_path / "CM.csv"
    cm.write_text(CM_HEADER + "X,S-001,ON TREATMENT,CHEMOTHERAPY,CAPECITABINE,2020-03-10\n",
                  encoding="utf-8")  # fmt: skip
    run_import(study, tmp_path, "--adsl", str(study["adsl"]), "--cm", str(cm))
    capsys.readouterr()
    assert main(["assess", str(tmp_path / "cases.jsonl")]) == 0
    result = json.loads(capsys.readouterr().out)
    pfs = result["pfs"]
    assert (pfs["event"], pfs["reason"]) == (False, "CENSORED_NEW_THERAPY")
    assert pfs["date"] == "2020-02-26"  # WEEK 8, the last adequate assessment before it
    assert result["best_overall_response"] == "PR"


def test_bad_start_date_is_refused_naming_file_row_and_column_and_writes_nothing(
    study: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cm = tmp_path / "CM.csv"
    cm.write_text(CM_HEADER + "X,S-001,ON TREATMENT,CHEMOTHERAPY,CAPECITABINE,10/03/2020\n",
                  encoding="utf-8")  # fmt: skip
    out = tmp_path / "never.jsonl"
    assert main(["import-sdtm", "--tu", str(study["tu"]), "--tr", str(study["tr"]),
                 "--cm", str(cm), "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith(f"recist import-sdtm: {cm}, row 2, column CMSTDTC: '10/03/2020'")
    assert err.count("\n") == 1 and not out.exists()


def test_cm_without_its_start_column_is_refused(
    study: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cm = tmp_path / "CM.csv"
    cm.write_text("USUBJID,CMCAT\nS-001,ON TREATMENT\n", encoding="utf-8")
    assert main(["import-sdtm", "--tu", str(study["tu"]), "--tr", str(study["tr"]),
                 "--cm", str(cm), "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "CM.csv, row 1, column CMSTDTC: required column CMSTDTC is missing" in (
        capsys.readouterr().err
    )
