"""A user's inbox (issue 14): what waits for them in the trials they are members of.

By what the user's roles allow (:data:`web.auth.PERMISSIONS`):

* ``unsigned`` — reads they entered (``Timepoint.updated_by``) that are not signed yet
  (:mod:`web.services.signing`);
* ``queries`` — progression calls queried by a reviewer on a read they entered, awaiting
  their answer (:mod:`web.services.progression`);
* ``pacs`` — studies measured by the machine (pulled from a PACS, or by a web batch),
  awaiting a reader's confirmation (:func:`web.services.pacs.awaiting`);
* ``pending_review`` — progression calls no reviewer has agreed with or queried yet;
* ``answered`` — queries they raised that the reader has answered;
* ``adjudication`` — central-review subjects whose two reads disagree and that nobody has
  adjudicated (:mod:`web.services.central`), except the ones they read themselves;
* ``central`` — for a central reader: subjects of a trial under independent central review
  that still want a blinded read (fewer than two) and that they have not read;
* ``blockers`` — for a trial manager, per trial: everything above that holds the trial up.

Only trials the user is a member of count (an administrator reaches every trial); a reader
sees nothing of a trial under blinded central review but their reading list.

The header's badge needs only the numbers: :func:`counts` asks them in **one** SQL
statement of ``COUNT`` subqueries, never loading a subject. A progression call's review
state is the latest review about the current engine call (the same timepoint, date and
rule as :meth:`web.services.progression.Call.matches`), read from the stored result's JSON.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, and_, exists, false, func, select, true
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

from web.models import (
    Adjudication,
    CentralRead,
    PacsStudy,
    ProgressionReview,
    Subject,
    Timepoint,
    Trial,
    TrialMember,
    User,
    role_set,
)

# What each part of the inbox needs (the permissions of web.auth.PERMISSIONS).
PARTS: dict[str, frozenset[str]] = {
    "unsigned": frozenset({"reader", "adjudicator"}),  # sign_reads
    "queries": frozenset({"reader", "adjudicator"}),  # answer_queries
    "pacs": frozenset({"reader", "adjudicator"}),  # enter_measurements
    "pending_review": frozenset({"reviewer", "adjudicator"}),  # review_calls
    "answered": frozenset({"reviewer", "adjudicator"}),  # review_calls
    "adjudication": frozenset({"adjudicator"}),  # adjudicate
    "central": frozenset({"reader"}),  # central_read
    "blockers": frozenset({"trial_manager"}),
}
# What holds a trial up, as a trial manager's inbox counts it.
BLOCKERS = ("unsigned", "queries", "pending_review", "adjudication", "pacs", "central")
LIST_LIMIT = 200


class IsoDate(FunctionElement[Any]):
    """An ISO date text (from JSON) as a date, comparable with a ``Date`` column."""

    type = Date()
    name = "iso_date"
    inherit_cache = True


@compiles(IsoDate)
def _iso_date_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    # SQLite keeps dates as ISO text; date() normalises it (CAST would make a number).
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(IsoDate, "postgresql")
def _iso_date_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


def _call(name: str) -> Any:
    return Subject.result_json[("progression", name)].as_string()


# The engine's current progression call of a subject, from its stored result.
CALL_TP, CALL_RULE, CALL_DATE = _call("timepoint"), _call("reason"), IsoDate(_call("date"))


def _about_call(review: Any) -> ColumnElement[bool]:
    """The review is about the subject's current call (Call.matches)."""
    return and_(
        review.subject_id == Subject.id,
        review.engine_timepoint == CALL_TP,
        review.engine_date == CALL_DATE,
        review.engine_rule == CALL_RULE,
    )


def _latest(action: str | None = None) -> Any:
    """The id of the latest review of the current call (of ``action`` if given)."""
    review = aliased(ProgressionReview)
    query = select(func.max(review.id)).where(_about_call(review)).correlate(Subject)
    if action is not None:
        query = query.where(review.action == action)
    return query.scalar_subquery()


def _state() -> Any:
    """The review state of the subject's current call; NULL when pending."""
    review = aliased(ProgressionReview)
    return select(review.action).where(review.id == _latest()).scalar_subquery()


def _call_reader() -> Any:
    """Who entered the read of the called timepoint (QueueRow.reader)."""
    return (
        select(Timepoint.updated_by)
        .where(Timepoint.subject_id == Subject.id, Timepoint.code == CALL_TP)
        .scalar_subquery()
    )


def _query_raiser() -> Any:
    review = aliased(ProgressionReview)
    return select(review.username).where(review.id == _latest("queried")).scalar_subquery()


