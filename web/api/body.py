"""Reading a request's JSON body: within the limits of :mod:`recist.safejson`, free-text
members checked to be strings, unknown keys refused, service errors pointed into it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import request

from recist.safejson import INVALID_JSON, PAYLOAD_TOO_LARGE, JsonInputError, loads, size_text
from web import MAX_BODY_BYTES
from web.services import InvalidInput, ServiceError


class BodyRefused(InvalidInput):
    """The request body cannot be read as JSON (malformed, not UTF-8, beyond a limit):
    400 with the limit's code (``invalid_json``, ``json_too_deep``, ``number_too_long``,
    ``number_out_of_range``, ``duplicate_key``), 413 ``payload_too_large``."""

    def __init__(self, error: JsonInputError) -> None:
        if error.code == PAYLOAD_TOO_LARGE and error.limit is not None:
            message = f"the request body is larger than the {size_text(error.limit)} limit"
        elif error.code == INVALID_JSON:
            message = f"the request body is not valid JSON: {error.detail}"
        else:
            message = f"the request body is refused: {error.detail}"
        super().__init__(
            message, field=error.key, pointer="" if error.pointer is None else error.pointer
        )
        self.code = error.code
        self.status = 413 if error.code == PAYLOAD_TOO_LARGE else 400


# Free-text members of request bodies, with the most characters each may have: a string
# or null, anything else refused naming the member (never stored, never hashed into the
# audit trail as something else). 2000 is the services' limit of a reason (MAX_REASON).
TEXT_FIELDS: dict[str, int] = {
    "reason": 2000,
    "comment": 2000,
    "rationale": 2000,
    "password": 1024,
    "meaning": 64,
    "decision": 32,
    "call": 100,
    "title": 300,
}


def text_field(
    body: dict[str, Any], name: str, *, required: bool = False, max_len: int | None = None
) -> str | None:
    """The member ``name`` of a request body as a string (``None`` when absent or null).

    Raises
    ------
    InvalidInput
        Naming the member (``/name``): not a string, longer than ``max_len`` (default:
        :data:`TEXT_FIELDS`' limit), or absent or empty when ``required``.
    """
    value = body.get(name)
    pointer = f"/{name}"
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name} is required", field=name, pointer=pointer)
        return None if value is None else ""
    if not isinstance(value, str):
        raise InvalidInput(
            f"{name} must be a string, not {type(value).__name__}", field=name, pointer=pointer
        )
    limit = max_len if max_len is not None else TEXT_FIELDS.get(name)
    if limit is not None and len(value) > limit:
        raise InvalidInput(
            f"{name} is {len(value):,} characters long; at most {limit:,}",
            field=name,
            pointer=pointer,
        )
    return value


def text(body: dict[str, Any], name: str) -> str:
    """A string member of the body, ``""`` when absent (the service says what is missing);
    anything but a string is refused naming the member (:func:`text_field`)."""
    return text_field(body, name) or ""


def json_body() -> dict[str, Any]:
    """The request's JSON object, read within the limits of :mod:`recist.safejson`; its
    free-text members (:data:`TEXT_FIELDS`) are checked to be strings."""
    if not request.is_json:
        raise InvalidInput(
            "the request body must be JSON (Content-Type: application/json)", pointer=""
        )
    raw = request.get_data()  # bytes, not text: invalid UTF-8 is refused, never replaced
    try:
        data = loads(raw, max_bytes=request.max_content_length or MAX_BODY_BYTES)
    except JsonInputError as error:
        raise BodyRefused(error) from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", pointer="")
    if b"\\u0000" in raw:
        _refuse_nul(data, "")
    for name in TEXT_FIELDS:
        if name in data:
            text_field(data, name)
    return data


def body_with(*keys: str) -> dict[str, Any]:
    """The JSON body, refusing any key but ``keys`` (a misspelt key is never ignored)."""
    body = json_body()
    extra = sorted(set(body) - set(keys))
    if extra:
        raise InvalidInput(
            f"unknown key {extra[0]!r}; this request takes {', '.join(keys)}",
            field=extra[0],
            pointer=f"/{extra[0]}",
        )
    return body


@contextmanager
def pointing_into(keys: tuple[str, ...]) -> Iterator[None]:
    """Give a service error that names a member of the request its JSON pointer.

    The review services name the form field (``comment``, ``reason``…) but do not know
    the request is JSON; the field names are the body's keys (present or missing).
    """
    try:
        yield
    except ServiceError as error:
        if error.pointer is None and error.field in keys:
            error.pointer = f"/{error.field}"
        raise


def _refuse_nul(value: Any, pointer: str) -> None:
    """Refuse a NUL character (``\\u0000``) in any key or string: no database column keeps
    it (PostgreSQL refuses it), so it is refused before anything is written."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(
                "a string holds a NUL character (\\u0000), which cannot be stored",
                field=pointer.rsplit("/", 1)[-1] or None,
                pointer=pointer,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            _refuse_nul(key, pointer)
            _refuse_nul(item, f"{pointer}/{escaped}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{pointer}/{index}")
