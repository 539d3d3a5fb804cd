"""Stateless assessment (``POST /assess``) and this API's OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api.blueprint import bp
from web.api.body import json_body
from web.api.openapi import openapi_document
from web.auth import public, requires
from web.services import assess_case


@bp.route("/openapi.json")
@public
def openapi() -> Any:
    return jsonify(openapi_document())


@bp.route("/assess", methods=["POST"])
@requires("assess")
def assess() -> Any:
    """Stateless: assess one case of the ``recist assess`` contract."""
    return jsonify(assess_case(json_body()))
