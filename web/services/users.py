"""Users, passwords, login lockout and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from werkzeug.security import check_password_hash, generate_password_hash

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, NotFound
from web.models import (
    ROLES,
    ApiToken,
    User,
    utcnow,
)
from web.services.common import Actor, Audit, check_code


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", field="role")
    return role


def create_user(session: Session, actor: Actor, *, username: str, password: str, role: str) -> User:
    """Add a user with a scrypt password hash (werkzeug)."""
    check_code(username, "user name", "username")
    _check_role(role)
    if len(password) < 10:
        raise InvalidInput("a password needs at least 10 characters", field="password")
    with write_transaction(session):
        if session.scalar(select(User.id).where(User.username == username)):
            raise Conflict(f"user {username!r} already exists", field="username")
        user = User(
            username=username,
            password_hash=generate_password_hash(password, method="scrypt"),
            role=role,
        )
        session.add(user)
        Audit(session, actor, None).log("create", "user", username, "role", None, role)
    return user


def set_password(session: Session, actor: Actor, *, username: str, password: str) -> None:
    if len(password) < 10:
        raise InvalidInput("a password needs at least 10 characters", field="password")
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} does not exist", field="username")
        user.password_hash = generate_password_hash(password, method="scrypt")
        Audit(session, actor, None).log("update", "user", username, "password", None, "(changed)")


MAX_FAILED_LOGINS = 5  # consecutive failures that lock an account …


LOGIN_LOCK = timedelta(minutes=15)  # … for this long (slows password guessing)


def authenticate(
    session: Session, username: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The active user with this name and password, else ``None``.

    Every failure looks the same to the caller (unknown name, wrong password, inactive
    or locked account) and costs one scrypt check, so that neither the answer nor its
    timing tells which user names exist. ``MAX_FAILED_LOGINS`` consecutive failures lock
    the account for ``LOGIN_LOCK``; the lock is written to the audit trail.
    """
    now = now or utcnow()
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username).with_for_update())
        if user is None or not user.active or _after(user.locked_until, now):
            check_password_hash(_dummy_hash(), password)
            return None
        if check_password_hash(user.password_hash, password):
            if user.failed_logins or user.locked_until is not None:
                user.failed_logins = 0
                user.locked_until = None
            return user
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.failed_logins = 0
            user.locked_until = now + LOGIN_LOCK
            Audit(session, Actor(username, user.role), "too many failed logins").log(
                "lock", "user", username, "locked_until", None, user.locked_until.isoformat()
            )
        return None


def _after(moment: datetime | None, now: datetime) -> bool:
    """Whether ``moment`` is still in the future (SQLite returns naive UTC datetimes)."""
    if moment is None:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment > now


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("not a password", method="scrypt")


def create_token(session: Session, actor: Actor, *, username: str, name: str) -> str:
    """Create an API token for a user; the token is returned once, only its hash kept."""
    token = secrets.token_urlsafe(32)
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"user {username!r} does not exist", field="username")
        session.add(ApiToken(user=user, name=name, token_sha256=_sha256(token)))
        Audit(session, actor, None).log("create", "api_token", f"{username}/{name}")
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalar(
        select(ApiToken)
        .where(ApiToken.token_sha256 == _sha256(token), ApiToken.revoked.is_(False))
        .options(selectinload(ApiToken.user))
    )
    if row is None or not row.user.active:
        return None
    return row.user


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
