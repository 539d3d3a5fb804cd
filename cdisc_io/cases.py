"""Reading a batch of cases and assessing it, shared by the export, compare and endpoint
commands."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CasesFileError(ValueError):
    """The cases file cannot be read (missing, malformed JSON, not cases)."""


@dataclass(frozen=True, slots=True)
class Assessed:
    """One case with its engine result (``recist.jsonio.assess_json``)."""

    case: dict[str, Any]
    result: dict[str, Any]


def load_cases(path: str) -> list[dict[str, Any]]:
    """Cases from a file (one case, a JSON array or JSON Lines) or ``-`` (stdin).

    Raises
    ------
    CasesFileError
        Naming the file and, for JSON Lines, the line that is wrong.
    """
    name = "<stdin>" if path == "-" else Path(path).name
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CasesFileError(f"{name}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise CasesFileError(f"{name}: not UTF-8 text") from None
    stripped = text.strip()
    if not stripped:
        raise CasesFileError(f"{name}: the file is empty; expected cases")
    labelled: list[tuple[str, Any]]
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError as whole_error:
        labelled = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                labelled.append((f"{name} line {number}", json.loads(line)))
            except json.JSONDecodeError as error:
                if number == 1 and not line.rstrip().endswith("}"):
                    raise CasesFileError(
                        f"{name}: malformed JSON at line {whole_error.lineno}: {whole_error.msg}"
                    ) from None
                raise CasesFileError(
                    f"{name} line {number}: malformed JSON at column {error.colno}: {error.msg}"
                ) from None
    else:
        if isinstance(whole, list):
            labelled = [(f"{name} case #{i + 1}", item) for i, item in enumerate(whole)]
        else:
            labelled = [(name, whole)]
    cases = []
    for label, case in labelled:
        if not isinstance(case, dict):
            raise CasesFileError(f"{label}: a case must be a JSON object")
        cases.append(case)
    return cases


def assess_cases(
    cases: list[dict[str, Any]], *, refused: list[str] | None = None, file: str | None = None
) -> list[Assessed]:
    """Assess every case.

    Parameters
    ----------
    cases
        Cases of the docs/contracts.md contract.
    refused
        If given, a case the engine refuses is skipped and its one-line reason appended
        here; if ``None``, the first refusal stops the batch.
    file
        The name of the file the cases came from: a refusal then starts with it and the
        case's position (``cases.jsonl, case 3: subject …``).

    Raises
    ------
    recist.errors.RecistError
        Naming the subject (and reader), timepoint, lesion and field, when ``refused`` is
        ``None`` and no ``file`` is given.
    CasesFileError
        The same, starting with the file and the case's position, when ``file`` is given.
    """
    from recist.errors import RecistError
    from recist.jsonio import assess_json

    out = []
    for position, case in enumerate(cases, start=1):
        try:
            result = assess_json(case)
        except RecistError as error:
            reader = case.get("reader")
            if reader and error.subject is not None and "read by" not in error.message:
                error.message = f"{error.message} (read by {reader})"
            where = f"{file}, case {position}: " if file else ""
            if refused is None:
                if file:
                    raise CasesFileError(f"{where}{error}") from None
                raise
            refused.append(f"{where}{error}")
            continue
        out.append(Assessed(case, result))
    return out


def write_settings(assessed: list[Assessed], path: Path) -> None:
    """Write the protocol settings the results were derived with, one entry per distinct set.

    Every exported result carries its settings (docs/rules.md): the CSV domains have no
    column for them, so they go beside the CSVs as ``settings.json``.
    """
    distinct: list[dict[str, Any]] = []
    for item in assessed:
        settings = item.result.get("settings", {})
        if settings not in distinct:
            distinct.append(settings)
    path.write_text(json.dumps({"settings": distinct}, indent=2) + "\n", encoding="utf-8")
