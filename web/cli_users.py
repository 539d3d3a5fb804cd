"""``recist users``: add users, set passwords, issue API tokens, list users."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# The help line of this command in `recist --help` (read without importing this module).
HELP = "manage web users"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="add a user (prints a generated password once)")
    add.add_argument("name")
    add.add_argument(
        "--role",
        required=True,
        choices=("reader", "adjudicator", "trial_manager", "reviewer", "admin"),
    )
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of generating one",
    )
    pw = sub.add_parser("set-password", help="set a user's password (prompted)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    token = sub.add_parser("token", help="issue an API token for a user (printed once)")
    token.add_argument("name")
    token.add_argument("--label", default="automation", help="what the token is for")
    sub.add_parser("list", help="list users and roles")


def _session() -> Session:
    from web import config
    from web.db import make_engine, make_session_factory, upgrade

    engine = make_engine(config.database_url())
    upgrade(engine)
    return make_session_factory(engine)()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass("password: ")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from web.models import User
    from web.services import Actor, ServiceError, create_token, create_user, set_password

    session = _session()
    who = Actor(f"cli:{os.environ.get('USER', 'unknown')}", "admin")
    try:
        if args.users_command == "add":
            password = _read_password(True) if args.password_stdin else secrets.token_urlsafe(12)
            create_user(session, who, username=args.name, password=password, role=args.role)
            if not args.password_stdin:
                print(f"{args.name}\t{args.role}\tpassword: {password}")
            else:
                print(f"{args.name}\t{args.role}")
        elif args.users_command == "set-password":
            set_password(
                session, who, username=args.name, password=_read_password(args.password_stdin)
            )
            print(f"{args.name}: password changed")
        elif args.users_command == "token":
            print(create_token(session, who, username=args.name, name=args.label))
        else:
            for user in session.scalars(select(User).order_by(User.username)):
                print(f"{user.username}\t{user.role}\t{'active' if user.active else 'inactive'}")
    except ServiceError as error:
        print(f"recist users: {error.message}", file=sys.stderr)
        return 2
    finally:
        session.close()
    return 0
