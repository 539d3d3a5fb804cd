"""Cases the engine must refuse rather than assess (issue 11): a merge cycle (assessed as
CR before), an explicitly empty site; each refused by name, at the CLI with one line."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest

from recist.errors import CaseInputError
from recist.jsonio import assess_json, parse_case
from tests.recist.conftest import case, fu

THREE = {"T1": 30.0, "T2": 20.0, "T3": 10.0}


def recist_assess(obj: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recist", "assess", "-"],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --------------------------------------------------------------------------- R-MERGE cycles


@pytest.mark.parametrize(
    ("targets", "chain", "first"),
    [
        (
            {"T1": {"merged_into": "T2"}, "T2": {"merged_into": "T1"}, "T3": 10.0},
            "T1 → T2 → T1",
            "T1",
        ),
        (
            {"T1": {"merged_into": "T2"}, "T2": {"merged_into": "T3"}, "T3": {"merged_into": "T1"}},
            "T1 → T2 → T3 → T1",
            "T1",
        ),
        # A chain into a cycle: the cycle is named, not the lesion that leads into it.
        (
            {"T1": {"merged_into": "T2"}, "T2": {"merged_into": "T3"}, "T3": {"merged_into": "T2"}},
            "T2 → T3 → T2",
            "T2",
        ),
    ],
)
def test_a_merge_cycle_is_refused_naming_the_lesions(
    targets: dict[str, Any], chain: str, first: str
) -> None:
    c = case(THREE, fu(targets=targets))
    with pytest.raises(CaseInputError) as info:
        parse_case(c)
    error = info.value
    assert (error.timepoint, error.lesion, error.field, error.rule) == (
        "FU1",
        first,
        "targets",
        "R-MERGE",
    )
    assert f"targets {chain} are merged into each other in a cycle" in str(error)


def test_a_merge_cycle_at_the_command_line_is_one_line_and_no_cr() -> None:
    c = case(
        {"T1": 30.0, "T2": 20.0},
        fu(targets={"T1": {"merged_into": "T2"}, "T2": {"merged_into": "T1"}}),
    )
    done = recist_assess(c)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "subject S-001, timepoint FU1, lesion T1, field targets:" in done.stderr
    assert "T1 → T2 → T1" in done.stderr and "(R-MERGE)" in done.stderr


def test_a_chain_of_merges_into_a_measured_target_is_still_assessed() -> None:
    # T1 into T2, T2 into T3: T3 holds the mass (28 mm from 60 mm: PR), no cycle.
    c = case(
        THREE, fu(targets={"T1": {"merged_into": "T2"}, "T2": {"merged_into": "T3"}, "T3": 28.0})
    )
    result = assess_json(c)
    assert result["timepoints"][1]["sum_mm"] == 28.0
    assert result["timepoints"][1]["overall_response"] == "PR"


# --------------------------------------------------------------------------- empty sites


def _with_site(site: Any, *, where: str) -> dict[str, Any]:
    c = case({"T1": 30.0}, fu(targets={"T1": 31.0}, new_lesions=[{"id": "NL1", "site": "lung"}]))
    c = copy.deepcopy(c)
    if where == "lesion":
        c["lesions"][0]["site"] = site
    else:
        c["timepoints"][1]["new_lesions"][0]["site"] = site
    return c


@pytest.mark.parametrize("site", ["", "   ", "\t"])
@pytest.mark.parametrize(("where", "lesion", "field"), [
    ("lesion", "T1", "lesions[0].site"),
    ("new", "NL1", "timepoints[1].new_lesions[0].site"),
])  # fmt: skip
def test_an_explicitly_empty_site_is_refused_naming_the_lesion(
    site: str, where: str, lesion: str, field: str
) -> None:
    with pytest.raises(CaseInputError) as info:
        parse_case(_with_site(site, where=where))
    assert (info.value.lesion, info.value.field) == (lesion, field)
    assert f"{site!r} is not a site" in str(info.value)


def test_an_empty_site_at_the_command_line_is_one_line() -> None:
    done = recist_assess(_with_site("", where="lesion"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "recist assess: <stdin>: subject S-001, lesion T1, field lesions[0].site: '' is not a "
        "site; name the lesion's organ or site (e.g. 'liver')\n"
    )


def test_a_site_left_out_is_still_accepted() -> None:
    c = _with_site("x", where="lesion")
    del c["lesions"][0]["site"]
    del c["timepoints"][1]["new_lesions"][0]["site"]
    assert assess_json(c)["timepoints"][1]["overall_response"] == "PD"
