"""Log in and out, roles and permissions, enforced on the server for every route.

Every view is wrapped by :func:`requires`, which names the permission it needs; the
permission table :data:`PERMISSIONS` says which roles hold it. Browser requests use the
Flask-Login session cookie, which carries the id of a server-side session
(:mod:`web.services.access`): logout, a password change, deactivation, ``SESSION_IDLE_MINUTES``
without a request (default 30, ``RECIST_SESSION_IDLE_MINUTES``) or ``SESSION_MAX_HOURS`` after
login (default 12, ``RECIST_SESSION_MAX_HOURS``) end it for good. API requests use
``Authorization: Bearer <token>`` only; expired, revoked or deactivated tokens get a 401
that says which.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy.exc import SQLAlchemyError

from web.models import ROLES, User, role_set
from web.services import Actor
from web.services.access import (
    SESSION_IDLE,
    SESSION_MAX,
    check_token,
    end_session,
    note_token_use,
    resume_session,
    span_text,
    start_session,
)
from web.services.membership import trial_access
from web.services.users import DEFAULT_ADDRESS_LIMIT, login_attempt, parse_limit

bp = Blueprint("auth", __name__)
login_manager = LoginManager()

# The key of the server-side session's id in the (signed) session cookie.
SESSION_ID = "sid"

# Password guessing is slowed per account (services.MAX_FAILED_LOGINS locks it) and per
# client address (LOGIN_RATE_LIMIT failed logins), with counts in the database
# (web.services.users.login_attempt); behind a reverse proxy, put werkzeug's ProxyFix in
# front so the client's address is seen.


def _login_rate_limit() -> str:
    return str(current_app.config.get("LOGIN_RATE_LIMIT") or DEFAULT_ADDRESS_LIMIT)


def _login_refused_message() -> str:
    return (
        f"too many failed logins from this address (at most {_login_rate_limit()}); "
        "wait and try again, or ask an administrator"
    )


# Which roles hold each permission. reviewer is read-only; trial_manager runs the trial
# (subjects, arms, dates) but does not measure; reader and adjudicator measure. admin
# administers (users, tokens, the audit trail) and never enters, signs or reviews clinical
# data unless it also holds a clinical role ("admin+reader": segregation of duties). A
# user holding several roles holds the permissions of each (web.services.membership).
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset(ROLES),
    "assess": frozenset(ROLES),
    "enter_measurements": frozenset({"reader", "adjudicator"}),
    "manage_subjects": frozenset({"trial_manager"}),
    "manage_trials": frozenset({"trial_manager"}),
    "import_cases": frozenset({"trial_manager"}),
    "manage_users": frozenset({"admin"}),
    # Who may be assigned to a trial: an admin, or a trial manager of that trial (routes
    # naming a trial reach only its members).
    "manage_members": frozenset({"admin", "trial_manager"}),
    # The audit trail shows every value of every read: readers (blinded in central
    # review) do not see it; the people who oversee the data do.
    "view_audit": frozenset({"adjudicator", "trial_manager", "reviewer", "admin"}),
    # Signing a read: whoever enters measurements. Unlocking a signed read: an adjudicator
    # or a trial manager only (not the reader who signed it, not the system administrator).
    "sign_reads": frozenset({"reader", "adjudicator"}),
    "unlock_reads": frozenset({"adjudicator", "trial_manager"}),
    # Progression-call review: reviewers (and adjudicators) agree or query; the reader
    # answers queries; only an adjudicator overrides a call.
    "review_calls": frozenset({"reviewer", "adjudicator"}),
    "answer_queries": frozenset({"reader", "adjudicator"}),
    "override_calls": frozenset({"adjudicator"}),
    # Independent central review: readers submit blinded reads, adjudicators choose.
    "central_read": frozenset({"reader"}),
    "adjudicate": frozenset({"adjudicator"}),
    # Everyone manages their own account: password, API tokens (/account).
    "own_account": frozenset(ROLES),
}


def blinded(role: str | None, trial: object) -> bool:
    """Whether a reader must not see a trial's site reads, arms and other reads."""
    return "reader" in role_set(role) and bool(getattr(trial, "central_review", False))


F = TypeVar("F", bound=Callable[..., Any])


