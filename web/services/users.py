"""Users, passwords and failed logins.

A guess counts the same wherever a password is checked (the login page, a signature, the
password change): :func:`authenticate` is the one check, and :func:`login_attempt` counts
a failure against the account (``MAX_FAILED_LOGINS`` in a row lock it for ``LOGIN_LOCK``)
and against the client's address (``LOGIN_RATE_LIMIT``, default ``20 per 15 minutes``),
in the database, so that neither a restart nor a second worker resets them. Sessions and
API tokens live in :mod:`web.services.access`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, NotFound
from web.models import LoginFailure, Trial, TrialMember, User, UserSession, role_set
from web.services import access
from web.services.access import (
    CliActor,
    audit_for,
    cli_actor,
    create_token,
    display_name,
    end_user_sessions,
    revoke_user_tokens,
    user_for_token,
)
from web.services.common import Actor, Audit, check_code
from web.services.membership import check_role, get_user, join_trial

__all__ = [
    "LOGIN_LOCK",
    "MAX_FAILED_LOGINS",
    "CliActor",
    "LoginResult",
    "UserSummary",
    "authenticate",
    "change_own_password",
    "clean_full_name",
    "cli_actor",
    "create_token",
    "create_user",
    "display_name",
    "list_users",
    "login_attempt",
    "parse_limit",
    "set_active",
    "set_full_name",
    "set_password",
    "set_role",
    "user_for_token",
]


# --------------------------------------------------------------------------- users

MIN_PASSWORD = 10
MAX_FULL_NAME = 200


def _check_password(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters", field=field)


def clean_full_name(value: Any) -> str:
    """A person's name as given (stripped); printable text of at most 200 characters."""
    if not isinstance(value, str):
        raise InvalidInput("a full name must be text", field="full_name")
    text = " ".join(value.split())
    if len(text) > MAX_FULL_NAME or not text.isprintable():
        raise InvalidInput(
            f"a full name is printable text of at most {MAX_FULL_NAME} characters",
            field="full_name",
        )
    return text


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    role: str,
    full_name: str = "",
    trials: Sequence[str] = (),
) -> User:
    """Add a user with a scrypt password hash (werkzeug), assigned to ``trials``."""
    check_code(username, "user name", "username")
    check_role(role)
    _check_password(password)
    full_name = clean_full_name(full_name)
    with write_transaction(session):
        if session.scalar(select(User.id).where(User.username == username)):
            raise Conflict(f"user {username!r} already exists", field="username")
        user = User(
            username=username,
            password_hash=generate_password_hash(password, method="scrypt"),
            role=role,
            full_name=full_name,
        )
        session.add(user)
        audit = audit_for(session, actor)
        audit.log("create", "user", username, "role", None, role)
        if full_name:
            audit.log("create", "user", username, "full_name", None, full_name)
        for code in trials:
            join_trial(session, actor, user, code)
    return user


def set_password(session: Session, actor: Actor, *, username: str, password: str) -> int:
    """Set a user's password and end all their sessions; returns how many were ended."""
    _check_password(password)
    with write_transaction(session):
        user = get_user(session, username, lock=True)
        user.password_hash = generate_password_hash(password, method="scrypt")
        audit = audit_for(session, actor)
        audit.log("update", "user", username, "password", None, "(changed)")
        return end_user_sessions(session, audit, user, "password changed", access.clock())


def change_own_password(session: Session, user: User, *, old: str, new: str) -> int:
    """A user changing their own password: the old one is checked like a login (it counts
    towards the account lock and the address limit)."""
    _check_password(new, "new_password")
    if authenticate(session, user.username, old) is None:
        raise InvalidInput(
            "the current password is wrong (or the account is locked after repeated "
            "failures); the password was not changed",
            field="old_password",
        )
    who = Actor(user.username, user.role)
    return set_password(session, who, username=user.username, password=new)


def set_full_name(session: Session, actor: Actor, *, username: str, full_name: str) -> None:
    full_name = clean_full_name(full_name)
    with write_transaction(session):
        user = get_user(session, username, lock=True)
        if full_name != (user.full_name or ""):
            old = user.full_name or None
            audit_for(session, actor).log("update", "user", username, "full_name", old, full_name)
            user.full_name = full_name


