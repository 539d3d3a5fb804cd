"""The audit trail: append-only, hash-chained, verifiable, searchable.

Every :class:`~web.models.AuditRecord` carries ``seq`` (1, 2, 3, … with no gaps),
``prev_hash`` (the previous record's ``hash``; 64 zeros for the first) and ``hash``, the
SHA-256 of ``prev_hash`` and the record's content in a canonical JSON form. Changing,
removing or reordering any record therefore breaks the chain at that record, and
:func:`verify_chain` (``recist audit verify``) names the first broken link.

Three layers keep records append-only:

* the application: :func:`_before_flush` (a listener on every SQLAlchemy session) chains
  new records and refuses any flush that would update or delete one;
* the database: triggers refuse ``UPDATE`` and ``DELETE`` (and ``TRUNCATE`` on
  PostgreSQL) of ``audit_record`` rows, whoever sends them (migration ``0003``);
* the chain: even someone who bypasses the triggers (a table owner dropping them) cannot
  edit a record without :func:`verify_chain` noticing.

What the chain cannot show — the newest records deleted, or an edit followed by
re-chaining every later record — anchors show (:mod:`web.services.audit_anchor`: the chain
head with an HMAC under a key kept outside the database); what the data underwent behind
the trail's back, the reconciliation shows (:mod:`web.services.audit_replay`: the trail
replayed against measurements, locks, signatures and cached results). ``recist audit
verify`` runs all three (:mod:`web.cli_audit`).

The chain is written under a table lock on PostgreSQL (``SHARE ROW EXCLUSIVE``: readers go
on, a second writer of audit records waits for the first to commit), so that two
transactions never chain onto the same predecessor; SQLite has one writer at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import event, or_, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from web.models import AuditRecord, utcnow

GENESIS = "0" * 64

# The SQL of the append-only triggers, per dialect. Migration 0003 installs them; the test
# support (web.testing) drops and re-creates them to empty tables between tests.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON audit_record "
    "BEGIN SELECT RAISE(ABORT, 'audit_record is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON audit_record "
    "BEGIN SELECT RAISE(ABORT, 'audit_record is append-only: DELETE refused'); END",
)
SQLITE_DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS audit_record_no_update",
    "DROP TRIGGER IF EXISTS audit_record_no_delete",
)
POSTGRESQL_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION audit_record_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'audit_record is append-only: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END;
    $$""",
    "CREATE TRIGGER audit_record_no_update_delete BEFORE UPDATE OR DELETE ON audit_record "
    "FOR EACH ROW EXECUTE FUNCTION audit_record_append_only()",
    "CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_record_append_only()",
)
POSTGRESQL_DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS audit_record_no_truncate ON audit_record",
    "DROP TRIGGER IF EXISTS audit_record_no_update_delete ON audit_record",
    "DROP FUNCTION IF EXISTS audit_record_append_only()",
)


def install_triggers(connection: Connection) -> None:
    """Create the append-only triggers on ``audit_record`` for the connection's dialect."""
    statements = POSTGRESQL_TRIGGERS if connection.dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in statements:
        connection.exec_driver_sql(statement)


def drop_triggers(connection: Connection) -> None:
    """Remove the append-only triggers (migration downgrade and test support only)."""
    statements = (
        POSTGRESQL_DROP_TRIGGERS
        if connection.dialect.name == "postgresql"
        else SQLITE_DROP_TRIGGERS
    )
    for statement in statements:
        connection.exec_driver_sql(statement)


class AuditTamperError(RuntimeError):
    """An attempt to change or delete an audit record through the ORM."""


# --------------------------------------------------------------------------- the chain


