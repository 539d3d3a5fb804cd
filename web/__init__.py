"""The RECIST web application: lesion entry, live assessment and a JSON API.

:func:`create_app` is the application factory. Requests are turned into service-layer
calls (:mod:`web.services`), which write one transaction each and recompute results with
the engine (:mod:`recist`); the engine never imports this package.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from web import config as web_config
from web.db import (
    audit_owner_warning,
    close_request_session,
    is_storage_fault,
    make_engine,
    make_session_factory,
)

csrf = CSRFProtect()

# R-… rule ids and reasons are shown as text; nothing is loaded from elsewhere, so the
# policy can forbid every other origin and every inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A plot's SVG opened on its own (web.pages.plots) is styled inline by matplotlib: it may
# style itself and nothing more (no script, nothing from elsewhere).
SVG_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application.

    Parameters
    ----------
    config
        Settings that override those from the environment (:mod:`web.config`); tests
        pass ``DATABASE_URL``, ``DATABASE_SCHEMA`` and ``SECRET_KEY``.

    Returns
    -------
    Flask
    """
    app = Flask(__name__, instance_relative_config=False)
    settings: dict[str, Any] = {
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "recist_session",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,  # a radiologist's form may stay open for hours
        "JSON_SORT_KEYS": False,
        "DATABASE_SCHEMA": None,
    }
    if config is None or "DATABASE_URL" not in config or "SECRET_KEY" not in config:
        settings.update(web_config.from_environment())
    settings.update(config or {})
    settings.setdefault("STUDY_STORE", str(web_config.study_store()))
    settings.setdefault("PLOT_CACHE", str(web_config.plot_cache()))
    app.config.update(settings)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    engine = make_engine(app.config["DATABASE_URL"], schema=app.config["DATABASE_SCHEMA"])
    app.extensions["recist_engine"] = engine
    app.extensions["recist_sessions"] = make_session_factory(engine)

    csrf.init_app(app)

    from web import api, auth, pages

    auth.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.views)
    app.register_blueprint(pages.review)
    app.register_blueprint(api.bp)
    # The API authenticates with bearer tokens only (never the session cookie), so a
    # forged cross-site request carries no credentials and needs no CSRF token.
    csrf.exempt(api.bp)

    app.before_request(_limit_body)
    app.before_request(_refuse_nul)
    if engine.dialect.name == "postgresql" and not _check_audit_owner(app):
        # The table does not exist yet (``recist serve`` migrates after building the app)
        # or the database did not answer: check again on the first request.
        app.before_request(_check_audit_owner_once)
    app.teardown_appcontext(close_request_session)
    app.after_request(_security_headers)
    app.register_error_handler(Exception, _handle_error)
    return app


def _check_audit_owner(app: Flask) -> bool:
    """Log a loud warning when the database role owns ``audit_record`` (PostgreSQL).

    Returns whether the check was made (the table exists and the database answered)."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    engine = app.extensions["recist_engine"]
    try:
        if not inspect(engine).has_table("audit_record"):
            return False
        warning = audit_owner_warning(engine)
    except SQLAlchemyError as error:
        app.logger.info("audit_record owner check postponed: %s", str(error).splitlines()[0])
        return False
    app.extensions["recist_audit_owner_warning"] = warning
    if warning is not None:
        app.logger.warning(warning)
    return True


def _check_audit_owner_once() -> None:
    from flask import current_app

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "recist_audit_owner_warning" not in app.extensions:
        # One more try only: a request must not pay for a check that cannot be made.
        app.extensions.setdefault("recist_audit_owner_warning", None)
        _check_audit_owner(app)


# Only a study upload may be large; a form or a JSON case never needs more than this.
MAX_BODY_BYTES = 5 * 1024 * 1024


def _limit_body() -> None:
    if request.endpoint != "views.upload":
        limit = request.max_content_length
        request.max_content_length = min(limit, MAX_BODY_BYTES) if limit else MAX_BODY_BYTES


def _refuse_nul() -> None:
    """A NUL character is never part of a form value or a query parameter, and
    PostgreSQL cannot store one: refuse it naming the field, before any service runs."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        fields: Any = request.form
    else:
        fields = request.args
    for name, value in fields.items(multi=True):
        if "\x00" in value or "\x00" in name:
            from web.errors import InvalidInput

            shown = name.replace("\x00", "\\0")[:64]
            raise InvalidInput(
                f"the field {shown!r} contains a NUL character, which no value may hold",
                field=shown,
            )


