"""Signing a read: its signature, signing it (password re-entered) and unlocking it.

Signing through an API token still needs the signer's password in the body: the token says
who sent the request, the re-entered password is the signature (21 CFR 11.200(a)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, jsonify, url_for

from web.api.blueprint import bp
from web.api.body import body_with, pointing_into, text
from web.api.common import TIMEPOINT, utc
from web.auth import actor, allowed, request_user_role, requires
from web.services import request_session
from web.services.common import get_timepoint, reload_subject
from web.services.sign_all import sign_password, signer_for_stored_read
from web.services.signing import entered_by, sign_timepoint, signer_of, unlock_timepoint


def signature_of(trial_code: str, subject_code: str, tp_code: str) -> dict[str, Any]:
    """The read's signature as committed now (after a signing of this request)."""
    session = request_session()
    tp = get_timepoint(reload_subject(session, trial_code, subject_code), tp_code)
    return {
        "subject_id": subject_code,
        "timepoint": tp.code,
        "version": tp.version,
        "locked": tp.locked,
        "entered_by": entered_by(session, f"{trial_code}/{subject_code}/{tp.code}", tp),
        "signed_by": tp.signed_by,
        "signer": signer_of(session, trial_code, subject_code, tp),
        "signed_at": utc(tp.signed_at),
        "meaning": tp.sign_meaning,
        "url": url_for(
            "api.timepoint", trial_code=trial_code, subject_code=subject_code, tp_code=tp.code
        ),
    }


def sign_on_save(body: dict[str, Any]) -> str | None:
    """Pop the ``sign`` member of a save's body (sign on save) and return its password,
    checked in shape (:func:`web.services.sign_all.sign_password`); ``None`` when the body
    has no ``sign`` or it is null (save only). 403 for a role that may not sign."""
    sign = body.pop("sign", None)
    if sign is None:
        return None
    if not allowed(request_user_role(), "sign_reads"):
        abort(403, f"a {request_user_role()} may save but not sign reads: send no 'sign'")
    return sign_password(sign)


def signer_for(
    trial_code: str,
    subject_code: str,
    password: str | None,
    *,
    tp_code: str | None = None,
    version: Any = None,
) -> Callable[[], Any] | None:
    """How a save with ``sign`` asks for its signer (the stored read and the password
    checked: :func:`web.services.sign_all.signer_for_stored_read`), the save's
    ``ask_signer``; ``None`` without ``sign``: the save is neither rehearsed nor signed."""
    if password is None:
        return None
    return lambda: signer_for_stored_read(
        request_session(),
        actor(),
        trial_code,
        subject_code,
        password=password,
        tp_code=tp_code,
        expected_version=version,
    )


@bp.route(TIMEPOINT + "/signature", methods=["GET"])
@requires("view")
def signature(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """Whether the read is signed and locked, by whom, when (UTC) and with what meaning."""
    return jsonify(signature_of(trial_code, subject_code, tp_code))


@bp.route(TIMEPOINT + "/sign", methods=["POST"])
@requires("sign_reads")
def sign(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """``{password, meaning, version}``: sign the read and lock it.

    Only the reader who entered the read signs it (meaning ``read complete``); an
    adjudicator signs another reader's read only with the meaning ``read complete (acting
    as adjudicator)``; anyone else gets 403 ``not_your_read``. The password is checked even
    though the token authenticated the request: it is the signature's second component,
    entered again for this signing.
    """
    keys = ("password", "meaning", "version")
    body = body_with(*keys)
    version = body.get("version")
    with pointing_into(keys):
        sign_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            password=text(body, "password"),
            meaning=text(body, "meaning"),
            expected_version=version,
        )
    return jsonify(signature_of(trial_code, subject_code, tp_code))


@bp.route(TIMEPOINT + "/unlock", methods=["POST"])
@requires("unlock_reads")
def unlock(trial_code: str, subject_code: str, tp_code: str) -> Any:
    """``{reason}``: withdraw the signature so that the read can be corrected."""
    keys = ("reason",)
    body = body_with(*keys)
    with pointing_into(keys):
        unlock_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            reason=text(body, "reason"),
        )
    return jsonify(signature_of(trial_code, subject_code, tp_code))
