"""The progression-call review queue: every PD call, why it was made, what reviewers decided.

The engine's call (timepoint, date, rule) is read from the subject's result; reviews are
events stored beside it (:class:`~web.models.ProgressionReview`), each naming the call it
was about. A review of an older call never counts for a call that has changed since: the
subject is back to "pending". An adjudicator's override replaces the call used for
analysis but never the engine's, which stays stored and shown beside it, with who and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import write_transaction
from web.errors import ConcurrentEdit, InvalidInput, NotFound
from web.models import ProgressionReview, Subject, Timepoint, utcnow
from web.services.audit import csv_safe
from web.services.common import Actor, Audit, clean_reason, get_subject

# Which rule fired, from the engine's progression reason (docs/rules.md ids).
RULES = {
    "PD_TARGET": "target sum (R-TGT-PD)",
    "PD_NONTARGET": "non-target progression (R-NT-PD)",
    "PD_NEW_LESION": "new lesion (R-NEW-1)",
}
BACK_DATED = "back-dated equivocal new lesion (R-NEW-2)"

REVIEW_ACTIONS = ("agreed", "queried")


# The rule that actually fired, read from the PD timepoint's reasons (first match wins):
# a target PD may be a lesion back after CR, not the sum.
FIRED = (("R-REAPPEAR", "lesion reappeared after CR (R-REAPPEAR)"),
         ("R-TGT-PD", RULES["PD_TARGET"]), ("R-NT-PD", RULES["PD_NONTARGET"]))  # fmt: skip


def rule_label(rule: str, back_dated: bool, reasons: list[str] | None = None) -> str:
    """People's words for the rule behind a call, as the engine's reasons name it."""
    if rule == "PD_NEW_LESION" and back_dated:
        return BACK_DATED
    if rule in ("PD_TARGET", "PD_NONTARGET"):
        for rule_id, label in FIRED:
            if any(reason.startswith(rule_id + ":") for reason in reasons or []):
                return label
    return RULES.get(rule, rule)


@dataclass(frozen=True)
class Call:
    """The engine's progression call for a subject, with the numbers behind it."""

    timepoint: str
    date: date
    rule: str
    back_dated: bool
    numbers: dict[str, Any]
    reasons: list[str]

    @property
    def label(self) -> str:
        return rule_label(self.rule, self.back_dated, self.reasons)

    def matches(self, review: ProgressionReview) -> bool:
        return (review.engine_timepoint, review.engine_date, review.engine_rule) == (
            self.timepoint,
            self.date,
            self.rule,
        )


NUMBER_KEYS = (
    "sum_mm",
    "nadir_mm",
    "change_from_nadir_pct",
    "change_from_baseline_pct",
    "target_response",
    "non_target_response",
    "new_lesions",
    "overall_response",
)


def engine_call(result: dict[str, Any] | None) -> Call | None:
    """The engine's call from a subject's result, ``None`` without progression."""
    if not result or not result.get("progression"):
        return None
    prog = result["progression"]
    tp: dict[str, Any] = next((t for t in result["timepoints"] if t["id"] == prog["timepoint"]), {})
    return Call(
        timepoint=prog["timepoint"],
        date=date.fromisoformat(prog["date"]),
        rule=prog["reason"],
        back_dated=bool(prog.get("back_dated")),
        numbers={k: tp.get(k) for k in NUMBER_KEYS},
        reasons=list(tp.get("reasons") or []),
    )


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue: a subject's current call, its reader and review state."""

    subject: Subject
    call: Call
    reader: str | None
    signed_by: str | None
    state: str  # pending | agreed | queried | answered | overridden
    latest: ProgressionReview | None
    override: ProgressionReview | None
    history: list[ProgressionReview]

    @property
    def used(self) -> dict[str, Any]:
        return used_call(self.call, self.override)


def used_call(call: Call, override: ProgressionReview | None) -> dict[str, Any]:
    """The progression call analyses use: the override of the current call if there is
    one, else the engine's. Always says which, and keeps the engine's beside it."""
    engine = {"timepoint": call.timepoint, "date": call.date.isoformat()}
    if override is None:
        return {"source": "engine", **engine, "engine": engine}
    return {
        "source": "override",
        "timepoint": override.override_timepoint,
        "date": override.override_date.isoformat() if override.override_date else None,
        "engine": engine,
        "by": override.username,
        "why": override.comment,
    }


def _reviews(session: Session, subject_ids: list[int]) -> dict[int, list[ProgressionReview]]:
    out: dict[int, list[ProgressionReview]] = {i: [] for i in subject_ids}
    if not subject_ids:
        return out
    rows = session.scalars(
        select(ProgressionReview)
        .where(ProgressionReview.subject_id.in_(subject_ids))
        .order_by(ProgressionReview.id)
    )
    for row in rows:
        out[row.subject_id].append(row)
    return out


