"""``recist users``: add, rename, (de)activate users, set passwords, issue, list and revoke
API tokens, list users.

Every change is attributed to ``cli:$USER (uid N)``: the name comes from the environment
(anyone can set it), the uid from the operating system; each audit record says so.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from web.services import Actor

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
        help="reader, adjudicator, trial_manager, reviewer or admin; an administrator who "
        "also works on clinical data: admin+reader (etc.)",
    )
    add.add_argument(
        "--trial",
        action="append",
        default=[],
        metavar="CODE",
        help="assign the user to this trial (repeat for several); admins reach every trial",
    )
    add.add_argument("--full-name", default="", help="the person's name, shown in signatures")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of generating one",
    )
    pw = sub.add_parser(
        "set-password", help="set a user's password (prompted); ends all their sessions"
    )
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    name = sub.add_parser("set-name", help="set a user's full name (shown in signatures)")
    name.add_argument("name")
    name.add_argument("full_name", metavar="FULL_NAME")
    for action, text in (
        ("deactivate", "deactivate a user: their sessions and tokens stop working at once"),
        ("activate", "activate a deactivated user again (issue new tokens)"),
    ):
        sub.add_parser(action, help=text).add_argument("name")
    token = sub.add_parser(
        "token",
        help="issue an API token for a user (printed once), or revoke one with --revoke",
    )
    token.add_argument("name", nargs="?", help="the user (to issue; to narrow --revoke NAME)")
    token.add_argument("--label", default="automation", help="what the token is for")
    token.add_argument("--days", type=int, default=None, help="days it lasts (default 90)")
    token.add_argument(
        "--revoke",
        metavar="ID|NAME",
        help="revoke the token with this id, or the active token with this name (label)",
    )
    tokens = sub.add_parser("tokens", help="list a user's tokens (never the secrets)")
    tokens.add_argument("name")
    sub.add_parser("list", help="list users, roles, state, full names and trials")
    role = sub.add_parser("set-role", help="give a user another role (audited)")
    role.add_argument("name")
    role.add_argument("role", metavar="ROLE", help="as for `add --role`")
    assign = sub.add_parser(
        "assign", help="assign a user to trials, or end assignments with --remove (audited)"
    )
    assign.add_argument("name")
    assign.add_argument("trials", nargs="+", metavar="TRIAL")
    assign.add_argument("--remove", action="store_true", help="end the user's membership")
    assign.add_argument("--reason", default=None, help="why (kept in the audit trail)")
    members = sub.add_parser("members", help="list the members of a trial")
    members.add_argument("trial", metavar="TRIAL")


def _session() -> Session:
    import os

    from web import config
    from web.db import make_engine, make_session_factory, upgrade

    schema = os.environ.get("RECIST_DATABASE_SCHEMA") or None
    engine = make_engine(config.database_url(), schema=schema)
    upgrade(engine)
    return make_session_factory(engine)()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass("password: ")


def _when(moment: object) -> str:
    from datetime import datetime

    from web.services.access import aware

    if not isinstance(moment, datetime):
        return "-"
    return f"{aware(moment):%Y-%m-%d %H:%M}Z"


def _revoke(session: Session, who: Actor, ref: str, username: str | None) -> str:
    from web.errors import Conflict, NotFound
    from web.services.access import list_tokens, revoke_token, token_state

    if ref.isdigit():
        token = revoke_token(session, who, token_id=int(ref), owner=username)
    else:
        live = [
            t
            for t in list_tokens(session, username)
            if t.name == ref and token_state(t) == "active"
        ]
        if not live:
            raise NotFound(f"no active token named {ref!r}", field="token")
        if len(live) > 1:
            ids = ", ".join(f"{t.id} ({t.user.username})" for t in live)
            raise Conflict(f"{len(live)} active tokens are named {ref!r}: {ids}; give the id")
        token = revoke_token(session, who, token_id=live[0].id)
    return f"token {token.id} ({token.user.username}/{token.name}) revoked"


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from web.models import User
    from web.services import ServiceError
    from web.services.access import TOKEN_DAYS, create_token, list_tokens, token_state
    from web.services.membership import add_member, member_codes, members_of, remove_member
    from web.services.users import (
        cli_actor,
        create_user,
        set_active,
        set_full_name,
        set_password,
        set_role,
    )

    session = _session()
    who = cli_actor()
    command = args.users_command
    try:
        if command == "add":
            password = _read_password(True) if args.password_stdin else secrets.token_urlsafe(12)
            create_user(
                session,
                who,
                username=args.name,
                password=password,
                role=args.role,
                full_name=args.full_name,
                trials=args.trial,
            )
            if not args.password_stdin:
                print(f"{args.name}\t{args.role}\tpassword: {password}")
            else:
                print(f"{args.name}\t{args.role}")
        elif command == "set-password":
            ended = set_password(
                session, who, username=args.name, password=_read_password(args.password_stdin)
            )
            print(f"{args.name}: password changed; {ended} session(s) ended")
        elif command == "set-name":
            set_full_name(session, who, username=args.name, full_name=args.full_name)
            print(f"{args.name}: full name set")
        elif command == "set-role":
            set_role(session, who, username=args.name, role=args.role)
            print(f"{args.name}: role {args.role}")
        elif command == "assign" and args.remove:
            for code in args.trials:
                remove_member(session, who, username=args.name, trial_code=code, reason=args.reason)
                print(f"{args.name}: no longer a member of {code}")
        elif command == "assign":
            for code in args.trials:
                added = add_member(session, who, username=args.name, trial_code=code)
                print(f"{args.name}: {'member' if added else 'already a member'} of {code}")
        elif command == "members":
            print("user\trole\tadded\tadded by")
            for member, row in members_of(session, args.trial):
                print(f"{member.username}\t{member.role}\t{_when(row.added_at)}\t{row.added_by}")
        elif command in ("activate", "deactivate"):
            set_active(session, who, username=args.name, active=command == "activate")
            print(f"{args.name}: {command}d")
        elif command == "token" and args.revoke:
            print(_revoke(session, who, args.revoke, args.name))
        elif command == "token":
            if not args.name:
                print("recist users token: give a user NAME (or --revoke ID|NAME)", file=sys.stderr)
                return 2
            days = TOKEN_DAYS if args.days is None else args.days
            print(create_token(session, who, username=args.name, name=args.label, days=days))
            print(f"token for {args.name} ({args.label}), valid {days} days", file=sys.stderr)
        elif command == "tokens":
            print("id\tname\tcreated\texpires\tlast used\tstate")
            for t in list_tokens(session, args.name):
                print(
                    f"{t.id}\t{t.name}\t{_when(t.created_at)}\t{_when(t.expires_at)}\t"
                    f"{_when(t.last_used_at)}\t{token_state(t)}"
                )
        else:
            print("user\trole\tstate\tfull name\ttrials")
            for user in session.scalars(select(User).order_by(User.username)):
                state = "active" if user.active else "inactive"
                reach = (
                    "(all: admin)"
                    if "admin" in user.role.split("+")
                    else ",".join(sorted(member_codes(session, user))) or "(none)"
                )
                print(f"{user.username}\t{user.role}\t{state}\t{user.full_name or ''}\t{reach}")
    except ServiceError as error:
        print(f"recist users: {error.message}", file=sys.stderr)
        return 2
    finally:
        engine = session.get_bind()
        session.close()
        engine.dispose()  # type: ignore[union-attr]
    return 0
