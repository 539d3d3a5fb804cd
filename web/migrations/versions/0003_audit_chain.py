"""audit trail: hash chain (seq, prev_hash, hash) and append-only triggers

Existing records are chained in id order, then the triggers that refuse UPDATE and DELETE
of audit rows (and TRUNCATE on PostgreSQL) are installed; see web/audit.py.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from web.services.audit import GENESIS, install_triggers, record_hash

    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))

    # Chain the records written before this migration, oldest first.
    bind = op.get_bind()
    table = sa.table(
        "audit_record",
        *(
            sa.column(name)
            for name in (
                "id",
                "at",
                "username",
                "action",
                "entity",
                "entity_key",
                "field",
                "old",
                "new",
                "reason",
                "seq",
                "prev_hash",
                "hash",
            )
        ),
    )
    prev = GENESIS
    rows = bind.execute(sa.select(table).order_by(table.c.id)).all()
    for seq, row in enumerate(rows, start=1):
        at = row.at
        if isinstance(at, str):  # SQLite without the model's type: "YYYY-MM-DD HH:MM:SS.ffffff"
            from datetime import datetime

            at = datetime.fromisoformat(at)
        digest = record_hash(
            seq=seq,
            prev_hash=prev,
            at=at,
            username=row.username,
            action=row.action,
            entity=row.entity,
            entity_key=row.entity_key,
            field=row.field,
            old=row.old,
            new=row.new,
            reason=row.reason,
        )
        bind.execute(
            table.update().where(table.c.id == row.id).values(seq=seq, prev_hash=prev, hash=digest)
        )
        prev = digest

    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("audit_record_seq_key", ["seq"])

    install_triggers(bind)


def downgrade() -> None:
    from web.services.audit import drop_triggers

    drop_triggers(op.get_bind())
    with op.batch_alter_table("audit_record", schema=None) as batch_op:
        batch_op.drop_constraint("audit_record_seq_key", type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
