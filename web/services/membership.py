"""Who reaches which trial, and who holds which roles.

* A user holds one role, or an administrator holds ``admin`` plus one clinical role
  (``"admin+reader"``): ``admin`` alone administers (users, tokens, the audit trail's
  verification) and does not enter, sign or review clinical data (segregation of duties,
  see :data:`web.auth.PERMISSIONS`).
* Everyone but an admin reaches only the trials they are members of (``trial_member``);
  a trial manager who creates a trial becomes its member. Adding and removing members is
  audited (entity ``trial_member``, key ``TRIAL/username``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, NotFound
from web.models import CLINICAL_ROLES, ROLES, Trial, TrialMember, User, role_set
from web.services.access import audit_for
from web.services.common import SYSTEM, Actor, get_trial

__all__ = [
    "add_member",
    "check_role",
    "join_trial",
    "member_codes",
    "members_of",
    "reaches",
    "remove_member",
    "sees_every_trial",
    "trial_access",
    "visible_trials",
]


def check_role(role: object) -> str:
    """A role text as stored: one of :data:`ROLES`, or ``admin+<clinical role>``."""
    if not isinstance(role, str):
        raise InvalidInput("a role is text", field="role")
    parts = role.split("+")
    known = ", ".join(ROLES)
    if len(parts) == 1 and role in ROLES:
        return role
    if len(parts) == 2 and parts[0] == "admin" and parts[1] in CLINICAL_ROLES:
        return role
    raise InvalidInput(
        f"role {role!r} is not one of {known}, or admin+<one of "
        f"{', '.join(CLINICAL_ROLES)}> for an administrator who also works on clinical data",
        field="role",
    )


def sees_every_trial(role: str | None) -> bool:
    """Administrators reach every trial (to administer it); nobody else does."""
    return "admin" in role_set(role)


def reaches(session: Session, user: User, trial_code: str) -> bool:
    """Whether ``user`` may open anything of the trial ``trial_code`` (an unknown trial is
    "reached": the route answers 404 for it, as for everyone)."""
    return trial_access(session, user, trial_code)[0]


# Asked by every request naming a trial (web.auth): built once, so that its compiled form is
# found in the cache without walking the statement again.
_ACCESS = (
    select(Trial.central_review, TrialMember.id)
    .outerjoin(
        TrialMember,
        (TrialMember.trial_id == Trial.id) & (TrialMember.user_id == bindparam("user_id")),
    )
    .where(Trial.code == bindparam("trial_code"))
)


def trial_access(session: Session, user: User, trial_code: str) -> tuple[bool, bool]:
    """(:func:`reaches`, whether the trial has independent central review), in one query:
    what every request naming a trial asks first (web.auth)."""
    row = session.execute(_ACCESS, {"user_id": user.id, "trial_code": trial_code}).first()
    if row is None:
        return True, False
    return sees_every_trial(user.role) or row[1] is not None, bool(row[0])


def member_codes(session: Session, user: User) -> set[str]:
    """Codes of the trials ``user`` is a member of."""
    return set(
        session.scalars(
            select(Trial.code)
            .join(TrialMember, TrialMember.trial_id == Trial.id)
            .where(TrialMember.user_id == user.id)
        )
    )


def visible_trials(session: Session, user: User | None, trials: list[Trial]) -> list[Trial]:
    """``trials`` narrowed to those ``user`` reaches."""
    if user is None:
        return []
    if sees_every_trial(user.role):
        return trials
    codes = member_codes(session, user)
    return [trial for trial in trials if trial.code in codes]


def members_of(session: Session, trial_code: str) -> list[tuple[User, TrialMember]]:
    """The members of a trial with their membership rows, by user name."""
    trial = get_trial(session, trial_code)
    rows = session.execute(
        select(User, TrialMember)
        .join(TrialMember, TrialMember.user_id == User.id)
        .where(TrialMember.trial_id == trial.id)
        .order_by(User.username)
    )
    return [(user, member) for user, member in rows]


def get_user(session: Session, username: str, *, lock: bool = False) -> User:
    """The user named ``username`` (``lock``: for update), else :class:`NotFound`."""
    query = select(User).where(User.username == username)
    user = session.scalar(query.with_for_update() if lock else query)
    if user is None:
        raise NotFound(f"user {username!r} does not exist", field="username")
    return user


def add_member(session: Session, actor: Actor, *, username: str, trial_code: str) -> bool:
    """Assign ``username`` to the trial; ``False`` if already a member (nothing written)."""
    with write_transaction(session):
        return join_trial(session, actor, get_user(session, username), trial_code)


def join_trial(session: Session, actor: Actor, user: User, trial_code: str) -> bool:
    """:func:`add_member` inside the caller's write transaction."""
    trial = get_trial(session, trial_code)
    if sees_every_trial(user.role):
        raise Conflict(
            f"{user.username} is an administrator and reaches every trial already",
            field="trial",
        )
    session.flush()
    exists = session.scalar(
        select(TrialMember.id).where(
            TrialMember.trial_id == trial.id, TrialMember.user_id == user.id
        )
    )
    if exists is not None:
        return False
    session.add(TrialMember(trial_id=trial.id, user_id=user.id, added_by=actor.username))
    audit_for(session, actor).log(
        "create", "trial_member", f"{trial.code}/{user.username}", "role", None, user.role
    )
    return True


def remove_member(
    session: Session, actor: Actor, *, username: str, trial_code: str, reason: str | None
) -> None:
    """End ``username``'s membership of the trial (audited, with the reason given)."""
    with write_transaction(session):
        user = get_user(session, username)
        trial = get_trial(session, trial_code)
        gone = session.execute(
            delete(TrialMember).where(
                TrialMember.trial_id == trial.id, TrialMember.user_id == user.id
            )
        )
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"{username} is not a member of trial {trial.code}", field="username")
        audit_for(session, actor, reason).log(
            "delete", "trial_member", f"{trial.code}/{username}", "role", user.role, None
        )


def assign_everyone(session: Session, usernames: Sequence[str] | None = None) -> None:
    """Make every user (or those of ``usernames``) who is not an admin a member of every
    trial, as migration 0010 did for existing users: the demo's users and the tests'."""
    query = select(User)
    if usernames is not None:
        query = query.where(User.username.in_(usernames))
    codes = session.scalars(select(Trial.code)).all()
    for user in session.scalars(query).all():
        if not sees_every_trial(user.role):
            for code in codes:  # add_member writes nothing for a member already
                add_member(session, SYSTEM, username=user.username, trial_code=code)