@dataclass(frozen=True)
class Scope:
    """Whose inbox: the user, their roles, and which trials count."""

    user: User
    roles: frozenset[str]

    @property
    def name(self) -> str:
        return self.user.username

    def has(self, part: str) -> bool:
        return bool(self.roles & PARTS[part])

    def trials(self, *, site_reads: bool) -> list[ColumnElement[bool]]:
        """Conditions on ``Subject.trial_id``: the user's trials (all for an admin); for a
        reader and ``site_reads``, not the trials under blinded central review."""
        out: list[ColumnElement[bool]] = []
        if "admin" not in self.roles:
            members = select(TrialMember.trial_id).where(TrialMember.user_id == self.user.id)
            out.append(Subject.trial_id.in_(members))
        if site_reads and "reader" in self.roles:
            open_trials = select(Trial.id).where(Trial.central_review == false())
            out.append(Subject.trial_id.in_(open_trials))
        return out


def scope_of(user: User) -> Scope:
    return Scope(user, role_set(user.role))


# Each part as a query over subjects (or their timepoints / studies), with or without the
# user: ``mine=False`` is the trial manager's view of everyone's work.


def _unsigned(scope: Scope, columns: list[Any], mine: bool = True) -> Select[Any]:
    query = (
        select(*columns)
        .select_from(Timepoint)
        .join(Subject, Subject.id == Timepoint.subject_id)
        .where(Timepoint.locked == false(), *scope.trials(site_reads=True))
    )
    return query.where(Timepoint.updated_by == scope.name) if mine else query


def _queries(scope: Scope, columns: list[Any], mine: bool = True) -> Select[Any]:
    query = (
        select(*columns)
        .select_from(Subject)
        .where(CALL_TP.is_not(None), _state() == "queried", *scope.trials(site_reads=True))
    )
    return query.where(_call_reader() == scope.name) if mine else query


def _pacs(scope: Scope, columns: list[Any], mine: bool = True) -> Select[Any]:
    used = exists().where(
        Timepoint.subject_id == PacsStudy.subject_id,
        Timepoint.imaging_json[("study", "id")].as_string()
        == PacsStudy.measured[("study", "id")].as_string(),
    )
    return (
        select(*columns)
        .select_from(PacsStudy)
        .join(Subject, Subject.id == PacsStudy.subject_id)
        .where(~used, *scope.trials(site_reads=True))
    )


def _pending_review(scope: Scope, columns: list[Any], mine: bool = True) -> Select[Any]:
    return (
        select(*columns)
        .select_from(Subject)
        .where(CALL_TP.is_not(None), _latest().is_(None), *scope.trials(site_reads=True))
    )


def _answered(scope: Scope, columns: list[Any], mine: bool = True) -> Select[Any]:
    return (
        select(*columns)
        .select_from(Subject)
        .where(
            CALL_TP.is_not(None),
            _state() == "answered",
            _query_raiser() == scope.name,
            *scope.trials(site_reads=True),
        )
    )


def _adjudication(scope: Scope, columns: list[Any], mine: bool = True) -> Select[Any]:
    """Two reads, none accepted (agreeing reads accept read 1 at once), no adjudication."""
    reads = select(func.count(CentralRead.id)).where(CentralRead.subject_id == Subject.id)
    accepted = exists().where(CentralRead.subject_id == Subject.id, CentralRead.accepted)
    done = exists().where(Adjudication.subject_id == Subject.id)
    query = (
        select(*columns)
        .select_from(Subject)
        .where(reads.scalar_subquery() == 2, ~accepted, ~done, *scope.trials(site_reads=False))
    )
    if mine:
        own = exists().where(CentralRead.subject_id == Subject.id, CentralRead.reader == scope.name)
        query = query.where(~own)
    return query


def _central(scope: Scope, columns: list[Any], mine: bool = True) -> Select[Any]:
    """Subjects of a central-review trial with fewer than two blinded reads (the most a
    subject takes, web.services.central.submit_read); ``mine``: not read by the user."""
    reads = select(func.count(CentralRead.id)).where(CentralRead.subject_id == Subject.id)
    central = select(Trial.id).where(Trial.central_review == true())
    query = (
        select(*columns)
        .select_from(Subject)
        .where(
            Subject.trial_id.in_(central),
            reads.scalar_subquery() < 2,
            *scope.trials(site_reads=False),
        )
    )
    if mine:
        own = exists().where(CentralRead.subject_id == Subject.id, CentralRead.reader == scope.name)
        query = query.where(~own)
    return query


QUERIES = {
    "unsigned": _unsigned,
    "queries": _queries,
    "pacs": _pacs,
    "pending_review": _pending_review,
    "answered": _answered,
    "adjudication": _adjudication,
    "central": _central,
}


