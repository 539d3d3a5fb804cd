"""A user's own account (``/account``): their API tokens (name, created, expires, last
used; revoke one) and changing their password (the current one, then the new one twice).

A password change ends every session of the user, this one included, and logs this
browser in again on a fresh session: other browsers are logged out.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from web.auth import actor, begin_session, request_user, requires
from web.pages import views as bp
from web.services import InvalidInput, ServiceError, request_session
from web.services.access import list_tokens, revoke_token, token_state
from web.services.users import change_own_password, display_name


def _account_page(error: ServiceError | None = None) -> Any:
    user = request_user()
    if user is None:  # pragma: no cover - wrapped by requires()
        abort(401)
    tokens = [(t, token_state(t)) for t in list_tokens(request_session(), user.username)]
    return (
        render_template(
            "auth/account.html",
            account=user,
            shown_name=display_name(user),
            tokens=tokens,
            error=error,
        ),
        error.status if error is not None else 200,
    )


@bp.route("/account")
@requires("own_account")
def account() -> Any:
    return _account_page()


@bp.route("/account/password", methods=["POST"])
@requires("own_account")
def account_password() -> Any:
    user = request_user()
    if user is None:  # pragma: no cover - wrapped by requires()
        abort(401)
    form = request.form
    try:
        if form.get("new_password", "") != form.get("new_password_again", ""):
            raise InvalidInput(
                "the new password and its repetition differ; nothing was changed",
                field="new_password_again",
            )
        ended = change_own_password(
            request_session(),
            user,
            old=form.get("old_password", ""),
            new=form.get("new_password", ""),
        )
    except ServiceError as error:
        return _account_page(error)
    begin_session(user, reason="password changed")
    others = ended - 1
    flash(
        "Password changed." + (f" {others} other session(s) were logged out." if others > 0 else "")
    )
    return redirect(url_for("views.account"))


@bp.route("/account/tokens/revoke", methods=["POST"])
@requires("own_account")
def account_revoke_token() -> Any:
    raw = request.form.get("token_id", "")
    try:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
            raise InvalidInput(f"token {raw!r} is not a token id", field="token_id")
        token = revoke_token(request_session(), actor(), token_id=int(raw), owner=actor().username)
    except ServiceError as error:
        return _account_page(error)
    flash(f"Token {token.name!r} revoked: it no longer works.")
    return redirect(url_for("views.account"))