def _security_headers(response: Any) -> Any:
    response.headers["Content-Security-Policy"] = (
        SVG_CONTENT_SECURITY_POLICY
        if response.mimetype == "image/svg+xml"
        else CONTENT_SECURITY_POLICY
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.path.startswith("/api/") or response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def wants_json() -> bool:
    return request.path.startswith("/api/")


# ValueError messages of Python's own number parsing (``int("²")``, a 5,000-digit integer,
# ``float("x")``): the request's input, not a bug of ours.
_NUMBER_PARSING = (
    "invalid literal for int()",
    "could not convert string to float",
    "Exceeds the limit (",
)
# Modules whose RecursionError means the input nests too deeply to be read.
_PARSERS = ("json", "werkzeug", "recist.safejson")


def _raised_in(error: BaseException, modules: tuple[str, ...]) -> bool:
    """Whether the innermost Python frame of ``error`` is in one of ``modules``."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    name = str(tb.tb_frame.f_globals.get("__name__", ""))
    return any(name == m or name.startswith(m + ".") for m in modules)


def _input_error(error: Exception) -> tuple[int, dict[str, Any]] | None:
    """Status and error body of an exception that reading the request's input raised
    (never a 500), or ``None`` for anything else (a bug: 500, logged)."""
    import json

    from recist.errors import RecistError
    from recist.safejson import JsonInputError

    if isinstance(error, JsonInputError):
        from web.api import BodyRefused

        refused = BodyRefused(error)
        return refused.status, refused.to_dict()
    if isinstance(error, RecistError):  # the engine refusing the input it was given
        return 400, {
            "code": "invalid_input",
            "message": str(error),
            "field": error.field,
            "pointer": None,
        }
    from flask import current_app

    if isinstance(error, json.JSONDecodeError):
        current_app.logger.warning("JSON parsed without recist.safejson", exc_info=error)
        return 400, {
            "code": "invalid_json",
            "message": f"the request is not valid JSON: {error.msg} at line {error.lineno}, "
            f"column {error.colno}",
            "field": None,
            "pointer": "",
        }
    if isinstance(error, RecursionError) and _raised_in(error, _PARSERS):
        current_app.logger.warning("JSON parsed without recist.safejson", exc_info=error)
        return 400, {
            "code": "json_too_deep",
            "message": "the request nests too deeply to be read",
            "field": None,
            "pointer": "",
        }
    if type(error) is ValueError and str(error).startswith(_NUMBER_PARSING):
        # Logged: the code that converted the text should have refused it by name.
        current_app.logger.warning("a number of the request was not checked", exc_info=error)
        first = str(error).split(";")[0]
        return 400, {
            "code": "invalid_input",
            "message": f"a number in the request cannot be read ({first})",
            "field": None,
            "pointer": None,
        }
    return None


# The answer to a storage fault (web.db.is_storage_fault), in the contract's error shape.
STORAGE_UNAVAILABLE = {
    "code": "storage_unavailable",
    "message": "the database cannot take the request now (it is read-only, full or "
    "unreachable); the request was not applied and may be retried",
    "field": None,
    "pointer": None,
}


def _storage_fault(error: Exception) -> tuple[int, dict[str, Any]]:
    """503: log the fault, end the request's transaction, answer that nothing was applied."""
    from flask import current_app, g

    cause = getattr(error, "orig", None) or error
    first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    current_app.logger.error(
        "storage fault on %s %s: %s: %s", request.method, request.path, type(cause).__name__, first
    )
    session = g.get("db_session")
    if session is not None:
        try:
            session.rollback()  # a lost connection leaves the session needing a rollback
        except Exception:  # the connection may be gone; teardown closes the session
            current_app.logger.debug("rollback after a storage fault failed", exc_info=True)
    return 503, dict(STORAGE_UNAVAILABLE)


def _storage_fault_page(body: dict[str, Any], status: int) -> str:
    """The error page without the layout: rendering the layout reads the logged-in user,
    which needs the database that just failed."""
    from markupsafe import escape

    code = escape(body["code"].replace("_", " "))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Error {status} · RECIST service</title></head><body><main>"
        f'<h1>{status}: {code}</h1><p class="error" role="alert" id="error">'
        f"{escape(body['message'])}</p></main></body></html>"
    )


def _handle_error(error: Exception) -> Any:
    """One error handler: JSON for the API, an HTML page for people."""
    from web.services import ServiceError

    if is_storage_fault(error):
        status, body = _storage_fault(error)
    elif isinstance(error, ServiceError):
        status, body = error.status, error.to_dict()
    elif isinstance(error, CSRFError):
        status = 400
        body = {
            "code": "csrf",
            "message": "the form's security token is missing or expired; reload the page "
            "and submit again",
            "field": "csrf_token",
            "pointer": None,
        }
    elif isinstance(error, HTTPException):
        status = error.code or 500
        body = {
            "code": (error.name or "error").lower().replace(" ", "_"),
            "message": error.description or error.name,
            "field": None,
            "pointer": None,
        }
        if status == 413:
            from recist.safejson import size_text

            limit = request.max_content_length or MAX_BODY_BYTES
            body["code"] = "payload_too_large"
            body["message"] = f"the request body is larger than the {size_text(limit)} limit"
    elif (refused := _input_error(error)) is not None:
        status, body = refused
    else:
        from flask import current_app

        current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
        status = 500
        body = {
            "code": "internal_error",
            "message": "an unexpected error occurred; it was logged",
            "field": None,
            "pointer": None,
        }
    if wants_json():
        response = jsonify({"error": body})
        response.status_code = status
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="recist"'
        if status == 503:
            response.headers["Retry-After"] = "5"
        return response
    if status == 503:
        try:
            page = render_template("error.html", error=body, status=status)
        except Exception as again:  # the layout reads the user, from the database
            if not is_storage_fault(again):
                raise
            page = _storage_fault_page(body, status)
        return page, status, {"Retry-After": "5"}
    return render_template("error.html", error=body, status=status), status
