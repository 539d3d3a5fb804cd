"""The one error type of :mod:`imaging_io`: input that cannot be measured honestly.

Every message is one sentence naming the file and what is wrong with it, so that the
command line can print it on one line (exit status 2) and the web app can show it as is.
"""

from __future__ import annotations

from pathlib import Path


class ImagingInputError(ValueError):
    """A DICOM series, segmentation or report that is unreadable or inconsistent.

    Parameters
    ----------
    path
        The file or folder at fault (``None`` when the problem is not tied to one file).
    message
        What is wrong, and where useful what was expected.
    """

    def __init__(self, path: str | Path | None, message: str) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)
