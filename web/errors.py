"""Refusals of the web application: every service raises one of these; pages render
them on the form, the API answers ``{"error": to_dict()}`` with ``status``.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refused request: ``code`` for machines, ``message`` (one sentence) for people.

    ``field`` names the input field and ``pointer`` is a JSON pointer into the request
    body when the API can tell; ``status`` is the HTTP status the handlers answer with.
    """

    status = 400
    code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        pointer: str | None = None,
        rule: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.pointer = pointer
        self.rule = rule
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        out["field"] = self.field
        out["pointer"] = self.pointer
        if self.rule:
            out["rule"] = self.rule
        if self.details:
            out["details"] = self.details
        return out


class InvalidInput(ServiceError):
    """The input cannot be stored or assessed as given."""


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class ConcurrentEdit(ServiceError):
    """Someone saved the same record after the caller loaded it (version mismatch)."""

    status = 409
    code = "concurrent_edit"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class ReasonRequired(ServiceError):
    """The baseline breaks R-MEAS/R-SEL rules: saving anyway needs a written reason."""

    status = 422
    code = "reason_required"


class Locked(ServiceError):
    """The read was signed and is locked; it must be unlocked (with a reason) first."""

    status = 409
    code = "locked"