def canonical_time(at: datetime) -> str:
    """``at`` in UTC as ISO 8601 with microseconds (SQLite returns naive UTC values)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(
    *,
    seq: int,
    prev_hash: str,
    at: datetime,
    username: str,
    action: str,
    entity: str,
    entity_key: str,
    field: str | None,
    old: str | None,
    new: str | None,
    reason: str | None,
) -> str:
    """SHA-256 (hex) of a record's content and its predecessor's hash.

    The content is a JSON array (fixed order, UTF-8, no whitespace), so that no two
    different records share a byte string (``"a|b"`` joins could be ambiguous).
    """
    content = [
        seq,
        prev_hash,
        canonical_time(at),
        username,
        action,
        entity,
        entity_key,
        field,
        old,
        new,
        reason,
    ]
    data = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def hash_of(record: AuditRecord, prev_hash: str) -> str:
    """:func:`record_hash` of a stored or pending record chained onto ``prev_hash``."""
    return record_hash(
        seq=record.seq,
        prev_hash=prev_hash,
        at=record.at,
        username=record.username,
        action=record.action,
        entity=record.entity,
        entity_key=record.entity_key,
        field=record.field,
        old=record.old,
        new=record.new,
        reason=record.reason,
    )


# The order in which records were created in this process: a flush chains its new
# records in that order (a session's set of new objects has no order of its own).
_CREATED = itertools.count()


@event.listens_for(AuditRecord, "init")
def _on_init(target: AuditRecord, _args: Any, _kwargs: Any) -> None:
    target._created_order = next(_CREATED)  # type: ignore[attr-defined]


# Built once (read by every write): its compiled form is found in the cache directly.
_LAST_LINK = select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)


def last_link(connection: Connection) -> tuple[int, str]:
    """``(seq, hash)`` of the newest record, ``(0, GENESIS)`` on an empty trail."""
    row = connection.execute(_LAST_LINK).first()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    """Chain new audit records; refuse to flush a changed or deleted one."""
    for obj in session.deleted:
        if isinstance(obj, AuditRecord):
            raise AuditTamperError(
                f"audit record {obj.seq} cannot be deleted: the audit trail is append-only"
            )
    for obj in session.dirty:
        if isinstance(obj, AuditRecord) and session.is_modified(obj):
            raise AuditTamperError(
                f"audit record {obj.seq} cannot be changed: the audit trail is append-only"
            )
    pending = [obj for obj in session.new if isinstance(obj, AuditRecord)]
    if not pending:
        return
    pending.sort(key=lambda r: getattr(r, "_created_order", 0))
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One appender at a time per schema, until commit. An advisory lock, not LOCK TABLE:
        # that needs UPDATE or DELETE on audit_record, which the application's role should
        # not hold (SECURITY.md); the primary key on seq refuses any writer that skips it.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.audit_record'))")
        )
    seq, prev = last_link(connection)
    for record in pending:
        if record.at is None:
            record.at = utcnow()
        seq += 1
        record.seq = seq
        record.prev_hash = prev
        record.hash = hash_of(record, prev)
        prev = record.hash


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class ChainReport:
    """The outcome of :func:`verify_chain`; ``problem`` is ``None`` when intact."""

    records: int
    last_hash: str
    problem: str | None = None
    broken_seq: int | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_chain(connection: Connection, *, batch: int = 2000) -> ChainReport:
    """Walk the whole trail in ``seq`` order and report the first broken link.

    A link is broken when its ``seq`` is not the next number (a record was removed or
    inserted), its ``prev_hash`` is not the previous record's ``hash`` (records were
    reordered or removed), or its ``hash`` does not match its content (it was edited).
    """
    expected_seq = 1
    prev = GENESIS
    count = 0
    last_seq = 0
    while True:
        rows = connection.execute(
            select(AuditRecord.__table__)
            .where(AuditRecord.seq > last_seq)
            .order_by(AuditRecord.seq)
            .limit(batch)
        ).all()
        if not rows:
            return ChainReport(count, prev)
        for row in rows:
            record = AuditRecord(**{c: getattr(row, c) for c in row._fields})
            where = f"audit record seq {row.seq} (id {row.id}, {row.at:%Y-%m-%d %H:%M:%S} UTC)"
            if row.seq != expected_seq:
                return ChainReport(
                    count,
                    prev,
                    f"{where}: expected seq {expected_seq} — a record is missing or was inserted",
                    row.seq,
                )
            if row.prev_hash != prev:
                return ChainReport(
                    count,
                    prev,
                    f"{where}: prev_hash does not match the hash of record {expected_seq - 1} "
                    "— the chain was cut or reordered",
                    row.seq,
                )
            if hash_of(record, prev) != row.hash:
                return ChainReport(
                    count,
                    prev,
                    f"{where}: hash does not match the record's content — it was changed "
                    "after it was written",
                    row.seq,
                )
            prev = row.hash
            expected_seq += 1
            count += 1
            last_seq = row.seq


def verify_trail(session: Session) -> ChainReport:
    """:func:`verify_chain` over the connection of ``session`` (a request's session)."""
    return verify_chain(session.connection())


# --------------------------------------------------------------------------- search


ACTIONS = (
    "create",
    "update",
    "save",
    "delete",
    "lock",
    "sign",
    "unlock",
    "review",
    "adjudicate",
    "override",
)


@dataclass(frozen=True)
class AuditFilter:
    """Filters of the audit view; empty values do not filter."""

    user: str = ""
    entity: str = ""
    action: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def from_args(cls, args: Any) -> AuditFilter:
        """Filters from query-string arguments; malformed dates raise ``ValueError``."""

        def day(name: str) -> date | None:
            value = (args.get(name) or "").strip()
            if not value:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None

        date_from, date_to = day("from"), day("to")
        if date_from is not None and date_to is not None and date_from > date_to:
            raise ValueError(
                f"from: {date_from.isoformat()} is after to ({date_to.isoformat()}), so no "
                "record can match; swap the dates"
            )
        return cls(
            user=(args.get("user") or "").strip(),
            entity=(args.get("entity") or "").strip(),
            action=(args.get("action") or "").strip(),
            date_from=date_from,
            date_to=date_to,
        )

    def as_args(self) -> dict[str, str]:
        out = {"user": self.user, "entity": self.entity, "action": self.action}
        out["from"] = self.date_from.isoformat() if self.date_from else ""
        out["to"] = self.date_to.isoformat() if self.date_to else ""
        return {k: v for k, v in out.items() if v}


def search(
    session: Session, key: str | None, filters: AuditFilter, *, limit: int | None = 500
) -> list[AuditRecord]:
    """Records under ``key`` (a trial code, ``TRIAL/SUBJECT``; ``None``: all), newest first.

    ``TRIAL/S-1`` matches ``TRIAL/S-1`` and ``TRIAL/S-1/W8/T01`` but not ``TRIAL/S-10``.
    Dates are whole UTC days, both ends included.
    """
    query = select(AuditRecord)
    if key is not None:
        query = query.where(
            or_(
                AuditRecord.entity_key == key,
                AuditRecord.entity_key.startswith(key + "/", autoescape=True),
            )
        )
    if filters.user:
        query = query.where(AuditRecord.username == filters.user)
    if filters.entity:
        query = query.where(AuditRecord.entity == filters.entity)
    if filters.action:
        query = query.where(AuditRecord.action == filters.action)
    if filters.date_from:
        query = query.where(AuditRecord.at >= datetime.combine(filters.date_from, time(), UTC))
    if filters.date_to:
        end = datetime.combine(filters.date_to, time.max, UTC)
        query = query.where(AuditRecord.at <= end)
    query = query.order_by(AuditRecord.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


# The entities of access events (web.services.access): logins, logouts, failed logins,
# sessions ended, tokens created, revoked and used.
ACCESS_ENTITIES = ("access", "api_token")


def access_events(
    session: Session, filters: AuditFilter, *, limit: int | None = 500
) -> list[AuditRecord]:
    """Access events, newest first, filtered like the audit view (``entity`` narrows to one
    of :data:`ACCESS_ENTITIES`)."""
    wanted = [filters.entity] if filters.entity in ACCESS_ENTITIES else list(ACCESS_ENTITIES)
    query = select(AuditRecord).where(AuditRecord.entity.in_(wanted))
    if filters.user:
        query = query.where(
            or_(AuditRecord.username == filters.user, AuditRecord.entity_key == filters.user)
        )
    if filters.action:
        query = query.where(AuditRecord.action == filters.action)
    if filters.date_from:
        query = query.where(AuditRecord.at >= datetime.combine(filters.date_from, time(), UTC))
    if filters.date_to:
        query = query.where(AuditRecord.at <= datetime.combine(filters.date_to, time.max, UTC))
    query = query.order_by(AuditRecord.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


CSV_COLUMNS = (
    "seq",
    "at_utc",
    "user",
    "action",
    "entity",
    "entity_key",
    "field",
    "old",
    "new",
    "reason",
    "hash",
)


def to_csv(records: Iterable[AuditRecord]) -> str:
    """The records as CSV (RFC 4180, a header row), times in UTC."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow(
            [
                r.seq,
                canonical_time(r.at),
                r.username,
                r.action,
                r.entity,
                r.entity_key,
                r.field or "",
                csv_safe(r.old),
                csv_safe(r.new),
                csv_safe(r.reason),
                r.hash,
            ]
        )
    return out.getvalue()


def csv_safe(value: str | None) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheets (CSV injection):
    # prefix a quote so reviewers opening the export see the text, not its result.
    if not value:
        return ""
    return "'" + value if value[0] in "=+-@\t\r" else value


def entities(session: Session) -> list[str]:
    """The entity names that occur in the trail (for the filter's choices)."""
    return list(session.scalars(select(AuditRecord.entity).distinct().order_by(AuditRecord.entity)))