def set_role(session: Session, actor: Actor, *, username: str, role: str) -> None:
    """Give a user another role (audited; it holds from their next request).

    Raises
    ------
    Conflict
        An administrator taking ``admin`` from their own role (another administrator
        must do it, so that no one locks the service out of its administration alone).
    """
    check_role(role)
    with write_transaction(session):
        user = get_user(session, username, lock=True)
        if (
            actor.username == username
            and "admin" in role_set(user.role)
            and "admin" not in role_set(role)
        ):
            raise Conflict(
                f"you cannot remove the admin role from your own account ({username}); "
                "ask another administrator",
                field="role",
            )
        if audit_for(session, actor).change("user", username, "role", user.role, role):
            user.role = role


def set_active(session: Session, actor: Actor, *, username: str, active: bool) -> None:
    """(De)activate a user. Deactivation ends their sessions and revokes their tokens at
    once; activating again gives back neither.

    Raises
    ------
    Conflict
        A user deactivating their own account (another administrator must do it).
    """
    if not active and actor.username == username:
        raise Conflict(
            f"you cannot deactivate your own account ({username}); ask another administrator",
            field="active",
        )
    now = access.clock()
    with write_transaction(session):
        user = get_user(session, username, lock=True)
        audit = audit_for(session, actor)
        if not audit.change("user", username, "active", user.active, active):
            return
        user.active = active
        if active:
            return
        end_user_sessions(session, audit, user, "deactivated", now)
        revoke_user_tokens(session, audit, user, now)


@dataclass(frozen=True)
class UserSummary:
    """A user as the administrators' page shows them: the trials they are a member of
    (an admin reaches every trial) and when they last logged in, as far as the stored
    sessions tell (``None``: no session is known)."""

    user: User
    trials: tuple[str, ...]
    last_login: datetime | None

    @property
    def every_trial(self) -> bool:
        return "admin" in role_set(self.user.role)


def list_users(session: Session, username: str | None = None) -> list[UserSummary]:
    """Every user by name (or the one named ``username``: a 404 when unknown), with their
    trials and last login."""
    query = select(User).order_by(User.username)
    if username is not None:
        query = query.where(User.username == username)
    users = list(session.scalars(query))
    if username is not None and not users:
        raise NotFound(f"user {username!r} does not exist", field="username")
    ids = [user.id for user in users]
    trials: dict[int, list[str]] = {}
    for user_id, code in session.execute(
        select(TrialMember.user_id, Trial.code)
        .join(Trial, Trial.id == TrialMember.trial_id)
        .where(TrialMember.user_id.in_(ids))
        .order_by(Trial.code)
    ):
        trials.setdefault(user_id, []).append(code)
    logins: dict[int, datetime] = {
        user_id: at
        for user_id, at in session.execute(
            select(UserSession.user_id, func.max(UserSession.created_at))
            .where(UserSession.user_id.in_(ids))
            .group_by(UserSession.user_id)
        )
    }
    return [
        UserSummary(
            user,
            tuple(trials.get(user.id, ())),
            access.aware(logins[user.id]) if logins.get(user.id) else None,
        )
        for user in users
    ]


# --------------------------------------------------------------------------- logins

MAX_FAILED_LOGINS = 5  # consecutive failures that lock an account …
LOGIN_LOCK = timedelta(minutes=15)  # … for this long (slows password guessing)
DEFAULT_ADDRESS_LIMIT = "20 per 15 minutes"  # failed logins per client address
KNOWN_ADDRESS = timedelta(days=90)  # an account "known" at an address: a session from it
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_limit(text: str) -> tuple[int, timedelta]:
    """``"20 per 15 minutes"`` (or ``"3 per minute"``, ``"100/hour"``) as (count, window)."""
    match = re.fullmatch(
        r"\s*(\d+)\s*(?:per|/)\s*(\d+)?\s*(second|minute|hour|day)s?\s*", text.lower()
    )
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"login rate limit {text!r} is not like '20 per 15 minutes'")
    seconds = int(match.group(2) or 1) * _UNITS[match.group(3)]
    return int(match.group(1)), timedelta(seconds=seconds)