def allowed(role: str | None, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (unknown permissions hold for nobody)."""
    holders = PERMISSIONS.get(permission, frozenset())
    return any(held in holders for held in role_set(role))


def requires(permission: str) -> Callable[[F], F]:
    """Decorate a view: 401/redirect when not logged in, 403 without the permission.

    The permission is also attached to the view (``view.required_permission``) so that
    a test can check that no route was left without one.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = request_user()
            if user is None:
                if request.path.startswith("/api/"):
                    problem = g.get("token_problem")
                    abort(
                        401,
                        problem
                        or "send 'Authorization: Bearer <token>' (see `recist users token`)",
                    )
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not allowed(user.role, permission):
                abort(
                    403,
                    f"your role {user.role!r} does not allow this ({permission.replace('_', ' ')})",
                )
            return view(*args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as open to everyone (login page, OpenAPI document)."""
    view.required_permission = None  # type: ignore[attr-defined]
    return view


def request_user() -> User | None:
    """The API token's user for ``/api/`` requests, else the logged-in session user."""
    if "request_user" in g:
        user: User | None = g.request_user
        return user
    from web.db import db_session

    user = None
    if request.path.startswith("/api/"):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            check = check_token(db_session(), token.strip())
            user, g.token_problem = check.user, check.problem
            if user is not None:
                g.token_key = check.token_key
    elif current_user.is_authenticated:
        user = current_user._get_current_object()
    g.request_user = user
    return user


def actor() -> Actor:
    """The audit identity of the current request."""
    user = request_user()
    if user is None:  # pragma: no cover - views are wrapped by requires()
        abort(401)
    return Actor(user.username, user.role)


# What a blinded reader of an independent-review trial may open: their reading list and
# their own read (the trial page redirects to the list).
BLINDED_ENDPOINTS = frozenset({"review.central_reads", "review.central_read", "views.trial"})


def _trial_guard() -> None:
    """Every page and API route naming a trial: 403 for a user who is not its member
    (admins reach every trial), and the blinding of central review."""
    trial_code = (request.view_args or {}).get("trial_code")
    if not trial_code:
        return
    user = request_user()
    if user is None:
        return  # requires() answers 401 / the login page
    from web.db import db_session

    reached, central = trial_access(db_session(), user, str(trial_code))
    if not reached:
        abort(
            403,
            f"you are not a member of trial {trial_code}: ask an administrator to assign "
            "you to it (`recist users assign`)",
        )
    if central:
        _blinding_guard()


def _blinding_guard() -> None:
    """Readers of an independent-review trial see nothing of it but their own reads: every
    other page and API route naming the trial answers 403 (site reads, arms, results,
    other readers' reads, plots, the review queue)."""
    if request.endpoint in BLINDED_ENDPOINTS:
        return
    if "reader" not in role_set(request_user_role()):
        return
    from web.models import Trial

    refuse_if_blinded(Trial(central_review=True))


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if not number > 0:
        raise ValueError(f"{name}={value!r} must be more than 0")
    return number


def session_limits(app: Flask) -> tuple[timedelta, timedelta]:
    """(idle, absolute) session timeouts of ``app``."""
    return (
        timedelta(minutes=float(app.config["SESSION_IDLE_MINUTES"])),
        timedelta(hours=float(app.config["SESSION_MAX_HOURS"])),
    )


def _configure_sessions(app: Flask) -> None:
    """Session timeouts from the settings or the environment, checked at start; the
    signed cookie itself is refused after the absolute timeout (never Flask's 31 days)."""
    idle_default = SESSION_IDLE.total_seconds() / 60
    max_default = SESSION_MAX.total_seconds() / 3600
    app.config.setdefault(
        "SESSION_IDLE_MINUTES", _number("RECIST_SESSION_IDLE_MINUTES", idle_default)
    )
    app.config.setdefault("SESSION_MAX_HOURS", _number("RECIST_SESSION_MAX_HOURS", max_default))
    idle, longest = session_limits(app)
    if not timedelta(0) < idle <= longest:
        raise ValueError(
            f"the idle session timeout ({idle}) must be more than 0 and at most the "
            f"absolute one ({longest})"
        )
    app.config["PERMANENT_SESSION_LIFETIME"] = longest
    # A malformed limit stops the start, not the first login.
    parse_limit(str(app.config.get("LOGIN_RATE_LIMIT") or DEFAULT_ADDRESS_LIMIT))


SESSION_ENDED = {
    "idle": "Your session ended after {idle} without activity; log in again.",
    "expired": "Your session ended {longest} after you logged in; log in again.",
}


def _load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: the user of a live server-side session, else nobody."""
    from web.db import db_session

    sid = session.get(SESSION_ID)
    if not sid or not user_id.isdigit():
        return None
    idle, longest = session_limits(current_app)
    check = resume_session(db_session(), str(sid), idle=idle, max_age=longest)
    if check.user is None or check.user.id != int(user_id):
        session.pop(SESSION_ID, None)
        if check.ended:
            flash(
                SESSION_ENDED[check.ended].format(idle=span_text(idle), longest=span_text(longest))
            )
        return None
    return check.user


def route_family() -> str:
    """The API area of the request's route (the ``web.api`` module of its view) and
    whether it reads or writes: ``"subjects read"``, ``"signing write"``."""
    view = current_app.view_functions.get(request.endpoint or "")
    area = str(getattr(view, "__module__", "") or "").rpartition(".")[2] or "unknown"
    return f"{area} {'read' if request.method in ('GET', 'HEAD', 'OPTIONS') else 'write'}"


def _note_token_use(response: Any) -> Any:
    """After an API request authenticated by a token: its use, audited once per token,
    route family and hour (after the view, so that the view's own records come first)."""
    key = g.get("token_key")
    if key:
        from web.db import db_session

        try:
            note_token_use(db_session(), key, route_family(), address=request.remote_addr)
        except SQLAlchemyError:  # the response stands; the fault is logged
            current_app.logger.exception("the use of an API token could not be recorded")
    return response


def init_app(app: Flask) -> None:
    _configure_sessions(app)
    app.before_request(_trial_guard)
    app.after_request(_note_token_use)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    login_manager.user_loader(_load_user)

    @app.context_processor
    def _template_helpers() -> dict[str, Any]:
        user = request_user() if not request.path.startswith("/static/") else None
        return {
            "user": user,
            "can": lambda permission: user is not None and allowed(user.role, permission),
            # Whether this user is blinded in a trial (arms and site reads hidden).
            "blinded_in": lambda trial: blinded(user.role if user else None, trial),
        }


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never redirect a user to another site after login."""
    if not target:
        return url_for("views.trials")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("views.trials")
    return target


def begin_session(user: User, *, reason: str | None = None) -> None:
    """Log ``user`` in on a fresh cookie (no session fixation) with a new server-side
    session; the login is audited."""
    from web.db import db_session

    sid = start_session(db_session(), user, address=request.remote_addr, reason=reason)
    session.clear()
    login_user(user)
    session[SESSION_ID] = sid
    g.request_user = user


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    from web.db import db_session

    error, status, username = None, 200, ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        result = login_attempt(
            db_session(),
            username,
            password,
            address=request.remote_addr,
            via=request.endpoint,
            limit=_login_rate_limit(),
        )
        if result.user is not None:
            begin_session(result.user)
            return redirect(_safe_next(request.args.get("next")))
        if result.address_limited:
            error, status = _login_refused_message(), 429
        else:
            error, status = "unknown user name or wrong password", 401
    # Not ``error``: base.html shows a service error's ``.message`` in a box of its own.
    return render_template("auth/login.html", login_error=error, username=username[:64]), status


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Any:
    from web.db import db_session

    sid = session.get(SESSION_ID)
    if sid:
        end_session(db_session(), str(sid), address=request.remote_addr)
    logout_user()
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


def request_user_role() -> str | None:
    """The role of the current request's user, ``None`` when anonymous."""
    user = request_user()
    return None if user is None else user.role


def refuse_if_blinded(trial: object) -> None:
    """403 for a reader of an independent-review trial: readers never see the site read,
    the arm or another reader's read."""
    if blinded(request_user_role(), trial):
        abort(
            403,
            "this trial uses blinded independent central review: readers see only their own "
            "reads (your reading list is under the trial's central reads)",
        )
