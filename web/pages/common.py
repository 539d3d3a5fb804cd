"""What the page modules share: the response colour filter, reading a posted version,
and the signed token that carries an upload's measurements with the pre-filled form."""

from __future__ import annotations

from typing import Any

from web.errors import InvalidInput
from web.pages import views as bp
from web.pages.grid import mm_text, response_css


@bp.app_template_filter("mm")
def _mm(value: float | None) -> str:
    """A size or sum as entered (R-EXACT): ``{{ value|mm }}``."""
    return "" if value is None else mm_text(value)


@bp.app_context_processor
def _text_limits() -> dict[str, Any]:
    """The stated maximum lengths of free text (``maxlength`` and the label say them; the
    services refuse more), and the reason a refused form posted, kept for the retry."""
    from flask import request
    from werkzeug.exceptions import HTTPException

    from web.services.annotations import MAX_LOCATION
    from web.services.common import MAX_REASON

    typed = ""
    if request.method == "POST":
        try:
            typed = request.form.get("reason", "")
        except HTTPException:  # a body refused (too large): the error page shows no form
            typed = ""
    return {"max_reason": MAX_REASON, "max_location": MAX_LOCATION, "reason_typed": typed}


@bp.app_template_filter("response_css")
def _response_css(code: str | None) -> str:
    return response_css(code)


def version_of(text: str | None) -> int | None:
    """The version a form posted (a whole number), or ``None`` when it posted none."""
    if text and text.isascii() and text.isdigit() and len(text) <= 9:
        return int(text)
    return None


# What imaging_io measured travels with the pre-filled form, signed, so that the saved
# follow-up keeps it as evidence without trusting the browser with it.
IMAGING_SALT = "recist-imaging-evidence"


IMAGING_MAX_AGE_S = 24 * 3600


def _imaging_serializer() -> Any:
    from flask import current_app
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=IMAGING_SALT)


def imaging_from_token(token: str) -> dict[str, Any]:
    from itsdangerous import BadSignature

    try:
        evidence: dict[str, Any] = _imaging_serializer().loads(token, max_age=IMAGING_MAX_AGE_S)
    except BadSignature:
        raise InvalidInput(
            "the imaging measurements attached to this form are not valid (altered, or older "
            "than a day); upload the study again",
            field="imaging",
        ) from None
    return evidence


def imaging_token(evidence: dict[str, Any]) -> str:
    """The signed token of an upload's measurements, carried by the pre-filled form."""
    token: str = _imaging_serializer().dumps(evidence)
    return token
