"""Who may come in: browser sessions, API tokens, the command line's identity, and the
clock they all run on.

* Sessions are server-side (``user_session``): the cookie carries a random id whose
  SHA-256 is stored; a session ends at logout, at a password change, when its user is
  deactivated, after ``SESSION_IDLE`` without a request and ``SESSION_MAX`` after login.
* API tokens are stored as SHA-256, expire (``TOKEN_DAYS`` by default) and can be revoked.
* Every access event is an audit record: logins and logouts (entity ``access``), sessions
  that time out or are ended, tokens created, revoked and used (entity ``api_token``; one
  ``use`` record per token, route family and hour). Failed logins are audited by
  :func:`web.services.users.login_attempt`.

Times come from :func:`clock`; tests replace it (``monkeypatch.setattr(access, "clock",
...)``), and :mod:`web.services.users` reads it through this module too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, NotFound
from web.models import ApiToken, ApiTokenUse, User, UserSession, utcnow
from web.services.common import Actor, Audit, check_code


def clock() -> datetime:
    """Now (UTC) for sessions, tokens and login limits; tests monkeypatch this."""
    return utcnow()


def aware(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite returns naive UTC values)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --------------------------------------------------------------------------- who acts

# Said in every audit record written from the command line (the actor's name says both).
CLI_IDENTITY = (
    "command line: the name after 'cli:' is $USER from the environment (anyone can set "
    "it); the uid is the operating system's (os.getuid)"
)


@dataclass
class CliActor(Actor):
    """Someone at the command line of the server: ``cli:$USER (uid N)``."""


def cli_actor(environ: dict[str, str] | None = None) -> CliActor:
    """The CLI's actor: the login name from the environment, the uid from the OS."""
    env = os.environ if environ is None else environ
    name = (env.get("USER") or env.get("LOGNAME") or "unknown")[:40]
    getuid = getattr(os, "getuid", None)
    uid = f"uid {getuid()}" if getuid is not None else "no OS uid"
    return CliActor(f"cli:{name} ({uid})", "admin")


def display_name(user: Any) -> str:
    """``"Full Name (username)"``, or the user name alone when no full name is known
    (the signature manifestation, 21 CFR 11.50)."""
    full = (getattr(user, "full_name", "") or "").strip()
    return f"{full} ({user.username})" if full else str(user.username)


def audit_for(session: Session, actor: Actor, reason: str | None = None) -> Audit:
    """An :class:`Audit` whose records from the command line say where the name came from."""
    note = CLI_IDENTITY if isinstance(actor, CliActor) else None
    return Audit(session, actor, "; ".join(p for p in (reason, note) if p) or None)


# --------------------------------------------------------------------------- sessions

SESSION_IDLE = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=12)
# last_seen_at is written at most this often (not on every request); an idle timeout
# therefore ends a session up to this much early.
SEEN_STEP = timedelta(seconds=60)


