"""RECIST 1.1 rules engine: pure functions over frozen dataclasses (no I/O, no numpy).

Start at :func:`recist.assess`; :mod:`recist.jsonio` converts the JSON contract of
``docs/contracts.md`` to and from the engine's objects.
"""

from recist.assessment import CaseResult, TimepointResult, assess
from recist.errors import CaseInputError, ProtocolDeviationError, RecistError
from recist.lesions import Case, Lesion, NewLesion, Timepoint
from recist.response import NewLesionStatus, Response
from recist.settings import Settings

__all__ = [
    "Case",
    "CaseInputError",
    "CaseResult",
    "Lesion",
    "NewLesion",
    "NewLesionStatus",
    "ProtocolDeviationError",
    "RecistError",
    "Response",
    "Settings",
    "Timepoint",
    "TimepointResult",
    "assess",
]