def _request_context() -> tuple[str | None, str | None, str]:
    """The client address, the endpoint and the address limit of the current request."""
    from flask import current_app, has_request_context, request

    if not has_request_context():
        return None, None, DEFAULT_ADDRESS_LIMIT
    limit = str(current_app.config.get("LOGIN_RATE_LIMIT") or DEFAULT_ADDRESS_LIMIT)
    return request.remote_addr, request.endpoint, limit


@dataclass(frozen=True)
class LoginResult:
    """A password check: the user, or ``None`` and whether the address is over its
    limit (the login page then answers 429)."""

    user: User | None
    address_limited: bool = False


def login_attempt(
    session: Session,
    username: str,
    password: str,
    *,
    address: str | None = None,
    via: str | None = None,
    limit: str = DEFAULT_ADDRESS_LIMIT,
    now: datetime | None = None,
) -> LoginResult:
    """Check a password; count and audit a failure against the account and the address.

    A correct password for an active account that is not locked always succeeds, even
    from an address over its limit: one address shared by a whole ward (NAT) never locks
    out valid logins. Failures count: ``MAX_FAILED_LOGINS`` in a row lock the account for
    ``LOGIN_LOCK``; beyond the address's limit, a failure answers 429 and locks at once an
    account that never had a session from that address (spraying one guess over many
    accounts), while accounts used from it keep their five tries (a colleague's typo).
    Every failure costs one scrypt check, whatever its cause, and looks the same.
    """
    now = now or access.clock()
    count, window = parse_limit(limit)
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username).with_for_update())
        locked = bool(user and user.locked_until and access.aware(user.locked_until) > now)
        usable = user is not None and user.active and not locked
        if user is not None and usable and check_password_hash(user.password_hash, password):
            if user.failed_logins or user.locked_until is not None:
                user.failed_logins = 0
                user.locked_until = None
            return LoginResult(user)
        if not usable:
            check_password_hash(_dummy_hash(), password)
        over = False
        if address is not None:
            address = address[:64]
            session.execute(delete(LoginFailure).where(LoginFailure.at < now - window))
            earlier = session.scalar(
                select(func.count())
                .select_from(LoginFailure)
                .where(LoginFailure.address == address)
            )
            over = (earlier or 0) >= count
            session.add(LoginFailure(address=address, at=now))
        cause = (
            "unknown user name" if user is None
            else "account deactivated" if not user.active
            else "account locked" if locked
            else "wrong password"
        )  # fmt: skip
        if over:
            cause += f"; the address is over its limit ({limit} failed logins)"
        who = Actor(user.username, user.role) if user is not None else Actor("anonymous", "")
        key = user.username if user is not None else "(unknown user name)"
        Audit(session, who, cause).log(
            "login_failed", "access", key, via or "password", None, address
        )
        if user is not None and usable:
            user.failed_logins = (user.failed_logins or 0) + 1
            spray = over and not _known_at(session, user, address, now)
            if user.failed_logins >= MAX_FAILED_LOGINS or spray:
                user.failed_logins = 0
                user.locked_until = now + LOGIN_LOCK
                why = "a failed login from an address over its limit" if spray else None
                Audit(session, who, why or "too many failed logins").log(
                    "lock", "user", username, "locked_until", None, user.locked_until.isoformat()
                )
        return LoginResult(None, over)


def _known_at(session: Session, user: User, address: str | None, now: datetime) -> bool:
    """Whether ``user`` had a session from ``address`` in the last ``KNOWN_ADDRESS``."""
    return address is not None and bool(
        session.scalar(
            select(UserSession.id)
            .where(
                UserSession.user_id == user.id,
                UserSession.client_address == address,
                UserSession.created_at >= now - KNOWN_ADDRESS,
            )
            .limit(1)
        )
    )


def authenticate(
    session: Session, username: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The active, unlocked user with this name and password, else ``None``.

    Called by the login page, the signature (``services.signing``) and the password
    change alike, so a guess counts the same everywhere: towards the account lock and,
    inside a request, towards the limit of the client's address (:func:`login_attempt`).
    """
    address, via, limit = _request_context()
    return login_attempt(
        session, username, password, address=address, via=via, limit=limit, now=now
    ).user


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("not a password", method="scrypt")
