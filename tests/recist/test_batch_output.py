"""``recist assess`` holds a batch's output until every case is assessed (nothing is
written for a refused batch), spooling it to a temporary file past a size: the output is
the same whichever way it was held, written to a text buffer or to a real file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from recist import cli_assess
from recist.cli_assess import assess_batch, read_cases, write_results

DEMO = Path(__file__).resolve().parents[2] / "recist" / "demo" / "demo_cases.jsonl"


def _run(text: str, name: str, fmt: str = "json") -> tuple[str, cli_assess.BatchOutput]:
    form, cases = read_cases(text, name)
    errors: list[str] = []
    rendered = assess_batch(cases, form, fmt, False, errors)
    assert errors == []
    out = io.StringIO()
    write_results(form, rendered, fmt, out)
    return out.getvalue(), rendered


@pytest.mark.parametrize("form", ["lines", "array", "table"])
def test_a_spooled_batch_writes_what_a_batch_held_in_memory_writes(monkeypatch, tmp_path, form):
    lines = DEMO.read_text(encoding="utf-8").splitlines()
    text = "[" + ", ".join(lines) + "]" if form == "array" else "\n".join(lines) + "\n"
    fmt = "table" if form == "table" else "json"
    held, rendered = _run(text, "demo", fmt)
    assert rendered._file is None and len(rendered) == len(lines)
    assert "≥" in held or "—" in held  # not vacuous: characters of several bytes are spooled

    monkeypatch.setattr(cli_assess, "SPOOL_IN_MEMORY", 500)
    spooled, rendered = _run(text, "demo", fmt)
    assert spooled == held

    form_name, cases = read_cases(text, "demo")
    errors: list[str] = []
    again = assess_batch(cases, form_name, fmt, False, errors)
    assert again._file is not None  # spooled to a file
    path = tmp_path / "out.txt"
    with path.open("w", encoding="utf-8") as real:  # a real stream: its buffer is written
        write_results(form_name, again, fmt, real)
    assert path.read_text(encoding="utf-8") == held
    if fmt == "json" and form == "lines":
        assert [json.loads(line)["subject_id"] for line in held.splitlines()] == [
            json.loads(line)["subject_id"] for line in lines
        ]


def test_an_empty_batch_writes_its_empty_form():
    assert _run("[]", "empty")[0] == "[]\n"
