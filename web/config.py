"""Settings from environment variables, with safe defaults.

- ``DATABASE_URL``: SQLAlchemy URL; default SQLite ``instance/recist.sqlite3``.
- ``RECIST_DATABASE_SCHEMA``: PostgreSQL schema to use (``search_path``).
- ``RECIST_INSTANCE``: the instance folder (database, secret key); default ``./instance``.
- ``RECIST_PLOT_CACHE``: where drawn plots are kept; default ``instance/plot-cache``.
- ``RECIST_SECRET_KEY``: session signing key; default a random key kept in
  ``instance/secret_key`` (mode 0600).
- ``RECIST_COOKIE_SECURE``: ``1`` (default) marks cookies Secure; ``recist serve`` on a
  loopback address without TLS turns it off.
- ``RECIST_MAX_UPLOAD_MB``: the largest study upload accepted; default 200.
- ``RECIST_LOGIN_RATE_LIMIT``: failed logins allowed per client address, as
  "N per M minutes" (counted in the database); default ``20 per 15 minutes``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


def study_store() -> Path:
    """Where uploaded studies are kept (web.services.studies): ``RECIST_STUDY_STORE``, else
    ``studies/`` in the instance folder."""
    folder = os.environ.get("RECIST_STUDY_STORE")
    return Path(folder).resolve() if folder else instance_dir() / "studies"


def plot_cache() -> Path:
    """Where drawn plots are kept (web.services.plot_cache): ``RECIST_PLOT_CACHE``, else
    ``plot-cache/`` in the instance folder."""
    folder = os.environ.get("RECIST_PLOT_CACHE")
    return Path(folder).resolve() if folder else instance_dir() / "plot-cache"


def instance_dir() -> Path:
    """The folder for the SQLite database and the secret key (created on demand)."""
    return Path(os.environ.get("RECIST_INSTANCE", "instance")).resolve()


def database_url() -> str:
    """``DATABASE_URL``, else a SQLite file in the instance folder."""
    url = os.environ.get("DATABASE_URL")
    if url:
        # Heroku-style URLs name the driver-less scheme; psycopg 3 is what we install.
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgres://")
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    folder = instance_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'recist.sqlite3'}"


def secret_key() -> str:
    """``RECIST_SECRET_KEY``, else a random key stored once in the instance folder."""
    key = os.environ.get("RECIST_SECRET_KEY")
    if key:
        return key
    folder = instance_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret_key"
    if not path.exists():
        # O_EXCL: two workers starting together never overwrite each other's key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def from_environment() -> dict[str, Any]:
    """The application configuration read from the environment."""
    max_mb = int(os.environ.get("RECIST_MAX_UPLOAD_MB", "200"))
    secure = _flag("RECIST_COOKIE_SECURE", True)
    return {
        "DATABASE_URL": database_url(),
        "DATABASE_SCHEMA": os.environ.get("RECIST_DATABASE_SCHEMA") or None,
        "SECRET_KEY": secret_key(),
        "MAX_CONTENT_LENGTH": max_mb * 1024 * 1024,
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_SECURE": secure,
        "LOGIN_RATE_LIMIT": os.environ.get("RECIST_LOGIN_RATE_LIMIT", "20 per 15 minutes"),
        # R-PLAUS-DATE: the day dates are judged against (web.clock); unset = today (UTC).
        "TODAY": os.environ.get("RECIST_TODAY") or None,
        "STUDY_STORE": str(study_store()),
    }
