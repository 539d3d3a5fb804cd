"""Database engines, sessions and migrations (SQLite by default, PostgreSQL by URL).

SQLite needs two adjustments to behave like a server database under a threaded WSGI
server: foreign keys switched on, and write transactions that take the write lock when
they begin (``BEGIN IMMEDIATE``). Without the latter, two threads that both read and then
write fail with "database is locked" instead of queueing behind each other.

Durability (SQLite): the database runs in WAL mode with ``synchronous=FULL`` by default.
In WAL mode ``NORMAL`` never corrupts the database, but a transaction that was committed
(and answered to the client) may be lost if the machine loses power or the operating
system crashes before the next checkpoint: the WAL is not flushed to disk at each commit.
``FULL`` flushes the WAL at every commit, so an acknowledged write survives a power cut.
``RECIST_SQLITE_SYNCHRONOUS=NORMAL`` restores the faster setting where losing the last
commits is acceptable (a demo, a benchmark); clinical data keep ``FULL``.

Storage faults (:func:`is_storage_fault`): a database that is read-only, full, locked or
unreachable raises an error that the application answers with 503 ``storage_unavailable``
(the request was not applied; it may be retried), never a generic 500.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Set while a service-layer write transaction is open in this thread/context; the SQLite
# "begin" hook then takes the write lock up front (BEGIN IMMEDIATE).
_WRITING: contextvars.ContextVar[bool] = contextvars.ContextVar("recist_writing", default=False)
# The session of that transaction: only a write transaction on the same session nests.
_WRITER: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "recist_writer", default=None
)


SYNCHRONOUS_ENV = "RECIST_SQLITE_SYNCHRONOUS"
SYNCHRONOUS_LEVELS = ("FULL", "EXTRA", "NORMAL")
DEFAULT_SYNCHRONOUS = "FULL"


def sqlite_synchronous() -> str:
    """The SQLite ``synchronous`` level: ``RECIST_SQLITE_SYNCHRONOUS``, else ``FULL``.

    Raises
    ------
    sqlalchemy.exc.ArgumentError
        The variable names another level (``OFF`` is never accepted: it can corrupt the
        database on a power cut); a database configuration error, as for a bad URL.
    """
    value = os.environ.get(SYNCHRONOUS_ENV, "").strip().upper() or DEFAULT_SYNCHRONOUS
    if value not in SYNCHRONOUS_LEVELS:
        raise sa_exc.ArgumentError(
            f"{SYNCHRONOUS_ENV}={value!r} is not one of {', '.join(SYNCHRONOUS_LEVELS)}"
        )
    return value


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
        synchronous = sqlite_synchronous()
        engine = create_engine(url, **options)
        _configure_sqlite(engine, synchronous)
        return engine
    if schema is not None:
        options.setdefault("connect_args", {})["options"] = f"-csearch_path={schema}"
    options.setdefault("pool_pre_ping", True)
    return create_engine(url, **options)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event (below) issue BEGIN, instead of the sqlite3
        # module's implicit one, so that writes can begin IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged commit survives a power cut (see the module docstring).
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _WRITING.get() else "BEGIN")


# SQLSTATE classes of a database that cannot take the request now (PostgreSQL): 08
# connection exception, 53 insufficient resources (disk full, out of memory), 57 operator
# intervention (shutdown, cannot connect now), 58 system error (I/O); and 25006, a
# read-only transaction (a standby, default_transaction_read_only).
_STORAGE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
_STORAGE_SQLSTATES = ("25006",)


def is_storage_fault(error: BaseException) -> bool:
    """Whether ``error`` means the database could not take the request (read-only, disk
    full, locked, unreachable, the connection lost), rather than a bug or bad input.

    Such a request was not applied (its transaction rolled back) and may be retried.
    SQLAlchemy's ``OperationalError`` and ``InterfaceError`` are the DB-API's words for
    these faults; any DB-API error with a lost connection, a pool timeout, and on
    PostgreSQL the SQLSTATE classes above count too. ``IntegrityError``,
    ``ProgrammingError`` and ``DataError`` do not: they are the application's to answer.
    """
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _STORAGE_SQLSTATE_CLASSES or sqlstate in _STORAGE_SQLSTATES
    return False


def audit_owner_warning(engine: Engine) -> str | None:
    """On PostgreSQL, a warning when the connected role owns ``audit_record`` (or is a
    member of its owner, or a superuser): such a role can drop the append-only triggers,
    so the guarantee rests on the triggers alone. ``None`` when it does not, on SQLite, and
    when the table does not exist yet (before the first migration).

    Raises
    ------
    sqlalchemy.exc.SQLAlchemyError
        The database cannot be read.
    """
    if engine.dialect.name != "postgresql":
        return None
    query = text(
        "SELECT current_user, pg_get_userbyid(c.relowner), "
        "pg_has_role(current_user, c.relowner, 'MEMBER'), "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
        "FROM pg_class c WHERE c.oid = to_regclass('audit_record')"
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    user, owner, member, superuser = row
    if not member and not superuser:
        return None
    if user == owner:
        how = "owns table audit_record"
    elif superuser:
        how = "is a superuser, so it may alter table audit_record"
    else:
        how = f"is a member of {owner!r}, which owns table audit_record"
    return (
        f"SECURITY WARNING: the database role {user!r} {how}: it can drop the append-only "
        "triggers, so the audit trail's append-only guarantee rests on those triggers alone "
        "(the hash chain still shows an edit). Run the application "
        "as a role that does not own audit_record (SECURITY.md)."
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (views render after the write)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One write transaction: commit on success, roll back on any error (nested: part of
    the enclosing one).

    A read transaction the request may have opened (loading the logged-in user) is ended
    first, so that the write transaction sees the latest committed rows and, on SQLite,
    holds the write lock from its first statement.
    """
    if _WRITER.get() is session:
        # Nested in a write transaction of this session (the worksheet saves several
        # visits through the per-visit services, web.services.sheet): the outer one
        # commits, or rolls everything back. Another session never nests: its writes
        # would be left uncommitted.
        yield session
        return
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
    writer = _WRITER.set(session)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        _WRITER.reset(writer)
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
