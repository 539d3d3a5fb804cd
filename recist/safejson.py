"""JSON from outside, read within limits: one reader for the API, the forms and every CLI.

Python's :mod:`json` accepts what the contract (docs/contracts.md) does not, and fails
badly on hostile input: ``NaN`` and ``Infinity`` literals, a duplicate key silently won by
its last value, ``1e400`` read as infinity, a 5,000-digit integer (``ValueError`` from the
integer-string limit) and nesting a thousand levels deep (``RecursionError``).
:func:`loads` refuses each of these with a :class:`JsonInputError` (a
:class:`~recist.errors.CaseInputError`) whose message names the limit or the problem and
where it is (line and column, and a JSON pointer when known); :func:`read_cases` reads
the cases of a command line (one case, a JSON array or JSON Lines, from a file or stdin)
with the same limits.

The checks cost little: one pass over the bytes with C-level operations (translate, find,
replace) rules every limit out for ordinary input; only input that trips it is walked
token by token, to locate the problem (or to find it was the content of a string).
Duplicate keys are caught while parsing (an ``object_pairs_hook``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from recist.errors import CaseInputError

MAX_DEPTH: Final = 64
"""Nesting levels (arrays and objects) allowed; a case needs 5."""
MAX_NUMBER_CHARS: Final = 50
"""Characters of one number; a double never needs more than 24."""
MAX_BYTES: Final = 5 * 1024 * 1024
"""Default size limit of :func:`loads` (a request body); :func:`read_cases` has none."""

# Error codes (the API's ``error.code``).
INVALID_JSON: Final = "invalid_json"
JSON_TOO_DEEP: Final = "json_too_deep"
NUMBER_TOO_LONG: Final = "number_too_long"
NUMBER_OUT_OF_RANGE: Final = "number_out_of_range"
DUPLICATE_KEY: Final = "duplicate_key"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
UNREADABLE: Final = "unreadable"


class JsonInputError(CaseInputError):
    """JSON text refused: malformed, not UTF-8, or beyond a limit.

    Attributes
    ----------
    code
        What was refused: one of the module's codes (``invalid_json``, ``json_too_deep``,
        ``number_too_long``, ``number_out_of_range``, ``duplicate_key``,
        ``payload_too_large``, ``unreadable``).
    reason
        The problem without its place (``"Expecting value"``, ``"nesting deeper than the
        limit of 64 levels"``).
    detail
        ``reason`` with its place (``"… at line 3, column 7"``).
    line, column
        Where (1-based; the column counts characters), when known.
    limit
        The limit that was exceeded, if any.
    key
        The duplicate key, for ``duplicate_key``.
    pointer
        A JSON pointer (RFC 6901) to the value refused, when known.
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        single_line: bool = False,
        limit: int | None = None,
        key: str | None = None,
        pointer: str | None = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        self.limit = limit
        self.key = key
        self.pointer = pointer
        place = ""
        if column is not None:
            place = (
                f" at column {column}"
                if single_line or line is None
                else f" at line {line}, column {column}"
            )
        self.detail = reason + place
        text = f"malformed JSON: {self.detail}" if code == INVALID_JSON else self.detail
        super().__init__(f"{source}: {text}" if source else text)


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one reading applies (``None``: no size limit)."""

    max_depth: int = MAX_DEPTH
    max_number_chars: int = MAX_NUMBER_CHARS
    max_bytes: int | None = MAX_BYTES


def size_text(size: int) -> str:
    """A byte count for people: ``5 MB`` for whole mebibytes, else ``1,234 bytes``."""
    mb = 1024 * 1024
    return f"{size // mb} MB" if size >= mb and size % mb == 0 else f"{size:,} bytes"


# ----------------------------------------------------------------------------- the cheap pass

_STRUCTURE = b'"[]{}'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_BRACKETS = bytes.maketrans(b"{}", b"[]")  # for depth, an object is one more level too
# The characters of numbers: digits, point and minus -> "0", e/E -> "e", "+" -> "+",
# anything else -> " ". A number is runs of "0" split by at most one "e" and one "+".
_NUMBER_CHARS = bytes(
    48 if b in b"0123456789.-" else 101 if b in b"eE" else 43 if b == 43 else 32 for b in range(256)
)
_BIG_EXPONENT = re.compile(rb"0e\+?000")  # 1e400: three exponent digits (or 1e-400)
_QUOTED = re.compile(rb'"[^"]*"')


def _shallow(data: bytes, max_depth: int) -> bool:
    """Whether no array or object nests deeper than ``max_depth`` (``False`` may also mean
    malformed: the token walk decides)."""
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return True
    if b"\\" in data:
        # Escapes first (``\\`` then ``\"``, left to right as JSON reads them).
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Keep only quotes and brackets (braces as brackets): every string is then '"' +
    # brackets + '"'.
    structure = data.translate(_BRACKETS, _NOT_STRUCTURE)
    # Adjacent quotes close one string and open the next (or enclose nothing): dropping
    # them keeps the strings' parity, and most strings hold no bracket at all.
    structure = structure.replace(b'""', b"")
    if b'"' in structure:
        structure = _QUOTED.sub(b"", structure)
    # Now only brackets: each round removes the innermost pairs, exactly one level (a
    # replacement never rescans the pairs it makes adjacent).
    for _ in range(max_depth):
        if not structure:
            return True
        shorter = structure.replace(b"[]", b"")
        if len(shorter) == len(structure):
            return False
        structure = shorter
    return not structure


def _suspicious(data: bytes, limits: Limits) -> bool:
    """Whether the text may break a limit or hold an unpaired surrogate escape; ``False``
    rules all of them out. (``NaN`` and ``Infinity`` are refused by the parser.)"""
    return _suspicious_tokens(data, limits) or not _shallow(data, limits.max_depth)


def _suspicious_tokens(data: bytes, limits: Limits) -> bool:
    """:func:`_suspicious` but for the depth: long or huge numbers, unpaired surrogates."""
    if b"\\" in data and (b"\\ud" in data or b"\\uD" in data):
        return True
    numbers = data.translate(_NUMBER_CHARS)
    # A number longer than the limit has a run of "0" at least a third of it long.
    if b"0" * max(1, -(-(limits.max_number_chars - 1) // 3)) in numbers:
        return True
    return _BIG_EXPONENT.search(numbers) is not None


def _lines_shallow(lines: list[tuple[int, str]], max_depth: int) -> bool:
    """Whether no line of JSON Lines nests deeper than ``max_depth``. A line's depth is at
    most the number of its ``[`` and ``{`` (those inside strings only add to the count),
    which for a case is a few dozen: only a line with more is walked."""
    for _, line in lines:
        if line.count("[") + line.count("{") > max_depth and not _shallow(
            line.encode("utf-8"), max_depth
        ):
            return False
    return True


# ----------------------------------------------------------------------------- the token walk

_TOKEN = re.compile(
    r'"[^"\\]*(?:\\.[^"\\]*)*"'  # a string
    r"|[\[\]{},:]"  # structure
    r"|-?[0-9][0-9.eE+\-]*|-?Infinity|NaN"  # a number, or a refused literal
    r'|"',  # a string that never ends
    re.DOTALL,
)


@dataclass(slots=True)
class _Frame:
    is_object: bool
    part: str | int | None  # the current key or index
    keys: set[str] = field(default_factory=set)


def _escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _pointer(frames: list[_Frame]) -> str:
    return "".join("/" + _escape(f.part) for f in frames if f.part is not None)


def _position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _shown(token: str) -> str:
    return token if len(token) <= 24 else f"{token[:12]}…{token[-6:]}"


def _first_problem(
    text: str, limits: Limits, source: str | None, line_number: int | None
) -> JsonInputError | None:
    """The first (by position) limit broken, refused literal, unpaired surrogate or
    duplicate key; ``None`` if there is none (or the text is malformed before it: the
    parser then names that)."""

    def refuse(reason: str, offset: int, code: str, **more: Any) -> JsonInputError:
        line, column = _position(text, offset)
        return JsonInputError(
            reason,
            code=code,
            source=source,
            line=line if line_number is None else line_number,
            column=column,
            single_line=line_number is not None,
            **more,
        )

    frames: list[_Frame] = []
    string: str | None = None
    string_at = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[0]
        if first == '"':
            if len(token) == 1:
                return None
            if "\\u" in token:
                try:
                    json.loads(token).encode("utf-8")
                except json.JSONDecodeError:
                    return None
                except UnicodeEncodeError:
                    return refuse(
                        "string with an unpaired surrogate escape (not Unicode text)",
                        match.start(),
                        INVALID_JSON,
                        pointer=_pointer(frames),
                    )
            string, string_at = token, match.start()
            continue
        if first in "[{":
            if len(frames) >= limits.max_depth:
                return refuse(
                    f"nesting deeper than the limit of {limits.max_depth} levels",
                    match.start(),
                    JSON_TOO_DEEP,
                    limit=limits.max_depth,
                    pointer=_pointer(frames),
                )
            frames.append(_Frame(first == "{", None if first == "{" else 0))
        elif first in "]}":
            if not frames:
                return None
            frames.pop()
        elif first == ":":
            top = frames[-1] if frames else None
            if top is not None and top.is_object and string is not None:
                try:
                    key = string[1:-1] if "\\" not in string else str(json.loads(string))
                except json.JSONDecodeError:
                    return None
                if key in top.keys:
                    return refuse(
                        f"duplicate key {key!r} in one object",
                        string_at,
                        DUPLICATE_KEY,
                        key=key,
                        pointer=_pointer(frames[:-1]) + "/" + _escape(key),
                    )
                top.keys.add(key)
                top.part = key
        elif first == "," and frames:
            top = frames[-1]
            if not top.is_object and isinstance(top.part, int):
                top.part += 1
        elif token in ("NaN", "Infinity", "-Infinity"):
            return refuse(
                f"{token} is not a JSON number (NaN and Infinity are refused)",
                match.start(),
                INVALID_JSON,
                pointer=_pointer(frames),
            )
        elif len(token) > limits.max_number_chars:
            return refuse(
                f"number {_shown(token)} of {len(token):,} characters is longer than the "
                f"limit of {limits.max_number_chars} characters",
                match.start(),
                NUMBER_TOO_LONG,
                limit=limits.max_number_chars,
                pointer=_pointer(frames),
            )
        elif "e" in token or "E" in token or "." in token:
            try:
                value = float(token)
            except ValueError:
                return None
            if math.isinf(value):
                return refuse(
                    f"number {token} is out of range (beyond the largest finite number)",
                    match.start(),
                    NUMBER_OUT_OF_RANGE,
                    pointer=_pointer(frames),
                )
        string = None
    return None


# ----------------------------------------------------------------------------- loads


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NonFinite(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


# One decoder, made once (``json.loads`` with hooks builds a new one per call).
_DECODE = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_refuse_constant).decode


def _as_text(
    raw: str | bytes, limits: Limits, source: str | None, line_number: int | None
) -> tuple[bytes, str]:
    """The UTF-8 bytes and the text, refusing what is too large or not Unicode text."""
    limit = limits.max_bytes
    if limit is not None and len(raw) > limit:
        raise JsonInputError(
            f"larger than the limit of {size_text(limit)}",
            code=PAYLOAD_TOO_LARGE,
            source=source,
            limit=limit,
        )
    if isinstance(raw, str):
        text = raw
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            line, column = _position(text, exc.start)
            raise JsonInputError(
                "not Unicode text (an unpaired surrogate)",
                code=INVALID_JSON,
                source=source,
                line=line if line_number is None else line_number,
                column=column,
                single_line=line_number is not None,
            ) from None
    else:
        data = bytes(raw)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            head = data[: exc.start]
            line_start = head.rfind(b"\n") + 1
            column = len(head[line_start:].decode("utf-8", "replace")) + 1
            raise JsonInputError(
                f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
                code=INVALID_JSON,
                source=source,
                line=head.count(b"\n") + 1 if line_number is None else line_number,
                column=column,
                single_line=line_number is not None,
            ) from None
    if limit is not None and len(data) > limit:
        raise JsonInputError(
            f"larger than the limit of {size_text(limit)}",
            code=PAYLOAD_TOO_LARGE,
            source=source,
            limit=limit,
        )
    if text.startswith("\ufeff"):  # a byte order mark (RFC 8259 §8.1: may be ignored)
        text, data = text[1:], data[3:]
    return data, text


def _parse(
    text: str,
    data: bytes | None,
    limits: Limits,
    source: str | None,
    line_number: int | None,
) -> Any:
    """Check (unless ``data`` is ``None``: checked already) and parse."""
    if data is not None and _suspicious(data, limits):
        problem = _first_problem(text, limits, source, line_number)
        if problem is not None:
            raise problem
    try:
        return _DECODE(text)
    except json.JSONDecodeError as exc:
        raise JsonInputError(
            exc.msg,
            code=INVALID_JSON,
            source=source,
            line=exc.lineno if line_number is None else line_number,
            column=exc.colno,
            single_line=line_number is not None,
        ) from None
    except _DuplicateKey as dup:
        problem = _first_problem(text, limits, source, line_number)
        raise problem or JsonInputError(
            f"duplicate key {dup.key!r} in one object",
            code=DUPLICATE_KEY,
            source=source,
            key=dup.key,
        ) from None
    except _NonFinite as exc:  # NaN, Infinity: the walk says where
        problem = _first_problem(text, limits, source, line_number)
        raise problem or JsonInputError(
            f"{exc} is not a JSON number (NaN and Infinity are refused)",
            code=INVALID_JSON,
            source=source,
        ) from None
    except (RecursionError, ValueError) as exc:  # pragma: no cover - the checks above
        # refuse all of these first; never a traceback if one slips through.
        problem = _first_problem(text, limits, source, line_number)
        raise problem or JsonInputError(
            f"unreadable JSON ({type(exc).__name__})", code=INVALID_JSON, source=source
        ) from None


def loads(
    text: str | bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_number_chars: int = MAX_NUMBER_CHARS,
    max_bytes: int | None = MAX_BYTES,
    source: str | None = None,
    line_number: int | None = None,
) -> Any:
    """Parse JSON text from outside, within limits.

    Parameters
    ----------
    text
        The JSON text; bytes must be UTF-8 (a leading byte order mark is ignored).
    max_depth, max_number_chars, max_bytes
        Nesting levels, characters of one number and size in bytes (``None``: any size).
    source
        What the text is (``"case.json"``, ``"cases.jsonl line 3"``): the message
        starts with it.
    line_number
        When the text is one line of a file (JSON Lines): its number, so that a position
        is that line and a column.

    Raises
    ------
    JsonInputError
        Malformed JSON or not UTF-8 (``invalid_json``, with line and column), ``NaN`` or
        ``Infinity`` (``invalid_json``), nesting deeper than ``max_depth``
        (``json_too_deep``), a number longer than ``max_number_chars``
        (``number_too_long``), a number beyond the finite range (``number_out_of_range``),
        a key twice in one object (``duplicate_key``, naming it), more than ``max_bytes``
        (``payload_too_large``).
    """
    limits = Limits(max_depth, max_number_chars, max_bytes)
    data, decoded = _as_text(text, limits, source, line_number)
    return _parse(decoded, data, limits, source, line_number)


# ----------------------------------------------------------------------------- read_cases


class JsonCase(NamedTuple):
    """One case of an input: where it is, its JSON value, or why its text was refused."""

    label: str
    """``cases.jsonl line 3``, ``cases.json case #2`` or ``case.json``."""
    value: Any
    """The parsed JSON value (any type: the caller says what a case must be)."""
    error: JsonInputError | None
    """A line of JSON Lines that cannot be read (``value`` is then ``None``)."""


class CaseInput:
    """The cases of one input, in its form (``object``, ``array`` or ``lines``).

    Iterating yields :class:`JsonCase` items in order; lines of JSON Lines are parsed as
    they are reached (a large batch is never held as parsed objects all at once), and a
    line that cannot be read is yielded with its error, so a batch can go on past it.
    """

    def __init__(
        self,
        form: str,
        name: str,
        limits: Limits,
        *,
        values: list[Any] | None = None,
        lines: list[tuple[int, str]] | None = None,
        checked: bool = False,
    ) -> None:
        self.form = form
        self.name = name
        self._limits = limits
        self._values = values or []
        self._lines = lines or []
        self._checked = checked

    def __len__(self) -> int:
        return len(self._lines) if self.form == "lines" else len(self._values)

    def __iter__(self) -> Iterator[JsonCase]:
        if self.form == "object":
            yield JsonCase(self.name, self._values[0], None)
        elif self.form == "array":
            for index, value in enumerate(self._values, start=1):
                yield JsonCase(f"{self.name} case #{index}", value, None)
        else:
            for number, line in self._lines:
                yield self.read_line(number, line)

    def checked_lines(self) -> list[tuple[int, str]] | None:
        """The lines of JSON Lines (number, text) when one pass over the whole input
        ruled out every limit for every line (depth, long or huge numbers, unpaired
        surrogate escapes), else ``None``. A line of these may go to a parser that checks
        no limit itself; duplicate keys, ``NaN`` and ``Infinity`` are still its own to
        refuse (or to hand to :meth:`read_line`)."""
        return self._lines if self.form == "lines" and self._checked else None

    def read_line(self, number: int, line: str) -> JsonCase:
        """Line ``number`` of JSON Lines read within the limits, as iterating yields it."""
        label = self.label(number)
        try:
            data = None if self._checked else line.encode("utf-8")
            value = _parse(line, data, self._limits, label, number)
        except JsonInputError as error:
            return JsonCase(label, None, error)
        return JsonCase(label, value, None)

    def label(self, number: int) -> str:
        """How messages name line ``number`` of JSON Lines."""
        return f"{self.name} line {number}"

    def objects(self) -> list[dict[str, Any]]:
        """Every case as a JSON object, for commands that refuse a file with one bad case.

        Raises
        ------
        JsonInputError
            The first line that cannot be read, or the first case that is not an object.
        """
        out = []
        for label, value, error in self:
            if error is not None:
                raise error
            if not isinstance(value, dict):
                raise JsonInputError(
                    f"a case must be a JSON object, not {_json_type(value)}",
                    code=INVALID_JSON,
                    source=label,
                )
            out.append(value)
        return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


_NON_SPACE = re.compile(r"\S")


def parse_cases(
    raw: str | bytes,
    name: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_number_chars: int = MAX_NUMBER_CHARS,
    max_bytes: int | None = None,
) -> CaseInput:
    """The cases of a text: one case, a JSON array of cases, or JSON Lines.

    JSON Lines is two or more non-blank lines of which the first is a whole object on its
    own line (a pretty-printed object starts with a line ``{``); each line is then one
    case, labelled with its line number. Limits are those of :func:`loads`; ``max_bytes``
    applies to the whole input (``None``: any size).

    Raises
    ------
    JsonInputError
        The input as a whole cannot be read: not UTF-8, empty, too large, or (for one case
        or an array) malformed or beyond a limit, naming ``name`` and the place.
    """
    limits = Limits(max_depth, max_number_chars, max_bytes)
    data, text = _as_text(raw, limits, name, None)
    start = _NON_SPACE.search(text)
    if start is None:
        raise JsonInputError(
            "the input is empty; expected a case, a JSON array of cases or JSON Lines",
            code=INVALID_JSON,
            source=name,
        )
    if text[start.start()] == "[":
        values = _parse(text, data, limits, name, None)
        return CaseInput("array", name, limits, values=values)
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    first = lines[0][1].strip()
    if len(lines) > 1 and first.startswith("{") and first.endswith("}"):
        # One pass over the whole text rules the token limits out for every line at once;
        # the depth, a limit of each line, is bounded by each line's brackets.
        clean = not _suspicious_tokens(data, limits) and _lines_shallow(lines, limits.max_depth)
        return CaseInput("lines", name, limits, lines=lines, checked=clean)
    return CaseInput("object", name, limits, values=[_parse(text, data, limits, name, None)])


def read_cases(
    path: str,
    *,
    name: str | None = None,
    max_depth: int = MAX_DEPTH,
    max_number_chars: int = MAX_NUMBER_CHARS,
    max_bytes: int | None = None,
) -> CaseInput:
    """The cases of a file, or of standard input when ``path`` is ``-``.

    ``name`` is how messages name the file (default: ``path`` as typed; ``<stdin>``).
    See :func:`parse_cases` for the forms and limits.

    Raises
    ------
    JsonInputError
        The file cannot be read (``unreadable``), or as :func:`parse_cases`.
    """
    label = "<stdin>" if path == "-" else (name or path)
    try:
        if path == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                raw = handle.read()
    except OSError as exc:
        raise JsonInputError(
            f"cannot read ({exc.strerror})", code=UNREADABLE, source=label
        ) from None
    return parse_cases(
        raw, label, max_depth=max_depth, max_number_chars=max_number_chars, max_bytes=max_bytes
    )
