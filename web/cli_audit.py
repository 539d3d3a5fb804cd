"""``recist audit verify`` and ``recist audit anchor``: prove what the audit trail says.

``verify`` checks, in this order, and stops at the first failure:

1. the hash chain of every record (:func:`web.services.audit.verify_chain`);
2. with ``--anchors FILE``, every anchor in the file (:mod:`web.services.audit_anchor`):
   its HMAC, and that the record it names still exists with its hash — so deleting the
   newest records, or editing one and re-chaining every later record, is found;
3. the reconciliation (:mod:`web.services.audit_replay`): the trail replayed against the
   current measurements, lock states, signatures (and the values they signed), subjects'
   arms and dates, progression-call reviews, trials' protocol and central review
   settings, central reads (reader, the read as signed, accepted flag, result) and
   adjudications, and cached results (a fresh engine run each).

Exit status: 0 when everything agrees (one line per check), 1 when something does not
(the last line names the first difference), 2 when the database, the anchor file or the
key cannot be read (one line on stderr).

``anchor`` prints the chain head with its HMAC (``--append FILE`` also appends the line
to a file, which belongs somewhere the database's users cannot rewrite); run it often,
e.g. from cron: records after the newest anchor are protected by the chain and the
reconciliation only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# The help line of this command in `recist --help` (read without importing this module).
HELP = "verify the audit trail, or anchor its head outside the database"


def _database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: DATABASE_URL, else the instance SQLite file)",
    )
    parser.add_argument(
        "--schema", help="PostgreSQL schema (default: RECIST_DATABASE_SCHEMA)", default=None
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        help="the anchor key (default: RECIST_AUDIT_KEY, else instance/audit_key)",
    )


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    sub.required = True
    verify = sub.add_parser(
        "verify",
        help="check the hash chain, the anchors (--anchors) and that the data agrees with "
        "the trail",
    )
    _database_arguments(verify)
    verify.add_argument(
        "--anchors", type=Path, help="a file of anchor lines (recist audit anchor) to check"
    )
    anchor = sub.add_parser(
        "anchor", help="print the chain head with an HMAC, to keep outside the database"
    )
    _database_arguments(anchor)
    anchor.add_argument("--append", type=Path, help="also append the anchor line to this file")


class _Unreadable(Exception):
    """Exit 2 with this one-line message."""


def _engine(args: argparse.Namespace) -> Any:
    import os

    from sqlalchemy.engine import make_url

    from web import config
    from web.db import make_engine

    url = args.database_url or config.database_url()
    schema = args.schema or os.environ.get("RECIST_DATABASE_SCHEMA") or None
    try:
        parsed = make_url(url)
    except Exception as error:  # noqa: BLE001 - any malformed URL is one line
        raise _Unreadable(f"{url!r} is not a database URL ({error})") from None
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
        # Opening a missing SQLite file would create an empty database.
        if database.startswith("file:") or not Path(database).is_file():
            raise _Unreadable(
                f"cannot read the audit trail at {parsed.render_as_string()}: no such database file"
            )
    return make_engine(url, schema=schema)


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return (str(cause).splitlines() or [type(cause).__name__])[0]


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from web.services.audit_anchor import AnchorKeyError

    try:
        engine = _engine(args)
    except _Unreadable as error:
        print(f"recist audit: {error}", file=sys.stderr)
        return 2
    where = engine.url.render_as_string(hide_password=True)
    try:
        if args.audit_command == "anchor":
            return _anchor(engine, args)
        return _verify(engine, args)
    except (AnchorKeyError, _Unreadable) as error:
        print(f"recist audit: {error}", file=sys.stderr)
        return 2
    except SQLAlchemyError as error:
        print(
            f"recist audit: cannot read the audit trail at {where}: {_first_line(error)}",
            file=sys.stderr,
        )
        return 2
    finally:
        engine.dispose()


def _anchor(engine: Any, args: argparse.Namespace) -> int:
    from web.services.audit_anchor import load_key, make_anchor

    key, _source = load_key(args.key_file, create=True)
    with engine.connect() as connection:
        line = make_anchor(connection, key).line
    if args.append is not None:
        try:
            with args.append.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as error:
            raise _Unreadable(
                f"cannot append the anchor to {args.append}: {error.strerror or error}"
            ) from None
    print(line)
    return 0


def _verify(engine: Any, args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from web.services.audit import verify_chain
    from web.services.audit_anchor import check_anchors, load_key
    from web.services.audit_replay import reconcile

    lines: list[str] | None = None
    key = b""
    if args.anchors is not None:
        try:
            lines = args.anchors.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise _Unreadable(f"cannot read the anchor file {args.anchors}: {error}") from None
        key, _source = load_key(args.key_file)
    with engine.connect() as connection:
        chain = verify_chain(connection)
        if not chain.intact:
            print(f"audit chain BROKEN after {chain.records} good records: {chain.problem}")
            return 1
        print(f"audit chain intact: {chain.records} records, last hash {chain.last_hash}")
        if lines is not None:
            anchors = check_anchors(connection, lines, key)
            if not anchors.intact:
                good = anchors.anchors
                print(f"audit anchors BROKEN after {good} good anchors: {anchors.problem}")
                return 1
            newest = "-" if anchors.last_seq is None else anchors.last_seq
            print(f"audit anchors intact: {anchors.anchors} anchors, newest seq {newest}")
        with Session(bind=connection) as session:
            report = reconcile(session)
    if not report.agree:
        print(
            f"reconciliation FAILED ({len(report.differences)} difference(s)); first: "
            f"{report.problem}"
        )
        return 1
    print(
        f"reconciliation: the data agrees with the trail ({report.subjects} subjects, "
        f"{report.measurements} measurements, {report.signatures} signatures, "
        f"{report.central_reads} central reads, cached "
        "results equal to a fresh engine run)"
    )
    return 0