def span_text(span: timedelta) -> str:
    """``"30 minutes"``, ``"12 hours"``, ``"90 seconds"``: a timeout as people say it."""
    seconds = int(span.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0 or unit == "second":
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError  # pragma: no cover


@dataclass(frozen=True)
class SessionCheck:
    """A session cookie's user, or ``None`` and ``ended`` ("idle", "expired") when this
    check is what ended it."""

    user: User | None
    ended: str | None = None


def start_session(
    session: Session, user: User, *, address: str | None, reason: str | None = None
) -> str:
    """A new server-side session for ``user``; returns its id for the cookie (only its
    SHA-256 is stored). The login is audited."""
    sid = secrets.token_urlsafe(32)
    now = clock()
    with write_transaction(session):
        session.add(
            UserSession(
                sid_sha256=sha256_hex(sid),
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                client_address=(address or "")[:64] or None,
            )
        )
        Audit(session, Actor(user.username, user.role), reason).log(
            "login", "access", user.username, "address", None, address
        )
    return sid


def resume_session(
    session: Session,
    sid: str,
    *,
    idle: timedelta = SESSION_IDLE,
    max_age: timedelta = SESSION_MAX,
) -> SessionCheck:
    """The user of a live session; ends (and audits) one past its idle or absolute limit."""
    now = clock()
    row = session.scalar(
        select(UserSession)
        .where(UserSession.sid_sha256 == sha256_hex(sid))
        .options(selectinload(UserSession.user))
    )
    if row is None or row.revoked_at is not None or not row.user.active:
        return SessionCheck(None)
    ended = None
    if now - aware(row.created_at) >= max_age:
        ended = "expired"
    elif now - aware(row.last_seen_at) >= idle:
        ended = "idle"
    if ended is None:
        if now - aware(row.last_seen_at) >= min(SEEN_STEP, idle / 4):
            with write_transaction(session):
                session.execute(
                    update(UserSession)
                    .where(UserSession.id == row.id, UserSession.revoked_at.is_(None))
                    .values(last_seen_at=now)
                )
        return SessionCheck(row.user)
    limit = (
        f"no request for {span_text(idle)}"
        if ended == "idle"
        else f"{span_text(max_age)} since login"
    )
    with write_transaction(session):
        fresh = session.scalar(
            select(UserSession).where(UserSession.id == row.id).with_for_update()
        )
        if fresh is not None and fresh.revoked_at is None:
            fresh.revoked_at, fresh.ended_by = now, ended
            Audit(session, Actor("system", "admin"), limit).log(
                "expire", "access", row.user.username, "session", None, ended
            )
    return SessionCheck(None, ended)


def end_session(session: Session, sid: str, *, address: str | None = None) -> None:
    """Log out: end the session of ``sid`` (its cookie no longer works) and audit it."""
    with write_transaction(session):
        row = session.scalar(
            select(UserSession)
            .where(UserSession.sid_sha256 == sha256_hex(sid))
            .options(selectinload(UserSession.user))
            .with_for_update()
        )
        if row is None or row.revoked_at is not None:
            return
        row.revoked_at, row.ended_by = clock(), "logout"
        Audit(session, Actor(row.user.username, row.user.role), None).log(
            "logout", "access", row.user.username, "address", None, address
        )


def end_user_sessions(session: Session, audit: Audit, user: User, why: str, now: datetime) -> int:
    """End every live session of ``user`` inside the caller's transaction (audited)."""
    rows = session.scalars(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at, row.ended_by = now, why[:32]
    ended = len(rows)
    if ended:
        audit.log("revoke", "access", user.username, "sessions", None, f"{ended} ended ({why})")
    return ended


# --------------------------------------------------------------------------- API tokens

TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 366
LAST_USED_STEP = timedelta(seconds=60)  # last_used_at is written at most this often


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """``"revoked"``, ``"expired"`` or ``"active"``."""
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if aware(token.expires_at) <= (now or clock()) else "active"


def create_token(
    session: Session, actor: Actor, *, username: str, name: str, days: int = TOKEN_DAYS
) -> str:
    """Create an API token valid for ``days``; it is returned once, only its hash kept."""
    check_code(name, "token name", "name")
    if not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"a token lasts 1 to {MAX_TOKEN_DAYS} days, not {days!r}", field="days")
    token = secrets.token_urlsafe(32)
    now = clock()
    with write_transaction(session):
        user = session.scalar(select(User).where(User.username == username).with_for_update())
        if user is None:
            raise NotFound(f"user {username!r} does not exist", field="username")
        if not user.active:
            raise Conflict(f"user {username!r} is deactivated", field="username")
        for other in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
            if other.name == name and token_state(other, now) == "active":
                raise Conflict(
                    f"{username} already has an active token named {name!r} (id {other.id}); "
                    "revoke it or choose another name",
                    field="name",
                )
        row = ApiToken(
            user=user,
            name=name,
            token_sha256=sha256_hex(token),
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        session.add(row)
        audit_for(session, actor).log(
            "create", "api_token", f"{username}/{name}", "expires_at", None, row.expires_at
        )
    return token


def list_tokens(session: Session, username: str | None = None) -> list[ApiToken]:
    """Tokens (of one user, or all), oldest first, with their users loaded."""
    query = select(ApiToken).options(selectinload(ApiToken.user)).order_by(ApiToken.id)
    if username is not None:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise NotFound(f"user {username!r} does not exist", field="username")
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def revoke_token(
    session: Session, actor: Actor, *, token_id: int, owner: str | None = None
) -> ApiToken:
    """Revoke a token at once; with ``owner``, only one of that user's tokens."""
    with write_transaction(session):
        token = session.scalar(
            select(ApiToken)
            .where(ApiToken.id == token_id)
            .options(selectinload(ApiToken.user))
            .with_for_update()
        )
        if token is None or (owner is not None and token.user.username != owner):
            raise NotFound(f"there is no token {token_id}", field="token")
        if token.revoked_at is not None:
            raise Conflict(f"token {token_id} is already revoked", field="token")
        token.revoked_at = clock()
        audit_for(session, actor).log(
            "revoke", "api_token", f"{token.user.username}/{token.name}", "revoked_at", None,
            token.revoked_at,
        )  # fmt: skip
    return token


@dataclass(frozen=True)
class TokenCheck:
    """A bearer token's user and token id, or ``problem`` saying why it is refused."""

    user: User | None
    token_key: str | None = None  # the token's SHA-256, for note_token_use
    problem: str | None = None


# Every API request asks it: one round trip (the token joined to its user), and built once
# so that its compiled form is found in the cache without walking the statement again.
_TOKEN = (
    select(ApiToken)
    .where(ApiToken.token_sha256 == bindparam("token_sha256"))
    .options(joinedload(ApiToken.user, innerjoin=True))
)


def check_token(session: Session, token: str) -> TokenCheck:
    """Who a bearer token belongs to, if it is known, live and its user active."""
    row = session.scalar(_TOKEN, {"token_sha256": sha256_hex(token)})
    if row is None:
        return TokenCheck(None, None, "this API token is not known")
    state = token_state(row)
    if state != "active":
        when = row.revoked_at if state == "revoked" else row.expires_at
        assert when is not None
        return TokenCheck(
            None,
            row.token_sha256,
            f"this API token ({row.user.username}/{row.name}) "
            f"{'was revoked' if state == 'revoked' else 'expired'} on "
            f"{aware(when):%Y-%m-%d %H:%M} UTC; ask an administrator for a new one "
            "(`recist users token NAME`)",
        )
    if not row.user.active:
        return TokenCheck(
            None, row.token_sha256, f"the account {row.user.username!r} is deactivated"
        )
    return TokenCheck(row.user, row.token_sha256)


def revoke_user_tokens(session: Session, audit: Audit, user: User, now: datetime) -> int:
    """Revoke every live token of ``user`` inside the caller's transaction (audited)."""
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
        audit.log("revoke", "api_token", f"{user.username}/{token.name}", "revoked_at", None, now)
    return len(tokens)


def user_for_token(session: Session, token: str) -> User | None:
    return check_token(session, token).user


# What this process already wrote, to spare a query per request: (token hash, route
# family, hour) audited, and when each token's last_used_at was last written.
_NOTED: set[tuple[str, str, datetime]] = set()
_LAST_WRITTEN: dict[str, datetime] = {}


def note_token_use(
    session: Session, token_key: str, family: str, *, address: str | None = None
) -> bool:
    """Record that a token (by its SHA-256) was used on a route family: ``last_used_at``
    (to the minute) and one audit record per token, family and hour. Returns whether an
    audit record was written."""
    now = clock()
    hour = now.replace(minute=0, second=0, microsecond=0)
    family = family[:64]
    written_at = _LAST_WRITTEN.get(token_key)
    if (token_key, family, hour) in _NOTED and written_at and now - written_at < LAST_USED_STEP:
        return False
    written = False
    with write_transaction(session):
        token = session.scalar(
            select(ApiToken)
            .where(ApiToken.token_sha256 == token_key)
            .options(selectinload(ApiToken.user))
            .with_for_update()
        )
        if token is None:
            return False
        if token.last_used_at is None or now - aware(token.last_used_at) >= LAST_USED_STEP:
            token.last_used_at = now
        seen = session.scalar(
            select(func.count())
            .select_from(ApiTokenUse)
            .where(
                ApiTokenUse.token_id == token.id,
                ApiTokenUse.family == family,
                ApiTokenUse.hour == hour,
            )
        )
        if not seen:
            session.execute(
                delete(ApiTokenUse).where(ApiTokenUse.token_id == token.id, ApiTokenUse.hour < hour)
            )
            session.add(ApiTokenUse(token_id=token.id, family=family, hour=hour))
            Audit(session, Actor(token.user.username, token.user.role), None).log(
                "use", "api_token", f"{token.user.username}/{token.name}", family, None, address
            )
            written = True
    if len(_NOTED) > 10_000:
        _NOTED.clear()
        _LAST_WRITTEN.clear()
    _NOTED.add((token_key, family, hour))
    _LAST_WRITTEN[token_key] = now
    return written
