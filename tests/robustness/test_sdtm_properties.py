"""Property test of import-sdtm (issue 11): whatever the TU/TR records hold — sizes, units,
states, sites, dates, visits, links — the import either writes cases the engine's contract
accepts, or refuses in one line naming where (exit 2) and writes nothing. Never a
traceback, never a half-written output, never a case ``recist assess`` would refuse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recist.cli import main
from recist.jsonio import parse_case
from tests.cdisc_io.cdisc_fixtures import TR_COLUMNS, TU_COLUMNS, simple_study, write_rows

TR_WITH_UNITS = [*TR_COLUMNS, "TRORRESU"]

# Values a real export holds, and values a broken one does.
text = st.one_of(
    st.sampled_from(["", "30", "30.5", "0", "-4", "1e308", "nan", "NE", "PRESENT", "ABSENT",
                     "UNEQUIVOCAL", "EQUIVOCAL", "LYMPH NODE", "LIVER", "2020-02-26", "2020-02",
                     "9999-12-31", "1800-01-01", "mm", "cm", "in", "TARGET", "NEW", "WEEK 8",
                     "\u202e", "x" * 300]),
    st.text(max_size=12),
)  # fmt: skip
edit = st.tuples(st.integers(min_value=0, max_value=20), st.sampled_from(TR_WITH_UNITS), text)
tu_edit = st.tuples(st.integers(min_value=0, max_value=5), st.sampled_from(TU_COLUMNS), text)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tr_edits=st.lists(edit, max_size=4), tu_edits=st.lists(tu_edit, max_size=2))
def test_import_writes_valid_cases_or_refuses_in_one_line(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    tr_edits: list[tuple[int, str, str]],
    tu_edits: list[tuple[int, str, str]],
) -> None:
    folder = tmp_path_factory.mktemp("sdtm")
    tu, tr = simple_study()
    for row in tr:
        row.setdefault("TRORRESU", "mm" if row.get("TRSTRESN") else "")
    for index, column, value in tr_edits:
        tr[index % len(tr)][column] = value
    for index, column, value in tu_edits:
        tu[index % len(tu)][column] = value
    tu_path = write_rows(folder / "TU.csv", TU_COLUMNS, tu)
    tr_path = write_rows(folder / "TR.csv", TR_WITH_UNITS, tr)
    out = folder / "cases.jsonl"
    status = main(["import-sdtm", "--tu", str(tu_path), "--tr", str(tr_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    event("imported" if status == 0 else "refused")
    if status == 0:
        cases: list[dict[str, Any]] = [json.loads(line) for line in out.read_text().splitlines()]
        for case in cases:
            parse_case(case)  # the contract accepts every case written
    else:
        assert status == 2, err
        assert err.count("\n") == 1 and err.startswith("recist import-sdtm: "), err
        assert not out.exists()
