"""Log in and out, roles and permissions, enforced on the server for every route.

Every view is wrapped by :func:`requires`, which names the permission it needs; the
permission table :data:`PERMISSIONS` says which roles hold it. Browser requests use the
Flask-Login session cookie; API requests use ``Authorization: Bearer <token>`` only.
"""

from __future__ import annotations

from collections.abc import Callable
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
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, login_user, logout_user

from web.models import ROLES, User
from web.services import Actor, authenticate, user_for_token

bp = Blueprint("auth", __name__)
login_manager = LoginManager()

# Password guessing is slowed twice: per account (services.MAX_FAILED_LOGINS locks it)
# and per client address, which also covers guessing across many user names. Only failed
# logins (401) count, so a busy ward behind one address is never locked out by its own
# successful logins. Counts live in memory per worker process (Flask-Limiter); behind a
# reverse proxy, put werkzeug's ProxyFix in front so the client's address is seen.
DEFAULT_LOGIN_RATE_LIMIT = "20 per 15 minutes"
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", default_limits=[])


def _login_rate_limit() -> str:
    return str(current_app.config.get("LOGIN_RATE_LIMIT", DEFAULT_LOGIN_RATE_LIMIT))


def _login_refused_message() -> str:
    return (
        f"too many failed logins from this address (at most {_login_rate_limit()}); "
        "wait and try again, or ask an administrator"
    )

# Which roles hold each permission. reviewer is read-only; trial_manager runs the trial
# (subjects, arms, dates) but does not measure; reader and adjudicator measure.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset(ROLES),
    "assess": frozenset(ROLES),
    "enter_measurements": frozenset({"reader", "adjudicator", "admin"}),
    "manage_subjects": frozenset({"trial_manager", "admin"}),
    "manage_trials": frozenset({"trial_manager", "admin"}),
    "import_cases": frozenset({"trial_manager", "admin"}),
    "manage_users": frozenset({"admin"}),
    # The audit trail shows every value of every read: readers (blinded in central
    # review) do not see it; the people who oversee the data do.
    "view_audit": frozenset({"adjudicator", "trial_manager", "reviewer", "admin"}),
    # Signing a read: whoever enters measurements. Unlocking a signed read: an adjudicator
    # or a trial manager only (not the reader who signed it, not the system administrator).
    "sign_reads": frozenset({"reader", "adjudicator", "admin"}),
    "unlock_reads": frozenset({"adjudicator", "trial_manager"}),
    # Progression-call review: reviewers (and adjudicators) agree or query; the reader
    # answers queries; only an adjudicator overrides a call.
    "review_calls": frozenset({"reviewer", "adjudicator", "admin"}),
    "answer_queries": frozenset({"reader", "adjudicator", "admin"}),
    "override_calls": frozenset({"adjudicator"}),
    # Independent central review: readers submit blinded reads, adjudicators choose.
    "central_read": frozenset({"reader"}),
    "adjudicate": frozenset({"adjudicator"}),
}


def blinded(role: str | None, trial: object) -> bool:
    """Whether a reader must not see a trial's site reads, arms and other reads."""
    return role == "reader" and bool(getattr(trial, "central_review", False))


F = TypeVar("F", bound=Callable[..., Any])


def allowed(role: str | None, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (unknown permissions hold for nobody)."""
    return role is not None and role in PERMISSIONS.get(permission, frozenset())


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
                    abort(401, "send 'Authorization: Bearer <token>' (see `recist users token`)")
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
            user = user_for_token(db_session(), token.strip())
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


def _blinding_guard() -> None:
    """Readers of an independent-review trial see nothing of it but their own reads: every
    other page and API route naming the trial answers 403 (site reads, arms, results,
    other readers' reads, plots, the review queue)."""
    trial_code = (request.view_args or {}).get("trial_code")
    if not trial_code or request.endpoint in BLINDED_ENDPOINTS:
        return
    if request_user_role() != "reader":
        return
    from sqlalchemy import select

    from web.db import db_session
    from web.models import Trial

    central = db_session().scalar(select(Trial.central_review).where(Trial.code == trial_code))
    if central:
        refuse_if_blinded(Trial(central_review=True))


def init_app(app: Flask) -> None:
    app.before_request(_blinding_guard)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    @login_manager.user_loader  # type: ignore[untyped-decorator]
    def _load(user_id: str) -> User | None:
        from web.db import db_session

        if not user_id.isdigit():
            return None
        user = db_session().get(User, int(user_id))
        return user if user is not None and user.active else None

    @app.context_processor
    def _template_helpers() -> dict[str, Any]:
        user = request_user() if not request.path.startswith("/static/") else None
        return {
            "user": user,
            "can": lambda permission: user is not None and allowed(user.role, permission),
        }


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never redirect a user to another site after login."""
    if not target:
        return url_for("views.trials")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("views.trials")
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(
    _login_rate_limit,
    methods=["POST"],
    deduct_when=lambda response: response.status_code == 401,
    error_message=_login_refused_message,
)
def login() -> Any:
    from web.db import db_session

    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user = authenticate(db_session(), username, password)
        if user is None:
            error = "unknown user name or wrong password"
        else:
            session.clear()  # a fresh session on login: no session fixation
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 200
    return render_template("auth/login.html", error=error), status


@bp.route("/logout", methods=["POST"])
@public
def logout() -> Any:
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
