"""``recist assess`` holds a batch's output until every case is assessed (nothing is
written for a refused batch), spooling it to a temporary file past a size: the output is
the same whichever way it was held, written to a text buffer or to a real file."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import pytest

from recist import cli_assess
from recist.cli_assess import assess_batch, encode_result, read_cases, write_results
from recist.jsonio import assess_json

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


def _spooled(monkeypatch) -> tuple[str, str, cli_assess.BatchOutput]:
    """The demo's JSON Lines: the text a batch held in memory writes, and the same batch
    spooled to a temporary file (not yet written)."""
    text = DEMO.read_text(encoding="utf-8")
    held, _ = _run(text, "demo")
    monkeypatch.setattr(cli_assess, "SPOOL_IN_MEMORY", 500)
    form, cases = read_cases(text, "demo")
    errors: list[str] = []
    spooled = assess_batch(cases, form, "json", False, errors)
    assert spooled._file is not None and errors == []
    return form, held, spooled


@pytest.mark.parametrize("refusal", [None, errno.EINVAL, errno.ENOSYS])
def test_a_spooled_batch_reaches_a_file_after_what_it_already_holds(monkeypatch, tmp_path, refusal):
    """The spooled output goes to a real file in the kernel (sendfile), after what the
    stream had written (flushed first); where the kernel refuses part way (a target
    sendfile cannot write to), the rest is copied by hand from where it stopped."""
    form, held, spooled = _spooled(monkeypatch)
    calls: list[int] = []
    real_sendfile = os.sendfile

    def sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(offset)
        if refusal is not None and offset > 0:
            raise OSError(refusal, os.strerror(refusal))
        return real_sendfile(out_fd, in_fd, offset, min(count, 700) if refusal else count)

    monkeypatch.setattr(os, "sendfile", sendfile)
    path = tmp_path / "out.jsonl"
    with path.open("w", encoding="utf-8") as real:
        real.write("already there ≥\n")  # in the text stream's buffer, not yet on disk
        write_results(form, spooled, "json", real)
    assert path.read_text(encoding="utf-8") == "already there ≥\n" + held
    assert calls and calls[0] == 0
    assert len(calls) == (2 if refusal else 1)


def test_a_write_error_while_copying_is_not_hidden(monkeypatch, tmp_path):
    """A full disk (or a closed pipe) is an error of the write, never a silent short
    output: only the errors that mean "sendfile cannot write there" fall back."""
    form, _held, spooled = _spooled(monkeypatch)

    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "sendfile", full)
    with (tmp_path / "out.jsonl").open("w", encoding="utf-8") as real:
        with pytest.raises(OSError) as raised:
            write_results(form, spooled, "json", real)
    assert raised.value.errno == errno.ENOSPC


def test_an_empty_batch_writes_its_empty_form():
    assert _run("[]", "empty")[0] == "[]\n"


def test_results_are_written_as_compact_json_equal_to_the_json_modules():
    """Results go out through pydantic-core's serializer: the same text as the json
    module's compact form, and the same values as :func:`assess_json` gives."""
    lines = DEMO.read_text(encoding="utf-8").splitlines()
    held, _ = _run("\n".join(lines) + "\n", "demo")
    results = [assess_json(json.loads(line)) for line in lines]
    assert held.splitlines() == [
        json.dumps(r, ensure_ascii=False, allow_nan=False, separators=(",", ":")) for r in results
    ]
    array, _ = _run("[" + ",".join(lines) + "]", "demo")
    assert json.loads(array) == results


def test_a_non_finite_number_is_never_written_and_the_words_in_text_are():
    # pydantic-core would write a bare NaN / Infinity (not JSON): the json module refuses it.
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_result({"change_from_baseline_pct": float("nan")})
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_result({"sum_mm": float("-inf")})
    text = encode_result({"subject_id": "NaN-Infinity ≥ 1", "sum_mm": 12.5})
    assert text == '{"subject_id":"NaN-Infinity ≥ 1","sum_mm":12.5}'.encode()


def test_a_non_finite_result_is_refused_as_its_cases_internal_error(monkeypatch):
    lines = DEMO.read_text(encoding="utf-8").splitlines()[:2]
    real = cli_assess.assess_json

    def spoiled(case, today=None):
        result = real(case, today=today)
        result["timepoints"][0]["sum_mm"] = float("inf")
        return result

    monkeypatch.setattr(cli_assess, "assess_json_line", lambda line, today=None: None)
    monkeypatch.setattr(cli_assess, "assess_json", spoiled)
    form, cases = read_cases("\n".join(lines) + "\n", "demo")
    errors: list[str] = []
    rendered = assess_batch(cases, form, "json", True, errors)
    assert len(rendered) == 0
    assert len(errors) == 2 and all("internal error (ValueError" in e for e in errors)
    assert errors[0].startswith("demo line 1: subject ")


@pytest.mark.parametrize("spool", [False, True])
def test_a_stream_in_another_encoding_gets_the_same_text(monkeypatch, spool):
    """The results are held as UTF-8; a stream that is not UTF-8 gets them decoded."""
    lines = DEMO.read_text(encoding="utf-8").splitlines()
    text = "\n".join(lines) + "\n"
    held, _ = _run(text, "demo")
    if spool:
        monkeypatch.setattr(cli_assess, "SPOOL_IN_MEMORY", 500)
    form, cases = read_cases(text, "demo")
    errors: list[str] = []
    rendered = assess_batch(cases, form, "json", False, errors)
    assert (rendered._file is not None) == spool
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-16")
    write_results(form, rendered, "json", stream)
    stream.flush()
    assert raw.getvalue().decode("utf-16") == held


def test_one_case_is_written_indented_as_the_json_module_would():
    """One case in, one object out, indented by two spaces: the same serializer as a batch
    (numbers written alike whatever the form), the json module's layout."""
    line = DEMO.read_text(encoding="utf-8").splitlines()[0]
    pretty = json.dumps(json.loads(line), indent=2)
    held, _ = _run(pretty, "one.json")
    expected = json.dumps(assess_json(json.loads(line)), ensure_ascii=False, indent=2)
    assert held == expected + "\n"
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_result({"sum_mm": float("nan")}, indent=2)
    assert encode_result({"s": "NaN"}, indent=2) == b'{\n  "s": "NaN"\n}'
