"""``recist demo-run`` (what ``make run`` does): migrate, seed the demo trial, serve."""

from __future__ import annotations

import argparse
import sys

# The help line of this command in `recist --help` (read without importing this module).
HELP = "seed the demo trial and serve it (what `make run` does)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--subjects", type=int, default=12, help="synthetic demo subjects to create on first run"
    )
    parser.add_argument(
        "--seed-only", action="store_true", help="create the database and demo data, then exit"
    )


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from web.cli import prepare_app, serve
    from web.demo import DEMO_CENTRAL_TRIAL, seed_demo, seed_users
    from web.services import ServiceError

    try:
        app = prepare_app(args.host)
        session = app.extensions["recist_sessions"]()
        try:
            # Users first: the demo's signed reads need the passwords made for them now.
            users = seed_users(session)
            passwords = {name: password for name, (_, password) in users.items()}
            created = seed_demo(session, subjects=args.subjects, passwords=passwords)
        finally:
            session.close()
    except (SQLAlchemyError, ServiceError) as error:
        print(f"recist demo-run: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    url = app.config["DATABASE_URL"]
    print(f"database: {url.split('@')[-1]}")
    for code, subjects in created.items():
        what = " (independent central review)" if code == DEMO_CENTRAL_TRIAL else ""
        print(f"seeded trial {code} with {len(subjects)} subjects{what}")
    if users:
        print(
            "demo users (passwords are shown this once; `recist users set-password` changes them):"
        )
        for name, (role, password) in users.items():
            print(f"  {name:<14} {role:<14} {password}")
    else:
        print(
            "demo users already exist (reader1, reader2, adjudicator1, manager1, reviewer1, admin)"
        )
    sys.stdout.flush()
    if args.seed_only:
        return 0
    try:
        serve(app, args.host, args.port, args.threads, args.workers)
    except OSError as error:
        print(
            f"recist demo-run: cannot listen on {args.host}:{args.port}: {error.strerror}",
            file=sys.stderr,
        )
        return 2
    return 0
