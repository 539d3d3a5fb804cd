"""``recist audit verify``: walk the audit trail's hash chain and report the first break.

Exit status: 0 when the chain is intact, 1 when a link is broken (one line on stdout names
the record and what is wrong), 2 when the database cannot be read.
"""

from __future__ import annotations

import argparse
import sys

# The help line of this command in `recist --help` (read without importing this module).
HELP = "verify the audit trail"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    sub.required = True
    verify = sub.add_parser("verify", help="check the hash chain of every audit record")
    verify.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: DATABASE_URL, else the instance SQLite file)",
    )
    verify.add_argument(
        "--schema", help="PostgreSQL schema (default: RECIST_DATABASE_SCHEMA)", default=None
    )


def run(args: argparse.Namespace) -> int:
    import os

    from sqlalchemy.exc import SQLAlchemyError

    from web import config
    from web.db import make_engine
    from web.services.audit import verify_chain

    url = args.database_url or config.database_url()
    schema = args.schema or os.environ.get("RECIST_DATABASE_SCHEMA") or None
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as connection:
            report = verify_chain(connection)
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        first = str(cause).splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        print(f"recist audit: cannot read the audit trail at {where}: {first}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if report.intact:
        print(f"audit chain intact: {report.records} records, last hash {report.last_hash}")
        return 0
    print(f"audit chain BROKEN after {report.records} good records: {report.problem}")
    return 1
