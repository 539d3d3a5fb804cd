"""Database engines, sessions and migrations (SQLite by default, PostgreSQL by URL).

SQLite needs two adjustments to behave like a server database under a threaded WSGI
server: foreign keys switched on, and write transactions that take the write lock when
they begin (``BEGIN IMMEDIATE``). Without the latter, two threads that both read and then
write fail with "database is locked" instead of queueing behind each other.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Set while a service-layer write transaction is open in this thread/context; the SQLite
# "begin" hook then takes the write lock up front (BEGIN IMMEDIATE).
_WRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("recist_writing", default=False)


def make_engine(url: str, *, schema: str | None = None, **options: Any) -> Engine:
    """Create an engine for ``url``.

    Parameters
    ----------
    url
        A SQLAlchemy URL: ``sqlite:///path`` or ``postgresql+psycopg://…``.
    schema
        PostgreSQL only: the schema to use (``search_path``); the tests give every worker
        its own schema so that parallel runs never share tables.
    **options
        Passed to :func:`sqlalchemy.create_engine`.

    Returns
    -------
    Engine
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, **options)
        _configure_sqlite(engine)
        return engine
    if schema is not None:
        options.setdefault("connect_args", {})["options"] = f"-csearch_path={schema}"
    options.setdefault("pool_pre_ping", True)
    return create_engine(url, **options)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event (below) issue BEGIN, instead of the sqlite3
        # module's implicit one, so that writes can begin IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _WRITING.get() else "BEGIN")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (views render after the write)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One write transaction: commit on success, roll back on any error.

    A read transaction the request may have opened (loading the logged-in user) is ended
    first, so that the write transaction sees the latest committed rows and, on SQLite,
    holds the write lock from its first statement.
    """
    if session.in_transaction():
        session.rollback()
    bind = session.get_bind()
    # SQLite has one writer at a time. Threads of this process queue on a lock, which
    # wakes the next writer at once; SQLite's own busy handler (still there for other
    # processes) polls with growing sleeps and gave tail latencies of hundreds of ms.
    lock = (
        _sqlite_lock(bind.engine.url.render_as_string()) if bind.dialect.name == "sqlite" else None
    )
    if lock is not None:
        lock.acquire()
    token = _WRITING.set(True)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        _WRITING.reset(token)
        if lock is not None:
            lock.release()


_SQLITE_LOCKS: dict[str, threading.Lock] = {}
_SQLITE_LOCKS_GUARD = threading.Lock()


def _sqlite_lock(url: str) -> threading.Lock:
    with _SQLITE_LOCKS_GUARD:
        return _SQLITE_LOCKS.setdefault(url, threading.Lock())


def alembic_config(engine: Engine) -> Any:
    """An Alembic configuration bound to ``engine`` (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema of ``engine`` to ``revision`` with the Alembic migrations."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def sqlite_url_for(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def db_session() -> Session:
    """The request's database session (opened on first use, closed at teardown).

    Pages and the API reach it as ``web.services.request_session``: they hand it to
    the services, which are the only code that writes through it.
    """
    from flask import current_app, g

    session: Session | None = g.get("db_session")
    if session is None:
        session = current_app.extensions["recist_sessions"]()
        g.db_session = session
    return session


def close_request_session(_exc: BaseException | None) -> None:
    """Close the request's session at the end of the request (teardown)."""
    from flask import g

    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()
