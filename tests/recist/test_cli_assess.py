"""``recist assess``: the command-line contract of docs/contracts.md, run for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.recist.conftest import case, fu

GOOD = case(
    {"T1": 32.0, "T2": 17.0},
    fu(targets={"T1": "too_small", "T2": 9.0}),
    nodal=("T2",),
    subject_id="0101-004",
)
BAD = case({"T1": 30.0}, fu(targets={"T1": -4}), subject_id="0101-009")


def recist(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recist", "assess", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_one_case_gives_one_json_object(tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(GOOD))
    done = recist(str(path))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["subject_id"] == "0101-004"
    assert out["timepoints"][1]["overall_response"] == "PR"


def test_an_array_gives_an_array():
    done = recist("-", stdin=json.dumps([GOOD, GOOD]))
    assert done.returncode == 0
    assert [r["subject_id"] for r in json.loads(done.stdout)] == ["0101-004", "0101-004"]


def test_json_lines_give_json_lines():
    done = recist("-", stdin=json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 2
    assert json.loads(lines[1])["best_overall_response"] == "PR"


def test_bad_case_exits_2_with_one_line_naming_subject_timepoint_and_lesion():
    done = recist("-", stdin=json.dumps(BAD))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "subject 0101-009, timepoint FU1, lesion T1" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_case_in_a_batch_refuses_the_batch_without_partial_output():
    done = recist("-", stdin="\n".join(json.dumps(c) for c in (GOOD, BAD, GOOD)))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("recist assess: <stdin> line 2: subject 0101-009")


def test_keep_going_assesses_the_valid_cases_and_reports_the_others():
    done = recist("--keep-going", "-", stdin="\n".join(json.dumps(c) for c in (GOOD, BAD, GOOD)))
    assert done.returncode == 2
    assert len(done.stdout.splitlines()) == 2
    assert "line 2: subject 0101-009" in done.stderr


def test_malformed_json_names_the_line():
    done = recist("-", stdin=json.dumps(GOOD) + '\n{"subject_id": \n')
    assert done.returncode == 2
    assert "<stdin> line 2: malformed JSON" in done.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path):
    done = recist(str(tmp_path / "nope.json"))
    assert done.returncode == 2
    assert "nope.json: cannot read" in done.stderr


def test_table_format_shows_each_timepoint():
    done = recist("--format", "table", "-", stdin=json.dumps(GOOD))
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("subject 0101-004") and "BOR PR" in lines[0]
    assert lines[3].split()[:3] == ["FU1", "2021-03-01", "14.0"]


def test_console_script_and_module_agree():
    script = Path(sys.executable).with_name("recist")
    done = subprocess.run(
        [str(script), "assess", "-"],
        input=json.dumps(GOOD),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert json.loads(done.stdout) == json.loads(recist("-", stdin=json.dumps(GOOD)).stdout)


def test_help_lists_every_command_without_importing_them():
    code = (
        "import sys, contextlib, io\n"
        "from recist.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(all(c in out.getvalue() for c in ('assess', 'measure', 'import-sdtm', 'serve')))\n"
        "print(any(m in sys.modules for m in ('flask', 'SimpleITK', 'pandas')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_assess_does_not_import_the_web_or_imaging_stacks(tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(GOOD))
    code = (
        "import sys, contextlib, io\n"
        "from recist.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    status = main(['assess', {str(path)!r}])\n"
        "print(status, any(m in sys.modules for m in ('flask', 'SimpleITK', 'pandas')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.stdout.split() == ["0", "False"], done.stderr
