"""``recist assess CASE``: assess cases given as JSON, a JSON array or JSON Lines.

The contract is docs/contracts.md. Output is written only once every case has been read
and assessed, so a refused batch leaves no partial output (unless ``--keep-going``).
"""

from __future__ import annotations

import argparse
import codecs
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import IO, Any, TextIO

from pydantic_core import to_json

from recist.errors import RecistError
from recist.jsonio import assess_json, assess_json_line
from recist.safejson import CaseInput, JsonCase, JsonInputError, parse_cases
from recist.safejson import read_cases as read_case_input

EXIT_INPUT = 2


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", help="a case file (one case, a JSON array or JSON Lines), or -")
    parser.add_argument(
        "--format",
        choices=("json", "table"),
        default="json",
        help="json (default): the contract's JSON; table: a readable per-timepoint table",
    )
    parser.add_argument(
        "--today",
        type=_iso_day,
        default=None,
        metavar="YYYY-MM-DD",
        help="the day dates are judged against: a date after it is refused (R-PLAUS-DATE; "
        "default: today)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="in a batch, assess the valid cases and report the others (exit status 2 "
        "if any was refused)",
    )


def _iso_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def read_cases(text: str | bytes, name: str) -> tuple[str, CaseInput]:
    """The input's form (``object``, ``array`` or ``lines``) and its cases, each with a
    label locating it in the input (:func:`recist.safejson.parse_cases`: the same limits
    as every JSON reader; lines of JSON Lines are parsed one at a time as they are
    assessed).

    Raises
    ------
    JsonInputError
        The input as a whole cannot be read (naming ``name``, the line and the column).
    """
    cases = parse_cases(text, name)
    return cases.form, cases


def _internal_error(label: str, case: Any, error: Exception) -> str:
    """One line for a case the engine failed on: not hidden, and not a traceback."""
    subject = case.get("subject_id") if isinstance(case, dict) else None
    where = f"subject {subject}: " if isinstance(subject, str) and subject else ""
    what = " ".join(str(error).split())
    what = what if len(what) <= 200 else what[:199] + "…"
    return (
        f"{label}: {where}internal error ({type(error).__name__}: {what}); the case was not "
        "assessed, please report it"
    )


def _iter_results(
    cases: Iterable[JsonCase],
    render: Callable[[dict[str, Any]], str | bytes],
    keep_going: bool,
    errors: list[str],
    today: date | None = None,
) -> Iterator[str | bytes]:
    """Each case assessed and rendered, in order; each refusal goes to ``errors`` as one
    line naming the case (without ``keep_going`` the first one ends the batch). Dates
    after ``today`` are refused (R-PLAUS-DATE)."""
    for item in _fast_lines(cases, render, today):
        if not isinstance(item, JsonCase):
            yield item
            continue
        label, case, unreadable = item
        if unreadable is not None:
            errors.append(str(unreadable))  # names the line and the column already
        else:
            try:
                text = render(assess_json(case, today=today))
            except RecistError as error:
                errors.append(f"{label}: {error}")
            except Exception as error:  # noqa: BLE001 - one case's bug must not end the batch
                errors.append(_internal_error(label, case, error))
            else:
                yield text
                continue
        if not keep_going:
            return


def _fast_lines(
    cases: Iterable[JsonCase],
    render: Callable[[dict[str, Any]], str | bytes],
    today: date | None,
) -> Iterator[str | bytes | JsonCase]:
    """The cases in order, each as its rendered result or as a :class:`JsonCase` for the
    usual path. Lines of JSON Lines whose limits were checked for the whole input go
    through the one-pass reader (:func:`recist.jsonio.assess_json_line`); a line it cannot
    vouch for, or that fails in any way, is read and assessed the usual way, which gives
    the refusal in its usual words (the fast path never words an error itself)."""
    if not isinstance(cases, CaseInput) or (lines := cases.checked_lines()) is None:
        yield from cases
        return
    for number, line in lines:
        try:
            result = assess_json_line(line, today=today)
            text = None if result is None else render(result)
        except Exception:  # noqa: BLE001 - the usual path below refuses it in its words
            text = None
        yield text if text is not None else cases.read_line(number, line)


def format_table(result: dict[str, Any]) -> str:
    """A per-timepoint table of one result, for people."""
    pfs = result["pfs"]
    head = (
        f"subject {result['subject_id']}"
        + (f"  arm {result['arm']}" if result.get("arm") else "")
        + f"  BOR {result['best_overall_response']}"
        + f"  PFS {'event' if pfs['event'] else 'censored'} {pfs['date']} "
        f"day {pfs['days']} ({pfs['reason']})"
    )
    columns = (
        "timepoint",
        "date",
        "sum mm",
        "Δbase %",
        "Δnadir %",
        "target",
        "non-target",
        "new",
        "overall",
    )
    rows = [columns]

    def cell(value: Any) -> str:
        return "—" if value is None else str(value)

    for tp in result["timepoints"]:
        total = tp["sum_mm"]
        if total is None and tp.get("partial_sum_mm") is not None:
            total = f"({tp['partial_sum_mm']})"
        rows.append(
            (
                tp["id"],
                tp["date"],
                cell(total),
                cell(tp.get("change_from_baseline_pct")),
                cell(tp.get("change_from_nadir_pct")),
                cell(tp["target_response"]),
                cell(tp["non_target_response"]),
                cell(tp["new_lesions"]),
                cell(tp["overall_response"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = [head]
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    for warning in result["warnings"]:
        lines.append(f"  finding {warning['rule']} {warning['lesion']}: {warning['message']}")
    for query in result.get("queries", []):
        lines.append(f"  query {query['rule']} {query['timepoint']}: {query['message']}")
    return "\n".join(lines)


# A result is written by pydantic-core's serializer (already the engine's JSON reader,
# recist.jsonio): about twice as fast as the json module on results, whose reason lines
# carry characters such as "≥". It writes a non-finite number as a bare ``NaN`` or
# ``Infinity``, which is not JSON; so a text holding either word goes to the json module
# instead, which refuses a real one (``allow_nan=False``: an internal error of its case)
# and writes the same JSON (the same values and layout; a tiny number such as 1e-07 may be
# spelled differently) when the word was inside a string.
def encode_result(result: dict[str, Any], indent: int | None = None) -> bytes:
    """One result as JSON, UTF-8 (no ASCII escapes): compact, one line, or indented by
    ``indent`` spaces (the one-case form)."""
    data = to_json(result, indent=indent)
    if b"NaN" in data or b"Infinity" in data:
        compact = (",", ":") if indent is None else None
        text = json.dumps(
            result, ensure_ascii=False, allow_nan=False, indent=indent, separators=compact
        )
        return text.encode("utf-8")
    return data


def _render_one(result: dict[str, Any]) -> bytes:
    return encode_result(result, indent=2)


def _renderer(form: str, fmt: str) -> Callable[[dict[str, Any]], str | bytes]:
    """How one result is written: a table, the indented object of a one-case input, or one
    compact JSON text (a line of JSON Lines, an item of an array), already UTF-8."""
    if fmt == "table":
        return format_table
    return _render_one if form == "object" else encode_result


def _utf8_buffer(out: TextIO) -> IO[bytes] | None:
    """The byte stream under ``out`` when it writes UTF-8 (a file, standard output), so
    that UTF-8 output goes to it as it is; ``None`` for a text buffer (a ``StringIO``)."""
    raw = getattr(out, "buffer", None)
    if raw is not None and (out.encoding or "").lower().replace("-", "") == "utf8":
        return raw  # type: ignore[no-any-return]
    return None


class BatchOutput:
    """The rendered results of a batch, held until the batch is written (the contract
    writes nothing for a refused batch), laid out in the input's form as they come.

    They are held as UTF-8, as the serializer writes them: about half the memory of the
    same text as Python strings (a result's reason lines, with a ``≥`` in them, cost a
    string two bytes a character). Up to :data:`SPOOL_IN_MEMORY` bytes stay in memory;
    beyond that they go to an anonymous temporary file, so that a batch of 100,000 cases
    holds a bounded part of its output in memory rather than all of it. Written to a real
    stream, the bytes go to its buffer as they are.
    """

    def __init__(self, form: str, fmt: str) -> None:
        sep, start, end = _layout(form, fmt)
        self._sep, self._start, self._end = sep.encode(), start.encode(), end.encode()
        self._object = form == "object" and fmt != "table"
        self._parts: list[bytes] = []
        self._held = 0
        self._file: IO[bytes] | None = None
        self.count = 0

    def add(self, text: str | bytes) -> None:
        data = text if type(text) is bytes else text.encode("utf-8")  # type: ignore[union-attr]
        parts = self._parts
        parts.append(self._sep if self.count else self._start)
        parts.append(data)
        self.count += 1
        self._held += len(data)
        if self._held > SPOOL_IN_MEMORY:
            self._spill()

    def _spill(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()
        self._file.writelines(self._parts)
        self._parts.clear()
        self._held = 0

    def __len__(self) -> int:
        return self.count

    def write_to(self, out: TextIO) -> None:
        """Write the whole output: the results in the input's form, then a newline (once:
        what is written is let go)."""
        if self.count:
            self._parts.append(self._end)
        elif not self._object:
            self._parts.extend((self._start, self._end))
        raw = _utf8_buffer(out)
        spooled = self._file
        if spooled is None:
            if raw is not None:
                out.flush()
                raw.writelines(self._parts)
                raw.flush()
            else:  # part by part, each dropped once written: never all of it twice
                parts = self._parts
                parts.reverse()
                while parts:
                    out.write(parts.pop().decode("utf-8"))
            return
        self._spill()
        self._file = None
        with spooled:
            spooled.seek(0)
            if raw is not None:
                out.flush()  # and its buffer, raw
                _copy_file(spooled, raw)
                raw.flush()
            else:
                decoder = codecs.getincrementaldecoder("utf-8")()
                while chunk := spooled.read(1 << 22):
                    out.write(decoder.decode(chunk))
                out.write(decoder.decode(b"", final=True))


def _copy_file(source: IO[bytes], target: IO[bytes]) -> None:
    """The rest of ``source`` (a file) written to ``target``, in the kernel
    (``os.sendfile``) where both are files: a large batch's spooled output is copied
    without passing through Python, several times faster than reading and writing it.
    Where the kernel cannot (``target`` has no descriptor, or one sendfile cannot write
    to), the rest is read and written as usual."""
    try:
        source_fd, target_fd = source.fileno(), target.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        source_fd = target_fd = -1
    offset = source.tell()
    if source_fd >= 0:
        end = os.fstat(source_fd).st_size
        try:
            while offset < end:
                sent = os.sendfile(target_fd, source_fd, offset, end - offset)
                if sent == 0:
                    break
                offset += sent
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
                raise  # a real write error (a broken pipe, a full disk)
        source.seek(offset)
    shutil.copyfileobj(source, target, 1 << 22)


# Bytes of output (UTF-8) a batch keeps in memory before it spools to a temporary file.
SPOOL_IN_MEMORY = 64 << 20


def _layout(form: str, fmt: str) -> tuple[str, str, str]:
    """(separator, start, end) of a batch's output: tables apart by a blank line, JSON
    Lines a result a line, an array compact as its items."""
    if fmt == "table":
        return "\n\n", "", "\n"
    if form == "array":
        return ",", "[", "]\n"
    return "\n", "", "\n"


def assess_batch(
    cases: Iterable[JsonCase],
    form: str,
    fmt: str,
    keep_going: bool,
    errors: list[str],
    today: date | None = None,
) -> BatchOutput:
    """Assess the cases in order and render each result as soon as it is made.

    Only the rendered text (UTF-8) is kept until the batch is written
    (:class:`BatchOutput`: in memory, then in a temporary file): a result's dicts are
    dropped at once. Refusals go
    to ``errors``; without ``keep_going`` the first one ends the batch.
    """
    output = BatchOutput(form, fmt)
    add = output.add
    for text in _iter_results(cases, _renderer(form, fmt), keep_going, errors, today):
        add(text)
    return output


def write_results(form: str, rendered: BatchOutput, fmt: str, out: TextIO) -> None:
    """Write the output of :func:`assess_batch` (made for this ``form`` and ``fmt``)."""
    rendered.write_to(out)


def run(args: argparse.Namespace) -> int:
    try:
        cases = read_case_input(args.case)
    except JsonInputError as exc:
        print(f"recist assess: {exc}", file=sys.stderr)
        return EXIT_INPUT
    form = cases.form
    errors: list[str] = []
    today = args.today or date.today()
    rendered = assess_batch(cases, form, args.format, args.keep_going, errors, today)
    if errors and not args.keep_going:
        print(f"recist assess: {errors[0]}", file=sys.stderr)
        return EXIT_INPUT
    for line in errors:
        print(f"recist assess: {line}", file=sys.stderr)
    if rendered:
        write_results(form, rendered, args.format, sys.stdout)
    return EXIT_INPUT if errors else 0
