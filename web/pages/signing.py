"""Signing a read (password re-entered) and unlocking it (with a reason)."""

from __future__ import annotations

from typing import Any

from flask import (
    flash,
    redirect,
    request,
    url_for,
)

from web.auth import actor, requires
from web.pages import review as bp
from web.pages.subjects import subject_page
from web.services import ServiceError, request_session
from web.services.signing import (
    entered_by,
    meanings_for,
    sign_timepoint,
    signer_of,
    unlock_timepoint,
)


@bp.app_context_processor
def _signature_helpers() -> dict[str, Any]:
    """For the subject page's signature list: ``signer(tp)``, the signature's manifestation
    ("Full Name (username)"), and ``sign_meanings(tp)``, the meanings the current user may
    sign the read with (none: only its reader, or an adjudicator acting as such, signs)."""

    def key(tp: Any) -> str:
        return f"{tp.subject.trial.code}/{tp.subject.code}/{tp.code}"

    def signer(tp: Any) -> str:
        subject = tp.subject
        return signer_of(request_session(), subject.trial.code, subject.code, tp) or ""

    def sign_meanings(tp: Any) -> tuple[str, ...]:
        return meanings_for(actor(), entered_by(request_session(), key(tp), tp))

    def reader_of(tp: Any) -> str:
        return entered_by(request_session(), key(tp), tp) or ""

    return {"signer": signer, "sign_meanings": sign_meanings, "reader_of": reader_of}


def _subject_error(trial_code: str, subject_code: str, error: ServiceError) -> Any:

    return subject_page(trial_code, subject_code, error)


@bp.route(
    "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>/sign", methods=["POST"]
)
@requires("sign_reads")
def sign(trial_code: str, subject_code: str, tp_code: str) -> Any:
    form = request.form
    version = form.get("version", "")
    try:
        sign_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            password=form.get("password", ""),
            meaning=form.get("meaning", ""),
            expected_version=int(version) if version.isdigit() else None,
        )
    except ServiceError as error:
        return _subject_error(trial_code, subject_code, error)
    flash(f"Timepoint {tp_code} signed ({form.get('meaning')}) and locked.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))


@bp.route(
    "/trials/<trial_code>/subjects/<subject_code>/timepoints/<tp_code>/unlock", methods=["POST"]
)
@requires("unlock_reads")
def unlock(trial_code: str, subject_code: str, tp_code: str) -> Any:
    try:
        unlock_timepoint(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            tp_code,
            reason=request.form.get("reason", ""),
        )
    except ServiceError as error:
        return _subject_error(trial_code, subject_code, error)
    flash(f"Timepoint {tp_code} unlocked; its signature was withdrawn.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))
