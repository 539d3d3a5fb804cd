"""The one error type of :mod:`imaging_io`: input that cannot be measured honestly.

Every message is one sentence naming the file and what is wrong with it, so that the
command line can print it on one line (exit status 2) and the web app can show it as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def refusing(path: str | Path, what: str) -> Iterator[None]:
    """Turn any failure while parsing a file from outside into one refusal naming it.

    pydicom and highdicom parse lazily: hostile or truncated bytes surface as many kinds of
    exceptions (struct lengths, encodings, missing sequence items) wherever an element is
    first read. At the boundary of a reader they all mean "this file cannot be read
    honestly"; the message keeps the exception's type and text (so a bug of ours is still
    visible), and no traceback reaches the user. Found by ``tests/fuzz/fuzz_imaging.py``.
    """
    try:
        yield
    except ImagingInputError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise ImagingInputError(path, f"{what} (too large or too deeply nested to read)") from exc
    except Exception as exc:  # the boundary of a reader of files from outside
        text = " ".join(str(exc).split())
        text = text if len(text) <= 200 else text[:199] + "…"
        raise ImagingInputError(path, f"{what} ({type(exc).__name__}: {text})") from exc
