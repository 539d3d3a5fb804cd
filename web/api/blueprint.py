"""The ``api`` blueprint (``/api/v1``), defined once and shared by every area module."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
