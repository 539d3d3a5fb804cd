"""Reading and writing CDISC CSV files safely.

Reading: every cell is read as text (no type guessing, no ``NA`` → missing surprises:
``"NA"`` stays ``"NA"``), required columns are checked before any row is used, and the
guard quote that :func:`write_csv` puts in front of formula-like cells is taken off again,
so a file written here reads back to the same values.

Writing: UTF-8, no index column, and no spreadsheet formula injection: a text cell that
starts with ``= + - @`` (or a tab or carriage return) gets a leading ``'`` so that a
spreadsheet shows it as text instead of running it (OWASP "CSV injection"). Numbers,
negative numbers included, are left alone.

Outputs are staged (:func:`staged_outputs`): each file is written under a temporary name
in its own folder and renamed to its name only when every output of the command was
written, so a command that fails half-way leaves no partial or half-updated output behind.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cdisc_io.errors import CdiscFileError

if TYPE_CHECKING:
    import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_GUARDED = re.compile(r"^'[=+\-@\t\r]")  # a cell that write_csv guarded
FIRST_DATA_ROW = 2  # the header is row 1 of the file


def file_row(index: int) -> int:
    """The file row of the data record at 0-based position ``index``."""
    return index + FIRST_DATA_ROW


def read_domain(
    path: str | Path, required: Iterable[str], *, label: str | None = None
) -> pd.DataFrame:
    """Read one CDISC domain from a CSV file, all cells as text.

    Parameters
    ----------
    path
        The CSV file (UTF-8; a byte-order mark is accepted).
    required
        Columns that must be present.
    label
        The name used in error messages (default: the file's name).

    Returns
    -------
    pandas.DataFrame
        One row per record, every cell a ``str`` (empty for a missing value), cells
        stripped of surrounding blanks and of the formula guard quote.

    Raises
    ------
    CdiscFileError
        The file is missing, unreadable, empty, or lacks a required column.
    """
    import pandas as pd

    name = label or Path(path).name
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig"
        )
    except FileNotFoundError:
        raise CdiscFileError("no such file", file=name) from None
    except pd.errors.EmptyDataError:
        raise CdiscFileError("the file is empty (no header row)", file=name) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CdiscFileError(f"not a readable UTF-8 CSV file ({first})", file=name) from None
    frame.columns = [str(c).strip().upper() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CdiscFileError(
            f"required column {missing[0]} is missing (required: {', '.join(required)})",
            file=name,
            row=1,
            column=missing[0],
        )
    # Plain list comprehensions: pandas' .str methods cost several times more per cell.
    for column in frame.columns:
        cells = [cell.strip() for cell in frame[column].tolist()]
        if any(cell[:1] == "'" for cell in cells):
            cells = [cell[1:] if _GUARDED.match(cell) else cell for cell in cells]
        frame[column] = cells
    return frame


def guard_cell(value: object) -> object:
    """Neutralise a formula-like text cell (``=cmd()`` → ``'=cmd()``); numbers pass."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _NUMBER.match(value):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: str | Path, columns: Sequence[str] | None = None) -> None:
    """Write ``frame`` as UTF-8 CSV without an index, guarding formula-like text cells."""
    out = frame if columns is None else frame.reindex(columns=list(columns))
    out = out.copy()
    for column in out.columns:
        if out[column].dtype != object:
            continue  # numbers and dates-as-numbers cannot hold a formula
        cells = out[column].tolist()
        if any(isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES) for cell in cells):
            out[column] = [guard_cell(cell) for cell in cells]
    out.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")


class OutputError(ValueError):
    """An output folder or file cannot be written; the message names it."""


@contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """Create the output folder ``path`` and yield it; an ``OSError`` while creating it or
    writing into it becomes one :class:`OutputError` naming the folder or file."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out}: cannot create folder ({error.strerror})") from None
    try:
        yield out
    except OSError as error:
        raise OutputError(f"{error.filename or out}: cannot write ({error.strerror})") from None


class StagedFiles:
    """Output files written under temporary names (``.NAME.xxxxxxxx.partial``) in their own
    folders; :meth:`commit` renames them all to their names, :meth:`discard` removes them."""

    def __init__(self) -> None:
        self._files: list[tuple[Path, Path, str]] = []  # (temporary, final, label)

    def path(self, target: str | Path, label: str | None = None) -> Path:
        """A new empty temporary file for ``target``; write it, not ``target``.

        ``label`` names the output in error messages (default: its path).

        Raises
        ------
        OSError
            The folder does not exist or cannot be written, or ``target`` is a folder.
        """
        final = Path(target)
        if final.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), label or str(final))
        temporary = final.parent / f".{final.name}.{secrets.token_hex(4)}.partial"
        # O_EXCL: never another file's; mode 0666 less the umask, as open() would give.
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as error:
            # Name the output, not its temporary file.
            raise OSError(error.errno, error.strerror, label or str(final)) from None
        self._files.append((temporary, final, label or str(final)))
        return temporary

    def label_of(self, filename: object) -> str | None:
        """The label of the output whose temporary (or final) file is ``filename``."""
        for temporary, final, label in self._files:
            if str(filename) in (str(temporary), str(final)):
                return label
        return None

    def commit(self) -> None:
        """Rename every temporary file to its name (each rename is atomic)."""
        for _temporary, final, _label in self._files:
            if final.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(final))
        for temporary, final, _label in self._files:
            os.replace(temporary, final)
        self._files.clear()

    def discard(self) -> None:
        """Remove the temporary files that are left."""
        for temporary, _final, _label in self._files:
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass
        self._files.clear()


@contextmanager
def staged_outputs() -> Iterator[StagedFiles]:
    """Stage a command's outputs; they appear only if the block succeeds.

    An ``OSError`` of the block (or of the renames) becomes one :class:`OutputError`
    naming the output (its label) and why; any error removes every temporary file.
    """
    staged = StagedFiles()
    try:
        yield staged
        staged.commit()
    except OSError as error:
        label = staged.label_of(error.filename) or error.filename or "output"
        staged.discard()
        raise OutputError(f"{label}: cannot write ({error.strerror})") from None
    except BaseException:
        staged.discard()
        raise
