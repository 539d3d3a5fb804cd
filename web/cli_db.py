"""``recist db backup OUT`` / ``recist db restore IN``: copy the database, and verify the
audit trail of what was restored.

- SQLite: the online backup API (:meth:`sqlite3.Connection.backup`), a consistent copy
  while the application runs; the backup is one self-contained file (rollback journal,
  no ``-wal`` beside it), checked with ``PRAGMA integrity_check`` and its audit chain
  verified before it replaces ``OUT``.
- PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore`` (``--single-transaction``:
  all or nothing). The tools are looked up on ``PATH`` and in
  ``/usr/lib/postgresql/*/bin``; a password in the URL is handed to them in
  ``PGPASSWORD``, never on their command line.

``OUT`` is written under a temporary name in its folder and renamed when complete, and an
existing ``OUT`` is kept unless ``--force``. A restore refuses a target database that holds
any row (``--force`` replaces it); stop the application first. After a restore the audit
trail's hash chain is verified (:func:`web.services.audit.verify_chain`), the trail is
replayed against the restored data (:func:`web.services.audit_replay.reconcile`), and the
results printed; ``recist audit verify --anchors FILE`` then also checks the anchors.

Exit status: 0 done (and, after a restore, the chain intact and the data agreeing with
it); 1 restored but the chain is broken or the data disagree (the last line names the
first difference); 2 nothing done (one line on standard error says why).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

# The help line of this command in `recist --help` (read without importing this module).
HELP = "back up or restore the database (SQLite backup API, pg_dump/pg_restore)"

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
# Tables a freshly migrated database already fills: they do not make it "non-empty".
SCHEMA_TABLES = frozenset({"alembic_version"})
# Where Debian and Ubuntu install the PostgreSQL tools of each version (not on PATH).
PG_LIBDIR = Path("/usr/lib/postgresql")


class DbCommandError(Exception):
    """Nothing was done; the message says why, in one line."""


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION")
    sub.required = True
    backup = sub.add_parser("backup", help="copy the database into the file OUT")
    backup.add_argument("out", metavar="OUT", help="the backup file to write")
    restore = sub.add_parser(
        "restore", help="replace an empty database by the backup IN, then verify the audit chain"
    )
    restore.add_argument("source", metavar="IN", help="a backup written by `recist db backup`")
    for command, force_help in (
        (backup, "overwrite OUT if it exists"),
        (restore, "restore even into a database that holds rows (they are replaced)"),
    ):
        command.add_argument(
            "--database-url",
            help="SQLAlchemy URL (default: DATABASE_URL, else the instance SQLite file)",
        )
        command.add_argument(
            "--schema", default=None, help="PostgreSQL schema (default: RECIST_DATABASE_SCHEMA)"
        )
        command.add_argument("--force", action="store_true", help=force_help)


def run(args: argparse.Namespace) -> int:
    from web import config

    url = _normalise(args.database_url) if args.database_url else config.database_url()
    schema = args.schema or os.environ.get("RECIST_DATABASE_SCHEMA") or None
    name = f"recist db {args.db_command}"
    try:
        if args.db_command == "backup":
            print(backup(url, Path(args.out), schema=schema, force=args.force))
            return 0
        report = restore(Path(args.source), url, schema=schema, force=args.force)
    except DbCommandError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    print(report.text)
    return 0 if report.intact else 1


def _normalise(url: str) -> str:
    """The psycopg 3 driver for driver-less PostgreSQL URLs (as :mod:`web.config`)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- outputs


@contextmanager
def _staged(out: Path, *, force: bool) -> Iterator[Path]:
    """A temporary file beside ``out`` that replaces ``out`` only if the block succeeds."""
    if out.exists() and not force:
        raise DbCommandError(f"{out} exists; give --force to overwrite it")
    if out.is_dir():
        raise DbCommandError(f"{out} is a folder, not a file")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise DbCommandError(f"{out}: the folder {folder} does not exist")
    tmp = folder / f".{out.name}.{secrets.token_hex(4)}.partial"
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, out)
        _fsync(folder)
    except OSError as error:
        raise DbCommandError(f"{out}: cannot write ({error.strerror})") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-journal")):
            if leftover.exists():
                leftover.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _magic(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise DbCommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DbCommandError(f"{path} is a folder, not a backup file") from None
    except OSError as error:
        raise DbCommandError(f"{path}: cannot read ({error.strerror})") from None


# --------------------------------------------------------------------------- verification


class RestoreReport:
    """What a restore did and what the audit chain verification said."""

    def __init__(self, text: str, intact: bool) -> None:
        self.text = text
        self.intact = intact


def _chain_text(engine: Any, *, reconcile_data: bool = False) -> tuple[str, bool]:
    """Verify the audit chain (and, with ``reconcile_data``, replay the trail against the
    data: :func:`web.services.audit_replay.reconcile`); the lines to print and whether
    everything agrees."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from web.services.audit import verify_chain
    from web.services.audit_replay import reconcile

    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("audit_record"):
                return "no audit_record table: this is not a recist database", False
            report = verify_chain(connection)
            if not report.intact:
                return (
                    f"audit chain BROKEN after {report.records} good records: {report.problem}",
                    False,
                )
            chain = f"audit chain intact: {report.records} records, last hash {report.last_hash}"
            if not reconcile_data:
                return chain, True
            with Session(bind=connection) as session:
                data = reconcile(session)
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        return f"cannot read the audit trail: {str(cause).splitlines()[0]}", False
    if not data.agree:
        return (
            f"{chain}\nreconciliation FAILED ({len(data.differences)} difference(s)); first: "
            f"{data.problem}",
            False,
        )
    return (
        f"{chain}\nreconciliation: the data agrees with the trail ({data.subjects} subjects, "
        f"{data.measurements} measurements, {data.signatures} signatures, "
        f"{data.central_reads} central reads, cached results "
        "equal to a fresh engine run)",
        True,
    )


def _readonly_sqlite_engine(path: Path) -> Any:
    """An engine reading the SQLite file ``path`` without ever creating or changing it."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    uri = path.resolve().as_uri().replace("file://", "file:", 1) + "?mode=ro"
    return create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        poolclass=NullPool,
    )