@dataclass
class Counts:
    """How many items wait in each part of the user's inbox (only the parts their roles
    have); ``total`` is the header's badge."""

    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def _count(query: Select[Any]) -> Any:
    return select(func.count()).select_from(query.subquery()).scalar_subquery()


def counts(session: Session, user: User) -> Counts:
    """The inbox's numbers in one SQL statement (no subject is loaded)."""
    scope = scope_of(user)
    wanted: dict[str, Any] = {}
    for part, build in QUERIES.items():
        if scope.has(part):
            wanted[part] = _count(build(scope, [Subject.id]))
    if scope.has("blockers"):
        for part in BLOCKERS:
            wanted[f"blockers.{part}"] = _count(QUERIES[part](scope, [Subject.id], mine=False))
    if not wanted:
        return Counts()
    row = session.execute(select(*(q.label(k.replace(".", "_")) for k, q in wanted.items())))
    values = row.one()
    return Counts({k: int(v or 0) for k, v in zip(wanted, values, strict=True)})


def header_count(session: Session, user: User) -> int | None:
    """The header's badge: :func:`counts`' total, ``None`` when it cannot be read (an
    error page must still render; the fault is logged)."""
    try:
        return counts(session, user).total
    except SQLAlchemyError:
        logging.getLogger(__name__).exception("the inbox count could not be read")
        session.rollback()
        return None


SUBJECT_COLUMNS = [Trial.code.label("trial"), Subject.code.label("subject")]


def _listed(query: Select[Any]) -> Select[Any]:
    return (
        query.join(Trial, Trial.id == Subject.trial_id)
        .order_by(Trial.code, Subject.code)
        .limit(LIST_LIMIT)
    )


def items(session: Session, user: User) -> dict[str, Any]:
    """The inbox's items, part by part (each at most :data:`LIST_LIMIT`, by trial and
    subject), and a trial manager's blockers per trial. One statement per part."""
    scope = scope_of(user)
    out: dict[str, Any] = {}
    if scope.has("unsigned"):
        columns = [
            *SUBJECT_COLUMNS,
            Timepoint.code.label("timepoint"),
            Timepoint.date,
            Timepoint.version,
        ]
        query = _listed(_unsigned(scope, columns)).order_by(Timepoint.date)
        out["unsigned"] = [row._asdict() for row in session.execute(query)]
    call = [*SUBJECT_COLUMNS, CALL_TP.label("timepoint"), _call("date").label("date")]
    for part in ("queries", "pending_review", "answered"):
        if scope.has(part):
            query = _listed(QUERIES[part](scope, call))
            out[part] = [row._asdict() for row in session.execute(query)]
    if scope.has("pacs"):
        columns = [
            *SUBJECT_COLUMNS,
            PacsStudy.id.label("study_id"),
            PacsStudy.timepoint.label("timepoint"),
            PacsStudy.study_date.label("date"),
        ]
        query = _listed(_pacs(scope, columns)).order_by(PacsStudy.study_date)
        out["pacs"] = [row._asdict() for row in session.execute(query)]
    if scope.has("adjudication"):
        query = _listed(_adjudication(scope, SUBJECT_COLUMNS))
        out["adjudication"] = [row._asdict() for row in session.execute(query)]
    if scope.has("central"):
        query = _listed(_central(scope, SUBJECT_COLUMNS))
        out["central"] = [row._asdict() for row in session.execute(query)]
    if scope.has("blockers"):
        out["blockers"] = blockers(session, scope)
    return out


def blockers(session: Session, scope: Scope) -> list[dict[str, Any]]:
    """Per trial of the manager's: how many items of each kind hold it up (trials with
    none are listed too, with zeros), in one statement per kind."""
    visible = select(Trial.code).order_by(Trial.code)
    if "admin" not in scope.roles:
        visible = visible.join(TrialMember, TrialMember.trial_id == Trial.id).where(
            TrialMember.user_id == scope.user.id
        )
    table = {code: dict.fromkeys(BLOCKERS, 0) for code in session.scalars(visible)}
    for part in BLOCKERS:
        inner = QUERIES[part](scope, [Subject.trial_id.label("trial_id")], mine=False).subquery()
        query = (
            select(Trial.code, func.count())
            .select_from(inner)
            .join(Trial, Trial.id == inner.c.trial_id)
            .group_by(Trial.code)
        )
        for code, number in session.execute(query):
            if code in table:
                table[code][part] = int(number)
    return [
        {"trial": code, **numbers, "total": sum(numbers.values())}
        for code, numbers in table.items()
    ]
