"""Trials and their protocol settings (validated by ``recist.jsonio.SettingsIn``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict, InvalidInput
from web.models import (
    Arm,
    Trial,
    User,
)
from web.services.cases import validated
from web.services.common import Actor, Audit, check_code
from web.services.membership import join_trial, sees_every_trial


def check_settings(values: Any) -> dict[str, Any]:
    """Protocol settings validated by the contract's model (``recist.jsonio.SettingsIn``:
    known keys, strict types, finite, within bounds: R-PLAUS-SETTINGS), with every
    default filled in, as stored with the trial."""
    from recist.jsonio import SettingsIn
    from recist.settings import Settings

    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InvalidInput("settings must be an object", field="settings", pointer="/settings")
    model = validated(SettingsIn, values, base=("settings",))
    return Settings.from_dict(model.model_dump()).to_dict()


def create_trial(
    session: Session,
    actor: Actor,
    *,
    code: str,
    title: str,
    settings: dict[str, Any] | None = None,
    arms: list[tuple[str, str]] | None = None,
) -> Trial:
    """Create a trial with its protocol settings (validated by the engine) and arms."""
    check_code(code, "trial code", "code")
    clean = check_settings(settings)
    with write_transaction(session):
        if session.scalar(select(Trial.id).where(Trial.code == code)) is not None:
            raise Conflict(f"trial {code!r} already exists", field="code", pointer="/code")
        audit = Audit(session, actor, None)
        trial = Trial(code=code, title=title or code, settings=clean)
        session.add(trial)
        for arm_code, name in arms or []:
            check_code(arm_code, "arm code", "arms")
            trial.arms.append(Arm(code=arm_code, name=name or arm_code))
        audit.log("create", "trial", code, "settings", None, clean)
        for arm_code, name in arms or []:
            audit.log("create", "arm", f"{code}/{arm_code}", "name", None, name)
        # Whoever creates a trial (a trial manager) is its first member.
        creator = session.scalar(select(User).where(User.username == actor.username))
        if creator is not None and not sees_every_trial(creator.role):
            join_trial(session, actor, creator, code)
    return trial
