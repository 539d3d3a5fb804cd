"""The HTML pages: thin blueprints that turn form posts into service calls
(:mod:`web.services`) and results into templates; they never write themselves.

Split by the same areas as the services: ``trials``, ``subjects``, ``baseline``,
``timepoints``, ``uploads`` (blueprint ``views``) and ``audit``, ``signing``,
``progression``, ``plots``, ``central``, ``exports`` (blueprint ``review``); ``site_sheet``
is the site reader's worksheet (``views``); ``forms``, ``grid``, ``read_sheet`` and ``sheet_check``
translate between form fields and the case contract. Each blueprint's templates live
in its own folder (``templates/views/``, ``templates/review/``); the shared layout
(``base.html``, ``error.html``) stays at the top.
"""

from __future__ import annotations

from flask import Blueprint

views = Blueprint("views", __name__)
review = Blueprint("review", __name__)

# Importing the area modules registers their routes on the two blueprints.
from web.pages import (  # noqa: E402
    account,
    audit,
    baseline,
    batch,
    central,
    common,
    exports,
    images,
    inbox,
    pacs,
    plots,
    progression,
    signing,
    site_sheet,
    subjects,
    timepoints,
    trials,
    uploads,
    users,
)

__all__ = [
    "account",
    "audit",
    "baseline",
    "batch",
    "central",
    "common",
    "exports",
    "images",
    "inbox",
    "pacs",
    "plots",
    "progression",
    "review",
    "signing",
    "site_sheet",
    "subjects",
    "timepoints",
    "trials",
    "uploads",
    "users",
    "views",
]