# --------------------------------------------------------------------------- entry points


def backup(url: str, out: Path, *, schema: str | None = None, force: bool = False) -> str:
    """Write a backup of the database at ``url`` to ``out``; returns the line to print.

    Raises
    ------
    DbCommandError
        Nothing was written (``out`` exists, the database cannot be read, a tool is
        missing or failed).
    """
    if url.startswith("sqlite"):
        return _backup_sqlite(_sqlite_path(url), out, force=force)
    if url.startswith("postgresql"):
        return _backup_postgres(url, out, schema=schema, force=force)
    raise DbCommandError(f"{_where(url)}: only SQLite and PostgreSQL databases are supported")


def restore(
    source: Path, url: str, *, schema: str | None = None, force: bool = False
) -> RestoreReport:
    """Restore the backup ``source`` into the database at ``url`` and verify its chain.

    Raises
    ------
    DbCommandError
        Nothing was restored (the target holds rows and ``force`` is false, ``source`` is
        not a backup of that kind of database, a tool is missing or failed).
    """
    magic = _magic(source)
    if url.startswith("sqlite"):
        if magic != SQLITE_MAGIC:
            raise DbCommandError(f"{source} is not a SQLite database (a `recist db backup` file)")
        return _restore_sqlite(source, _sqlite_path(url), url, force=force)
    if url.startswith("postgresql"):
        if not magic.startswith(PGDUMP_MAGIC):
            raise DbCommandError(
                f"{source} is not a pg_dump custom-format archive (a `recist db backup` file "
                "of a PostgreSQL database)"
            )
        return _restore_postgres(source, url, schema=schema, force=force)
    raise DbCommandError(f"{_where(url)}: only SQLite and PostgreSQL databases are supported")


# --------------------------------------------------------------------------- SQLite


def _sqlite_path(url: str) -> Path:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise DbCommandError(f"{url}: a SQLite database file is needed (sqlite:///PATH)")
    return Path(database)


def _backup_sqlite(path: Path, out: Path, *, force: bool) -> str:
    if not path.is_file():
        raise DbCommandError(f"no SQLite database at {path}")
    if out.resolve() == path.resolve():
        raise DbCommandError(f"{out} is the database itself")
    uri = path.resolve().as_uri().replace("file://", "file:", 1) + "?mode=ro"
    with _staged(out, force=force) as tmp:
        try:
            with closing(sqlite3.connect(uri, uri=True)) as src:
                with closing(sqlite3.connect(tmp)) as dst:
                    src.backup(dst)
                    # One self-contained file: no -wal/-shm beside the backup.
                    dst.execute("PRAGMA journal_mode=DELETE")
                    check = dst.execute("PRAGMA integrity_check").fetchone()
        except sqlite3.Error as error:
            raise DbCommandError(f"cannot back up {path}: {error}") from None
        if check is None or check[0] != "ok":
            raise DbCommandError(f"the copy of {path} fails PRAGMA integrity_check: {check}")
        engine = _readonly_sqlite_engine(tmp)
        try:
            chain, _intact = _chain_text(engine)
        finally:
            engine.dispose()
    size = out.stat().st_size
    return f"backed up {path} to {out} ({size:,} bytes, integrity ok); the backup's {chain}"


def _row_counts(connection: Any, schema: str | None = None) -> dict[str, int]:
    """Per table (the migrations' own left out): 1 if it holds a row, else 0."""
    from sqlalchemy import inspect, literal_column, select, table

    counts: dict[str, int] = {}
    for name in inspect(connection).get_table_names(schema=schema):
        if name in SCHEMA_TABLES:
            continue
        query: Any = select(literal_column("1")).select_from(table(name, schema=schema)).limit(1)
        counts[name] = 0 if connection.execute(query).first() is None else 1
    return counts


