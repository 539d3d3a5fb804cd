"""The JSON API (``/api/v1``): stateless assessment and the trial's resources.

Authentication is a bearer token (``recist users token NAME``); the session cookie is
never accepted here, which is why the blueprint needs no CSRF token. Errors are JSON:
``{"error": {"code", "message", "field", "pointer"}}`` where ``pointer`` is a JSON
pointer into the request body (RFC 6901) when the field came from it.

The routes live in one module per area, all on the one blueprint :data:`bp` (endpoints
``api.<function>``): :mod:`~web.api.assess` (stateless assessment, the OpenAPI document),
:mod:`~web.api.trials`, :mod:`~web.api.subjects` (subjects, case import, result,
lesions), :mod:`~web.api.baseline`, :mod:`~web.api.timepoints` (timepoints,
measurements), :mod:`~web.api.signing`, :mod:`~web.api.progression` (review of
progression calls), :mod:`~web.api.central` (central review) and :mod:`~web.api.audit`.
Each reads the request (:mod:`web.api.body`), calls :mod:`web.services` (every write is
one transaction there, audited there) and renders JSON. The review areas (signing,
progression, central, audit) call the same service functions as their pages and need the
same permissions (:data:`web.auth.PERMISSIONS`), so the API can do nothing a person could
not do on the page.
"""

from __future__ import annotations

# Importing the area modules registers their routes on ``bp`` (web/api/blueprint.py).
from web.api import (
    assess,
    audit,
    baseline,
    batches,
    central,
    inbox,
    progression,
    signing,
    subjects,
    timepoints,
    trials,
)
from web.api.blueprint import bp
from web.api.body import BodyRefused

__all__ = [
    "BodyRefused",
    "assess",
    "audit",
    "baseline",
    "batches",
    "bp",
    "central",
    "inbox",
    "progression",
    "signing",
    "subjects",
    "timepoints",
    "trials",
]