def _row(subject: Subject, call: Call, history: list[ProgressionReview]) -> QueueRow:
    current = [r for r in history if call.matches(r)]
    latest = current[-1] if current else None
    override = next((r for r in reversed(current) if r.action == "overridden"), None)
    tp: Timepoint | None = next((t for t in subject.timepoints if t.code == call.timepoint), None)
    return QueueRow(
        subject=subject,
        call=call,
        reader=tp.updated_by if tp else None,
        signed_by=tp.signed_by if tp and tp.locked else None,
        state=latest.action if latest else "pending",
        latest=latest,
        override=override,
        history=history,
    )


def queue(session: Session, trial: Any) -> list[QueueRow]:
    """Every subject of ``trial`` whose engine result has a progression call."""
    from sqlalchemy.orm import selectinload

    subjects = list(
        session.scalars(
            select(Subject)
            .where(Subject.trial_id == trial.id)
            .options(selectinload(Subject.timepoints))
            .order_by(Subject.code)
        )
    )
    with_calls = [(s, engine_call(s.result_json)) for s in subjects]
    reviews = _reviews(session, [s.id for s, c in with_calls if c is not None])
    return [_row(s, c, reviews[s.id]) for s, c in with_calls if c is not None]


def subject_row(session: Session, subject: Subject) -> QueueRow | None:
    """The queue row of one subject, ``None`` without a progression call."""
    call = engine_call(subject.result_json)
    if call is None:
        return None
    return _row(subject, call, _reviews(session, [subject.id])[subject.id])


def subject_call(session: Session, subject: Subject) -> QueueRow:
    """The queue row of one subject (:func:`subject_row`).

    Raises
    ------
    NotFound
        The engine calls no progression for the subject.
    """
    row = subject_row(session, subject)
    if row is None:
        raise NotFound(
            f"subject {subject.code} has no progression call: the engine calls no PD",
            field="subject",
        )
    return row


def _current(session: Session, trial_code: str, subject_code: str, seen: str | None) -> Any:
    subject = get_subject(session, trial_code, subject_code, lock=True)
    call = engine_call(subject.result_json)
    if call is None:
        raise InvalidInput(
            f"subject {subject_code} has no progression call to review", field="subject"
        )
    shown = f"{call.timepoint}/{call.date.isoformat()}"
    if seen is not None and seen != shown:
        raise ConcurrentEdit(
            f"subject {subject_code}: the progression call changed to {call.timepoint} "
            f"({call.date.isoformat()}) after you opened it; review it again",
            field="call",
        )
    return subject, call


def _add(
    session: Session,
    actor: Actor,
    subject: Subject,
    call: Call,
    action: str,
    comment: str,
    *,
    override_timepoint: str | None = None,
    override_date: date | None = None,
) -> ProgressionReview:
    row = ProgressionReview(
        subject_id=subject.id,
        engine_timepoint=call.timepoint,
        engine_date=call.date,
        engine_rule=call.rule,
        engine_back_dated=call.back_dated,
        action=action,
        comment=comment,
        username=actor.username,
        role=actor.role,
        at=utcnow(),
        override_timepoint=override_timepoint,
        override_date=override_date,
    )
    session.add(row)
    key = f"{subject.trial.code}/{subject.code}"
    audit_action = "override" if action == "overridden" else "review"
    engine, new = review_texts(row)
    Audit(session, actor, comment).log(audit_action, "progression", key, action, engine, new)
    return row


def review_texts(row: ProgressionReview) -> tuple[str, str]:
    """A review event as its audit record writes it (``old``, ``new``): the engine's call,
    and the same call or, for an override, the call that replaces it."""
    engine = f"PD {row.engine_timepoint} {row.engine_date.isoformat()} ({row.engine_rule})"
    if row.action != "overridden":
        return engine, engine
    if row.override_date is None:
        return engine, "no progression"
    return engine, f"PD {row.override_timepoint} {row.override_date.isoformat()}"


def review_call(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    decision: str,
    comment: str,
    seen_call: str | None,
) -> ProgressionReview:
    """A reviewer marks the current call ``agreed`` or ``queried`` (a query needs a comment).

    ``seen_call`` is ``"TIMEPOINT/DATE"`` of the call the reviewer looked at; a call that
    changed since is refused (``ConcurrentEdit``).
    """
    comment = clean_reason(comment, "comment") or ""  # at most MAX_REASON characters
    if decision not in REVIEW_ACTIONS:
        raise InvalidInput(
            f"decision {decision!r} is not one of: {', '.join(REVIEW_ACTIONS)}",
            field="decision",
        )
    if decision == "queried" and not comment:
        raise InvalidInput(
            "a query needs a comment that tells the reader what to check", field="comment"
        )
    with write_transaction(session):
        subject, call = _current(session, trial_code, subject_code, seen_call)
        return _add(session, actor, subject, call, decision, comment)


