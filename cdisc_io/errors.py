"""The one error a malformed CDISC file raises: it names the file, row and column."""

from __future__ import annotations


class CdiscFileError(ValueError):
    """A CDISC file cannot be used as given; the whole file is refused.

    Parameters
    ----------
    message
        What is wrong and what was expected, one sentence.
    file
        The file's name (as given on the command line).
    row
        The line number in the file (the header is row 1), if one row is at fault.
    column
        The column (CDISC variable) at fault, if one is.
    """

    def __init__(
        self, message: str, *, file: str, row: int | None = None, column: str | None = None
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        super().__init__(message)

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}"