def _refuse_non_empty(counts: dict[str, int], where: str) -> None:
    full = sorted(table for table, n in counts.items() if n)
    if full:
        shown = ", ".join(full[:4]) + (", …" if len(full) > 4 else "")
        raise DbCommandError(
            f"the database at {where} is not empty ({len(full)} tables hold rows: {shown}); "
            "restoring would replace it: give --force to do so"
        )


def _restore_sqlite(source: Path, path: Path, url: str, *, force: bool) -> RestoreReport:
    from web.db import make_engine

    if path.exists() and path.resolve() == source.resolve():
        raise DbCommandError(f"{source} is the database itself")
    uri = source.resolve().as_uri().replace("file://", "file:", 1) + "?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as src:
            tables = {row[0] for row in src.execute("SELECT name FROM sqlite_master")}
            if "audit_record" not in tables or "alembic_version" not in tables:
                raise DbCommandError(f"{source} is not a recist database (no audit_record table)")
            if path.exists() and path.stat().st_size > 0 and not force:
                engine = _readonly_sqlite_engine(path)
                try:
                    with engine.connect() as connection:
                        counts = _row_counts(connection)
                finally:
                    engine.dispose()
                _refuse_non_empty(counts, str(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(path)) as dst:
                src.backup(dst)
    except sqlite3.Error as error:
        raise DbCommandError(f"cannot restore {source} into {path}: {error}") from None
    except OSError as error:
        raise DbCommandError(f"cannot restore into {path}: {error.strerror}") from None
    engine = make_engine(url)
    try:
        checks, intact = _chain_text(engine, reconcile_data=True)
    finally:
        engine.dispose()
    return RestoreReport(f"restored {source} into {path}\n{checks}", intact)


# --------------------------------------------------------------------------- PostgreSQL


def find_tool(name: str) -> str:
    """The path of a PostgreSQL client tool (``PATH``, then the newest
    ``/usr/lib/postgresql/*/bin``).

    Raises
    ------
    DbCommandError
        The tool is not installed.
    """
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        PG_LIBDIR.glob(f"*/bin/{name}"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parts[-3].split(".")],
    )
    if candidates:
        return str(candidates[-1])
    raise DbCommandError(
        f"{name} was not found (PATH, {PG_LIBDIR}/*/bin): install the PostgreSQL "
        "client tools of the server's version (e.g. apt-get install postgresql-client)"
    )


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL of a SQLAlchemy URL, and the environment carrying its password."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run_tool(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        # The command is pg_dump/pg_restore found by find_tool, with our own arguments.
        done = subprocess.run(  # noqa: S603
            command, env=env, capture_output=True, text=True, check=False
        )
    except OSError as error:
        raise DbCommandError(f"cannot run {command[0]}: {error.strerror}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()] or lines
        first = errors[0] if errors else f"exit status {done.returncode}"
        raise DbCommandError(f"{what} failed: {first}")


def _backup_postgres(url: str, out: Path, *, schema: str | None, force: bool) -> str:
    tool = find_tool("pg_dump")
    libpq, env = _libpq(url)
    with _staged(out, force=force) as tmp:
        command = [tool, "--format=custom", "--no-password", f"--file={tmp}", f"--dbname={libpq}"]
        if schema:
            command.append(f"--schema={schema}")
        _run_tool(command, env, "pg_dump")
    size = out.stat().st_size
    scope = f" (schema {schema})" if schema else ""
    return f"backed up {_where(url)}{scope} to {out} ({size:,} bytes, pg_dump custom format)"


def _restore_postgres(source: Path, url: str, *, schema: str | None, force: bool) -> RestoreReport:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from web.db import make_engine

    tool = find_tool("pg_restore")
    where = _where(url) + (f" (schema {schema})" if schema else "")
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as connection:
            current = schema or connection.execute(text("SELECT current_schema()")).scalar()
            counts = _row_counts(connection, current)
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        raise DbCommandError(f"cannot read {where}: {str(cause).splitlines()[0]}") from None
    finally:
        engine.dispose()
    if not force:
        _refuse_non_empty(counts, where)
    libpq, env = _libpq(url)
    # --clean --if-exists: the archive's objects replace those of the same name (an empty
    # migrated schema, or with --force a full one); one transaction, so all or nothing.
    _run_tool(
        [
            tool,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={libpq}",
            str(source),
        ],
        env,
        "pg_restore",
    )
    engine = make_engine(url, schema=schema)
    try:
        checks, intact = _chain_text(engine, reconcile_data=True)
    finally:
        engine.dispose()
    return RestoreReport(f"restored {source} into {where}\n{checks}", intact)