def answer_query(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    comment: str,
    seen_call: str | None,
) -> ProgressionReview:
    """The reader answers an open query on the current call (a comment is required)."""
    comment = clean_reason(comment, "comment") or ""  # at most MAX_REASON characters
    if not comment:
        raise InvalidInput("an answer to a query needs a comment", field="comment")
    with write_transaction(session):
        subject, call = _current(session, trial_code, subject_code, seen_call)
        row = subject_row(session, subject)
        if row is None or row.state != "queried":
            raise InvalidInput(
                f"subject {subject_code}: the progression call has no open query",
                field="comment",
            )
        return _add(session, actor, subject, call, "answered", comment)


def override_call(
    session: Session,
    actor: Actor,
    trial_code: str,
    subject_code: str,
    *,
    timepoint: str | None,
    reason: str,
    seen_call: str | None,
) -> ProgressionReview:
    """An adjudicator replaces the call used for analysis: progression at another of the
    subject's timepoints (dated that timepoint's date), or none (``timepoint=None``).

    The engine's call is kept beside the override; the reason is required.
    """
    reason = clean_reason(reason) or ""  # at most MAX_REASON characters
    if not reason:
        raise InvalidInput("overriding a progression call needs a reason", field="reason")
    with write_transaction(session):
        subject, call = _current(session, trial_code, subject_code, seen_call)
        tp_date = None
        if timepoint:
            tp = next((t for t in subject.timepoints if t.code == timepoint), None)
            if tp is None or tp is subject.timepoints[0]:
                raise InvalidInput(
                    f"subject {subject_code}: {timepoint!r} is not one of its follow-ups",
                    field="timepoint",
                )
            tp_date = tp.date
            if (timepoint, tp_date) == (call.timepoint, call.date):
                raise InvalidInput(
                    f"subject {subject_code}: the engine already calls PD at {timepoint}, "
                    f"dated {tp_date.isoformat()}; "
                    "agree with the call instead of overriding it",
                    field="timepoint",
                )
        return _add(
            session,
            actor,
            subject,
            call,
            "overridden",
            reason,
            override_timepoint=timepoint or None,
            override_date=tp_date,
        )


def open_queries(session: Session, trial: Any) -> list[QueueRow]:
    """Queue rows whose current call has an unanswered query (for the readers)."""
    return [row for row in queue(session, trial) if row.state == "queried"]


def queue_csv(rows: list[QueueRow]) -> str:
    """The queue as CSV: the engine's call beside the call used, and who decided."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            "subject",
            "engine_timepoint",
            "engine_date",
            "engine_rule",
            "rule",
            "reader",
            "signed_by",
            "review_state",
            "reviewed_by",
            "review_comment",
            "used_source",
            "used_timepoint",
            "used_date",
            "override_by",
            "override_reason",
        ]
    )
    for row in rows:
        used = row.used
        writer.writerow(
            [
                row.subject.code,
                row.call.timepoint,
                row.call.date.isoformat(),
                row.call.rule,
                row.call.label,
                row.reader or "",
                row.signed_by or "",
                row.state,
                row.latest.username if row.latest else "",
                csv_safe(row.latest.comment if row.latest else None),
                used["source"],
                used["timepoint"] or "",
                used["date"] or "",
                used.get("by", ""),
                csv_safe(used.get("why")),
            ]
        )
    return out.getvalue()


def with_progression(
    case: dict[str, Any], result: dict[str, Any], progression: dict[str, Any] | None
) -> dict[str, Any]:
    """A copy of an engine result with another progression call and the PFS that follows
    from it by the engine's own rule (§8, :func:`recist.pfs.pfs`).

    The adequate assessments are the result's follow-ups whose overall response is not NE,
    as the engine takes them (:func:`recist.pfs.adequate_assessments`); death, new therapy
    and the visit interval come from ``case``.
    Timepoint responses and the best overall response are left as they are: a call used for
    analysis replaces the date of progression, not the reads.

    Parameters
    ----------
    case
        The case the dates come from (origin, ``died_on``, ``new_therapy_on``, settings).
    result
        The engine result (``recist.jsonio`` shape).
    progression
        ``{"timepoint", "date", "reason", "back_dated"}`` as in an engine result, or
        ``None`` for no progression.
    """
    from recist.irecist import recist_class
    from recist.jsonio import parse_case
    from recist.pfs import PfsReason, Progression, adequate_assessments, pfs
    from recist.response import Response

    adequate = adequate_assessments(
        (
            tp["id"],
            date.fromisoformat(tp["date"]),
            Response(recist_class(tp["overall_response"]))  # iRECIST: its class (§8)
            if tp.get("overall_response") else None,
        )
        for tp in result["timepoints"][1:]
    )
    called = (
        None
        if progression is None
        else Progression(
            progression["timepoint"],
            date.fromisoformat(progression["date"]),
            PfsReason(progression["reason"]),
            bool(progression.get("back_dated")),
        )
    )
    derived = pfs(parse_case(case), called, adequate)
    return {**result, "progression": progression, "pfs": derived.to_dict()}


def overrides(session: Session, trial: Any) -> dict[int, dict[str, Any]]:
    """Subject id → :func:`used_call` for every subject whose current call is overridden."""
    return {row.subject.id: row.used for row in queue(session, trial) if row.override}
