"""Errors raised by the engine.

Every message is one sentence naming where (subject, timepoint, lesion, field), what was
found, what was expected, and the rule when one applies.
"""

from __future__ import annotations


class RecistError(ValueError):
    """Base class of every error the engine raises on purpose.

    Parameters
    ----------
    message
        The sentence shown to the user; the location prefix is added by :meth:`__str__`.
    subject, timepoint, lesion, field
        Where the problem is; any may be ``None``.
    rule
        The rule id of ``docs/rules.md`` that the input breaks, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        timepoint: str | None = None,
        lesion: str | None = None,
        field: str | None = None,
        rule: str | None = None,
    ) -> None:
        self.message = message
        self.subject = subject
        self.timepoint = timepoint
        self.lesion = lesion
        self.field = field
        self.rule = rule
        super().__init__(message)

    def located(self, **where: str | None) -> RecistError:
        """Fill in location fields that are still unknown (used while unwinding)."""
        for key, value in where.items():
            if getattr(self, key) is None and value is not None:
                setattr(self, key, value)
        return self

    def __str__(self) -> str:
        parts = []
        if self.subject is not None:
            parts.append(f"subject {self.subject}")
        if self.timepoint is not None:
            parts.append(f"timepoint {self.timepoint}")
        if self.lesion is not None:
            parts.append(f"lesion {self.lesion}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        where = ", ".join(parts)
        text = f"{where}: {self.message}" if where else self.message
        if self.rule and f"({self.rule})" not in text:
            text = f"{text} ({self.rule})"
        return text

    def to_dict(self) -> dict[str, str | None]:
        """The error as a JSON-ready mapping (used by the CLI and the API)."""
        return {
            "message": str(self),
            "subject": self.subject,
            "timepoint": self.timepoint,
            "lesion": self.lesion,
            "field": self.field,
            "rule": self.rule,
        }


class CaseInputError(RecistError):
    """The case cannot be assessed as given (malformed, inconsistent or out of order)."""


class ProtocolDeviationError(RecistError):
    """Strict mode: a baseline finding (R-MEAS, R-SEL) refused instead of reported."""
