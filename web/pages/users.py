"""Users managed by administrators (``/users``, permission ``manage_users``): the list of
users (role, state, trials, last login) with a form to add one, and a page per user
(``/users/NAME``) to set the full name, change the role, assign and remove trials,
deactivate or activate, and reset the password.

Every write is a call to :mod:`web.services.users` or :mod:`web.services.membership`
(audited, one transaction each); a refused form is shown again with what was typed and
the field the error names. A generated password is shown once, in the answer to the form
that set it (never stored in the session cookie, never sent again): the service has no
"must change at next login" flag, so the page asks the administrator to tell the user to
change it on their account page.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from web.auth import actor, requires
from web.models import CLINICAL_ROLES, ROLES
from web.pages import views as bp
from web.services import InvalidInput, ServiceError, clean_reason, list_trials, request_session
from web.services.membership import add_member, remove_member
from web.services.users import (
    create_user,
    display_name,
    list_users,
    set_active,
    set_full_name,
    set_password,
    set_role,
)

# Every role text the service accepts (web.services.membership.check_role).
ROLE_CHOICES = (*ROLES, *(f"admin+{role}" for role in CLINICAL_ROLES))
# A generated password is read out or typed by people: 16 characters from letters and
# digits without the look-alikes 0/O, 1/l/I (57 symbols: about 93 random bits).
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
PASSWORD_LENGTH = 16


def _new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _trial_codes() -> list[str]:
    return [trial.code for trial in list_trials(request_session())]


def _users_page(error: ServiceError | None = None, form: Any = None) -> Any:
    return (
        render_template(
            "auth/users.html",
            users=list_users(request_session()),
            roles=ROLE_CHOICES,
            trial_codes=_trial_codes(),
            error=error,
            form=form or {},
            chosen=form.getlist("trial") if form is not None else [],
        ),
        error.status if error is not None else 200,
    )


def _user_page(
    username: str,
    *,
    error: ServiceError | None = None,
    posted: str | None = None,
    new_password: str | None = None,
) -> Any:
    """The page of one user; after a refused form, ``posted`` names that form and its
    typed values are shown again; ``new_password`` is shown once."""
    (summary,) = list_users(request_session(), username)
    return (
        render_template(
            "auth/user.html",
            summary=summary,
            account=summary.user,
            shown_name=display_name(summary.user),
            roles=ROLE_CHOICES,
            free_trials=[c for c in _trial_codes() if c not in summary.trials],
            error=error,
            posted=posted,
            form=request.form if posted else {},
            new_password=new_password,
            is_self=summary.user.username == actor().username,
        ),
        error.status if error is not None else 200,
    )


@bp.route("/users")
@requires("manage_users")
def users() -> Any:
    return _users_page()


@bp.route("/users", methods=["POST"])
@requires("manage_users")
def user_create() -> Any:
    """Add a user with a generated password, shown once on the answer."""
    form = request.form
    username = form.get("username", "").strip()
    password = _new_password()
    try:
        create_user(
            request_session(),
            actor(),
            username=username,
            password=password,
            role=form.get("role", ""),
            full_name=form.get("full_name", ""),
            trials=form.getlist("trial"),
        )
    except ServiceError as error:
        return _users_page(error, form)
    flash(f"User {username} created.")
    return _user_page(username, new_password=password)


@bp.route("/users/<username>")
@requires("manage_users")
def user(username: str) -> Any:
    return _user_page(username)


def _done(username: str, message: str) -> Any:
    flash(message)
    return redirect(url_for("views.user", username=username))


@bp.route("/users/<username>/full-name", methods=["POST"])
@requires("manage_users")
def user_full_name(username: str) -> Any:
    try:
        set_full_name(
            request_session(),
            actor(),
            username=username,
            full_name=request.form.get("full_name", ""),
        )
    except ServiceError as error:
        return _user_page(username, error=error, posted="full_name")
    return _done(username, f"Full name of {username} saved.")


@bp.route("/users/<username>/role", methods=["POST"])
@requires("manage_users")
def user_role(username: str) -> Any:
    role = request.form.get("role", "")
    try:
        set_role(request_session(), actor(), username=username, role=role)
    except ServiceError as error:
        return _user_page(username, error=error, posted="role")
    return _done(username, f"{username} now has the role {role} (from their next request).")


@bp.route("/users/<username>/trials", methods=["POST"])
@requires("manage_users")
def user_trial_add(username: str) -> Any:
    code = request.form.get("trial", "")
    try:
        if not code:
            raise InvalidInput("choose a trial to assign", field="trial")
        added = add_member(request_session(), actor(), username=username, trial_code=code)
    except ServiceError as error:
        return _user_page(username, error=error, posted="trial_add")
    return _done(username, f"{username} {'is now' if added else 'was already'} a member of {code}.")


@bp.route("/users/<username>/trials/remove", methods=["POST"])
@requires("manage_users")
def user_trial_remove(username: str) -> Any:
    code = request.form.get("trial", "")
    try:
        reason = clean_reason(request.form.get("reason", ""))
        if not reason:
            raise InvalidInput(
                f"say why {username} leaves trial {code} (kept in the audit trail)",
                field="reason",
            )
        remove_member(request_session(), actor(), username=username, trial_code=code, reason=reason)
    except ServiceError as error:
        return _user_page(username, error=error, posted="trial_remove")
    return _done(username, f"{username} is no longer a member of {code}.")


@bp.route("/users/<username>/active", methods=["POST"])
@requires("manage_users")
def user_active(username: str) -> Any:
    wanted = request.form.get("active", "")
    try:
        if wanted not in ("0", "1"):
            raise InvalidInput("choose to activate or to deactivate the user", field="active")
        set_active(request_session(), actor(), username=username, active=wanted == "1")
    except ServiceError as error:
        return _user_page(username, error=error, posted="active")
    if wanted == "1":
        return _done(username, f"{username} activated; earlier API tokens stay revoked.")
    return _done(
        username, f"{username} deactivated: their sessions ended and their API tokens revoked."
    )


@bp.route("/users/<username>/password", methods=["POST"])
@requires("manage_users")
def user_password(username: str) -> Any:
    """Reset a user's password to a generated one, shown once; their sessions end."""
    password = _new_password()
    try:
        if username == actor().username:
            raise InvalidInput(
                "change your own password on your account page (it asks for the current one)",
                field="password",
            )
        ended = set_password(request_session(), actor(), username=username, password=password)
    except ServiceError as error:
        return _user_page(username, error=error, posted="password")
    flash(f"Password of {username} reset; {ended} session(s) of theirs ended.")
    return _user_page(username, new_password=password)
