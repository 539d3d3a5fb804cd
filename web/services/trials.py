"""Trials and their protocol settings (validated by ``recist.jsonio.SettingsIn``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import Conflict, InvalidInput, NotFound
from web.models import (
    Arm,
    Trial,
    User,
)
from web.services.cases import recompute, validated
from web.services.common import Actor, Audit, check_code, clean_reason
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


class SignedReadsWouldChange(Conflict):
    """A settings change that would change a signed read's result (409)."""

    code = "signed_reads_would_change"


# What of a timepoint's result a signature vouches for: a change in any refuses the save.
SIGNED_KEYS = (
    "overall_response",
    "target_response",
    "non_target_response",
    "new_lesions",
    "sum_mm",
)


def update_settings(
    session: Session, actor: Actor, trial_code: str, values: Any, *, reason: Any
) -> tuple[Trial, int]:
    """Change a trial's protocol settings (the ones given; the others are kept), with a
    reason, audited, and re-assess every subject with them in the same transaction.

    Returns the trial and how many subjects' results changed.

    Raises
    ------
    InvalidInput
        Unknown or implausible settings (R-PLAUS-SETTINGS), naming the setting.
    ReasonRequired
        No reason (a change of clinical data after its first entry).
    SignedReadsWouldChange
        A signed read's result would change: listing each (subject, timepoint, before →
        after); unlock those reads first. Nothing is written.
    """
    if not isinstance(values, dict):
        raise InvalidInput("settings must be an object", field="settings", pointer="/settings")
    text = clean_reason(reason)
    with write_transaction(session):
        trial = session.scalar(select(Trial).where(Trial.code == trial_code).with_for_update())
        if trial is None:
            raise NotFound(f"trial {trial_code!r} does not exist")
        clean = check_settings({**(trial.settings or {}), **values})
        audit = Audit(session, actor, text)
        if not audit.change("trial", trial.code, "settings", trial.settings, clean):
            return trial, 0
        trial.settings = clean
        changed, refused = 0, []
        for subject in trial.subjects:
            old_result = _without_settings(subject.result_json)
            before = {tp["id"]: tp for tp in old_result.get("timepoints", [])}
            recompute(subject)
            new_result = _without_settings(subject.result_json)
            after = {tp["id"]: tp for tp in new_result.get("timepoints", [])}
            # Any change of the result counts: a BOR or PFS changes with no timepoint's.
            changed += old_result != new_result
            for tp in subject.timepoints:
                old, new = before.get(tp.code, {}), after.get(tp.code, {})
                if tp.locked and any(old.get(k) != new.get(k) for k in SIGNED_KEYS):
                    refused.append(
                        f"{subject.code} {tp.code} ({old.get('overall_response')} → "
                        f"{new.get('overall_response')})"
                    )
        if refused:
            raise SignedReadsWouldChange(
                f"the new settings would change {len(refused)} signed read(s): "
                f"{', '.join(refused[:10])}{' …' if len(refused) > 10 else ''}; unlock them "
                "first (a signed read is never changed under its signature)",
                field="settings",
            )
    return trial, changed


def _without_settings(result: dict[str, Any] | None) -> dict[str, Any]:
    """A stored result but for the settings it echoes (they differ after every change)."""
    return {k: v for k, v in (result or {}).items() if k != "settings"}
