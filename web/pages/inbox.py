"""The user's inbox (``/inbox``) and its count in the header; signing all of a subject's
unsigned reads in one signature (the subject page's "Sign all" form)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from web.auth import actor, allowed, request_user, requires
from web.models import role_set
from web.pages import review, views
from web.pages.subjects import subject_page
from web.services import ServiceError, request_session
from web.services.inbox import PARTS, counts, header_count, items
from web.services.sign_all import sign_all, signable_reads
from web.services.signing import printed_name

# The inbox's parts as the page names them, in the order shown.
TITLES = {
    "unsigned": "Your reads awaiting your signature",
    "queries": "Queries on your reads awaiting your answer",
    "pacs": "Machine-measured studies (PACS, batch) awaiting a reader's confirmation",
    "pending_review": "Progression calls awaiting review",
    "answered": "Your queries, answered by the reader",
    "adjudication": "Central reads awaiting adjudication",
    "central": "Subjects awaiting your blinded read",
    "blockers": "What holds up your trials",
}


@views.app_context_processor
def _inbox_helpers() -> dict[str, Any]:
    """``inbox_count()`` for the header's badge (one SQL statement, asked only when the
    page shows the header; ``None`` for nobody or a user with no inbox), and
    ``signable(subject)``, the current user's unsigned reads of a subject."""

    def inbox_count() -> int | None:
        user = request_user() if not request.path.startswith("/static/") else None
        if user is None or not any(user_holds(user.role, part) for part in PARTS):
            return None
        return header_count(request_session(), user)

    def signable(subject: Any) -> list[Any]:
        user = request_user()
        if user is None or not allowed(user.role, "sign_reads"):
            return []
        return signable_reads(request_session(), actor(), subject)

    def signer_name() -> str:
        user = request_user()
        return printed_name(user) if user is not None else ""

    return {"inbox_count": inbox_count, "signable": signable, "signer_name": signer_name}


def user_holds(role: str | None, part: str) -> bool:
    return bool(role_set(role) & PARTS[part])


@views.route("/inbox")
@requires("view")
def inbox() -> Any:
    user = request_user()
    if user is None:  # pragma: no cover - wrapped by requires()
        abort(401)
    found = items(request_session(), user)
    numbers = counts(request_session(), user)
    return render_template(
        "views/inbox.html", parts=found, titles=TITLES, numbers=numbers.parts, total=numbers.total
    )


@review.route("/trials/<trial_code>/subjects/<subject_code>/sign-all", methods=["POST"])
@requires("sign_reads")
def sign_all_reads(trial_code: str, subject_code: str) -> Any:
    """Sign the reads the form listed (timepoint and version each) with one password."""
    form = request.form
    codes, versions = form.getlist("timepoint"), form.getlist("version")
    reads = [
        {"timepoint": code, "version": int(version) if version.isdigit() else version}
        for code, version in zip(codes, versions, strict=False)
    ]
    try:
        signed = sign_all(
            request_session(),
            actor(),
            trial_code,
            subject_code,
            password=form.get("password", ""),
            reads=reads,
        )
    except ServiceError as error:
        return subject_page(trial_code, subject_code, error)
    listed = ", ".join(tp.code for tp in signed)
    flash(f"Signed (read complete) and locked in one signature: {listed}.")
    return redirect(url_for("views.subject", trial_code=trial_code, subject_code=subject_code))
