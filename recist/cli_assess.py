"""``recist assess CASE``: assess cases given as JSON, a JSON array or JSON Lines.

The contract is docs/contracts.md. Output is written only once every case has been read
and assessed, so a refused batch leaves no partial output (unless ``--keep-going``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any, TextIO

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
    render: Callable[[dict[str, Any]], str],
    keep_going: bool,
    errors: list[str],
    today: date | None = None,
) -> Iterator[str]:
    """Each case assessed and rendered, in order; each refusal goes to ``errors`` as one
    line naming the case (without ``keep_going`` the first one ends the batch). Dates
    after ``today`` are refused (R-PLAUS-DATE)."""
    for item in _fast_lines(cases, render, today):
        if isinstance(item, str):
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
    cases: Iterable[JsonCase], render: Callable[[dict[str, Any]], str], today: date | None
) -> Iterator[str | JsonCase]:
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


# ``json.dumps(..., ensure_ascii=False)`` made once: a result is a fresh tree of dicts and
# lists (never circular), so the encoder skips the circular-reference bookkeeping.
# ``allow_nan=False``: a result is never written as invalid JSON (a non-finite number is
# refused as an internal error of its case instead).
_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False, allow_nan=False).encode


def _render_one(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2, allow_nan=False)


def _renderer(form: str, fmt: str) -> Callable[[dict[str, Any]], str]:
    """How one result is written: a table, the indented object of a one-case input, or one
    compact JSON text (a line of JSON Lines, an item of an array)."""
    if fmt == "table":
        return format_table
    return _render_one if form == "object" else _ENCODE


def assess_batch(
    cases: Iterable[JsonCase],
    form: str,
    fmt: str,
    keep_going: bool,
    errors: list[str],
    today: date | None = None,
) -> list[str]:
    """Assess the cases in order and render each result as soon as it is made.

    Only the rendered text is kept until the batch is written (the contract writes nothing
    for a refused batch): a result's dicts are dropped at once, which takes a large batch a
    fraction of the memory of holding every result tree, and less time. Refusals go to
    ``errors``; without ``keep_going`` the first one ends the batch.
    """
    return list(_iter_results(cases, _renderer(form, fmt), keep_going, errors, today))


def _write_joined(out: TextIO, texts: list[str], sep: str, start: str = "") -> None:
    """Write ``start + sep.join(texts)`` piece by piece: joining a large batch into one
    string first doubled its peak memory and took longer than the writing itself."""
    out.write(start)
    for index, text in enumerate(texts):
        if index:
            out.write(sep)
        out.write(text)


def write_results(form: str, rendered: list[str], fmt: str, out: TextIO) -> None:
    """Write the texts of :func:`assess_batch` in the input's form."""
    if fmt == "table":
        _write_joined(out, rendered, "\n\n")
        out.write("\n")
    elif form == "object":
        out.write(rendered[0] + "\n")
    elif form == "array":
        # The encoder's own list layout: items separated by ", " (no indent).
        _write_joined(out, rendered, ", ", start="[")
        out.write("]\n")
    else:
        _write_joined(out, rendered, "\n")
        out.write("\n")


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
